"""The native subtask API over HTTP: GET, PUT (ROI, calibration, config, algo_args), DELETE,
POST /subtasks/{id}/config_complete."""

from __future__ import annotations

import pytest

from subtasks.choices import State
from subtasks.models import Subtask
from tests.api_helpers import error, ok
from tests.conftest import EMPTY_XML, Actor, task_body

pytestmark = pytest.mark.django_db

POLYGON_ROI = (
    '<?xml version="1.0" encoding="UTF-8"?><root><polygon name="door" mode="exclude">'
    '<point x="0.1" y="0.2"/><point x="0.6" y="0.2"/><point x="0.6" y="0.9"/></polygon></root>'
)
LINE_ROI = '<root><line name="gate" direction="left_to_right"><point x="0" y="0.5"/><point x="1" y="0.5"/></line></root>'
CALIBRATION = (
    "<root>"
    '<pair><image x="0.1" y="0.9"/><ground x="0" y="0"/></pair>'
    '<pair><image x="0.9" y="0.9"/><ground x="10" y="0"/></pair>'
    '<pair><image x="0.8" y="0.3"/><ground x="10" y="30"/></pair>'
    '<pair><image x="0.2" y="0.3"/><ground x="0" y="30"/></pair>'
    "</root>"
)
CONFIG = '<?xml version="1.0" encoding="UTF-8"?><root><threshold>0.4</threshold></root>'


def make_subtasks(actor: Actor, vchans: int = 1, algo_type: str = "1") -> list[int]:
    task = ok(actor.post("/tasks", task_body(vchans=vchans, algo_type=algo_type)), 200)["data"]
    return [s["subtask_id"] for s in ok(actor.get(f"/tasks/{task['task_id']}/subtasks"))["list_data"]]


def test_get_answers_the_subtask(alice):
    (subtask_id,) = make_subtasks(alice)

    data = ok(alice.get(f"/subtasks/{subtask_id}"))["data"]

    assert data["subtask_id"] == subtask_id
    assert (data["state"], data["config_complete"], data["is_running"]) == ("PENDING", False, 0)
    assert data["vchan_refid"] == "cam-0"
    assert data["rois"] == [{"roi": EMPTY_XML}, {"roi": EMPTY_XML}]
    assert data["callibration"] == {"calibration": EMPTY_XML}
    assert data["config"] == {"xml": EMPTY_XML}


def test_put_sets_rois_calibration_config_and_algo_args(alice):
    (subtask_id,) = make_subtasks(alice, algo_type="0")
    body = {
        "rois": [{"roi": POLYGON_ROI}, {"roi": LINE_ROI}],
        "callibration": {"calibration": CALIBRATION},
        "config": {"xml": CONFIG},
        "algo_args": {"speed_limit_kmh": 60, "fps": 12.5},
    }

    data = ok(alice.put(f"/subtasks/{subtask_id}", body))["data"]

    assert data["rois"] == body["rois"]
    assert data["callibration"] == body["callibration"]
    assert data["config"] == body["config"]
    assert data["algo_args"] == body["algo_args"]
    stored = Subtask.objects.get(pk=subtask_id)
    assert (stored.rois, stored.calibration_xml, stored.config_xml) == (
        [POLYGON_ROI, LINE_ROI],
        CALIBRATION,
        CONFIG,
    )
    assert stored.algo_args == {"speed_limit_kmh": 60, "fps": 12.5}


def test_put_leaves_what_it_does_not_name(alice):
    (subtask_id,) = make_subtasks(alice)
    ok(
        alice.put(
            f"/subtasks/{subtask_id}", {"rois": [{"roi": POLYGON_ROI}], "algo_args": {"occupancy_limit": 5}}
        )
    )

    data = ok(alice.put(f"/subtasks/{subtask_id}", {"config": {"xml": CONFIG}}))["data"]

    assert data["rois"] == [{"roi": POLYGON_ROI}]
    assert data["algo_args"] == {"occupancy_limit": 5}
    assert data["config"] == {"xml": CONFIG}


def test_put_with_no_rois_clears_them(alice):
    (subtask_id,) = make_subtasks(alice)

    data = ok(alice.put(f"/subtasks/{subtask_id}", {"rois": []}))["data"]

    assert data["rois"] == []


def test_put_checks_algo_args_against_the_tasks_algo_type(alice):
    (subtask_id,) = make_subtasks(alice, algo_type="4")

    answer = error(alice.put(f"/subtasks/{subtask_id}", {"algo_args": {"speed_limit_kmh": 60}}), 400)

    assert "algo_args" in answer["enote"]
    assert "speed_limit_kmh" in answer["enote"]
    assert ok(alice.put(f"/subtasks/{subtask_id}", {"algo_args": {"min_face_px": 40}}))["data"][
        "algo_args"
    ] == {"min_face_px": 40}


def test_config_complete_moves_pending_to_configured(alice):
    (subtask_id,) = make_subtasks(alice)

    data = ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))["data"]

    assert (data["state"], data["config_complete"]) == ("CONFIGURED", True)
    stored = Subtask.objects.get(pk=subtask_id)
    assert (stored.state, stored.config_complete) == (State.CONFIGURED, True)


def test_config_complete_twice_changes_nothing_more(alice):
    (subtask_id,) = make_subtasks(alice)
    ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))

    data = ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))["data"]

    assert (data["state"], data["config_complete"]) == ("CONFIGURED", True)


def test_config_complete_only_touches_its_own_subtask(alice):
    first, second = make_subtasks(alice, vchans=2)

    ok(alice.post(f"/subtasks/{first}/config_complete"))

    assert Subtask.objects.get(pk=second).state == State.PENDING
    assert Subtask.objects.get(pk=second).config_complete is False


def test_delete_removes_the_subtask(alice):
    first, second = make_subtasks(alice, vchans=2)

    ok(alice.delete(f"/subtasks/{first}"))

    error(alice.get(f"/subtasks/{first}"), 404)
    assert list(Subtask.objects.values_list("pk", flat=True)) == [second]


@pytest.mark.parametrize("state", [State.STARTING, State.RUNNING, State.STOPPING, State.ABNORMAL])
def test_delete_of_an_active_subtask_is_409(alice, state):
    (subtask_id,) = make_subtasks(alice)
    Subtask.objects.filter(pk=subtask_id).update(state=state)

    answer = error(alice.delete(f"/subtasks/{subtask_id}"), 409)

    assert "stop it first" in answer["enote"]
    assert Subtask.objects.filter(pk=subtask_id).exists()


@pytest.mark.parametrize("subtask_id", ["next", "abc", "1.5", "-1", "99999999999999999999999999"])
@pytest.mark.parametrize(
    ("method", "suffix"), [("get", ""), ("put", ""), ("delete", ""), ("post", "/config_complete")]
)
def test_unknown_subtask_is_404_in_the_envelope(alice, subtask_id, method, suffix):
    (existing,) = make_subtasks(alice)
    if subtask_id == "next":
        subtask_id = str(existing + 1000)

    answer = error(getattr(alice, method)(f"/subtasks/{subtask_id}{suffix}"), 404)

    assert "subtask" in answer["enote"]


def test_configuring_a_subtask_that_is_not_running_is_applied_at_once(alice):
    (subtask_id,) = make_subtasks(alice)
    body = ok(alice.put(f"/subtasks/{subtask_id}", {"rois": [{"roi": POLYGON_ROI}]}))
    assert body["delivery"]["status"] == "applied" and body["delivery"]["ok"]


def test_configuring_a_running_subtask_answers_with_the_devices_acknowledgement(alice):
    from analysis.control import Inbox
    from tests.test_control import answer_in_thread

    (subtask_id,) = make_subtasks(alice)
    with Inbox(subtask_id) as inbox:
        thread, received = answer_in_thread(inbox)
        body = ok(alice.put(f"/subtasks/{subtask_id}", {"algo_args": {}}))
        thread.join()
    assert body["delivery"]["status"] == "acknowledged"
    assert body["delivery"]["command_id"] == received[0].id
    assert received[0].op == "update"


def test_one_subtask_starts_and_stops_by_itself(alice, django_capture_on_commit_callbacks):
    first, second = make_subtasks(alice, vchans=2)
    ok(alice.post(f"/subtasks/{first}/config_complete"))
    refused = ok(alice.post(f"/subtasks/{second}/start"))["subtasks"][0]
    assert (refused["ok"], refused["reason"]) == (False, "not config-complete")
    started = ok(alice.post(f"/subtasks/{first}/start"))["subtasks"][0]
    assert (started["ok"], started["state"]) == (True, State.STARTING)
    stopped = ok(alice.post(f"/subtasks/{first}/stop"))["subtasks"][0]
    assert (stopped["ok"], stopped["state"]) == (True, State.STOPPED)
    assert Subtask.objects.get(pk=second).state == State.PENDING


@pytest.mark.parametrize("verb", ["start", "stop"])
def test_another_projects_subtask_cannot_be_started_or_stopped(alice, bob, verb):
    (subtask_id,) = make_subtasks(alice)
    ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))
    error(bob.post(f"/subtasks/{subtask_id}/{verb}"), 404)
    assert Subtask.objects.get(pk=subtask_id).state == State.CONFIGURED
