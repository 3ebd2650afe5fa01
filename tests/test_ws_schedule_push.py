# ruff: noqa: F811 - pytest fixtures imported from other test modules are arguments here
"""A subtask moved to waiting for its mtask's window (SCHEDULING, with its next start) is pushed
live to a real websocket client (daphne, no Origin header, a token), in the fields the snapshot
and the native API show; and so is its leaving the wait. Changes made through the native HTTP
API: a task started whose window is in the future, then its window edited to include now."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from django.utils import timezone

from tasks.api.serializers import format_dt
from tests.analysis_helpers import live_node
from tests.test_mtask_replan import dome_body, put_body, window
from tests.test_ws_e2e import request, server  # noqa: F401 - a fixture
from tests.ws_helpers import cmd, in_sync_thread, private_redis  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_redis")]


@in_sync_thread
def http(actor, method: str, path: str, body=None) -> dict:
    response = getattr(actor, method)(path, body) if body is not None else getattr(actor, method)(path)
    return response.json()


async def next_push(ws, kind: str, timeout: float = 15) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("push") == kind:
            return message


async def subscribe(server, token: str, task_id: str):
    ws = await websockets.connect(server.url, additional_headers={"Authorization": token})  # no Origin
    answer = await request(ws, cmd("post", "subscriptions"), {"task_id": task_id}, "sub")
    assert answer["ecode"] == 200, answer
    return ws, (await next_push(ws, "snapshot"))["data"]["tasks"][0]


async def test_waiting_for_the_window_and_leaving_it_are_pushed_live(server, alice):
    now = timezone.now().replace(microsecond=0)
    opens = now + timedelta(hours=2)
    body = dome_body(window(opens, now + timedelta(hours=3)))
    task_id = (await http(alice, "post", "/tasks", body))["data"]["task_id"]
    pk = (await http(alice, "get", f"/tasks/{task_id}/subtasks"))["list_data"][0]["subtask_id"]
    await http(alice, "post", f"/subtasks/{pk}/config_complete")
    await in_sync_thread(live_node)(capacity=1)

    ws, before = await subscribe(server, alice.token, task_id)
    assert (before["schedule_state"], before["next_start_dt"]) == ("", None)
    assert (before["subtasks"][0]["schedule_state"], before["subtasks"][0]["next_start_dt"]) == ("", None)

    assert (await http(alice, "post", f"/tasks/{task_id}/start"))["ecode"] == 200
    waits = await next_push(ws, "subtask.schedule")
    assert waits["task_id"] == task_id
    assert waits["data"] == {
        "subtask_id": pk,
        "schedule_state": "SCHEDULING",
        "next_start_dt": format_dt(opens),
    }
    shown = (await http(alice, "get", f"/subtasks/{pk}"))["data"]  # the same words as the HTTP API
    assert (shown["schedule_state"], shown["next_start_dt"]) == ("SCHEDULING", format_dt(opens))
    task = await next_push(ws, "task.state")
    assert (task["data"]["schedule_state"], task["data"]["next_start_dt"]) == ("SCHEDULING", format_dt(opens))

    # A page opened now starts from the same truth.
    late, snapshot = await subscribe(server, alice.token, task_id)
    assert (snapshot["schedule_state"], snapshot["next_start_dt"]) == ("SCHEDULING", format_dt(opens))
    (sub,) = snapshot["subtasks"]
    assert (sub["subtask_id"], sub["schedule_state"], sub["next_start_dt"]) == (
        pk,
        "SCHEDULING",
        format_dt(opens),
    )
    await late.close()

    # The window edited to include now: it no longer waits, and starts.
    edited = put_body(body, window(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert (await http(alice, "put", f"/tasks/{task_id}", edited))["ecode"] == 200
    runs = await next_push(ws, "subtask.schedule")
    assert runs["data"] == {"subtask_id": pk, "schedule_state": "", "next_start_dt": None}
    started = await next_push(ws, "subtask.state")
    assert (started["data"]["subtask_id"], started["data"]["state"]) == (pk, "STARTING")
    await ws.close()


async def test_stopping_a_waiting_task_pushes_that_it_no_longer_waits(server, alice):
    now = timezone.now().replace(microsecond=0)
    body = dome_body(window(now + timedelta(hours=2), now + timedelta(hours=3)))
    task_id = (await http(alice, "post", "/tasks", body))["data"]["task_id"]
    pk = (await http(alice, "get", f"/tasks/{task_id}/subtasks"))["list_data"][0]["subtask_id"]
    await http(alice, "post", f"/subtasks/{pk}/config_complete")
    await in_sync_thread(live_node)(capacity=1)
    await http(alice, "post", f"/tasks/{task_id}/start")

    ws, snapshot = await subscribe(server, alice.token, task_id)
    assert snapshot["subtasks"][0]["schedule_state"] == "SCHEDULING"
    assert (await http(alice, "post", f"/tasks/{task_id}/stop"))["ecode"] == 200
    stopped = await next_push(ws, "subtask.schedule")
    assert stopped["data"] == {"subtask_id": pk, "schedule_state": "", "next_start_dt": None}
    task = await next_push(ws, "task.state")
    assert (task["data"]["schedule_state"], task["data"]["next_start_dt"]) == ("", None)
    await ws.close()
