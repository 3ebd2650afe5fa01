"""The native task API over HTTP: POST/GET/PUT/DELETE /tasks, start, stop and a task's subtasks."""

from __future__ import annotations

from typing import Any

import pytest

from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import MTask, Scene, SceneRoi, Task, VideoChannel
from tests.api_helpers import error, ok
from tests.conftest import EMPTY_XML, Actor, task_body

pytestmark = pytest.mark.django_db


POLYGON_ROI = (
    '<?xml version="1.0" encoding="UTF-8"?><root><polygon name="door" mode="include">'
    '<point x="0.1" y="0.2"/><point x="0.6" y="0.2"/><point x="0.6" y="0.9"/></polygon></root>'
)


def create(actor: Actor, **kwargs: Any) -> dict[str, Any]:
    return ok(actor.post("/tasks", task_body(**kwargs)), 200)["data"]


def subtasks_of(actor: Actor, task_id: str) -> list[dict[str, Any]]:
    return ok(actor.get(f"/tasks/{task_id}/subtasks"))["list_data"]


# ---- create ---------------------------------------------------------------------------------------


def test_create_answers_200_with_the_seed_shaped_task(alice):
    body = task_body(vchans=2, mtasks=2, scenes=2)

    answer = ok(alice.post("/tasks", body), 200)
    task = answer["data"]

    assert len(task["task_id"]) == 32
    assert task["task_name"] == "front door"
    assert task["algo_type"] == "1"
    assert task["run_dt"] == "2018-12-03 10:27:30.999"
    assert task["play_url"] == body["play_url"]
    assert task["store_conf_unid"] == ""
    assert [m["mtask_unid"] for m in task["mtasks"]] == ["mtask-0", "mtask-1"]
    mtask = task["mtasks"][0]
    assert (mtask["type"], mtask["time_interval"], mtask["start_time"], mtask["end_time"]) == (
        0,
        5,
        "00:00:00",
        "23:59:59",
    )
    assert [s["scene_unid"] for s in mtask["scenes"]] == ["scene-0-0", "scene-0-1"]
    scene = mtask["scenes"][1]
    assert scene["callibration"] == {"calibration": EMPTY_XML}
    assert scene["rois"] == [{"roi": EMPTY_XML}, {"roi": EMPTY_XML}]
    assert scene["config"] == {"xml": EMPTY_XML}
    assert scene["basicConfig"] == {"xml": EMPTY_XML}
    assert (scene["algo_type"], scene["vchan_refid"], scene["preset"]) == (1, "cam-1", 0)
    assert task["state"] == "PENDING"
    assert task["subtask_count"] == 2


def test_create_writes_the_whole_tree(alice):
    task = create(alice, vchans=3, mtasks=2, scenes=3)

    assert Task.objects.filter(task_id=task["task_id"], project=alice.project).exists()
    assert MTask.objects.filter(task_id=task["task_id"]).count() == 2
    assert Scene.objects.filter(mtask__task_id=task["task_id"]).count() == 6
    assert SceneRoi.objects.filter(scene__mtask__task_id=task["task_id"]).count() == 12
    assert VideoChannel.objects.filter(project=alice.project).count() == 3


def test_video_task_gets_one_subtask_per_channel_and_nothing_is_dispatched(alice):
    task = create(alice, vchans=3)

    subtasks = subtasks_of(alice, task["task_id"])

    assert [s["vchan_refid"] for s in subtasks] == ["cam-0", "cam-1", "cam-2"]
    assert [s["source_url"] for s in subtasks] == [
        "rtsp://10.0.0.1/live",
        "rtsp://10.0.0.2/live",
        "rtsp://10.0.0.3/live",
    ]
    assert {s["state"] for s in subtasks} == {"PENDING"}
    assert not any(s["config_complete"] for s in subtasks)
    assert not Subtask.objects.filter(task_id=task["task_id"]).exclude(state=State.PENDING).exists()


def test_subtask_starts_with_its_channels_scene_configuration(alice):
    body = task_body(vchans=2, scenes=2)
    body["mtasks"][0]["scenes"][1]["rois"] = [{"roi": POLYGON_ROI}]
    body["mtasks"][0]["scenes"][1]["algo_args"] = {"occupancy_limit": 40}

    task = ok(alice.post("/tasks", body), 200)["data"]
    second = subtasks_of(alice, task["task_id"])[1]

    assert second["vchan_refid"] == "cam-1"
    assert second["rois"] == [{"roi": POLYGON_ROI}]
    assert second["algo_args"] == {"occupancy_limit": 40}


def test_video_task_without_vchans_gets_one_subtask_from_play_url(alice):
    task = create(alice, vchans=0, play_url="rtsp://192.168.9.155:8554/opt/data/1.264")

    subtasks = subtasks_of(alice, task["task_id"])

    assert len(subtasks) == 1
    assert subtasks[0]["source_url"] == "rtsp://192.168.9.155:8554/opt/data/1.264"
    assert subtasks[0]["vchan_refid"] == ""
    assert VideoChannel.objects.count() == 0


def test_vchans_may_name_existing_channels_by_refid(alice):
    ok(alice.post("/vchans", {"vchan_refid": "gate", "url": "rtsp://10.1.1.1/live"}), 201)
    body = task_body(vchans=0)
    body["vchans"] = ["gate", {"vchan_refid": "gate-2", "url": "rtsp://10.1.1.2/live"}]

    task = ok(alice.post("/tasks", body), 200)["data"]

    assert [s["source_url"] for s in subtasks_of(alice, task["task_id"])] == [
        "rtsp://10.1.1.1/live",
        "rtsp://10.1.1.2/live",
    ]
    assert VideoChannel.objects.filter(project=alice.project).count() == 2


def test_pull_pic_files_task_gets_node_count_subtasks_storing_pull_source_url(alice):
    task = create(
        alice,
        vchans=0,
        source_type="pull_pic_files",
        node_count=3,
        pull_source_url="https://pictures.example.com/inbox",
    )

    subtasks = subtasks_of(alice, task["task_id"])

    assert task["node_count"] == 3
    assert len(subtasks) == 3
    assert {s["source_url"] for s in subtasks} == {"https://pictures.example.com/inbox"}
    assert {s["state"] for s in subtasks} == {"PENDING"}


def test_push_pic_files_task_gets_node_count_subtasks(alice):
    task = create(alice, vchans=0, source_type="push_pic_files", node_count=2)

    subtasks = subtasks_of(alice, task["task_id"])

    assert [s["position"] for s in subtasks] == [0, 1]
    assert {s["source_url"] for s in subtasks} == {""}


def test_pull_pic_files_without_pull_source_url_is_refused(alice):
    body = task_body(vchans=0, source_type="pull_pic_files", node_count=2)

    answer = error(alice.post("/tasks", body), 400)

    assert "pull_source_url" in answer["enote"]
    assert Task.objects.count() == 0


def test_output_fields_sent_back_are_ignored(alice):
    task = create(alice, vchans=1)
    again = task_body(vchans=0, task_id=task["task_id"], state="RUNNING", subtask_count=99)

    second = ok(alice.post("/tasks", again), 200)["data"]

    assert second["task_id"] != task["task_id"]
    assert second["state"] == "PENDING"
    assert second["subtask_count"] == 1


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("2018-12-03 10:27:30.999", "2018-12-03 10:27:30.999"),
        ("2018-12-03 10:27:30", "2018-12-03 10:27:30.000"),
        ("2018-12-03T02:27:30.999Z", "2018-12-03 10:27:30.999"),
        ("2018-12-03T10:27:30.999+08:00", "2018-12-03 10:27:30.999"),
        ("0001-01-01 09:00:00", "0001-01-01 09:00:00.000"),  # LMT, +08:05:43, before 1901
        ("9999-12-31 23:59:59.999", "9999-12-31 23:59:59.999"),
    ],
)
def test_run_dt_is_read_and_answered_in_the_servers_time_zone(alice, settings, sent, answered):
    settings.TIME_ZONE = "Asia/Shanghai"

    task = create(alice, vchans=0, run_dt=sent)

    assert task["run_dt"] == answered
    # What was answered can be sent back unchanged.
    again = ok(alice.put(f"/tasks/{task['task_id']}", {"run_dt": task["run_dt"]}))["data"]
    assert again["run_dt"] == answered


# ---- list and show --------------------------------------------------------------------------------


def test_list_is_newest_first_with_offset_and_limit(alice):
    names = [f"task {i}" for i in range(5)]
    for name in names:
        create(alice, vchans=0, task_name=name)

    page = ok(alice.get("/tasks?offset=1&limit=2"))

    assert (page["total_num"], page["offset"], page["list_size"]) == (5, 1, 2)
    assert [t["task_name"] for t in page["list_data"]] == ["task 3", "task 2"]


def test_list_defaults_to_the_first_ten(alice):
    for i in range(11):
        create(alice, vchans=0, task_name=f"task {i}")

    page = ok(alice.get("/tasks"))

    assert (page["total_num"], page["offset"], page["list_size"]) == (11, 0, 10)
    assert page["list_data"][0]["task_name"] == "task 10"


def test_list_past_the_end_is_an_empty_page(alice):
    create(alice, vchans=0)

    page = ok(alice.get("/tasks?offset=5&limit=10"))

    assert (page["total_num"], page["offset"], page["list_size"], page["list_data"]) == (1, 5, 0, [])


def test_list_items_carry_nested_mtasks_and_scenes(alice):
    create(alice, vchans=2, mtasks=2, scenes=3)

    item = ok(alice.get("/tasks"))["list_data"][0]

    assert [len(m["scenes"]) for m in item["mtasks"]] == [3, 3]
    assert item["mtasks"][1]["scenes"][2]["scene_unid"] == "scene-1-2"
    assert item["mtasks"][1]["scenes"][2]["rois"] == [{"roi": EMPTY_XML}, {"roi": EMPTY_XML}]
    assert item["state_counts"]["PENDING"] == 2


def test_task_state_reflects_its_subtasks(alice):
    task = create(alice, vchans=4)
    ids = Subtask.objects.filter(task_id=task["task_id"]).order_by("position").values_list("pk", flat=True)
    Subtask.objects.filter(pk__in=ids[:3]).update(state=State.RUNNING)
    Subtask.objects.filter(pk=ids[3]).update(state=State.STOPPED)

    shown = ok(alice.get(f"/tasks/{task['task_id']}"))["data"]

    assert shown["state"] == "RUNNING"
    assert (shown["state_counts"]["RUNNING"], shown["state_counts"]["STOPPED"], shown["subtask_count"]) == (
        3,
        1,
        4,
    )


def test_show_answers_the_task(alice):
    task = create(alice, vchans=1, task_name="platform 2")

    shown = ok(alice.get(f"/tasks/{task['task_id']}"))["data"]

    assert shown == task


def test_trailing_slash_is_tolerated(alice):
    task = create(alice, vchans=1)

    assert ok(alice.get(f"/tasks/{task['task_id']}/"))["data"]["task_id"] == task["task_id"]
    assert ok(alice.get("/tasks/"))["total_num"] == 1


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("put", ""), ("delete", ""), ("post", "/start"), ("post", "/stop"), ("get", "/subtasks")],
)
def test_unknown_task_is_404_in_the_envelope(alice, method, suffix):
    answer = error(getattr(alice, method)(f"/tasks/0123456789abcdef0123456789abcdef{suffix}"), 404)

    assert "0123456789abcdef0123456789abcdef" in answer["enote"]


def test_unsupported_method_is_405_in_the_envelope(alice):
    response = alice.client.patch(
        "/tasks", "{}", content_type="application/json", HTTP_AUTHORIZATION=alice.token
    )

    assert "PATCH" in error(response, 405)["enote"]


def test_unknown_path_is_404_in_the_envelope(alice):
    error(alice.get("/no-such-thing"), 404)


# ---- update ---------------------------------------------------------------------------------------


def test_put_changes_fields_and_leaves_the_rest(alice):
    task = create(alice, vchans=1, mtasks=2)

    shown = ok(
        alice.put(f"/tasks/{task['task_id']}", {"task_name": "renamed", "run_dt": "2019-01-02 03:04:05"})
    )

    assert shown["data"]["task_name"] == "renamed"
    assert shown["data"]["run_dt"] == "2019-01-02 03:04:05.000"
    assert shown["data"]["play_url"] == task["play_url"]
    assert [m["mtask_unid"] for m in shown["data"]["mtasks"]] == ["mtask-0", "mtask-1"]


def test_put_with_mtasks_replaces_the_tree(alice):
    task = create(alice, vchans=1, mtasks=2, scenes=2)
    new_tree = task_body(vchans=0, mtasks=1, scenes=1)["mtasks"]
    new_tree[0]["mtask_unid"] = "only"

    shown = ok(alice.put(f"/tasks/{task['task_id']}", {"mtasks": new_tree}))["data"]

    assert [m["mtask_unid"] for m in shown["mtasks"]] == ["only"]
    assert MTask.objects.filter(task_id=task["task_id"]).count() == 1
    assert Scene.objects.filter(mtask__task_id=task["task_id"]).count() == 1
    assert Subtask.objects.filter(task_id=task["task_id"]).count() == 1


def test_put_is_refused_while_subtasks_run(alice):
    task = create(alice, vchans=1)
    Subtask.objects.filter(task_id=task["task_id"]).update(state=State.RUNNING)

    answer = error(alice.put(f"/tasks/{task['task_id']}", {"task_name": "renamed"}), 409)

    assert "running" in answer["enote"]
    assert Task.objects.get(pk=task["task_id"]).task_name == task["task_name"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"source_type": "push_pic_files"}, "source_type"), ({"node_count": 4}, "node_count")],
)
def test_put_cannot_change_how_the_task_was_split(alice, change, field):
    task = create(alice, vchans=1)

    answer = error(alice.put(f"/tasks/{task['task_id']}", change), 409)

    assert field in answer["enote"]


def test_put_cannot_change_vchans(alice):
    task = create(alice, vchans=1)

    answer = error(alice.put(f"/tasks/{task['task_id']}", {"vchans": ["cam-0"]}), 400)

    assert "vchans" in answer["enote"]


# ---- delete ---------------------------------------------------------------------------------------


def test_delete_task_with_subtasks_is_409_naming_the_way_out(alice):
    task = create(alice, vchans=2)

    answer = error(alice.delete(f"/tasks/{task['task_id']}"), 409)

    assert "2 subtasks" in answer["enote"]
    assert "DELETE /subtasks/" in answer["enote"]
    assert Task.objects.filter(pk=task["task_id"]).exists()


def test_delete_task_after_its_subtasks(alice):
    task = create(alice, vchans=2)
    for subtask in subtasks_of(alice, task["task_id"]):
        ok(alice.delete(f"/subtasks/{subtask['subtask_id']}"))

    ok(alice.delete(f"/tasks/{task['task_id']}"))

    error(alice.get(f"/tasks/{task['task_id']}"), 404)
    assert not Task.objects.exists()
    assert not MTask.objects.exists()
    assert not Scene.objects.exists()
    assert VideoChannel.objects.count() == 2  # channels outlive the tasks that used them


# ---- start and stop -------------------------------------------------------------------------------


def test_start_dispatches_only_config_complete_subtasks_and_reports_each(alice):
    task = create(alice, vchans=3)
    first, second, third = subtasks_of(alice, task["task_id"])
    ok(alice.post(f"/subtasks/{first['subtask_id']}/config_complete"))
    ok(alice.post(f"/subtasks/{third['subtask_id']}/config_complete"))

    answer = ok(alice.post(f"/tasks/{task['task_id']}/start"))

    outcomes = {o["subtask_id"]: o for o in answer["subtasks"]}
    assert set(outcomes) == {first["subtask_id"], second["subtask_id"], third["subtask_id"]}
    assert (outcomes[first["subtask_id"]]["state"], outcomes[first["subtask_id"]]["ok"]) == ("STARTING", True)
    assert (outcomes[third["subtask_id"]]["state"], outcomes[third["subtask_id"]]["ok"]) == ("STARTING", True)
    assert outcomes[second["subtask_id"]]["ok"] is False
    assert outcomes[second["subtask_id"]]["state"] == "PENDING"
    assert "config-complete" in outcomes[second["subtask_id"]]["reason"]
    states = dict(Subtask.objects.filter(task_id=task["task_id"]).values_list("pk", "state"))
    assert states == {
        first["subtask_id"]: "STARTING",
        second["subtask_id"]: "PENDING",
        third["subtask_id"]: "STARTING",
    }


def test_start_with_nothing_config_complete_is_409(alice):
    task = create(alice, vchans=2)

    answer = error(alice.post(f"/tasks/{task['task_id']}/start"), 409)

    assert "config-complete" in answer["enote"]
    assert set(Subtask.objects.values_list("state", flat=True)) == {"PENDING"}


def test_start_again_reports_running_subtasks_as_already_running(alice):
    task = create(alice, vchans=1)
    subtask_id = subtasks_of(alice, task["task_id"])[0]["subtask_id"]
    ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))
    ok(alice.post(f"/tasks/{task['task_id']}/start"))

    answer = ok(alice.post(f"/tasks/{task['task_id']}/start"))

    assert answer["subtasks"] == [
        {"subtask_id": subtask_id, "state": "STARTING", "ok": True, "reason": "already STARTING"}
    ]


def test_stop_moves_starting_to_stopped_and_running_to_stopping(alice):
    task = create(alice, vchans=3)
    starting, running, pending = (s["subtask_id"] for s in subtasks_of(alice, task["task_id"]))
    Subtask.objects.filter(pk=starting).update(state=State.STARTING, config_complete=True)
    Subtask.objects.filter(pk=running).update(state=State.RUNNING, config_complete=True)

    answer = ok(alice.post(f"/tasks/{task['task_id']}/stop"))

    reported = {o["subtask_id"]: o["state"] for o in answer["subtasks"]}
    assert reported == {starting: "STOPPED", running: "STOPPING", pending: "PENDING"}
    states = dict(Subtask.objects.values_list("pk", "state"))
    assert states == {starting: "STOPPED", running: "STOPPING", pending: "PENDING"}


def test_a_stopped_task_can_start_again(alice):
    task = create(alice, vchans=1)
    subtask_id = subtasks_of(alice, task["task_id"])[0]["subtask_id"]
    ok(alice.post(f"/subtasks/{subtask_id}/config_complete"))
    ok(alice.post(f"/tasks/{task['task_id']}/start"))
    ok(alice.post(f"/tasks/{task['task_id']}/stop"))

    answer = ok(alice.post(f"/tasks/{task['task_id']}/start"))

    assert answer["subtasks"][0]["state"] == "STARTING"
    assert ok(alice.get(f"/tasks/{task['task_id']}"))["data"]["state"] == "STARTING"


# ---- subtasks of a task ---------------------------------------------------------------------------


def test_task_subtasks_lists_them_in_order_with_the_page_fields(alice):
    task = create(alice, vchans=3)

    page = ok(alice.get(f"/tasks/{task['task_id']}/subtasks"))

    assert (page["total_num"], page["offset"], page["list_size"]) == (3, 0, 3)
    assert [s["position"] for s in page["list_data"]] == [0, 1, 2]
    assert {s["task_id"] for s in page["list_data"]} == {task["task_id"]}
    assert {s["is_running"] for s in page["list_data"]} == {0}
