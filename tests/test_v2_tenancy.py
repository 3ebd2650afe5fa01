"""Tenancy on every v2 endpoint: bob's token gets 403 for alice's project_id in the path and 404
for her ids under his own, nothing of hers in the answer, and nothing of hers changes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Actor
from tests.test_v2_helpers import (
    add_sources,
    batch_body,
    create_task,
    group_body,
    snapshot,
    source_body,
    task_body,
    v2,
    v2_ok,
    v2_refused,
)

pytestmark = pytest.mark.django_db

# What only alice's data contains (ids bob sends may be echoed: they are his input, not her data).
SECRETS = ("alice_only", "10.0.0.", "camera", "proj-alice", "aliceonly")


@dataclass
class AliceData:
    task_id: str
    batch_id: str
    source_id: str
    group_id: str


@pytest.fixture
def alices(alice: Actor) -> AliceData:
    sources = add_sources(alice, 3, "alice-cam")
    task = create_task(alice, sources=[sources[0]], name="alice_only")
    batch = v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body(sources[1:], name="alice_only_batch")))
    group = v2_ok(alice.post(v2(alice, "/video-group"), group_body("aliceonly", sources[:1])))
    return AliceData(task["id"], batch["id"], sources[2], group["video_group_id"])


def endpoints(d: AliceData) -> list[tuple[str, str, Any]]:
    """(method, path after /v2/{project_id}, body) of every v2 endpoint, aimed at alice's objects."""
    return [
        ("get", "/tasks", None),
        ("post", "/services/face/tasks", task_body(sources=[d.source_id])),
        ("get", f"/tasks/{d.task_id}", None),
        ("put", f"/tasks/{d.task_id}", {"name": "taken_over"}),
        ("delete", f"/tasks/{d.task_id}", None),
        ("put", f"/tasks/{d.task_id}/action/start", None),
        ("put", f"/tasks/{d.task_id}/action/stop", None),
        ("post", "/batch-tasks", batch_body([d.source_id])),
        ("get", "/batch-tasks", None),
        ("put", f"/batch-tasks/{d.batch_id}", {"name": "taken_over"}),
        ("delete", f"/batch-tasks/{d.batch_id}", None),
        ("put", f"/batch-tasks/{d.batch_id}/action/start", None),
        ("put", f"/batch-tasks/{d.batch_id}/action/stop", None),
        ("post", "/source", source_body("x", "rtsp://10.9.9.9/l")),
        ("get", "/source/sources", None),
        ("get", f"/source/sources/{d.source_id}", None),
        ("put", f"/source/{d.source_id}", source_body("taken over", "rtsp://10.9.9.8/l")),
        ("delete", f"/source/{d.source_id}", None),
        ("post", "/video-group", group_body("bobs", [d.source_id])),
        ("get", "/video-group/groups", None),
        ("get", f"/video-group/{d.group_id}", None),
        ("put", f"/video-group/{d.group_id}", group_body("takenover", [d.source_id])),
        ("delete", f"/video-group/{d.group_id}", None),
    ]


ENDPOINT_IDS = [f"{m}-{i}" for i, (m, _, _) in enumerate(endpoints(AliceData("t", "b", "s", "g")))]


def send(actor: Actor, method: str, path: str, body: Any):
    return getattr(actor, method)(path, body) if method in ("post", "put") else getattr(actor, method)(path)


def assert_no_secret(response) -> None:
    text = json.dumps(response.json(), ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.parametrize("index", range(len(ENDPOINT_IDS)), ids=ENDPOINT_IDS)
def test_alices_project_in_the_path_is_403_for_bob(alices, alice, bob, index):
    method, rest, body = endpoints(alices)[index]
    before = snapshot()

    response = send(bob, method, f"/v2/{alice.project.project_id}{rest}", body)

    v2_refused(response, 403, "VIAS.00010005")
    assert_no_secret(response)
    assert snapshot() == before


@pytest.mark.parametrize(
    "index",
    [
        i
        for i, (m, rest, _) in enumerate(endpoints(AliceData("t", "b", "s", "g")))
        if rest.count("/") > 1 or m in ("get",)
    ],
)
def test_alices_ids_under_bobs_project_are_not_found(alices, bob, index):
    method, rest, body = endpoints(alices)[index]
    before = snapshot()

    response = send(bob, method, v2(bob, rest), body)

    if method == "get" and rest in ("/tasks", "/batch-tasks"):
        answer = v2_ok(response)
        assert answer["count"] == 0 and answer["total"] == 0
    elif method == "get" and rest in ("/source/sources", "/video-group/groups"):
        assert v2_ok(response)["total_number"] == 0
    else:
        v2_refused(response, 404)
    assert_no_secret(response)
    assert snapshot() == before


def test_bob_cannot_build_on_alices_sources(alices, bob):
    before = snapshot()

    v2_refused(bob.post(v2(bob, "/services/face/tasks"), task_body(sources=[alices.source_id])), 404)
    batch = v2_ok(bob.post(v2(bob, "/batch-tasks"), batch_body([alices.source_id], name="bobs")))

    assert (batch["succeed_count"], batch["failed_count"]) == (0, 1)
    assert snapshot()["tasks"] == before["tasks"]
