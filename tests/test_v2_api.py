"""The VIAS v2 API over HTTP: tasks, batch tasks, video sources, states, filters, error shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client

from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.models import Subtask
from tasks.api.v2.serializers import LIST_STATES, TASK_STATES, V2_STATE
from tasks.models import BatchTask, Task, VideoChannel
from tests.conftest import Actor
from tests.test_v2_helpers import (
    WEBHOOK,
    add_sources,
    batch_body,
    create_task,
    snapshot,
    source_body,
    task_body,
    v2,
    v2_ok,
    v2_refused,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cams(alice: Actor) -> list[str]:
    return add_sources(alice, 3)


# ---- tasks --------------------------------------------------------------------------------------------


def test_create_answers_a_task_info_dto(alice, cams):
    task = create_task(alice, "face", sources=cams[:2], schedule=None)

    assert len(task["id"]) == 32
    assert task["tasks"] == [{"id": task["id"]}]  # the public answer's list of the tasks made
    assert (task["name"], task["title"], task["release_id"], task["state"]) == (
        "door_watch",
        "face",
        "1.0",
        "PENDING",
    )
    assert (task["creator"], task["project_id"], task["description"]) == ("alice", "proj-alice", "front door")
    assert task["input"] == {
        "type": "video_source",
        "data": [{"video_source_id": "cam-0"}, {"video_source_id": "cam-1"}],
    }
    assert task["output"] == {"webhook": {"url": WEBHOOK, "headers": {"a": "a"}}}
    assert task["config"] == {"common": {"fire_detection_sw": 1}}
    assert task["video_source_name"] == "cam camera 0"
    assert task["schedule_status"] == "INACTIVATED" and task["schedule"] is None
    assert task["created_at"].isdigit() and task["algorithm_publish_id"] == task["service_id"]
    stored = Task.objects.get(pk=task["id"])
    assert (stored.algo_type, stored.service_name) == ("4", "face")
    # v2 has no configuration step: the subtasks may be dispatched as made.
    assert set(Subtask.objects.filter(task=stored).values_list("state", "config_complete")) == {
        (State.CONFIGURED, True)
    }


def test_create_with_a_url_input_makes_one_shared_channel(alice):
    body = task_body(input={"type": "url", "data": [{"url": "rtsp://10.1.1.1/live"}]})
    first = v2_ok(alice.post(v2(alice, "/services/traffic/tasks"), body))
    second = v2_ok(alice.post(v2(alice, "/services/traffic/tasks"), body))

    assert first["input"]["data"] == second["input"]["data"]
    assert VideoChannel.objects.filter(url="rtsp://10.1.1.1/live").count() == 1
    assert first["access_address"] == "rtsp://10.1.1.1/live"


def test_show_update_start_stop_delete(alice, cams):
    task = create_task(alice, sources=cams[:1])
    path = v2(alice, f"/tasks/{task['id']}")

    assert v2_ok(alice.get(path))["id"] == task["id"]
    changed = v2_ok(
        alice.put(
            path,
            {
                "name": "renamed",
                "output": {"dis": {"stream_name": "dis-1"}},
                "input": {"type": "video_source", "data": [{"video_source_id": "cam-2"}]},
            },
        )
    )
    assert changed["name"] == "renamed" and changed["output"] == {"dis": {"stream_name": "dis-1"}}
    assert changed["input"]["data"] == [{"video_source_id": "cam-2"}]
    assert changed["access_address"] == "rtsp://10.0.0.3/live"

    assert v2_ok(alice.put(f"{path}/action/start"))["state"] == "STARTING"
    v2_refused(alice.delete(path), 400, "VIAS.00010004", "stop")
    assert v2_ok(alice.put(f"{path}/action/stop"))["state"] == "STOPPED"

    assert v2_ok(alice.delete(path)) == {}
    assert not Task.objects.filter(pk=task["id"]).exists()
    v2_refused(alice.get(path), 404, "VIAS.00010007")


def test_update_while_running_is_refused_unchanged(alice, cams):
    task = create_task(alice, sources=cams[:1])
    path = v2(alice, f"/tasks/{task['id']}")
    v2_ok(alice.put(f"{path}/action/start"))
    before = snapshot()

    v2_refused(alice.put(path, {"name": "renamed"}), 400, "VIAS.00010004", "stop")

    assert snapshot() == before


def test_the_list_answers_count_tasks_page_and_page_size(alice, cams):
    for i in range(12):
        create_task(alice, sources=[cams[i % 3]], name=f"task_{i}")

    first = v2_ok(alice.get(v2(alice, "/tasks")))
    last = v2_ok(alice.get(v2(alice, "/tasks?page=3&page_size=5&sort_dir=asc")))

    assert (first["count"], first["total"], first["page"], first["page_size"]) == (10, 12, 1, 10)
    assert [t["name"] for t in first["tasks"][:2]] == ["task_11", "task_10"]
    assert (last["count"], [t["name"] for t in last["tasks"]]) == (2, ["task_10", "task_11"])


def _names(actor: Actor, query: str) -> set[str]:
    return {t["name"] for t in v2_ok(actor.get(v2(actor, f"/tasks?page_size=1000&{query}")))["tasks"]}


def test_every_filter_of_the_seed(alice, cams):
    a = create_task(alice, "face", sources=[cams[0]], name="alpha")
    create_task(alice, "traffic", sources=[cams[1]], name="beta")
    v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body([cams[2]], manufacturer="ACME")))
    v2_ok(
        alice.post(
            v2(alice, "/services/face/tasks"),
            task_body(name="stream", input={"type": "url", "data": [{"url": "data-clip.mp4"}]}),
        )
    )
    batch = BatchTask.objects.get()

    assert _names(alice, "title=fac") == {"alpha", "stream"}
    assert _names(alice, "camera_name=camera 1") == {"beta"}
    assert _names(alice, "task_name=ALP") == {"alpha"}
    assert _names(alice, f"batch_id={batch.batch_id}") == {"wdwd_1"}
    assert _names(alice, "video_group_id=group-0,other-group") == {"wdwd_1"}
    assert _names(alice, "company=ACME,Other") == {"wdwd_1"}
    assert _names(alice, f"alg_id={a['algorithm_publish_id']}") == {"alpha", "stream"}
    assert _names(alice, "source_data_type=async_task") == {"stream"}
    assert _names(alice, "source_data_type=sync_task") == {"alpha", "beta", "wdwd_1"}
    assert _names(alice, "task_state=PENDING") == {"alpha", "beta", "wdwd_1", "stream"}


@pytest.mark.parametrize("canonical", list(State))
def test_the_state_filter_finds_each_v2_state(alice, canonical):
    """One task per canonical state; each v2 state of the list finds exactly the tasks shown in it."""
    sources = add_sources(alice, len(State), "st")
    ids = {}
    for state, source in zip(State, sources, strict=True):
        ids[state] = create_task(alice, sources=[source], name=f"t_{state.lower()}")["id"]
        Subtask.objects.filter(task_id=ids[state]).update(state=state)
    shown = V2_STATE[canonical]

    found = {
        t["id"] for t in v2_ok(alice.get(v2(alice, f"/tasks?page_size=100&task_state={shown}")))["tasks"]
    }

    assert ids[canonical] in found
    assert found == {ids[s] for s in State if V2_STATE[s] == shown}
    assert v2_ok(alice.get(v2(alice, f"/tasks/{ids[canonical]}")))["state"] == shown


@pytest.mark.parametrize(
    "state", [s for s in LIST_STATES if s not in V2_STATE.values() and s != "SCHEDULING"]
)
def test_states_the_core_never_reaches_filter_to_nothing(alice, cams, state):
    create_task(alice, sources=cams[:1])

    answer = v2_ok(alice.get(v2(alice, f"/tasks?task_state={state}")))

    assert (answer["count"], answer["tasks"]) == (0, [])


def test_scheduling_finds_activated_tasks_between_their_windows(alice, cams):
    never_now = {
        "type": "weekly",
        "timezone": "+00:00",
        "days_of_week": [1],
        "periods": [[{"begin_at": "00:00", "end_at": "00:01"}]],
    }
    scheduled = create_task(alice, sources=[cams[0]], name="scheduled", schedule=never_now)
    create_task(alice, sources=[cams[1]], name="plain")
    task = Task.objects.get(pk=scheduled["id"])

    subtask_services.start_task(task, now=datetime(2026, 1, 7, 12, 0, tzinfo=UTC))  # a Wednesday

    assert _names(alice, "task_state=SCHEDULING") == {"scheduled"}
    shown = v2_ok(alice.get(v2(alice, f"/tasks/{task.pk}")))
    assert (shown["schedule_status"], shown["schedule_state"]) == ("ACTIVATED", "SCHEDULING")


def test_the_dto_states_are_the_seeds(alice):
    assert set(V2_STATE.values()) <= set(TASK_STATES)
    assert len(TASK_STATES) == 15 and len(LIST_STATES) == 17


# ---- batch tasks --------------------------------------------------------------------------------------


def test_batch_creation_counts_and_lists_failing_sources(alice):
    cams = add_sources(alice, 4)
    body = batch_body([*cams, "no-such-source", cams[0]], groups=2)

    answer = v2_ok(alice.post(v2(alice, "/batch-tasks"), body))

    assert (answer["total_count"], answer["succeed_count"], answer["failed_count"]) == (6, 4, 2)
    assert len(answer["error_list"]) == 2
    assert any("no-such-source" in e for e in answer["error_list"])
    assert any("twice" in e for e in answer["error_list"])
    batch = BatchTask.objects.get(pk=answer["id"])
    tasks = Task.objects.filter(batch=batch)
    assert tasks.count() == 4
    assert {t.output["webhook"]["url"] for t in tasks} == {WEBHOOK}
    assert {t.company for t in tasks} == {"VIAS"}
    assert {t.video_group_id for t in tasks} == {"group-0", "group-1"}


def test_batch_list_update_actions_delete(alice):
    cams = add_sources(alice, 3)
    batch_id = v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body(cams)))["id"]
    path = v2(alice, f"/batch-tasks/{batch_id}")

    listed = v2_ok(alice.get(v2(alice, "/batch-tasks")))
    assert listed["count"] == 1 and listed["batch_tasks"][0]["task_count"] == 3
    assert (
        listed["batch_tasks"][0]["batch_input"]["video_source_group"][0]["video_source_group_id"] == "group-0"
    )

    changed = v2_ok(
        alice.put(
            path, {"description": "changed", "output": {"obs": {"bucket": "my-bucket", "path": "out/x"}}}
        )
    )
    assert (changed["total_count"], changed["failed_count"]) == (3, 0)
    assert {t.output["obs"]["bucket"] for t in Task.objects.filter(batch_id=batch_id)} == {"my-bucket"}

    started = v2_ok(alice.put(f"{path}/action/start"))
    assert (started["total_count"], started["succeed_count"], started["id"]) == (3, 3, batch_id)
    assert v2_ok(alice.get(v2(alice, "/batch-tasks?task_state=STARTING")))["count"] == 1
    v2_refused(alice.delete(path), 400, "VIAS.00010004")
    v2_ok(alice.put(f"{path}/action/stop"))

    replaced = v2_ok(
        alice.put(
            path,
            {
                "batch_input": {
                    "video_source_group": [
                        {"video_source_group_id": "g2", "video_source_list": [{"video_source_id": cams[0]}]}
                    ]
                }
            },
        )
    )
    assert replaced["total_count"] == 1 and Task.objects.filter(batch_id=batch_id).count() == 1

    deleted = v2_ok(alice.delete(path))
    assert deleted["total_count"] == 1
    assert not BatchTask.objects.exists() and not Task.objects.exists()


def test_batch_service_name_cannot_change(alice):
    cams = add_sources(alice, 1)
    batch_id = v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body(cams)))["id"]
    before = snapshot()

    v2_refused(
        alice.put(v2(alice, f"/batch-tasks/{batch_id}"), {"service_name": "other"}),
        400,
        "VIAS.00010001",
        "service_name",
    )

    assert snapshot() == before


# ---- video sources ------------------------------------------------------------------------------------


def test_video_sources_are_video_channels(alice):
    made = v2_ok(alice.post(v2(alice, "/source"), source_body("gate", "rtsp://10.2.2.2/l")))
    source_id = made["video_source_id"]
    path = v2(alice, f"/source/{source_id}")

    assert VideoChannel.objects.get(vchan_refid=source_id).url == "rtsp://10.2.2.2/l"
    shown = v2_ok(alice.get(v2(alice, f"/source/sources/{source_id}")))
    assert (shown["video_source_name"], shown["stream_path"]) == ("gate", "rtsp://10.2.2.2/l")
    changed = v2_ok(alice.put(path, source_body("gate 2", "rtsp://10.2.2.3/l")))
    assert (changed["video_source_name"], changed["stream_path"]) == ("gate 2", "rtsp://10.2.2.3/l")
    listed = v2_ok(alice.get(v2(alice, "/source/sources?scope=gate")))
    assert listed["video_source_number"] == 1
    assert listed["video_source_list"][0]["video_source_id"] == source_id
    v2_refused(
        alice.post(v2(alice, "/source"), source_body("x", "rtsp://10.2.2.4/l", video_source_id=source_id)),
        400,
        "VIAS.00010003",
    )

    create_task(alice, sources=[source_id])
    v2_refused(alice.delete(path), 400, "VIAS.00010004")
    Subtask.objects.all().delete()
    assert v2_ok(alice.delete(path)) == {}
    v2_refused(alice.get(v2(alice, f"/source/sources/{source_id}")), 404, "VIAS.00010002")


# ---- error shapes before and around the views -----------------------------------------------------------


def test_no_token_is_401_in_the_v2_shape(alice):
    v2_refused(Client().get(v2(alice, "/tasks")), 401, "VIAS.00010005", "token")


def test_an_unknown_token_is_401_in_the_v2_shape(alice):
    v2_refused(Client().get(v2(alice, "/tasks"), HTTP_X_AUTH_TOKEN="x" * 40), 401, "VIAS.00010005")


def test_another_projects_path_is_403(alice, bob):
    v2_refused(alice.get(f"/v2/{bob.project.project_id}/tasks"), 403, "VIAS.00010005")


def test_unknown_paths_and_methods(alice):
    v2_refused(alice.get(v2(alice, "/no-such-thing")), 404, "VIAS.00010002")
    v2_refused(alice.post(v2(alice, "/tasks"), {}), 405, "VIAS.00010001")


def test_a_body_over_the_limit_is_413_in_the_v2_shape(alice, settings):
    settings.VIAS_MAX_BODY_BYTES = 2048
    before = snapshot()

    v2_refused(
        alice.post(v2(alice, "/services/face/tasks"), task_body(description="d" * 4000)),
        413,
        None,
        "over the limit",
    )

    assert snapshot() == before


def test_a_body_that_is_not_json_is_refused(alice):
    v2_refused(alice.post(v2(alice, "/batch-tasks"), '{"name": '), 400, "VIAS.00010001", "JSON")


# ---- output on the native API --------------------------------------------------------------------------


def test_the_native_api_takes_and_shows_output(alice):
    from tests.conftest import task_body as native_body

    out = {"obs": {"bucket": "my-bucket", "path": "results/a"}}
    task = alice.post("/tasks", native_body(vchans=1, output=out)).json()["data"]

    assert task["output"] == out
    changed = alice.put(f"/tasks/{task['task_id']}", {"output": {"dis": {"stream_name": "s-1"}}}).json()
    assert changed["data"]["output"] == {"dis": {"stream_name": "s-1"}}
    refused = alice.put(f"/tasks/{task['task_id']}", {"output": {"obs": {"bucket": "A", "path": "x"}}})
    assert refused.status_code == 400 and "obs.bucket" in json.dumps(refused.json())


def test_messages_follow_accept_language(alice):
    answer = alice.get(v2(alice, "/tasks/no-such-task"), HTTP_ACCEPT_LANGUAGE="zh-hans").json()

    assert answer["error_msg"] == "task_id: 任务 no-such-task 不存在"
    assert answer["params"] == ["task_id"] and answer["reason"] == "任务 no-such-task 不存在"


def test_unknown_fields_are_ignored(alice, cams):
    body = task_body(sources=[cams[0]], priority="low", unknown={"deep": [1, 2]})
    body["output"]["webhook"]["extra"] = "dropped"
    body["schedule"] = {
        "type": "weekly",
        "timezone": "+08:00",
        "days_of_week": [1],
        "periods": [[{"begin_at": "08:00", "end_at": "09:00", "x": 1}]],
        "y": 2,
    }

    task = v2_ok(alice.post(v2(alice, "/services/face/tasks"), body))

    assert task["output"] == {"webhook": {"url": WEBHOOK, "headers": {"a": "a"}}}
    assert task["schedule"] == {
        "type": "weekly",
        "timezone": "+08:00",
        "days_of_week": [1],
        "periods": [[{"begin_at": "08:00", "end_at": "09:00"}]],
    }


def test_the_model_refuses_what_the_v2_serializers_would_drop(alice):
    from django.core.exceptions import ValidationError

    from tasks.validators import validate_task_output, validate_task_schedule

    with pytest.raises(ValidationError):
        validate_task_output({"webhook": {"url": WEBHOOK, "headers": {"a": "a"}, "extra": 1}})
    with pytest.raises(ValidationError):
        validate_task_schedule({"type": "weekly", "timezone": "+08:00", "days_of_week": [1], "periods": [[]]})
