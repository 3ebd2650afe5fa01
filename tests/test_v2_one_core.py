"""One core: a task created through the native API, VCS-SPS or v2 is visible, in each API's own
shape, through the other two, and each can start and stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api_helpers import ok
from tests.conftest import Actor
from tests.conftest import task_body as native_body
from tests.test_v2_helpers import add_sources, create_task, v2, v2_ok
from tests.vcs_helpers import CREATE, GET, START, compute_body, make_store, vcs_ok

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def videos(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return make_store(tmp_path)


def made_natively(actor: Actor) -> str:
    body = native_body(vchans=1, task_name="native_task")
    task_id = ok(actor.post("/tasks", body), 200)["data"]["task_id"]
    for subtask in ok(actor.get(f"/tasks/{task_id}/subtasks"))["list_data"]:
        ok(actor.post(f"/subtasks/{subtask['subtask_id']}/config_complete"))
    return task_id


def made_by_vcs(actor: Actor) -> str:
    return vcs_ok(actor.post(CREATE, compute_body(name="vcs_task")))["taskId"]


def made_by_v2(actor: Actor) -> str:
    add_sources(actor, 1, "v2cam")
    return create_task(actor, sources=["v2cam-0"], name="v2_task")["id"]


MAKERS = {"native": made_natively, "vcs": made_by_vcs, "v2": made_by_v2}
NAMES = {"native": "native_task", "vcs": "vcs_task", "v2": "v2_task"}


@pytest.mark.parametrize("maker", MAKERS)
def test_each_api_reads_a_task_made_through_any_api(alice, maker):
    task_id = MAKERS[maker](alice)
    name = NAMES[maker]

    native = ok(alice.get(f"/tasks/{task_id}"))["data"]
    vcs = vcs_ok(alice.post(GET, {"taskIds": [task_id]}))
    v2_one = v2_ok(alice.get(v2(alice, f"/tasks/{task_id}")))
    v2_list = v2_ok(alice.get(v2(alice, "/tasks?page_size=100")))["tasks"]

    assert native["task_name"] == vcs[0]["name"] == v2_one["name"] == name
    assert native["state"] == vcs[0]["state"] == "CONFIGURED"
    assert (vcs[0]["taskStatus"], v2_one["state"]) == ("WAITING", "PENDING")
    assert [t["id"] for t in v2_list] == [task_id]


@pytest.mark.parametrize("maker", MAKERS)
@pytest.mark.parametrize("starter", ["native", "vcs", "v2"])
def test_each_api_starts_a_task_made_through_any_api(alice, maker, starter):
    task_id = MAKERS[maker](alice)

    if starter == "native":
        ok(alice.post(f"/tasks/{task_id}/start"))
    elif starter == "vcs":
        vcs_ok(alice.post(START, {"taskId": task_id}))
    else:
        v2_ok(alice.put(v2(alice, f"/tasks/{task_id}/action/start")))

    assert v2_ok(alice.get(v2(alice, f"/tasks/{task_id}")))["state"] == "STARTING"
    assert vcs_ok(alice.post(GET, {"taskIds": [task_id]}))[0]["taskStatus"] == "ONLINED"
    assert ok(alice.get(f"/tasks/{task_id}"))["data"]["state"] == "STARTING"
