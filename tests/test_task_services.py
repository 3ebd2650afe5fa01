"""The task core's services (tasks/services.py): splitting, atomicity, store confs, channels.

Specs are written in the core's own shape (what dialects hand to the services); one test
goes through the native serializer to check that the seed's body arrives in that shape.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from subtasks.choices import ACTIVE_STATES, State
from subtasks.models import Subtask
from tasks import building, services
from tasks.api.serializers import TaskIn
from tasks.models import MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel
from tests.conftest import task_body
from vias.lib.errors import Conflict, Invalid, NotFound

MODELS = (Task, MTask, Scene, SceneRoi, VideoChannel, Subtask)
CALIBRATION = (
    "<root>"
    + "".join(
        f'<pair><image x="{a}" y="{b}"/><ground x="{c}" y="{d}"/></pair>'
        for (a, b), (c, d) in [((0, 0), (0, 0)), ((1, 0), (10, 0)), ((1, 1), (10, 10)), ((0, 1), (0, 10))]
    )
    + "</root>"
)


def roi_xml(name: str) -> str:
    return (
        f'<root><polygon name="{name}" mode="include"><point x="0.1" y="0.1"/><point x="0.9" y="0.1"/>'
        '<point x="0.5" y="0.9"/></polygon></root>'
    )


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(project_id="proj-svc", name="services")


@pytest.fixture
def other_project(db) -> Project:
    return Project.objects.create(project_id="proj-other", name="someone else")


def scene_spec(refid: str = "", index: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "scene_unid": f"scene-{refid or 'none'}-{index}",
        "name": f"view of {refid}",
        "algo_type": "1",
        "vchan_refid": refid,
        "rois": [roi_xml(f"zone-{refid}-a"), roi_xml(f"zone-{refid}-b")],
        "calibration_xml": CALIBRATION if index % 2 == 0 else "<root></root>",
        "config_xml": f"<root><camera>{refid}</camera></root>",
        "algo_args": {"fps": 1 + index, "occupancy_limit": 10 * (index + 1)},
        **extra,
    }


def task_spec(
    refids: tuple[str, ...] = ("cam-0", "cam-1"), scenes: list[dict] | None = None, **extra
) -> dict:
    return {
        "task_name": "front door",
        "algo_type": "1",
        "run_dt": timezone.now(),
        "play_url": "rtsp://192.168.9.155:8554/live",
        "vchans": [
            {"vchan_refid": r, "name": f"camera {r}", "url": f"rtsp://10.0.0.{i + 1}/live"}
            for i, r in enumerate(refids)
        ],
        "mtasks": [
            {
                "mtask_unid": "mtask-0",
                "name": "mtask 0",
                "type": 0,
                "time_interval": 5,
                "scenes": scenes if scenes is not None else [scene_spec(r, i) for i, r in enumerate(refids)],
            }
        ],
        **extra,
    }


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def subtasks_of(task: Task) -> list[Subtask]:
    return list(
        Subtask.objects.filter(task=task).select_related("video_channel", "scene").order_by("position")
    )


# ---- splitting ---------------------------------------------------------------------------------------


def test_one_subtask_per_channel_with_its_scene_config(project):
    refids = ("cam-0", "cam-1", "cam-2")
    task = services.create_task(project, task_spec(refids))

    subtasks = subtasks_of(task)
    assert [s.video_channel.vchan_refid for s in subtasks] == list(refids)
    assert [s.source_url for s in subtasks] == [
        "rtsp://10.0.0.1/live",
        "rtsp://10.0.0.2/live",
        "rtsp://10.0.0.3/live",
    ]
    assert [s.position for s in subtasks] == [0, 1, 2]
    for index, (subtask, refid) in enumerate(zip(subtasks, refids, strict=True)):
        assert subtask.state == State.PENDING
        assert subtask.config_complete is False
        assert subtask.scene.vchan_refid == refid
        assert subtask.rois == [roi_xml(f"zone-{refid}-a"), roi_xml(f"zone-{refid}-b")]
        assert subtask.calibration_xml == (CALIBRATION if index % 2 == 0 else "<root></root>")
        assert subtask.config_xml == f"<root><camera>{refid}</camera></root>"
        assert subtask.algo_args == {"fps": 1 + index, "occupancy_limit": 10 * (index + 1)}
    assert VideoChannel.objects.filter(project=project).count() == 3


def test_scene_is_matched_by_refid_not_by_position(project):
    refids = ("cam-0", "cam-1")
    scenes = [scene_spec("cam-1", 1), scene_spec("cam-0", 0)]  # listed the other way round
    task = services.create_task(project, task_spec(refids, scenes=scenes))
    for subtask in subtasks_of(task):
        refid = subtask.video_channel.vchan_refid
        assert subtask.scene.vchan_refid == refid
        assert subtask.config_xml == f"<root><camera>{refid}</camera></root>"
        assert subtask.rois[0] == roi_xml(f"zone-{refid}-a")


def test_scene_in_a_later_mtask_is_found_too(project):
    spec = task_spec(("cam-0", "cam-1"), scenes=[scene_spec("cam-0", 0)])
    spec["mtasks"].append({"mtask_unid": "mtask-1", "scenes": [scene_spec("cam-1", 1)]})
    task = services.create_task(project, spec)
    assert [s.scene.vchan_refid for s in subtasks_of(task)] == ["cam-0", "cam-1"]
    assert subtasks_of(task)[1].algo_args == {"fps": 2, "occupancy_limit": 20}


def test_channel_without_a_scene_gets_an_unconfigured_subtask(project):
    task = services.create_task(
        project, task_spec(("cam-0", "cam-1"), scenes=[scene_spec("cam-0", 0), scene_spec("x", 1)])
    )
    unmatched = subtasks_of(task)[1]
    assert unmatched.scene is None
    assert unmatched.rois == []
    assert unmatched.algo_args == {}


def test_no_vchans_gives_one_subtask_from_play_url(project):
    task = services.create_task(project, task_spec((), scenes=[scene_spec("", 0)]))
    [subtask] = subtasks_of(task)
    assert subtask.video_channel is None
    assert subtask.source_url == "rtsp://192.168.9.155:8554/live"
    assert subtask.rois == [roi_xml("zone--a"), roi_xml("zone--b")]
    assert subtask.scene is not None
    assert VideoChannel.objects.count() == 0


def test_no_vchans_and_no_scenes_still_gives_one_subtask(project):
    task = services.create_task(project, task_spec((), scenes=[]))
    [subtask] = subtasks_of(task)
    assert subtask.source_url == task.play_url
    assert subtask.scene is None


@pytest.mark.parametrize("node_count", [1, 3])
def test_pull_pic_files_gives_node_count_subtasks_with_the_pull_url(project, node_count):
    spec = task_spec(
        (), source_type="pull_pic_files", node_count=node_count, pull_source_url="http://pictures.example/in"
    )
    task = services.create_task(project, spec)
    subtasks = subtasks_of(task)
    assert len(subtasks) == node_count
    assert {s.source_url for s in subtasks} == {"http://pictures.example/in"}
    assert [s.position for s in subtasks] == list(range(node_count))
    assert all(s.video_channel is None for s in subtasks)


def test_push_pic_files_gives_node_count_subtasks_without_a_source(project):
    task = services.create_task(project, task_spec((), source_type="push_pic_files", node_count=4))
    subtasks = subtasks_of(task)
    assert len(subtasks) == 4
    assert {s.source_url for s in subtasks} == {""}


def test_pull_pic_files_needs_a_pull_url(project):
    with pytest.raises(ValidationError) as exc:
        services.create_task(project, task_spec((), source_type="pull_pic_files", node_count=2))
    assert "pull_source_url" in exc.value.message_dict
    assert counts()["Task"] == 0


def test_vchans_are_refused_on_picture_tasks(project):
    with pytest.raises(Invalid, match="pull_video_stream"):
        services.create_task(project, task_spec(("cam-0",), source_type="push_pic_files"))


def test_nothing_is_dispatched_on_create(project):
    task = services.create_task(project, task_spec())
    assert set(Subtask.objects.filter(task=task).values_list("state", flat=True)) == {State.PENDING}


# ---- channels --------------------------------------------------------------------------------------


def test_existing_channel_referenced_by_refid_string_through_the_native_body(project):
    services.create_vchan(project, {"vchan_refid": "lobby", "name": "lobby", "url": "rtsp://10.9.9.9/lobby"})
    body = task_body(vchans=0)
    body["vchans"] = ["lobby", {"vchan_refid": "cam-new", "url": "rtsp://10.0.0.7/live"}]
    serializer = TaskIn(data=body)
    assert serializer.is_valid(), serializer.errors

    task = services.create_task(project, serializer.to_spec())

    subtasks = subtasks_of(task)
    assert [s.video_channel.vchan_refid for s in subtasks] == ["lobby", "cam-new"]
    assert subtasks[0].source_url == "rtsp://10.9.9.9/lobby"
    assert subtasks[0].video_channel == VideoChannel.objects.get(project=project, vchan_refid="lobby")
    assert VideoChannel.objects.filter(project=project).count() == 2


def test_channels_are_shared_between_tasks(project):
    first = services.create_task(project, task_spec(("cam-0",)))
    second = services.create_task(project, {**task_spec(()), "vchans": [{"vchan_refid": "cam-0"}]})
    assert subtasks_of(first)[0].video_channel_id == subtasks_of(second)[0].video_channel_id
    assert VideoChannel.objects.count() == 1


def test_unknown_channel_without_url_is_not_found(project):
    with pytest.raises(NotFound, match="no video channel ghost"):
        services.create_task(project, {**task_spec(()), "vchans": [{"vchan_refid": "ghost"}]})
    assert counts() == dict.fromkeys(counts(), 0)


def test_another_projects_channel_is_invisible(project, other_project):
    services.create_vchan(other_project, {"vchan_refid": "secret-cam", "url": "rtsp://10.6.6.6/live"})
    with pytest.raises(NotFound):
        services.create_task(project, {**task_spec(()), "vchans": [{"vchan_refid": "secret-cam"}]})


def test_existing_channel_with_another_url_is_a_conflict(project):
    services.create_vchan(project, {"vchan_refid": "cam-0", "url": "rtsp://10.9.9.9/live"})
    with pytest.raises(Conflict, match="another url"):
        services.create_task(project, task_spec(("cam-0",)))


@pytest.mark.parametrize(
    "vchans",
    [
        [
            {"vchan_refid": "cam-0", "url": "rtsp://10.0.0.1/live"},
            {"vchan_refid": "cam-0", "url": "rtsp://10.0.0.1/live"},
        ],
        [{"vchan_refid": "cam-0", "url": "rtsp://10.0.0.1/live"}, {"vchan_refid": "cam-0"}],
    ],
)
def test_channel_listed_twice_is_refused(project, vchans):
    with pytest.raises(Invalid, match="listed twice") as exc:
        services.create_task(project, {**task_spec(()), "vchans": vchans})
    assert exc.value.field == "vchans"
    assert counts() == dict.fromkeys(counts(), 0)


def test_new_channel_with_a_forbidden_url_is_refused(project):
    spec = {**task_spec(()), "vchans": [{"vchan_refid": "cam-0", "url": "file:///etc/passwd"}]}
    with pytest.raises(ValidationError) as exc:
        services.create_task(project, spec)
    assert "vchans[0].url" in exc.value.message_dict
    assert counts() == dict.fromkeys(counts(), 0)


# ---- atomicity --------------------------------------------------------------------------------------


def test_an_error_in_the_third_scene_leaves_no_rows(project):
    refids = ("cam-0", "cam-1", "cam-2")
    scenes = [scene_spec(r, i) for i, r in enumerate(refids)]
    scenes[2]["rois"] = [roi_xml("fine"), "<root><polygon name='bad'><point x='2' y='0'/></polygon></root>"]
    with pytest.raises(ValidationError) as exc:
        services.create_task(project, task_spec(refids, scenes=scenes))
    assert "mtasks[0].scenes[2].rois[1].xml" in exc.value.message_dict
    assert counts() == dict.fromkeys(counts(), 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("algo_type", "2"), ("algo_args", {"speed_limit_kmh": 5}), ("calibration_xml", "<root><pair/></root>")],
)
def test_invalid_third_scene_fields_leave_no_rows(project, field, value):
    refids = ("cam-0", "cam-1", "cam-2")
    scenes = [scene_spec(r, i) for i, r in enumerate(refids)]
    scenes[2][field] = value
    with pytest.raises(ValidationError) as exc:
        services.create_task(project, task_spec(refids, scenes=scenes))
    assert f"mtasks[0].scenes[2].{field}" in exc.value.message_dict
    assert counts() == dict.fromkeys(counts(), 0)


def test_a_failure_after_the_first_writes_rolls_everything_back(project, monkeypatch):
    def broken_save_tree(*args, **kwargs):
        raise RuntimeError("disk full")

    # New channels and the task are written before its tree: all of it must go.
    monkeypatch.setattr(building, "save_tree", broken_save_tree)
    with pytest.raises(RuntimeError):
        services.create_task(project, task_spec(("cam-0", "cam-1", "cam-2")))
    assert counts() == dict.fromkeys(counts(), 0)


def test_duplicate_mtask_unid_is_refused(project):
    spec = task_spec(())
    spec["mtasks"].append({"mtask_unid": "mtask-0"})
    with pytest.raises(Invalid, match="used twice"):
        services.create_task(project, spec)
    assert counts() == dict.fromkeys(counts(), 0)


# ---- update and delete ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(ACTIVE_STATES))
def test_update_is_refused_while_a_subtask_is_active(project, state):
    task = services.create_task(project, task_spec())
    Subtask.objects.filter(task=task, position=1).update(state=state)
    with pytest.raises(Conflict, match="stop the task"):
        services.update_task(task, {"task_name": "renamed"})
    assert Task.objects.get(pk=task.pk).task_name == "front door"


@pytest.mark.parametrize(
    ("field", "value"),
    [("source_type", "push_pic_files"), ("node_count", 5), ("pull_source_url", "http://pictures.example/x")],
)
def test_update_refuses_changing_how_the_task_was_split(project, field, value):
    task = services.create_task(project, task_spec())
    with pytest.raises(Conflict) as exc:
        services.update_task(task, {field: value})
    assert exc.value.field == field
    assert getattr(Task.objects.get(pk=task.pk), field) == getattr(task, field)


def test_update_accepts_the_unchanged_source_type(project):
    task = services.create_task(project, task_spec())
    updated = services.update_task(task, {"source_type": "pull_video_stream", "task_name": "renamed"})
    assert updated.task_name == "renamed"


def test_update_refuses_vchans(project):
    task = services.create_task(project, task_spec())
    with pytest.raises(Invalid):
        services.update_task(task, {"vchans": [{"vchan_refid": "cam-9", "url": "rtsp://10.0.0.9/"}]})


def test_update_replaces_the_tree_and_keeps_the_subtasks(project):
    task = services.create_task(project, task_spec())
    before = [s.pk for s in subtasks_of(task)]
    services.update_task(
        task, {"task_name": "renamed", "mtasks": [{"mtask_unid": "new", "scenes": [scene_spec("cam-0")]}]}
    )
    assert list(MTask.objects.filter(task=task).values_list("mtask_unid", flat=True)) == ["new"]
    assert [s.pk for s in subtasks_of(task)] == before
    assert Task.objects.get(pk=task.pk).task_name == "renamed"


def test_invalid_update_changes_nothing(project):
    task = services.create_task(project, task_spec())
    scenes_before = list(Scene.objects.values_list("pk", flat=True))
    bad = {
        "task_name": "renamed",
        "mtasks": [{"scenes": [scene_spec("cam-0"), scene_spec("cam-1", algo_type="3")]}],
    }
    with pytest.raises(ValidationError):
        services.update_task(task, bad)
    assert Task.objects.get(pk=task.pk).task_name == "front door"
    assert list(Scene.objects.values_list("pk", flat=True)) == scenes_before


def test_delete_is_refused_while_subtasks_exist(project):
    task = services.create_task(project, task_spec())
    with pytest.raises(Conflict, match="2 subtasks"):
        services.delete_task(task)
    assert Task.objects.filter(pk=task.pk).exists()


def test_delete_without_subtasks_removes_the_tree(project):
    task = services.create_task(project, task_spec())
    Subtask.objects.filter(task=task).delete()
    services.delete_task(task)
    assert counts() == {**dict.fromkeys(counts(), 0), "VideoChannel": 2}


# ---- storage configs ------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_store_conf_version_increments_on_every_replace(project):
    conf = services.create_store_conf(
        project, {"unid": "sc-1", "name": "store", "file_ext": "json", "file_b64": b64(b"{}")}
    )
    assert conf.version == 1
    conf = services.replace_store_conf(conf, {"file_b64": b64(b'{"a": 1}')})
    assert conf.version == 2
    conf = services.replace_store_conf(conf, {"name": "renamed"})
    assert conf.version == 3
    row = StoreConf.objects.get(pk=conf.pk)
    assert (row.version, bytes(row.content), row.name) == (3, b'{"a": 1}', "renamed")


def test_store_conf_replace_cannot_change_unid(project):
    conf = services.create_store_conf(
        project, {"unid": "sc-1", "name": "s", "file_ext": "txt", "file_b64": b64(b"x")}
    )
    with pytest.raises(Invalid):
        services.replace_store_conf(conf, {"unid": "sc-2"})
    assert StoreConf.objects.get(pk=conf.pk).version == 1


def test_invalid_replace_keeps_the_old_version(project):
    conf = services.create_store_conf(
        project, {"unid": "sc-1", "name": "s", "file_ext": "xml", "file_b64": b64(b"<root/>")}
    )
    with pytest.raises(ValidationError):
        services.replace_store_conf(conf, {"file_b64": b64(b"<root>")})
    row = StoreConf.objects.get(pk=conf.pk)
    assert (row.version, bytes(row.content)) == (1, b"<root/>")


def test_xml_store_conf_goes_through_the_hardened_parser(project):
    xxe = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><root>&x;</root>'
    with pytest.raises(ValidationError) as exc:
        services.create_store_conf(
            project, {"unid": "sc-x", "name": "s", "file_ext": "xml", "file_b64": b64(xxe)}
        )
    assert "file_b64" in exc.value.message_dict
    assert not StoreConf.objects.exists()


def test_store_conf_unid_is_unique_per_project(project, other_project):
    spec = {"unid": "sc-1", "name": "s", "file_ext": "txt", "file_b64": b64(b"x")}
    services.create_store_conf(project, spec)
    with pytest.raises(Conflict):
        services.create_store_conf(project, spec)
    services.create_store_conf(other_project, spec)


def test_delete_of_a_used_store_conf_is_refused(project):
    conf = services.create_store_conf(
        project, {"unid": "sc-1", "name": "s", "file_ext": "txt", "file_b64": b64(b"x")}
    )
    services.create_task(project, task_spec(store_conf_unid="sc-1"))
    with pytest.raises(Conflict, match="used by 1 tasks"):
        services.delete_store_conf(conf)
    assert StoreConf.objects.filter(pk=conf.pk).exists()


def test_unused_store_conf_can_be_deleted(project):
    conf = services.create_store_conf(
        project, {"unid": "sc-1", "name": "s", "file_ext": "txt", "file_b64": b64(b"x")}
    )
    services.delete_store_conf(conf)
    assert not StoreConf.objects.exists()


def test_task_cannot_use_another_projects_store_conf(project, other_project):
    services.create_store_conf(
        other_project, {"unid": "theirs", "name": "s", "file_ext": "txt", "file_b64": b64(b"x")}
    )
    with pytest.raises(NotFound):
        services.create_task(project, task_spec(store_conf_unid="theirs"))


# ---- video channels -----------------------------------------------------------------------------------------


def test_delete_of_a_used_channel_is_refused(project):
    task = services.create_task(project, task_spec(("cam-0",)))
    channel = VideoChannel.objects.get(vchan_refid="cam-0")
    with pytest.raises(Conflict, match="used by 1 subtasks"):
        services.delete_vchan(channel)
    assert VideoChannel.objects.filter(pk=channel.pk).exists()
    Subtask.objects.filter(task=task).delete()
    services.delete_vchan(channel)
    assert not VideoChannel.objects.exists()


def test_channel_url_change_follows_into_its_subtasks(project):
    task = services.create_task(project, task_spec(("cam-0",)))
    channel = VideoChannel.objects.get(vchan_refid="cam-0")
    services.update_vchan(channel, {"url": "rtsp://10.1.1.1/new"})
    assert subtasks_of(task)[0].source_url == "rtsp://10.1.1.1/new"


def test_channel_url_change_is_refused_while_it_is_analysed(project):
    task = services.create_task(project, task_spec(("cam-0",)))
    Subtask.objects.filter(task=task).update(state=State.RUNNING)
    channel = VideoChannel.objects.get(vchan_refid="cam-0")
    with pytest.raises(Conflict):
        services.update_vchan(channel, {"url": "rtsp://10.1.1.1/new"})
    assert VideoChannel.objects.get(pk=channel.pk).url == "rtsp://10.0.0.1/live"


def test_channel_refid_is_unique_per_project(project):
    services.create_vchan(project, {"vchan_refid": "cam-0", "url": "rtsp://10.0.0.1/live"})
    with pytest.raises(Conflict):
        services.create_vchan(project, {"vchan_refid": "cam-0", "url": "rtsp://10.0.0.2/live"})
