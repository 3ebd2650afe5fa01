# ruff: noqa: F811 - the fixtures imported from tests.test_outputs are parameters here
"""Task-state callbacks: a task whose output names a callback URL gets its subtasks' and its own
state changes POSTed there, with the webhook's delivery, retry and SSRF rules (a real HTTP
receiver on loopback; the django-q2 queue is read as a worker would)."""

from __future__ import annotations

import ast
import json

import pytest
from django_q.models import Schedule
from django_q.signing import SignedPackage

from analysis import outputs
from analysis.models import Delivery
from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.models import Subtask
from tests.api_helpers import error, ok
from tests.conftest import task_body
from tests.test_outputs import output_settings, private_queue, receiver  # noqa: F401 - fixtures
from tests.test_v2_helpers import task_body as v2_task_body
from tests.test_v2_helpers import v2, v2_ok, v2_refused

pytestmark = pytest.mark.django_db


def queued(broker) -> list[tuple]:
    """The args of every queued django-q2 task, in order (taken off the queue)."""
    found = []
    while broker.queue_size():
        task_id, payload = broker.dequeue()[0]
        package = SignedPackage.loads(payload)
        found.append((package["func"], package["args"]))
        broker.acknowledge(task_id)
    return found


def callback_task(actor, url: str, vchans: int = 2) -> str:
    body = task_body(vchans=vchans, output={"callback": {"url": url, "headers": {"X-Token": "s3cret"}}})
    task_id = ok(actor.post("/tasks", body))["data"]["task_id"]
    for subtask in Subtask.objects.filter(task_id=task_id):
        subtask_services.mark_config_complete(subtask)
    return task_id


def test_state_changes_are_queued_and_posted(
    alice, receiver, private_queue, django_capture_on_commit_callbacks
):
    hook = receiver(statuses=200)
    task_id = callback_task(alice, hook.url("/state"))
    queued(private_queue)  # the config-complete changes

    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.post(f"/tasks/{task_id}/start"))
    jobs = queued(private_queue)

    callbacks = [args for func, args in jobs if func == outputs.CALLBACK_TASK]
    kinds = [(m["kind"], m.get("subtask_id"), m["state"]) for _, m, _ in callbacks]
    first, second = Subtask.objects.filter(task_id=task_id).order_by("position").values_list("pk", flat=True)
    assert kinds == [
        ("subtask.state", first, "STARTING"),
        ("task.state", None, "STARTING"),
        ("subtask.state", second, "STARTING"),
    ]
    for args in callbacks:
        assert outputs.deliver_callback(*args) is True
    bodies = [json.loads(r["body"]) for r in hook.requests]
    assert [b["kind"] for b in bodies] == ["subtask.state", "task.state", "subtask.state"]
    assert bodies[1] == {**bodies[1], "task_id": task_id, "state": "STARTING", "previous": "CONFIGURED"}
    assert hook.requests[0]["path"] == "/state" and hook.requests[0]["headers"]["X-Token"] == "s3cret"
    assert hook.requests[0]["headers"]["X-VIAS-Callback"] == "subtask.state"
    assert Delivery.objects.filter(task_id=task_id, output="callback", ok=True).count() == 3


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(alice, receiver, settings):
    hook = receiver(statuses=[503, 503, 503])
    task_id = callback_task(alice, hook.url(), vchans=1)
    message = {"kind": "task.state", "task_id": task_id, "state": "RUNNING", "previous": "STARTING"}

    assert outputs.deliver_callback(task_id, message, 1) is False
    attempts = 1
    while row := Schedule.objects.filter(func=outputs.CALLBACK_TASK).first():
        args = ast.literal_eval(row.args)
        row.delete()
        outputs.deliver_callback(*args)
        attempts += 1
    assert attempts == 1 + settings.VIAS_WEBHOOK_RETRIES == len(hook.requests)
    assert list(Delivery.objects.filter(task_id=task_id).values_list("attempt", "status_code")) == [
        (3, 503),
        (2, 503),
        (1, 503),
    ]


def test_a_task_without_a_callback_queues_none(alice, private_queue, django_capture_on_commit_callbacks):
    task_id = ok(alice.post("/tasks", task_body(vchans=1)))["data"]["task_id"]
    subtask_services.mark_config_complete(Subtask.objects.get(task_id=task_id))
    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.post(f"/tasks/{task_id}/start"))
    assert all(func != outputs.CALLBACK_TASK for func, _ in queued(private_queue))


def test_a_callback_to_a_private_address_is_refused_when_saved(alice, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []
    body = task_body(vchans=1, output={"callback": {"url": "http://127.0.0.1:9/x"}})
    assert "loopback" in error(alice.post("/tasks", body), 400)["enote"]


def test_a_v2_task_names_its_callback_in_output(alice):
    from tests.test_v2_helpers import add_sources

    add_sources(alice, 1)
    body = v2_task_body(output={"event_center": True, "callback": {"url": "https://93.184.216.34/state"}})
    task = v2_ok(alice.post(v2(alice, "/services/face/tasks"), body))
    assert task["output"]["callback"] == {"url": "https://93.184.216.34/state"}
    bad = v2_task_body(output={"event_center": True, "callback": {"url": "ftp://93.184.216.34/x"}})
    v2_refused(alice.post(v2(alice, "/services/face/tasks"), bad), 400, "VIAS.00010001", "http")


def test_a_callback_for_a_task_that_lost_it_is_not_sent(alice, receiver):
    hook = receiver(statuses=200)
    task_id = callback_task(alice, hook.url(), vchans=1)
    ok(alice.put(f"/tasks/{task_id}", {"output": {}}))
    assert outputs.deliver_callback(task_id, {"kind": "task.state"}, 1) is False
    assert hook.requests == []


def test_engine_transitions_are_reported_too(
    alice, receiver, private_queue, django_capture_on_commit_callbacks
):
    hook = receiver(statuses=200)
    task_id = callback_task(alice, hook.url(), vchans=1)
    subtask = Subtask.objects.get(task_id=task_id)
    Subtask.objects.filter(pk=subtask.pk).update(state=State.STARTING)
    subtask.refresh_from_db()
    queued(private_queue)
    with django_capture_on_commit_callbacks(execute=True):
        subtask_services.transition(subtask, State.RUNNING)
        subtask_services.transition(subtask, State.FAILED, "decoder broke")
    messages = [args[1] for func, args in queued(private_queue) if func == outputs.CALLBACK_TASK]
    assert [(m["kind"], m["state"]) for m in messages] == [
        ("subtask.state", "RUNNING"),
        ("task.state", "RUNNING"),
        ("subtask.state", "FAILED"),
        ("task.state", "FAILED"),
    ]
    assert messages[2]["reason"] == "decoder broke"


# ---- the deliveries in the admin (the browser test: tests/browser/test_callback_deliveries_browser.py)


def test_callback_deliveries_belong_to_their_tasks_project_in_the_admin(alice, bob):
    """An operator of alice's project sees her task's callback deliveries (they have no event) in
    the deliveries list, at a cost that does not grow with them, and not bob's."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    carol = get_user_model().objects.create_user("carol", is_staff=True)
    carol.user_permissions.set(Permission.objects.filter(content_type__app_label="analysis"))
    alice.project.members.add(carol)
    client = Client()
    client.force_login(carol)
    mine = callback_task(alice, "https://93.184.216.34/state", vchans=1)
    theirs = callback_task(bob, "https://93.184.216.34/theirs", vchans=1)

    def add(task_id: str, n: int) -> None:
        for attempt in range(1, n + 1):
            Delivery.objects.create(
                task_id=task_id, output="callback", target="https://93.184.216.34/x", attempt=attempt
            )

    def listed() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            page = client.get("/admin/analysis/delivery/")
        assert page.status_code == 200
        return len(captured), page.content.decode()

    add(mine, 1)
    add(theirs, 3)
    few, page = listed()
    assert "1 delivery" in page and "task-state callback" in page
    add(mine, 4)
    many, page = listed()
    assert "5 deliveries" in page and few == many
    assert Delivery.objects.for_project(alice.project).count() == 5
    assert Delivery.objects.for_project(bob.project).count() == 3
    (their_row,) = Delivery.objects.filter(task_id=theirs).values_list("pk", flat=True)[:1]
    assert client.get(f"/admin/analysis/delivery/{their_row}/change/").status_code == 404


# ---- changes of the subtasks that are no transition: a re-split, a deleted subtask ----------------


def task_messages(broker) -> list[dict]:
    return [args[1] for func, args in queued(broker) if func == outputs.CALLBACK_TASK]


def test_deleting_a_subtask_that_moves_the_task_state_is_called_back(
    alice, receiver, private_queue, django_capture_on_commit_callbacks
):
    hook = receiver(statuses=200)
    task_id = callback_task(alice, hook.url("/state"), vchans=3)
    stopped, configured, _ = Subtask.objects.filter(task_id=task_id).order_by("position")
    Subtask.objects.filter(pk=stopped.pk).update(state=State.STOPPED)  # the task reads STOPPED
    queued(private_queue)

    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.delete(f"/subtasks/{configured.pk}"))  # still STOPPED: no message
    assert task_messages(private_queue) == []

    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.delete(f"/subtasks/{stopped.pk}"))
    (message,) = task_messages(private_queue)
    assert message == {
        **message,
        "kind": "task.state",
        "task_id": task_id,
        "state": "CONFIGURED",
        "previous": "STOPPED",
        "reason": f"subtask {stopped.pk} deleted",
    }
    assert outputs.deliver_callback(task_id, message, 1) is True
    assert json.loads(hook.requests[0]["body"])["state"] == "CONFIGURED"


def test_a_v2_update_over_another_source_that_moves_the_task_state_is_called_back(
    alice, private_queue, django_capture_on_commit_callbacks
):
    from tests.test_v2_helpers import add_sources

    cams = add_sources(alice, 2)
    output = {"event_center": True, "callback": {"url": "https://93.184.216.34/state"}}
    task_id = v2_ok(alice.post(v2(alice, "/services/face/tasks"), v2_task_body(cams[:1], output=output)))[
        "id"
    ]
    Subtask.objects.filter(task_id=task_id).update(state=State.STOPPED)
    queued(private_queue)

    body = {"input": {"type": "video_source", "data": [{"video_source_id": cams[1]}]}}
    with django_capture_on_commit_callbacks(execute=True):
        v2_ok(alice.put(v2(alice, f"/tasks/{task_id}"), body))
    (message,) = task_messages(private_queue)
    assert (message["kind"], message["state"], message["previous"]) == ("task.state", "CONFIGURED", "STOPPED")
    assert message["reason"] == "split again over other video channels"

    with django_capture_on_commit_callbacks(execute=True):  # the same state after: no message
        v2_ok(
            alice.put(
                v2(alice, f"/tasks/{task_id}"),
                {"input": {**body["input"], "data": [{"video_source_id": cams[0]}]}},
            )
        )
    assert task_messages(private_queue) == []
