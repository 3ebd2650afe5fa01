"""One task builder for every dialect: the same task created through the native API, VCS-SPS or
v2 is announced the same way (one `task.created`, nothing per subtask: a dialect without a
configuration step makes its subtasks config-complete as a creation, not as transitions), and a
bulk creation builds each task as a single creation does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.utils import timezone

from subtasks.choices import State
from subtasks.models import Subtask
from tasks import services
from tasks.models import Task
from tests.api_helpers import ok
from tests.conftest import task_body as native_body
from tests.test_v2_helpers import add_sources, create_task
from tests.vcs_helpers import CREATE, compute_body, device, make_store, vcs_ok
from tests.ws_helpers import in_sync_thread, private_redis  # noqa: F401
from vias.lib.announce import project_group

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_redis")]


@pytest.fixture(autouse=True)
def videos(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return make_store(tmp_path)


def native(actor) -> str:
    body = native_body(vchans=2, task_name="same")
    return ok(actor.post("/tasks", body))["data"]["task_id"]


def vcs(actor) -> str:
    devices = [device("cam-a"), device("cam-b", video_id="clip-2")]
    return vcs_ok(actor.post(CREATE, compute_body(devices=devices, name="same")))["taskId"]


def v2(actor) -> str:
    add_sources(actor, 2, "v2cam")
    return create_task(actor, sources=["v2cam-0", "v2cam-1"], name="same")["id"]


async def announcements_of(make, actor) -> tuple[str, list[dict[str, Any]]]:
    """What the project's group hears while `make` creates a task (on the real channel layer)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(project_group(actor.project.project_id), channel)
    task_id = await in_sync_thread(make)(actor)
    heard = []
    while True:
        try:
            heard.append(await asyncio.wait_for(layer.receive(channel), timeout=1.0))
        except TimeoutError:
            return task_id, heard


def about_the_task(heard: list[dict[str, Any]], task_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, keys) of what was said about the task or any subtask (v2 adds its sources first)."""
    return [(m["kind"], tuple(sorted(m))) for m in heard if m.get("task_id") == task_id or "subtask_id" in m]


@pytest.mark.parametrize("make", [native, vcs, v2], ids=["native", "vcs", "v2"])
async def test_creating_the_same_task_is_announced_the_same_way_by_every_dialect(alice, make):
    task_id, heard = await announcements_of(make, alice)

    assert about_the_task(heard, task_id) == [
        ("task.created", ("kind", "project_id", "task_id", "type")),
    ]
    states = await in_sync_thread(
        lambda: list(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True))
    )()
    # Native has a configuration step; VCS and v2 do not: their subtasks are config-complete as made.
    assert set(states) == {State.PENDING if make is native else State.CONFIGURED} and len(states) == 2


def test_a_bulk_creation_builds_each_task_as_a_single_creation_does(alice):
    add_sources(alice, 2, "cam")
    spec = {
        "task_name": "twin",
        "algo_type": "1",
        "run_dt": timezone.now(),
        "vchans": [{"vchan_refid": "cam-0"}, {"vchan_refid": "cam-1"}],
        "config_complete": True,
    }
    single = services.create_task(alice.project, spec)
    result = services.create_tasks(alice.project, [spec, {**spec, "vchans": [{"vchan_refid": "cam-0"}] * 2}])

    assert len(result.tasks) == 1 and result.errors == [(1, "vchans: a video channel is listed twice")]
    with pytest.raises(Exception, match="listed twice"):
        services.create_task(alice.project, {**spec, "vchans": [{"vchan_refid": "cam-0"}] * 2})

    def described(task: Task) -> list[tuple[Any, ...]]:
        subtasks = task.subtasks.order_by("position")
        return [(s.position, s.source_url, s.state, s.config_complete, s.video_channel_id) for s in subtasks]

    bulk = Task.objects.get(pk=result.tasks[0].pk)
    assert described(bulk) == described(single)
    assert bulk.play_url == single.play_url != ""
