"""Live pushes: subscribe to a task or to every task of the project; state changes, per-state
counts, progress and events arrive until unsubscribe; never another project's."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer

from tests.conftest import task_body
from tests.ws_helpers import ask, cmd, connect, in_sync_thread, next_push, private_redis  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_redis")]


@in_sync_thread
def http(actor, method: str, path: str, body=None):
    response = getattr(actor, method)(path, body) if body is not None else getattr(actor, method)(path)
    return response.json()


async def new_task(actor, vchans: int = 1) -> tuple[str, list[int]]:
    task_id = (await http(actor, "post", "/tasks", task_body(vchans=vchans)))["data"]["task_id"]
    subtasks = (await http(actor, "get", f"/tasks/{task_id}/subtasks"))["list_data"]
    return task_id, [item["subtask_id"] for item in subtasks]


async def test_a_task_subscriber_gets_state_changes_and_counts(alice):
    task_id, (pk, _other) = await new_task(alice, vchans=2)
    ws = await connect(alice.token)
    body = await ask(ws, cmd("post", "subscriptions"), {"task_id": task_id})
    assert body["data"] == {"all": False, "task_ids": [task_id]}

    await http(alice, "post", f"/subtasks/{pk}/config_complete")  # changed by HTTP, seen by the socket
    state = await next_push(ws, "subtask.state")
    assert state["task_id"] == task_id
    assert (state["data"]["subtask_id"], state["data"]["state"], state["data"]["previous"]) == (
        pk,
        "CONFIGURED",
        "PENDING",
    )
    counts = await next_push(ws, "task.state")
    assert counts["data"]["state_counts"]["CONFIGURED"] == 1
    assert counts["data"]["state_counts"]["PENDING"] == 1
    assert (counts["data"]["state"], counts["data"]["subtask_count"]) == ("PENDING", 2)

    # progress and events as the analysis engine announces them; a snapshot gets an absolute URL
    layer = get_channel_layer()
    common = {"type": "vias.event", "project_id": "proj-alice", "task_id": task_id}
    await layer.group_send(
        f"task.{task_id}", {**common, "kind": "progress", "subtask_id": pk, "progress": 42.5}
    )
    await layer.group_send(
        f"task.{task_id}",
        {**common, "kind": "event", "subtask_id": pk, "label": "fall", "snapshot_url": "/media/events/1.jpg"},
    )
    progress = await next_push(ws, "progress")
    assert progress["data"] == {"subtask_id": pk, "progress": 42.5}
    event = await next_push(ws, "event")
    assert event["data"]["snapshot_url"] == "http://testserver/media/events/1.jpg"

    assert (await ask(ws, cmd("delete", "subscriptions"), {"task_id": task_id}))["data"]["task_ids"] == []
    await http(alice, "post", f"/subtasks/{_other}/config_complete")
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


async def test_subscribing_to_every_task_of_the_project(alice, bob):
    ws = await connect(alice.token)
    assert (await ask(ws, cmd("post", "subscriptions")))["data"] == {"all": True, "task_ids": []}
    bobs = await connect(bob.token)
    await ask(bobs, cmd("post", "subscriptions"), {"task_id": "*"})
    assert (await next_push(bobs, "snapshot"))["data"] == {"all": True, "tasks": []}

    task_id, _ = await new_task(alice)
    created = await next_push(ws, "task.created")
    assert created["task_id"] == task_id
    await http(alice, "put", "/store_confs/none", {})  # a 404 announces nothing
    await http(alice, "post", "/vchans", {"vchan_refid": "cam-x", "url": "rtsp://h/x"})
    assert (await next_push(ws, "vchan.created"))["data"] == {"vchan_refid": "cam-x"}
    # bob, subscribed to all of *his* project, heard nothing of alice's
    assert await bobs.receive_nothing(timeout=0.5)

    await ask(ws, cmd("delete", "subscriptions"))
    await new_task(alice)
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()
    await bobs.disconnect()


async def test_news_of_another_project_is_dropped_whatever_group_it_came_through(alice, bob):
    task_id, _ = await new_task(alice)
    ws = await connect(alice.token)
    await ask(ws, cmd("post", "subscriptions"), {"task_id": task_id})
    await next_push(ws, "snapshot")
    layer = get_channel_layer()
    await layer.group_send(
        f"task.{task_id}",
        {"type": "vias.event", "kind": "progress", "project_id": "proj-bob", "task_id": task_id},
    )
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


async def test_subscription_params_are_checked(alice):
    ws = await connect(alice.token)
    assert (await ask(ws, cmd("post", "subscriptions"), {"task_id": 5}))["ecode"] == 400
    assert (await ask(ws, cmd("post", "subscriptions"), {"task_id": "nope"}))["ecode"] == 404
    assert (await ask(ws, cmd("get", "subscriptions")))["ecode"] == 404
    await ws.disconnect()


@in_sync_thread
def node_takes(subtask_id: int) -> None:
    """What an analysis node does when it picks a dispatched subtask up (the core's transition)."""
    from subtasks.choices import State
    from subtasks.models import Subtask
    from subtasks.services import transition

    transition(Subtask.objects.get(pk=subtask_id), State.RUNNING, "")


async def test_a_late_subscriber_first_gets_the_running_state_then_changes(alice):
    task_id, (pk, other) = await new_task(alice, vchans=2)
    await http(alice, "post", f"/subtasks/{pk}/config_complete")
    assert (await http(alice, "post", f"/tasks/{task_id}/start"))["ecode"] == 200
    await node_takes(pk)  # RUNNING before anyone subscribed: no push will ever say so again

    ws = await connect(alice.token)
    assert (await ask(ws, cmd("post", "subscriptions"), {"task_id": task_id}))["ecode"] == 200
    snapshot = await ws.receive_json_from(timeout=5)  # the very next message
    assert snapshot["push"] == "snapshot" and snapshot["task_id"] == task_id
    (task,) = snapshot["data"]["tasks"]
    assert (task["task_id"], task["state"], task["subtask_count"]) == (task_id, "RUNNING", 2)
    assert (task["state_counts"]["RUNNING"], task["state_counts"]["PENDING"]) == (1, 1)
    assert {s["subtask_id"]: s["state"] for s in task["subtasks"]} == {pk: "RUNNING", other: "PENDING"}
    assert all(s["progress"] == 0.0 for s in task["subtasks"])

    await http(alice, "post", f"/subtasks/{other}/config_complete")  # then the changes
    change = await next_push(ws, "subtask.state")
    assert (change["data"]["subtask_id"], change["data"]["state"]) == (other, "CONFIGURED")
    await ws.disconnect()


async def test_a_project_subscriber_gets_every_tasks_counts_first(alice, bob):
    first, _ = await new_task(alice)
    second, (pk,) = await new_task(alice)
    await http(alice, "post", f"/subtasks/{pk}/config_complete")
    await new_task(bob)  # another project's task is never in alice's snapshot

    ws = await connect(alice.token)
    assert (await ask(ws, cmd("post", "subscriptions")))["ecode"] == 200
    snapshot = await ws.receive_json_from(timeout=5)
    assert snapshot["push"] == "snapshot" and snapshot["data"]["all"] is True
    states = {t["task_id"]: t["state"] for t in snapshot["data"]["tasks"]}
    assert states == {first: "PENDING", second: "CONFIGURED"}
    assert all("subtasks" not in t for t in snapshot["data"]["tasks"])
    await ws.disconnect()
