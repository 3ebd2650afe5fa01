"""config.common.target_roi and the snapshot switches of a v2 task, end to end: created over HTTP,
started with action/start, analysed by the real job on a real video with a real ONNX model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings

from analysis.jobs import run_subtask
from analysis.models import Event
from subtasks.models import Node, Subtask
from tasks.models import VideoChannel
from tasks.validators import roi_xml
from tasks.xmlformats import parse_roi
from tests.analysis_helpers import live_node
from tests.nodes import BIKES
from tests.onnx_models import register_fixed_person_model
from tests.test_v2_helpers import task_body, v2, v2_ok, v2_refused

pytestmark = pytest.mark.django_db(transaction=True)

# One person in the middle of every frame; the bikes video is 640x272.
PERSON = [(32.0, 32.0, 16.0, 24.0, 0, 0.9)]
WHOLE = [[0, 0], [640, 0], [640, 272], [0, 272]]
TOP_LEFT = [[0, 0], [320, 0], [320, 136], [0, 136]]
MIDDLE = [[100, 50], [540, 50], [540, 268], [100, 268]]


@pytest.fixture
def video_store() -> Path:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, store / "bikes.mp4")
    return store


@pytest.fixture
def person_model():
    return register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)


def target_roi(*polygons: list[list[int]]) -> str:
    return json.dumps({"polygons": [{"data": p, "name": f"z{i}"} for i, p in enumerate(polygons)]})


def run_v2_task(actor, common: dict, name: str = "door_watch") -> list[Event]:
    body = task_body(
        name=name, input={"type": "url", "data": [{"url": "bikes.mp4"}]}, config={"common": common}
    )
    task = v2_ok(actor.post(v2(actor, "/services/security/tasks"), body))
    if not Node.objects.exists():
        live_node(capacity=4)
    v2_ok(actor.put(v2(actor, f"/tasks/{task['id']}/action/start")))
    subtask = Subtask.objects.select_related("node").get(task_id=task["id"])
    assert run_subtask(subtask.pk, subtask.node.name) == "succeeded"
    return list(Event.objects.filter(subtask=subtask))


def test_polygons_are_normalised_with_the_frame_size_read_once(alice, video_store, person_model):
    events = run_v2_task(alice, {"target_roi": target_roi(WHOLE)})

    assert [(e.rule, e.zone) for e in events] == [("intrusion", "z0")]
    channel = VideoChannel.objects.get(url="bikes.mp4")
    assert (channel.width, channel.height) == (640, 272)  # kept: the next run needs no frame to know


def test_a_polygon_away_from_the_person_finds_nothing(alice, video_store, person_model):
    # Taken as already normalised, these pixels would cover the whole frame and find the person.
    assert run_v2_task(alice, {"target_roi": target_roi(TOP_LEFT)}) == []


def test_the_switches_change_the_snapshots(alice, video_store, person_model):
    def snapshot(common: dict, name: str) -> tuple[int, np.ndarray]:
        (event,) = run_v2_task(alice, {"target_roi": target_roi(MIDDLE), **common}, name)
        data = (Path(settings.MEDIA_ROOT) / event.snapshot).read_bytes()
        return len(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def pixels(image: np.ndarray, bgr: tuple[int, int, int]) -> int:
        return int(np.all(np.abs(image.astype(int) - bgr) < 60, axis=2).sum())

    drawn_size, drawn = snapshot({}, "drawn")
    plain_size, plain = snapshot({"render_result_sw": 0, "image_compression_ratio": 10}, "plain")
    _, with_rois = snapshot({"render_roi_sw": 1}, "rois")

    assert pixels(drawn, (0, 0, 255)) > 10 * max(1, pixels(plain, (0, 0, 255)))  # the red box
    assert plain_size < drawn_size  # JPEG quality 10
    assert pixels(with_rois, (0, 255, 255)) > 10 * max(1, pixels(drawn, (0, 255, 255)))  # the yellow ROI


def test_roi_xml_divides_by_the_frame_size_and_clamps():
    roi = parse_roi(roi_xml(target_roi([[64, 27.2], [640, 0], [700, 300]]), 640, 272))
    (zone,) = roi.zones
    assert zone.points == ((0.1, 0.1), (1.0, 0.0), (1.0, 1.0))


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("not json", "JSON"),
        (json.dumps({"polygons": []}), "1..16"),
        (json.dumps({"polygons": [{"data": [[0, 0], [1, 1]]}]}), "3..256"),
        (json.dumps({"polygons": [{"data": [[0, 0], [1, 1], [-1, 2]]}]}), "data[2]"),
        (json.dumps({"polygons": [{"data": [[0, 0], [1, 1], [1, "2"]]}]}), "data[2]"),
        (target_roi(WHOLE, WHOLE).replace('"z1"', '"z0"'), "twice"),
        (json.dumps({"polygons": [{"data": WHOLE, "name": "n" * 65}]}), "name"),
    ],
)
def test_bad_target_rois_are_refused_in_the_v2_body(alice, value, fragment):
    body = task_body(
        input={"type": "url", "data": [{"url": "rtsp://10.1.1.1/l"}]},
        config={"common": {"target_roi": value}},
    )
    answer = v2_refused(
        alice.post(v2(alice, "/services/security/tasks"), body), 400, "VIAS.00010001", fragment
    )
    assert answer["params"][0].startswith("config")


@pytest.mark.parametrize(
    "common",
    [
        {"render_roi_sw": 2},
        {"render_result_sw": True},
        {"image_compression_ratio": 0},
        {"image_compression_ratio": 101},
        {"target_roi": ["x"]},
    ],
)
def test_bad_switches_are_refused(alice, common):
    body = task_body(input={"type": "url", "data": [{"url": "rtsp://10.1.1.1/l"}]}, config={"common": common})
    v2_refused(alice.post(v2(alice, "/services/security/tasks"), body), 400, "VIAS.00010001", "config")
