"""Event outputs (analysis/outputs.py): webhook, Redis stream (dis), result file (obs), channel layer.

The webhook receiver is a real HTTP server on 127.0.0.1 in a thread; Redis is the suite's Redis;
django-q2 is real (its Redis broker, its Schedule model, one task through `sync=True`).
"""

from __future__ import annotations

import ast
import asyncio
import json
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.models import Task as QTask
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from analysis import outputs
from analysis.models import Delivery, Event
from subtasks.models import Subtask
from tasks import services
from tasks.models import Project, Task
from vias.lib.announce import task_group

# -- a real webhook receiver -------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers with the next of
    `statuses` (the last one repeats), after `delay` seconds, with `location` if given."""

    def __init__(self, statuses: list[int] | int = 200, delay: float = 0.0, location: str = "") -> None:
        self.statuses = [statuses] if isinstance(statuses, int) else list(statuses)
        self.delay = delay
        self.location = location
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self._answer()

            def do_GET(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                receiver.released.wait(receiver.delay)
                try:
                    self.send_response(status)
                    if receiver.location:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook?token=t0k") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for item in made:
        item.close()


# -- events ------------------------------------------------------------------------------------


def make_task(project: Project, output: dict[str, Any] | None = None) -> Task:
    task = services.create_task(
        project,
        {
            "task_name": "outputs",
            "algo_type": "1",
            "run_dt": timezone.now(),
            "play_url": "rtsp://10.0.0.1/live",
            "vchans": [],
            "mtasks": [],
        },
    )
    if output is not None:
        # Straight to the row: these tests are about delivery, not about the v2 output validator.
        Task.objects.filter(pk=task.pk).update(output=output)
        task.refresh_from_db()
    return task


def make_event(task: Task, index: int = 0, **fields: Any) -> Event:
    subtask = Subtask.objects.filter(task=task).first()
    return Event.objects.create(
        subtask=subtask,
        task=task,
        key=f"frame-{index}",
        occurred_at=timezone.now(),
        offset_s=1.5 + index,
        frame_index=10 + index,
        category="body",
        rule="intrusion",
        zone="door",
        box=[1, 2, 30, 40],
        score=0.87,
        track_id=7,
        attributes={"fall": False},
        **fields,
    )


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(project_id="proj-out", name="outputs")


@pytest.fixture(autouse=True)
def output_settings(settings, tmp_path: Path):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.VIAS_WEBHOOK_TIMEOUT = 1
    settings.VIAS_WEBHOOK_RETRIES = 2
    settings.VIAS_WEBHOOK_BACKOFF = 10
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def webhook_task(project: Project, url: str, headers: dict[str, str] | None = None) -> Task:
    return make_task(project, {"webhook": {"url": url, "headers": headers or {"X-Token": "s3cret"}}})


def deliveries(event: Event) -> list[Delivery]:
    return list(Delivery.objects.filter(event=event).order_by("attempt", "pk"))


def run_due_retries(event: Event) -> list[float]:
    """Play the django-q2 scheduler for this event's webhook retries: run each scheduled attempt
    in order, as the cluster would once it is due; the delays each was scheduled with."""
    delays = []
    while schedule := Schedule.objects.filter(func=outputs.WEBHOOK_TASK).order_by("next_run").first():
        assert schedule.schedule_type == Schedule.ONCE
        delays.append((schedule.next_run - timezone.now()).total_seconds())
        args = ast.literal_eval(schedule.args)
        assert args[0] == event.pk
        schedule.delete()
        outputs.deliver_webhook(*args)
    return delays


# -- webhook -------------------------------------------------------------------------------------


def test_webhook_200_posts_the_event_message_with_the_configured_headers(project, receiver):
    hook = receiver(statuses=200)
    event = make_event(webhook_task(project, hook.url(), {"X-Token": "s3cret", "Host": "evil"}))

    assert outputs.deliver_webhook(event.pk, 1) is True

    [request] = hook.requests
    assert request["method"] == "POST"
    assert request["path"] == "/hook?token=t0k"
    assert json.loads(request["body"]) == event.as_message()
    assert request["headers"]["X-Token"] == "s3cret"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-VIAS-Event-Id"] == str(event.pk)
    assert request["headers"]["Host"] == f"127.0.0.1:{hook.port}"  # the configured Host is ignored
    [delivery] = deliveries(event)
    assert (delivery.ok, delivery.status_code, delivery.attempt, delivery.error) == (True, 200, 1, "")
    assert delivery.output == Delivery.Output.WEBHOOK
    assert delivery.target == f"http://127.0.0.1:{hook.port}/hook"  # no query: it may hold secrets
    assert delivery.duration_ms > 0
    assert not Schedule.objects.exists()


def test_webhook_500_is_retried_with_exponential_backoff_then_fails_for_good(project, receiver, settings):
    hook = receiver(statuses=500)
    event = make_event(webhook_task(project, hook.url()))

    assert outputs.deliver_webhook(event.pk, 1) is False
    delays = run_due_retries(event)

    assert len(hook.requests) == 3  # 1 + VIAS_WEBHOOK_RETRIES
    assert [round(d) for d in delays] == [10, 20]  # VIAS_WEBHOOK_BACKOFF, doubled
    rows = deliveries(event)
    assert [(d.attempt, d.ok, d.status_code, d.error) for d in rows] == [
        (1, False, 500, "HTTP 500"),
        (2, False, 500, "HTTP 500"),
        (3, False, 500, "HTTP 500"),
    ]
    assert not Schedule.objects.exists()  # the last failure is final


def test_webhook_that_recovers_stops_retrying(project, receiver):
    hook = receiver(statuses=[503, 200])
    event = make_event(webhook_task(project, hook.url()))

    outputs.deliver_webhook(event.pk, 1)
    run_due_retries(event)

    assert [(d.attempt, d.ok, d.status_code) for d in deliveries(event)] == [(1, False, 503), (2, True, 200)]
    assert [r["headers"]["X-VIAS-Delivery-Attempt"] for r in hook.requests] == ["1", "2"]


def test_webhook_4xx_is_not_retried(project, receiver):
    hook = receiver(statuses=404)
    event = make_event(webhook_task(project, hook.url()))
    assert outputs.deliver_webhook(event.pk, 1) is False
    assert [(d.status_code, d.error) for d in deliveries(event)] == [(404, "HTTP 404")]
    assert not Schedule.objects.exists()


def test_slow_webhook_is_bounded_by_the_timeout_and_retried_later(project, receiver):
    hook = receiver(delay=10)
    event = make_event(webhook_task(project, hook.url()))

    started = time.monotonic()
    assert outputs.deliver_webhook(event.pk, 1) is False
    elapsed = time.monotonic() - started

    assert elapsed < 8  # a hang guard: VIAS_WEBHOOK_TIMEOUT is 1 s; the receiver would take 10
    [delivery] = deliveries(event)
    assert delivery.status_code is None
    assert "1 s" in delivery.error and "Timeout" in delivery.error
    assert 900 <= delivery.duration_ms < 3000
    schedule = Schedule.objects.get(func=outputs.WEBHOOK_TASK)
    assert ast.literal_eval(schedule.args) == (event.pk, 2)
    assert schedule.cluster == Conf.CLUSTER_NAME  # retried by the node that made the attempt


def test_a_due_retry_runs_through_the_django_q_scheduler(project, receiver, monkeypatch):
    hook = receiver(statuses=[500, 200])
    event = make_event(webhook_task(project, hook.url()))
    outputs.deliver_webhook(event.pk, 1)
    Schedule.objects.update(next_run=timezone.now() - timedelta(seconds=1))  # now due

    # The cluster's own scheduler pass, running what it queues in-process (django-q2's sync mode).
    monkeypatch.setattr(Conf, "SYNC", True)
    scheduler()

    assert [(d.attempt, d.ok, d.status_code) for d in deliveries(event)] == [(1, False, 500), (2, True, 200)]
    assert not Schedule.objects.exists()  # a ONCE schedule is gone once it ran
    assert QTask.objects.get(func=outputs.WEBHOOK_TASK).success is True


@pytest.fixture
def private_queue(monkeypatch):
    """Queue this test's django-q2 tasks on a list of their own, so no running cluster takes them."""
    from django_q.brokers import get_broker

    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"vias-test-{uuid.uuid4().hex[:8]}")
    broker = get_broker()
    yield broker
    broker.delete_queue()


def test_publish_returns_at_once_and_queues_the_delivery(
    project, receiver, private_queue, django_capture_on_commit_callbacks
):
    hook = receiver(delay=10)  # a receiver slower than the timeout
    event = make_event(webhook_task(project, hook.url()))

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        outputs.publish(event)
    assert hook.requests == [] and deliveries(event) == []  # nothing waited for the receiver
    assert time.monotonic() - started < 8  # a hang guard: waiting would take the receiver's 10 s

    # What the analysis job queued is a plain task: function by dotted path, the event's id.
    assert private_queue.queue_size() == 1
    package = SignedPackage.loads(private_queue.dequeue()[0][1])
    assert (package["func"], package["args"]) == (outputs.WEBHOOK_TASK, (event.pk, 1))

    # The worker that runs it is held for at most the timeout.
    started = time.monotonic()
    outputs.deliver_webhook(*package["args"])
    assert time.monotonic() - started < 8  # a hang guard (timeout 1 s, receiver 10 s)
    assert len(hook.requests) == 1 and not deliveries(event)[0].ok


def test_webhook_delivery_through_django_q(project, receiver):
    hook = receiver(statuses=200)
    event = make_event(webhook_task(project, hook.url()))

    task_id = async_task(outputs.WEBHOOK_TASK, event.pk, 1, sync=True)

    assert QTask.objects.get(id=task_id).success is True
    assert [(d.ok, d.status_code) for d in deliveries(event)] == [(True, 200)]
    assert json.loads(hook.requests[0]["body"]) == event.as_message()


def test_unreachable_queue_is_recorded_not_raised(project, receiver, monkeypatch):
    event = make_event(webhook_task(project, "http://127.0.0.1:9/hook"))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr("django_q.tasks.async_task", broken)
    outputs.enqueue_webhook(event.pk)
    [delivery] = deliveries(event)
    assert not delivery.ok and "Redis is down" in delivery.error


def test_webhook_of_a_task_whose_output_was_removed_is_dropped(project, receiver):
    hook = receiver()
    event = make_event(webhook_task(project, hook.url()))
    Task.objects.filter(pk=event.task_id).update(output={})
    assert outputs.deliver_webhook(event.pk, 1) is False
    assert hook.requests == [] and deliveries(event) == []


# -- Redis stream (dis) ------------------------------------------------------------------------


def test_dis_adds_the_event_to_a_redis_stream(project, django_capture_on_commit_callbacks):
    name = f"cam-{uuid.uuid4().hex[:8]}"
    event = make_event(make_task(project, {"dis": {"stream_name": name}}))
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            outputs.publish(event)
        [(_entry_id, fields)] = client.xrange(f"vias:dis:{name}")
    finally:
        client.delete(f"vias:dis:{name}")
        client.close()
    assert json.loads(fields[b"event"]) == event.as_message()
    assert fields[b"event_id"] == str(event.pk).encode()
    [delivery] = deliveries(event)
    assert (delivery.output, delivery.ok, delivery.target) == ("dis", True, f"vias:dis:{name}")


def test_dis_with_a_bad_stream_name_is_a_failed_delivery(project):
    event = make_event(make_task(project, {"dis": {"stream_name": "a b*"}}))
    delivery = outputs.deliver_dis(event, {"stream_name": "a b*"})
    assert not delivery.ok and "stream_name" in delivery.error


# -- result file (obs) -------------------------------------------------------------------------


def test_obs_appends_one_json_line_per_event_and_copies_the_snapshot(
    project, settings, django_capture_on_commit_callbacks
):
    snapshot = Path(settings.MEDIA_ROOT) / "snapshots" / "e.jpg"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8jpeg\xff\xd9")
    task = make_task(project, {"obs": {"bucket": "vias-results", "path": "site/front"}})
    events = [make_event(task, 0, snapshot="snapshots/e.jpg"), make_event(task, 1)]

    with django_capture_on_commit_callbacks(execute=True):
        for event in events:
            outputs.publish(event)

    directory = Path(settings.DATA_DIR) / "results" / "vias-results" / "site" / "front"
    lines = (directory / f"{task.task_id}.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first.pop("snapshot_file") == f"{task.task_id}-{events[0].pk}.jpg"
    assert first == events[0].as_message() and second == events[1].as_message()
    assert (directory / f"{task.task_id}-{events[0].pk}.jpg").read_bytes() == snapshot.read_bytes()
    assert [(d.output, d.ok) for d in Delivery.objects.order_by("pk")] == [("obs", True), ("obs", True)]


@pytest.mark.parametrize(
    ("bucket", "path"),
    [
        ("bkt", "../../escape"),
        ("bkt", "a/../../../escape"),
        ("bkt", "/etc"),
        ("..", "x"),
        (".", ""),
        ("a/b", ""),
        ("bkt", "a\\..\\..\\b"),
        ("bkt", "x\x00y"),
        ("", "x"),
    ],
)
def test_obs_paths_that_leave_the_results_directory_are_refused(bucket, path):
    with pytest.raises(ValidationError):
        outputs.obs_dir(bucket, path)


def test_obs_refuses_a_symlink_out_of_the_results_directory(settings, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = Path(settings.DATA_DIR) / "results"
    root.mkdir(parents=True)
    (root / "bkt").symlink_to(outside)
    with pytest.raises(ValidationError):
        outputs.obs_dir("bkt", "x")
    assert outputs.obs_dir("bkt2", "a/b") == root.resolve() / "bkt2" / "a" / "b"


def test_obs_with_a_traversing_path_writes_nothing_and_records_the_failure(project, settings, tmp_path):
    event = make_event(make_task(project, {"obs": {"bucket": "bkt", "path": "../../../x"}}))
    delivery = outputs.deliver_obs(event, {"bucket": "bkt", "path": "../../../x"})
    assert not delivery.ok and "not a safe place" in delivery.error
    assert not list(tmp_path.rglob("*.jsonl"))


def test_delivery_records_are_english_whatever_language_the_worker_thread_had(project):
    from django.utils import translation

    event = make_event(make_task(project, {"obs": {"bucket": "bkt", "path": "../x"}}))
    with translation.override("zh-hans"):
        delivery = outputs.deliver_obs(event, {"bucket": "bkt", "path": "../x"})
    assert "not a safe place" in delivery.error


# -- channel layer, and publish with nothing configured ---------------------------------------


def test_publish_announces_the_event_to_the_task_group(project, django_capture_on_commit_callbacks):
    event = make_event(make_task(project))
    layer = get_channel_layer()

    async def listen() -> str:
        channel = await layer.new_channel()
        await layer.group_add(task_group(event.task_id), channel)
        return channel

    async def receive(channel: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(layer.receive(channel), timeout=5)
        finally:
            await layer.group_discard(task_group(event.task_id), channel)

    channel = async_to_sync(listen)()
    with django_capture_on_commit_callbacks(execute=True):
        outputs.publish(event)
    message = async_to_sync(receive)(channel)

    assert message["type"] == "vias.event" and message["kind"] == "event"
    assert message["project_id"] == "proj-out"
    assert {k: message[k] for k in event.as_message()} == event.as_message()
    assert not Delivery.objects.exists()  # no output configured: only the announcement


def test_task_output_reads_what_is_there():
    class Bare:
        pass

    class WithNone:
        output = None

    assert outputs.task_output(Bare()) == {} and outputs.task_output(WithNone()) == {}
    assert outputs.backoff_s(1) == 10 and outputs.backoff_s(3) == 40
    assert outputs.backoff_s(30) == outputs.MAX_BACKOFF_S


def test_a_retry_is_scheduled_once(db):
    outputs.schedule_webhook_retry(123, 2, 5)
    outputs.schedule_webhook_retry(123, 2, 5)
    schedule = Schedule.objects.get()
    assert schedule.next_run - timezone.now() < timedelta(seconds=6)
