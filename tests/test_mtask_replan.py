"""Editing a started task's mtask schedule re-plans it at once, not at its next edge: the task's
Schedule row is replaced, a subtask now outside its window stops and waits, one now inside starts
(docs/state-machine.md). Through the native HTTP API (PUT /tasks/{id}) and the websocket (put
tasks); the admin's mtask inline is
tests/browser/test_mtask_replan_browser.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from subtasks.models import Subtask
from tests.analysis_helpers import live_node
from tests.conftest import task_body
from tests.test_mtask_runs import hhmmss, scene
from tests.ws_helpers import private_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def window(opens, closes) -> dict:
    return {"type": 1, "start_time": hhmmss(opens), "end_time": hhmmss(closes)}


def dome_body(mtask: dict) -> dict:
    body = task_body(vchans=1, algo_type="2")
    body["vchans"] = [{**body["vchans"][0], "ptz": True}]
    body["mtasks"] = [{**body["mtasks"][0], **mtask, "scenes": [scene("s1", 0, "yard")]}]
    return body


def put_body(body: dict, mtask: dict) -> dict:
    edited = {key: value for key, value in body.items() if key != "vchans"}
    edited["mtasks"] = [{**body["mtasks"][0], **mtask}]
    return edited


def the_row(task_id: str) -> Schedule:
    return Schedule.objects.get(name=f"vias-mtask-{task_id}")


def test_editing_the_window_of_a_started_task_re_plans_at_once(alice):
    now = timezone.now().replace(microsecond=0)
    later = window(now + timedelta(hours=2), now + timedelta(hours=3))
    body = dome_body(later)
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (sub,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    pk = sub["subtask_id"]
    alice.post(f"/subtasks/{pk}/config_complete")
    node = live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    assert alice.get(f"/subtasks/{pk}").json()["data"]["schedule_state"] == "SCHEDULING"
    assert the_row(task_id).next_run == now + timedelta(hours=2)

    # Now inside the edited window: it starts at once, and the row wakes it at the new end.
    closes = now + timedelta(hours=1)
    answer = alice.put(f"/tasks/{task_id}", put_body(body, window(now - timedelta(hours=1), closes))).json()
    assert answer["ecode"] == 200, answer
    shown = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (shown["state"], shown["schedule_state"]) == ("STARTING", "")
    assert Subtask.objects.get(pk=pk).node == node
    assert the_row(task_id).next_run == closes
    assert Schedule.objects.filter(name__startswith=f"vias-mtask-{task_id}").count() == 1

    # Now outside again: it stops and waits for the new opening.
    opens = now + timedelta(hours=5)
    answer = alice.put(f"/tasks/{task_id}", put_body(body, window(opens, opens + timedelta(hours=1)))).json()
    assert answer["ecode"] == 200, answer
    shown = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (shown["state"], shown["schedule_state"]) == ("STOPPED", "SCHEDULING")
    assert shown["next_start_dt"].startswith(timezone.localtime(opens).strftime("%Y-%m-%d %H:%M:%S"))
    assert the_row(task_id).next_run == opens

    # A task that is not started is not started by an edit.
    alice.post(f"/tasks/{task_id}/stop")
    alice.put(f"/tasks/{task_id}", put_body(body, window(now - timedelta(hours=1), closes)))
    assert alice.get(f"/subtasks/{pk}").json()["data"]["state"] == "STOPPED"
    assert not Schedule.objects.filter(name=f"vias-mtask-{task_id}").exists()


def test_a_running_task_given_a_window_that_excludes_now_stops_and_waits(alice):
    body = task_body(vchans=1)  # type 0, all day: it runs at once, with no schedule row
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (sub,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    pk = sub["subtask_id"]
    alice.post(f"/subtasks/{pk}/config_complete")
    live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    Subtask.objects.filter(pk=pk).update(state="RUNNING")  # its node picked it up
    assert not Schedule.objects.filter(name=f"vias-mtask-{task_id}").exists()

    now = timezone.now().replace(microsecond=0)
    opens = now + timedelta(hours=2)
    edited = put_body(
        body, {"type": 0, "start_time": hhmmss(opens), "end_time": hhmmss(opens + timedelta(hours=1))}
    )
    answer = alice.put(f"/tasks/{task_id}", edited).json()
    assert answer["ecode"] == 200, answer
    shown = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (shown["state"], shown["schedule_state"]) == ("STOPPING", "SCHEDULING")  # its node confirms
    assert the_row(task_id).next_run == opens
    assert alice.get(f"/tasks/{task_id}").json()["data"]["schedule_state"] == "SCHEDULING"


@pytest.mark.usefixtures("private_redis")
async def test_editing_the_window_over_the_websocket_re_plans_at_once(alice):
    from tests.ws_helpers import ask, cmd, connect, in_sync_thread

    ws = await connect(alice.token)
    now = timezone.now().replace(microsecond=0)
    body = dome_body(window(now + timedelta(hours=2), now + timedelta(hours=3)))
    task_id = (await ask(ws, cmd("post", "tasks"), body))["data"]["task_id"]
    listed = await ask(ws, cmd("get", "tasks/subtasks"), {"task_id": task_id})
    pk = listed["list_data"][0]["subtask_id"]
    await ask(ws, cmd("post", "subtasks/config_complete"), {"subtask_id": pk})
    await in_sync_thread(live_node)(capacity=1)
    assert (await ask(ws, cmd("post", "tasks/start"), {"task_id": task_id}))["ecode"] == 200
    shown = await ask(ws, cmd("get", "subtasks"), {"subtask_id": pk})
    assert (shown["data"]["state"], shown["data"]["schedule_state"]) == ("CONFIGURED", "SCHEDULING")

    edited = put_body(body, window(now - timedelta(hours=1), now + timedelta(hours=1)))
    answer = await ask(ws, cmd("put", "tasks"), {**edited, "task_id": task_id})
    assert answer["ecode"] == 200, answer
    shown = await ask(ws, cmd("get", "subtasks"), {"subtask_id": pk})
    assert (shown["data"]["state"], shown["data"]["schedule_state"]) == ("STARTING", "")
    await ws.disconnect()
