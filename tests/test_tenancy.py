"""Tenancy over HTTP: bob's token never sees or changes alice's tasks, subtasks, storage
configs or video channels, and his answers carry none of her data."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from api_helpers import ok

from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import StoreConf, Task, VideoChannel
from tests.conftest import Actor, task_body

pytestmark = pytest.mark.django_db

# Strings only alice's data contains; none may appear in an answer to bob.
SECRETS = ("alice-only", "10.66.66.", "alice-bucket")


@dataclass
class AliceData:
    task_id: str
    subtask_ids: list[int]


def send(actor: Actor, method: str, path: str, body: Any = None):
    return getattr(actor, method)(path, body) if method in ("post", "put") else getattr(actor, method)(path)


def refused(response, status: int = 404) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert body["ecode"] == status
    text = json.dumps(body, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in text, body
    return body


@pytest.fixture
def alices(alice: Actor) -> AliceData:
    conf = {
        "unid": "alice-conf",
        "name": "alice-only conf",
        "file_ext": "xml",
        "file_b64": base64.b64encode(b"<root><b>alice-bucket</b></root>").decode(),
    }
    ok(alice.post("/store_confs", conf), 201)
    ok(
        alice.post(
            "/vchans", {"vchan_refid": "alice-cam", "name": "alice-only cam", "url": "rtsp://10.66.66.1/l"}
        ),
        201,
    )
    body = task_body(
        vchans=0, task_name="alice-only task", play_url="rtsp://10.66.66.2/l", store_conf_unid="alice-conf"
    )
    body["vchans"] = [
        "alice-cam",
        {"vchan_refid": "alice-cam-2", "name": "alice-only 2", "url": "rtsp://10.66.66.3/l"},
    ]
    task = ok(alice.post("/tasks", body), 200)["data"]
    subtask_ids = list(
        Subtask.objects.filter(task_id=task["task_id"]).order_by("position").values_list("pk", flat=True)
    )
    return AliceData(task["task_id"], subtask_ids)


def snapshot() -> list[Any]:
    """Everything of alice's that bob might change."""
    return [
        list(Task.objects.values()),
        list(Subtask.objects.order_by("pk").values()),
        [(c.unid, c.name, bytes(c.content), c.version) for c in StoreConf.objects.all()],
        list(VideoChannel.objects.order_by("pk").values()),
    ]


def test_bob_lists_none_of_alices_tasks(alices, bob):
    page = ok(bob.get("/tasks?limit=1000"))

    assert (page["total_num"], page["list_size"], page["list_data"]) == (0, 0, [])


def test_bob_lists_none_of_alices_store_confs_or_vchans(alices, bob):
    assert ok(bob.get("/store_confs"))["total_num"] == 0
    assert ok(bob.get("/vchans"))["total_num"] == 0


def test_each_sees_only_their_own_tasks(alices, alice, bob):
    ok(bob.post("/tasks", task_body(vchans=1, task_name="bob's")), 200)

    assert [t["task_name"] for t in ok(bob.get("/tasks"))["list_data"]] == ["bob's"]
    assert [t["task_name"] for t in ok(alice.get("/tasks"))["list_data"]] == ["alice-only task"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("put", "", {"task_name": "taken over", "play_url": "rtsp://10.0.0.1/x"}),
        ("delete", "", None),
        ("post", "/start", None),
        ("post", "/stop", None),
        ("get", "/subtasks", None),
    ],
)
def test_bob_cannot_touch_alices_task(alices, bob, method, suffix, body):
    Subtask.objects.update(state=State.CONFIGURED, config_complete=True)
    before = snapshot()
    path = f"/tasks/{alices.task_id}{suffix}"

    answer = refused(send(bob, method, path, body))

    assert snapshot() == before
    # The same answer as for a task that does not exist: bob cannot even learn that it does.
    missing = send(bob, method, path.replace(alices.task_id, "f" * 32), body).json()
    assert answer["enote"].replace(alices.task_id, "ID") == missing["enote"].replace("f" * 32, "ID")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("put", "", {"algo_args": {"fps": 5}, "rois": []}),
        ("delete", "", None),
        ("post", "/config_complete", None),
    ],
)
def test_bob_cannot_touch_alices_subtasks(alices, bob, method, suffix, body):
    before = snapshot()
    for subtask_id in alices.subtask_ids:
        refused(send(bob, method, f"/subtasks/{subtask_id}{suffix}", body))

    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("get", None),
        ("put", {"name": "taken over", "file_b64": base64.b64encode(b"<root/>").decode()}),
        ("delete", None),
    ],
)
def test_bob_cannot_touch_alices_store_conf(alices, bob, method, body):
    before = snapshot()
    refused(send(bob, method, "/store_confs/alice-conf", body))

    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "body"),
    [("get", None), ("put", {"name": "taken over", "url": "rtsp://10.0.0.1/x"}), ("delete", None)],
)
def test_bob_cannot_touch_alices_vchan(alices, bob, method, body):
    before = snapshot()
    refused(send(bob, method, "/vchans/alice-cam", body))

    assert snapshot() == before


def test_bob_cannot_use_alices_store_conf_in_his_task(alices, bob):
    before = snapshot()

    answer = refused(bob.post("/tasks", task_body(store_conf_unid="alice-conf")))

    assert "store_conf_unid" in answer["enote"]
    assert snapshot() == before


def test_bob_cannot_use_alices_vchan_by_refid(alices, bob):
    body = task_body(vchans=0)
    body["vchans"] = ["alice-cam"]
    before = snapshot()

    answer = refused(bob.post("/tasks", body))

    assert "alice-cam" in answer["enote"]
    assert snapshot() == before


def test_bob_may_use_the_same_refids_and_unids_in_his_own_project(alices, alice, bob):
    conf = {
        "unid": "alice-conf",
        "name": "bob's",
        "file_ext": "txt",
        "file_b64": base64.b64encode(b"b").decode(),
    }
    ok(bob.post("/store_confs", conf), 201)
    body = task_body(vchans=0, store_conf_unid="alice-conf")
    body["vchans"] = [{"vchan_refid": "alice-cam", "url": "rtsp://10.0.0.7/bob"}]

    task = ok(bob.post("/tasks", body), 200)["data"]

    bob_subtasks = ok(bob.get(f"/tasks/{task['task_id']}/subtasks"))["list_data"]
    assert [s["source_url"] for s in bob_subtasks] == ["rtsp://10.0.0.7/bob"]
    assert (
        VideoChannel.objects.get(project=alice.project, vchan_refid="alice-cam").url == "rtsp://10.66.66.1/l"
    )
    assert ok(alice.get("/store_confs/alice-conf"))["data"]["name"] == "alice-only conf"
