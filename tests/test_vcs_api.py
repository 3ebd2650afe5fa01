"""The VCS-SPS compute-task API: the seed's bodies over the one task core (docs/dialects.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from subtasks.choices import State
from subtasks.models import Subtask
from tasks import services
from tasks.models import Task, VideoChannel
from tasks.videostore import resolve_video_handle, resolve_video_handles
from tests.conftest import Actor, task_body
from tests.vcs_helpers import (
    BEGIN_MS,
    CREATE,
    GET,
    MODIFY,
    START,
    STOP,
    compute_body,
    device,
    make_store,
    snapshot,
    vcs_ok,
    vcs_refused,
)
from vias.lib.errors import Conflict, Invalid, NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def videos(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return make_store(tmp_path)


def create(actor: Actor, **kwargs) -> str:
    return vcs_ok(actor.post(CREATE, compute_body(**kwargs)))["taskId"]


def get_one(actor: Actor, task_id: str) -> dict:
    (item,) = vcs_ok(actor.post(GET, {"taskIds": [task_id]}))
    return item


# ---- the happy path --------------------------------------------------------------------------------


def test_create_get_start_stop_modify(alice):
    task_id = create(alice)

    task = Task.objects.get(pk=task_id)
    assert len(task_id) == 32 and task.project == alice.project
    assert (task.task_name, task.description, task.client_name) == ("task1", "this is a task", "sps")
    assert (task.source_type, task.algo_type, task.detector_models) == (
        "pull_video_stream",
        "2",
        ["face", "body"],
    )
    assert task.run_dt == datetime(2019, 8, 1, 16, 0, tzinfo=UTC)
    (subtask,) = Subtask.objects.filter(task=task)
    assert (subtask.video_channel.vchan_refid, subtask.source_url) == ("cam-1", "lzfg54fg871fghwa.mp4")
    assert subtask.video_time_length == 600
    assert subtask.video_begin_time == datetime(2019, 8, 1, 16, 0, 0, 1000, tzinfo=UTC)
    # VCS has no configuration step: the subtask is config-complete as soon as it exists.
    assert (subtask.config_complete, subtask.state) == (True, State.CONFIGURED)

    item = get_one(alice, task_id)
    assert item["taskId"] == task_id and item["taskStatus"] == "WAITING"
    assert item["name"] == "task1" and item["clientName"] == "sps" and item["execStartTime"] == 1564675200000
    assert item["algorithms"] == [{"models": ["face", "body"]}]
    assert item["datasources"]["devices"] == [
        {
            "deviceId": "cam-1",
            "videoId": "lzfg54fg871fghwa",
            "videoTimeLength": 600.0,
            "videoBeginTime": BEGIN_MS,
            "taskStatus": "WAITING",
            "nextStartTime": None,  # ours: when it waits for its window (SCHEDULING)
        }
    ]

    assert alice.post(START, {"taskId": task_id}).json() == {"Code": "0", "Message": "SUCCESS"}
    assert Subtask.objects.get(task=task).state == State.STARTING
    assert get_one(alice, task_id)["taskStatus"] == "ONLINED"

    assert alice.post(STOP, {"taskId": task_id}).json() == {"Code": "0", "Message": "SUCCESS"}
    assert Subtask.objects.get(task=task).state == State.STOPPED
    assert get_one(alice, task_id)["taskStatus"] == "OFFLINED"

    body = compute_body(
        devices=[
            device("cam-2", "clip-2", videoTimeLength=30.5),
            device("cam-3", "bare_handle", videoBeginTime=None),
        ],
        models=["motor", "no_motor"],
        description="now vehicles",
        execStartTime=1564675300000,
        taskId=task_id,
    )
    assert vcs_ok(alice.post(MODIFY, body)) == {"taskId": task_id}
    task.refresh_from_db()
    assert (task.task_name, task.description, task.algo_type, task.detector_models) == (
        "task1",
        "now vehicles",
        "0",
        ["motor", "no_motor"],
    )
    assert task.run_dt == datetime(2019, 8, 1, 16, 1, 40, tzinfo=UTC)
    subtasks = list(Subtask.objects.filter(task=task).order_by("position"))
    assert [(s.video_channel.vchan_refid, s.source_url, s.video_time_length) for s in subtasks] == [
        ("cam-2", "clip-2.avi", 30.5),
        ("cam-3", "bare_handle", 600),
    ]
    assert subtasks[1].video_begin_time is None
    assert all(s.config_complete and s.state == State.CONFIGURED for s in subtasks)
    item = get_one(alice, task_id)
    assert [d["videoId"] for d in item["datasources"]["devices"]] == ["clip-2", "bare_handle"]
    assert item["taskStatus"] == "WAITING" and item["algorithms"] == [{"models": ["motor", "no_motor"]}]
    # It starts again over its new sources.
    vcs_ok(alice.post(START, {"taskId": task_id}))
    assert set(Subtask.objects.filter(task=task).values_list("state", flat=True)) == {State.STARTING}


def test_modify_with_only_some_fields_keeps_the_rest(alice):
    task_id = create(alice)
    before = Subtask.objects.get(task_id=task_id)
    vcs_ok(alice.post(MODIFY, {"taskId": task_id, "description": "changed", "name": "task1"}))
    task = Task.objects.get(pk=task_id)
    assert (task.description, task.detector_models, task.client_name) == ("changed", ["face", "body"], "sps")
    # Without datasources the subtasks are left as they are.
    assert Subtask.objects.get(task_id=task_id).pk == before.pk


def test_the_seed_modify_body_resent_whole_is_accepted(alice):
    task_id = create(alice)
    body = compute_body(taskId=task_id)
    del body["datasources"]["devices"][0]["videoBeginTime"]  # the seed's modify body has none
    vcs_ok(alice.post(MODIFY, body))
    # Left out, so kept: the device's subtask is made anew with the stored begin time.
    assert get_one(alice, task_id)["datasources"]["devices"][0]["videoBeginTime"] == BEGIN_MS
    body["datasources"]["devices"][0]["videoBeginTime"] = None  # an explicit null clears it
    vcs_ok(alice.post(MODIFY, body))
    assert Subtask.objects.get(task_id=task_id).video_begin_time is None


def test_modify_while_running_is_refused_and_changes_nothing(alice):
    task_id = create(alice)
    vcs_ok(alice.post(START, {"taskId": task_id}))
    before = snapshot()
    body = {"taskId": task_id, "description": "x", "datasources": {"devices": [device("cam-9", "clip-2")]}}
    vcs_refused(alice.post(MODIFY, body), 409, "stop the task")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("models", "algo_type"),
    [
        (["face"], "4"),
        (["motor"], "0"),
        (["no_motor", "motor"], "0"),
        (["body"], "2"),
        (["face", "body"], "2"),
        (["face", "motor"], "2"),
        (["face", "body", "motor", "no_motor"], "2"),
    ],
)
def test_models_choose_the_algo_type(alice, models, algo_type):
    task = Task.objects.get(pk=create(alice, models=models))
    assert task.algo_type == algo_type
    assert sorted(task.detector_models) == sorted(models)


def test_models_of_several_algorithms_are_merged_once_each(alice):
    body = compute_body()
    body["algorithms"] = [{"models": ["body", "face"]}, {"models": ["face", "motor"]}]
    task = Task.objects.get(pk=vcs_ok(alice.post(CREATE, body))["taskId"])
    assert task.detector_models == ["face", "body", "motor"]


def test_one_subtask_per_device_in_order(alice):
    devices = [device(f"cam-{i}", "clip-2") for i in range(3)]
    task_id = create(alice, devices=devices)
    refids = (
        Subtask.objects.filter(task_id=task_id)
        .order_by("position")
        .values_list("video_channel__vchan_refid", flat=True)
    )
    assert list(refids) == ["cam-0", "cam-1", "cam-2"]


def test_an_existing_device_is_reused_and_another_file_for_it_is_a_conflict(alice):
    create(alice)
    create(alice)  # the same deviceId with the same file: the channel is shared
    assert VideoChannel.objects.filter(project=alice.project).count() == 1
    before = snapshot()
    body = vcs_refused(
        alice.post(CREATE, compute_body(devices=[device("cam-1", "clip-2")])), 409, "another url"
    )
    assert "datasources.devices[0]" in body["Message"]
    assert snapshot() == before


def test_a_handle_names_the_bare_file_before_one_with_an_extension(alice, videos):
    (videos / "bare_handle.mp4").write_bytes(b"x")
    (videos / "clip-2.aaa").write_bytes(b"x")
    task_id = create(alice, devices=[device("cam-1", "bare_handle"), device("cam-2", "clip-2")])
    urls = Subtask.objects.filter(task_id=task_id).order_by("position").values_list("source_url", flat=True)
    assert list(urls) == ["bare_handle", "clip-2.aaa"]


@pytest.mark.parametrize(
    ("states", "status"),
    [
        ([], "WAITING"),
        ([State.PENDING], "WAITING"),
        ([State.CONFIGURED], "WAITING"),
        ([State.STARTING], "ONLINED"),
        ([State.RUNNING, State.STOPPED], "ONLINED"),
        ([State.RECOVERING], "ONLINED"),
        ([State.STOPPING], "OFFLINING"),
        ([State.STOPPED, State.SUCCEEDED], "OFFLINED"),
        ([State.SUCCEEDED], "FINISHED"),
        ([State.FAILED, State.SUCCEEDED], "FAILED"),
        ([State.RUNNING, State.ABNORMAL], "ABNORMAL"),
    ],
)
def test_task_status_follows_the_derived_state(alice, states, status):
    task_id = create(alice, devices=[device(f"cam-{i}", "clip-2") for i in range(max(len(states), 1))])
    subtasks = list(Subtask.objects.filter(task_id=task_id).order_by("position"))
    if not states:
        Subtask.objects.filter(task_id=task_id).delete()
    for subtask, state in zip(subtasks, states, strict=False):
        Subtask.objects.filter(pk=subtask.pk).update(state=state)
    assert get_one(alice, task_id)["taskStatus"] == status


def test_get_answers_in_request_order_once_each_and_leaves_out_unknown_ids(alice):
    first, second = create(alice), create(alice)
    items = vcs_ok(alice.post(GET, {"taskIds": [second, "f" * 32, first, second]}))
    assert [item["taskId"] for item in items] == [second, first]
    assert vcs_ok(alice.post(GET, {"taskIds": ["nosuchtask"]})) == []


def test_trailing_slash_is_tolerated(alice):
    task_id = create(alice)
    assert vcs_ok(alice.post(GET + "/", {"taskIds": [task_id]}))[0]["taskId"] == task_id


def test_messages_follow_accept_language(alice):
    body = alice.post(START, {"taskId": "nosuchtask"}, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert body["Code"] == "404"
    assert body["Message"].startswith("taskId: ") and "nosuchtask" in body["Message"]
    assert body["Message"] != alice.post(START, {"taskId": "nosuchtask"}).json()["Message"]
    body = alice.post(
        CREATE, compute_body(devices=[device(video_id="nope")]), HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).json()
    assert body == {
        "Code": "404",
        "Message": "datasources.devices[0].videoId: 视频库中没有视频文件 nope",
        "Errors": {"datasources.devices[0].videoId": ["视频库中没有视频文件 nope"]},
    }
    body = alice.post(CREATE, compute_body(execType="live"), HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert body["Message"] == "execType: 必须为 historyVideoFile,而不是 live"


# ---- tenancy -------------------------------------------------------------------------------------------


def test_bob_cannot_see_start_stop_or_modify_alices_compute_task(alice, bob):
    task_id = create(alice)
    before = snapshot()
    assert vcs_ok(bob.post(GET, {"taskIds": [task_id]})) == []
    for path in (START, STOP):
        vcs_refused(bob.post(path, {"taskId": task_id}), 404, "taskId", task_id)
    vcs_refused(bob.post(MODIFY, {"taskId": task_id, "description": "bob was here"}), 404, "taskId")
    vcs_refused(bob.post(MODIFY, compute_body(taskId=task_id)), 404, "taskId")
    assert snapshot() == before
    assert get_one(alice, task_id)["description"] == "this is a task"


def test_the_same_device_id_in_two_projects_is_two_channels(alice, bob):
    create(alice)
    create(bob, devices=[device("cam-1", "clip-2")])
    assert VideoChannel.objects.filter(vchan_refid="cam-1").count() == 2


# ---- one core --------------------------------------------------------------------------------------


def test_a_compute_task_is_a_native_task(alice):
    task_id = create(alice)
    listed = alice.get("/tasks").json()
    assert listed["ecode"] == 200 and listed["total_num"] == 1
    (task,) = listed["list_data"]
    assert task["task_id"] == task_id and task["task_name"] == "task1"
    assert (task["source_type"], task["algo_type"], task["play_url"]) == (
        "pull_video_stream",
        "2",
        "lzfg54fg871fghwa.mp4",
    )
    assert (task["state"], task["subtask_count"], task["mtasks"]) == ("CONFIGURED", 1, [])
    assert alice.post(f"/tasks/{task_id}/start").json()["ecode"] == 200
    assert get_one(alice, task_id)["taskStatus"] == "ONLINED"


def test_a_native_task_is_visible_as_a_compute_task(alice):
    response = alice.post("/tasks", task_body(vchans=2))
    assert response.status_code == 200
    task_id = response.json()["data"]["task_id"]
    item = get_one(alice, task_id)
    assert (item["taskId"], item["name"], item["taskStatus"], item["state"]) == (
        task_id,
        "front door",
        "WAITING",
        "PENDING",
    )
    assert item["algorithms"] == [] and item["clientName"] == ""
    assert [(d["deviceId"], d["videoId"]) for d in item["datasources"]["devices"]] == [
        ("cam-0", None),
        ("cam-1", None),
    ]
    # Its subtasks are not config-complete, so VCS start is the core's refusal.
    vcs_refused(alice.post(START, {"taskId": task_id}), 409, "config-complete")


# ---- core pieces the dialect added -----------------------------------------------------------------


def test_resolve_video_handle_names_files_inside_the_store_only(videos, tmp_path):
    (videos / "a_dir").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (videos / "escape.mp4").symlink_to(tmp_path / "secret.mp4")
    (videos / "two.tar.gz").write_bytes(b"x")
    assert resolve_video_handle("lzfg54fg871fghwa") == "lzfg54fg871fghwa.mp4"
    assert resolve_video_handles(["clip-2", "bare_handle", "a_dir", "escape", "two"]) == {
        "clip-2": "clip-2.avi",
        "bare_handle": "bare_handle",
    }
    with pytest.raises(NotFound, match="no video file escape"):
        resolve_video_handle("escape")
    with pytest.raises(ValidationError):
        resolve_video_handle("../secret")


def test_resolve_video_handle_without_a_store_finds_nothing(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "elsewhere"
    with pytest.raises(NotFound):
        resolve_video_handle("lzfg54fg871fghwa")


def test_detector_models_are_validated_on_the_model(alice):
    task = Task.objects.get(pk=create(alice))
    for bad in (["face", "face"], ["truck"], "face", [1]):
        task.detector_models = bad
        with pytest.raises(ValidationError) as exc:
            task.full_clean()
        assert "detector_models" in exc.value.message_dict


def test_replace_vchans_is_refused_while_a_subtask_runs_and_for_picture_tasks(alice):
    task = Task.objects.get(pk=create(alice))
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    with pytest.raises(Conflict):
        services.replace_vchans(task, [{"vchan_refid": "cam-2", "url": "clip-2.avi"}])
    picture = services.create_task(
        alice.project,
        {
            "task_name": "pics",
            "algo_type": "4",
            "run_dt": task.run_dt,
            "play_url": "clip-2.avi",
            "source_type": "push_pic_files",
        },
    )
    with pytest.raises(Invalid):
        services.replace_vchans(picture, [{"vchan_refid": "cam-2", "url": "clip-2.avi"}])


def test_replace_vchans_copies_the_scene_config_of_each_channel(alice):
    response = alice.post("/tasks", task_body(vchans=1, scenes=2))
    task = Task.objects.get(pk=response.json()["data"]["task_id"])
    services.replace_vchans(
        task, [{"vchan_refid": "cam-1", "url": "rtsp://10.0.0.2/live"}, {"vchan_refid": "cam-0"}]
    )
    subtasks = list(Subtask.objects.filter(task=task).order_by("position"))
    assert [s.video_channel.vchan_refid for s in subtasks] == ["cam-1", "cam-0"]
    assert [s.scene.scene_unid for s in subtasks] == ["scene-0-1", "scene-0-0"]
    assert all(len(s.rois) == 2 and s.state == State.PENDING for s in subtasks)


def test_algo_type_cannot_change_under_scenes_of_another_type(alice):
    task_id = alice.post("/tasks", task_body(vchans=1)).json()["data"]["task_id"]
    body = alice.put(f"/tasks/{task_id}", {"algo_type": "2"}).json()
    assert body["ecode"] == 400 and "algo_type" in body["enote"]
    assert Task.objects.get(pk=task_id).algo_type == "1"
    # Through VCS the same core rule holds: its models would change the algo_type.
    vcs_refused(
        alice.post(MODIFY, {"taskId": task_id, "algorithms": [{"models": ["face"]}]}), 400, "algorithms"
    )


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/Los_Angeles"])
def test_the_extreme_timestamps_show_in_every_time_zone(alice, settings, tz):
    settings.TIME_ZONE = tz
    for ms in (0, 253402128000000):
        task_id = create(alice, execStartTime=ms, devices=[device(videoBeginTime=ms)])
        assert get_one(alice, task_id)["execStartTime"] == ms
        assert alice.get(f"/tasks/{task_id}").json()["ecode"] == 200
    vcs_refused(alice.post(CREATE, compute_body(execStartTime=253402128000001)), 400, "execStartTime")
