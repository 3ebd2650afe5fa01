"""The per-frame pipeline (analysis/pipeline.py): batches, and the snapshots of findings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analysis.detect import ClassSpec, DetectorSpec, YoloDetector
from analysis.pipeline import Pipeline, render_snapshot
from analysis.rules import INTRUSION, Finding, RuleEngine
from tests.onnx_models import build_model, yolov8_output


@pytest.fixture
def detector(tmp_path):
    output = yolov8_output([(32, 32, 16, 16, [0.9])], classes=1)
    path = build_model(tmp_path / "p.onnx", output, batch=None, scale_by_mean=False)
    return YoloDetector(DetectorSpec("p", str(path), classes=((0, ClassSpec("person", "body")),)))


def test_a_batch_gives_what_frame_by_frame_gives(detector):
    frames = [np.full((64, 64, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    one = Pipeline([detector], RuleEngine("2", fps=5))
    batch = Pipeline([detector], RuleEngine("2", fps=5))
    single = [one.process(f, i, i / 5) for i, f in enumerate(frames)]
    assert batch.process_batch(frames, [0, 1, 2, 3], [0, 0.2, 0.4, 0.6]) == single
    assert [f.rule for f in sum(single, [])] == [INTRUSION] and batch.frames == 4


def finding(**extra) -> Finding:
    values = dict(
        rule="intrusion", category="body", zone="yard", box=(10.0, 20.0, 50.0, 60.0), score=0.9,
        track_id=3, attributes={}, key="k", frame_index=0, offset_s=0.0,
    )  # fmt: skip
    values.update(extra)
    return Finding(**values)


def test_a_snapshot_is_the_frame_with_the_box_drawn():
    frame = np.zeros((100, 200, 3), np.uint8)
    jpeg = render_snapshot(frame, finding())
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (100, 200, 3)
    blue, green, red = (int(c) for c in image[40, 10])  # on the box's left edge
    assert red > 150 and blue < 100 and green < 100
    assert frame.max() == 0  # the frame itself is not drawn on


def test_a_face_snapshot_is_its_best_crop():
    crop = np.full((30, 20, 3), 200, np.uint8)
    jpeg = render_snapshot(None, finding(rule="face_capture", crop=crop))
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (30, 20, 3)
    with pytest.raises(ValueError):
        render_snapshot(None, finding())


# ---- falls: a second stage on person crops ------------------------------------------------------


def fall_model(directory, verdict: int):
    """A tiny Normal/Fall model that, on a bright crop, gives one box of class `verdict`."""
    scores = [0.0, 0.0]
    scores[verdict] = 0.9
    return build_model(
        directory / f"fall{verdict}.onnx", yolov8_output([(32, 32, 40, 40, scores)], classes=2), batch=None
    )


def test_a_plain_security_task_has_no_stage_and_needs_no_fall_model(db, detector):
    pipeline = Pipeline([detector], RuleEngine("2", fps=5))
    assert pipeline.stages() == []
    assert "fall" not in {
        a for f in pipeline.detect([np.full((64, 64, 3), 255, np.uint8)]) for d in f for a in d.attributes
    }


def test_asking_for_falls_without_a_fall_model_does_not_start(db, detector):
    from analysis.detect import MissingModel

    with pytest.raises(MissingModel, match="attribute fall"):
        Pipeline([detector], RuleEngine("2", algo_args={"detect_fall": True}, fps=5))


@pytest.mark.parametrize("verdict, falls", [(1, ["fall"]), (0, [])])
def test_the_fall_stage_marks_the_persons_its_model_sees_lying(
    db, settings, tmp_path, detector, verdict, falls
):
    from analysis.models import Detector

    settings.VIAS_MODELS_DIR = tmp_path
    path = fall_model(tmp_path, verdict)
    Detector.objects.create(
        name="fall",
        onnx_file=path.name,
        role="attribute",
        input_width=64,
        input_height=64,
        classes={
            "0": {"label": "Normal", "category": "body"},
            "1": {"label": "Fall", "category": "body", "attributes": ["fall"]},
        },
    )
    engine = RuleEngine("2", algo_args={"detect_fall": True}, fps=5)
    pipeline = Pipeline([detector], engine)
    [stage] = pipeline.stages()
    frames = [np.full((64, 64, 3), 255, np.uint8)] * 3
    detections = pipeline.detect(frames)
    assert [list(d.attributes) for f in detections for d in f] == [falls] * 3
    findings = [f for i, frame in enumerate(frames) for f in pipeline.process(frame, i, i / 5)]
    assert ("fall" in {f.rule for f in findings}) == bool(falls)
    engine.update(algo_args={"detect_fall": False})  # switched off while running: the stage stops
    assert pipeline.stages() == []


# ---- a bicycle and its rider ------------------------------------------------------------------------


def test_a_bicycle_takes_its_rider_in_and_a_parked_one_stays_as_it_is():
    from analysis.detect.riders import merge_riders
    from analysis.detect.runtime import Detection

    rider = Detection(box=(100, 20, 140, 110), score=0.9, category="body", label="person")
    ridden = Detection(box=(90, 70, 150, 120), score=0.8, category="no_motor", label="bicycle")
    parked = Detection(box=(300, 70, 360, 120), score=0.8, category="no_motor", label="bicycle")
    walker = Detection(box=(400, 10, 430, 60), score=0.9, category="body", label="person")  # feet above it
    out = merge_riders([rider, ridden, parked, walker, Detection((400, 70, 460, 120), 0.7, "no_motor")])
    assert out[0] == rider and out[3] == walker  # persons stay persons
    assert out[1].box == (90, 20, 150, 120) and out[1].attributes == ("rider",)
    assert out[2] == parked and out[4].attributes == ()


def test_traffic_asks_the_general_model_for_persons_to_find_riders(db, settings, tmp_path):
    from analysis.detect import detectors_for
    from analysis.models import Detector

    settings.VIAS_MODELS_DIR = tmp_path
    output = yolov8_output([(32, 20, 10, 30, [0.9, 0.0]), (32, 40, 20, 16, [0.0, 0.9])], classes=2)
    path = build_model(tmp_path / "street.onnx", output, batch=None, scale_by_mean=False)
    Detector.objects.all().delete()
    Detector.objects.create(
        name="street",
        onnx_file=path.name,
        input_width=64,
        input_height=64,
        classes={
            "0": {"label": "person", "category": "body"},
            "1": {"label": "bicycle", "category": "no_motor"},
        },
    )
    [detector] = detectors_for(["no_motor"])
    assert detector.categories == {"no_motor", "body"}
    pipeline = Pipeline([detector], RuleEngine("0", fps=5))
    [found] = pipeline.detect([np.zeros((64, 64, 3), np.uint8)])
    [bicycle] = [d for d in found if d.category == "no_motor"]
    assert bicycle.attributes == ("rider",) and bicycle.box == (22.0, 5.0, 42.0, 48.0)
    assert pipeline.process(np.zeros((64, 64, 3), np.uint8), 0, 0.0) == []  # the person is no traffic
