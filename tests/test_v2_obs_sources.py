"""VIAS v2 video sources of type `obs` (the public reference's `<type_config><bucket/><path/>`): the
object is read from the video store's copy of its bucket, `<store>/<bucket>/<path>`. Created over
HTTP, analysed by the real job on a real video with a real ONNX model; bad configurations answered
in the v2 error body with nothing written; the types that name Huawei platforms stay refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from analysis.jobs import run_subtask
from analysis.models import Event
from subtasks.models import Subtask
from tasks.models import VideoChannel
from tests.analysis_helpers import live_node
from tests.nodes import BIKES
from tests.onnx_models import register_fixed_person_model
from tests.test_v2_helpers import source_body, task_body, v2, v2_ok, v2_refused

pytestmark = pytest.mark.django_db(transaction=True)

PERSON = [(32.0, 32.0, 16.0, 24.0, 0, 0.9)]  # one person in the middle of every frame
WHOLE = [[0, 0], [640, 0], [640, 272], [0, 272]]  # the bikes video is 640x272


def obs_config(bucket: str, path: str) -> str:
    return f"<type_config><bucket>{bucket}</bucket><path>{path}</path></type_config>"


def obs_body(bucket: str = "city-videos", path: str = "gates/north/door.mp4", **extra) -> dict:
    return {**source_body("north door", "x"), "type": "obs", "type_config": obs_config(bucket, path), **extra}


@pytest.fixture
def bucket_copy() -> Path:
    """The store's copy of bucket `city-videos` with one object, gates/north/door.mp4."""
    target = Path(settings.DATA_DIR) / "videos" / "city-videos" / "gates" / "north" / "door.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, target)
    return target


def test_an_obs_source_is_analysed_from_the_video_store(alice, bucket_copy):
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
    source_id = v2_ok(alice.post(v2(alice, "/source"), obs_body()))["video_source_id"]

    shown = v2_ok(alice.get(v2(alice, f"/source/sources/{source_id}")))
    assert (shown["type"], shown["type_config"]) == ("obs", obs_config("city-videos", "gates/north/door.mp4"))
    assert shown["stream_path"] == "city-videos/gates/north/door.mp4"
    listed = v2_ok(alice.get(v2(alice, "/source/sources?type=obs")))["video_source_list"]
    assert [item["video_source_id"] for item in listed] == [source_id]

    common = {"target_roi": json.dumps({"polygons": [{"data": WHOLE, "name": "door"}]})}
    body = task_body([source_id], config={"common": common})
    task = v2_ok(alice.post(v2(alice, "/services/security/tasks"), body))
    live_node(capacity=2)
    v2_ok(alice.put(v2(alice, f"/tasks/{task['id']}/action/start")))
    subtask = Subtask.objects.select_related("node").get(task_id=task["id"])
    assert subtask.source_url == "city-videos/gates/north/door.mp4"
    assert run_subtask(subtask.pk, subtask.node.name) == "succeeded"
    assert [(e.rule, e.zone) for e in Event.objects.filter(subtask=subtask)] == [("intrusion", "door")]


@pytest.mark.parametrize(
    "type_config, fragment",
    [
        pytest.param("<type_config><path>a.mp4</path></type_config>", "<bucket>", id="no-bucket"),
        pytest.param(obs_config("ab", "a.mp4"), "<bucket>", id="bucket-2-chars"),
        pytest.param(obs_config("a" * 64, "a.mp4"), "<bucket>", id="bucket-64-chars"),
        pytest.param(obs_config("City_Videos", "a.mp4"), "<bucket>", id="bucket-uppercase"),
        pytest.param(obs_config("city..videos", "a.mp4"), "<bucket>", id="bucket-two-dots"),
        pytest.param("<type_config><bucket>city-videos</bucket></type_config>", "<path>", id="no-path"),
        pytest.param(obs_config("city-videos", "/a.mp4"), "<path>", id="path-leading-slash"),
        pytest.param(obs_config("city-videos", "gates/"), "<path>", id="path-a-folder"),
        pytest.param(obs_config("city-videos", "a//b.mp4"), "<path>", id="path-double-slash"),
        pytest.param(obs_config("city-videos", "a.mp4."), "<path>", id="path-trailing-dot"),
        pytest.param(obs_config("city-videos", "a?.mp4"), "<path>", id="path-question-mark"),
        pytest.param(obs_config("city-videos", "gates/../../../../etc/passwd"), "leaves", id="path-leaves"),
    ],
)
def test_bad_obs_configurations_are_refused_and_write_nothing(alice, type_config, fragment):
    answer = v2_refused(
        alice.post(v2(alice, "/source"), obs_body(type_config=type_config)), 400, "VIAS.00010001", fragment
    )
    assert answer["params"] == ["type_config"]
    assert not VideoChannel.objects.exists()


def test_obs_configurations_at_the_boundaries_are_accepted(alice):
    for bucket, path in (("abc", "a"), ("a" * 63, "p" * (1024 - 200)), ("a.b-c", "文件/视频 1.mp4")):
        body = obs_body(bucket=bucket, path=path)
        if len(body["type_config"].encode()) > 1024:
            body = obs_body(bucket=bucket, path=path[: 1024 - len(obs_config(bucket, "").encode())])
        source_id = v2_ok(alice.post(v2(alice, "/source"), body))["video_source_id"]
        assert VideoChannel.objects.get(vchan_refid=source_id).url.startswith(f"{bucket}/")


@pytest.mark.parametrize("kind", ["vcn", "restful", "camera", "ivm", "vcn_restful"])
def test_the_types_of_huawei_platforms_are_refused(alice, kind):
    body = {**source_body("a gate", "rtsp://10.7.7.7/live"), "type": kind}
    v2_refused(alice.post(v2(alice, "/source"), body), 400, "VIAS.00010001", "cannot be analysed here")
    assert not VideoChannel.objects.exists()
