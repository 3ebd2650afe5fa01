"""One start_task / stop_task for every way in: a v2 task with a weekly schedule, stopped through
the native API, VCS, v2, the websocket or the admin, keeps no django-q2 Schedule row, and its
next window edge does not start it again (the edge's function is what a leftover row would run)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from subtasks import services
from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import Task
from tests.test_v2_helpers import add_sources, create_task, v2, v2_ok
from tests.vcs_helpers import STOP as VCS_STOP
from tests.ws_helpers import ask, cmd, connect, in_sync_thread, private_redis  # noqa: F401


def weekly_elsewhere() -> dict:
    """A window on another day of the week than today (UTC): starting the task activates its
    schedule but starts nothing now."""
    other_day = (timezone.now() + timedelta(days=3)).isoweekday()
    return {
        "type": "weekly",
        "timezone": "+00:00",
        "days_of_week": [other_day],
        "periods": [[{"begin_at": "08:00", "end_at": "10:00"}]],
    }


def started_scheduled_task(actor) -> str:
    add_sources(actor, 1)
    task_id = create_task(actor, sources=["cam-0"], schedule=weekly_elsewhere())["id"]
    v2_ok(actor.put(v2(actor, f"/tasks/{task_id}/action/start")))
    assert Schedule.objects.filter(name__contains=task_id).count() == 2
    assert Task.objects.get(pk=task_id).schedule_active
    return task_id


def assert_stopped_for_good(task_id: str) -> None:
    assert not Schedule.objects.filter(name__contains=task_id).exists()
    assert Task.objects.get(pk=task_id).schedule_active is False
    # The start edge, as a leftover Schedule row would run it, starts nothing.
    assert services.run_edge(task_id, "start") == "no active scheduled task"
    assert set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True)) == {State.CONFIGURED}


@pytest.mark.django_db
def test_native_stop_removes_the_schedule(alice):
    task_id = started_scheduled_task(alice)
    response = alice.post(f"/tasks/{task_id}/stop")
    assert response.status_code == 200, response.content
    assert_stopped_for_good(task_id)


@pytest.mark.django_db
def test_vcs_stop_removes_the_schedule(alice):
    task_id = started_scheduled_task(alice)
    assert alice.post(VCS_STOP, {"taskId": task_id}).json() == {"Code": "0", "Message": "SUCCESS"}
    assert_stopped_for_good(task_id)


@pytest.mark.django_db
def test_v2_stop_removes_the_schedule(alice):
    task_id = started_scheduled_task(alice)
    v2_ok(alice.put(v2(alice, f"/tasks/{task_id}/action/stop")))
    assert_stopped_for_good(task_id)


@pytest.mark.django_db
def test_admin_stop_removes_the_schedule(alice):
    task_id = started_scheduled_task(alice)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789"))
    answer = admin.post(reverse("admin:tasks_task_command", args=[task_id, "stop"]), follow=True)
    assert answer.status_code == 200
    assert_stopped_for_good(task_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("private_redis")
async def test_websocket_stop_removes_the_schedule(alice):
    task_id = await in_sync_thread(started_scheduled_task)(alice)
    ws = await connect(alice.token)
    stopped = await ask(ws, cmd("post", "tasks/stop"), {"task_id": task_id})
    await ws.disconnect()
    assert stopped["ecode"] == 200, stopped
    await in_sync_thread(assert_stopped_for_good)(task_id)


@pytest.mark.django_db
def test_a_scheduled_task_stopped_then_started_again_gets_its_rows_back(alice):
    task_id = started_scheduled_task(alice)
    alice.post(f"/tasks/{task_id}/stop")
    assert alice.post(f"/tasks/{task_id}/start").status_code == 200  # outside its window: nothing starts yet
    # Native start of a scheduled task activates its schedule as v2 start does: one start_task.
    assert Schedule.objects.filter(name__contains=task_id).count() == 2
    assert Task.objects.get(pk=task_id).schedule_active
