"""`manage.py analyze`: the pipeline in-process on a video, with a tiny registered model."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from analysis.models import Detector
from tests.onnx_models import register_fixed_person_model

BIKES = Path(__file__).parent / "data" / "bikes.mp4"
ROI = (
    '<root><polygon name="street" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
    '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
)


def analyze(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("analyze", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_analyze_writes_events_snapshots_and_a_summary(db, tmp_path):
    # One person standing in the middle of every frame (64×64 input): one track, one intrusion,
    # and after 2 s of loitering a second event.
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)])
    roi = tmp_path / "roi.xml"
    roi.write_text(ROI)
    out_dir = tmp_path / "out"
    stdout, stderr = analyze(
        str(BIKES), "--models", "body", "--roi", str(roi), "--algo-type", "2",
        "--algo-args", '{"loiter_seconds": 2}', "--fps", "5", "--out", str(out_dir),
    )  # fmt: skip
    document = json.loads((out_dir / "events.json").read_text())
    assert document["frames"] == 50 and document["detectors"] == ["tiny-person"]
    assert [(e["rule"], e["zone"], e["frame_index"]) for e in document["events"]] == [
        ("intrusion", "street", 0),
        ("loitering", "street", 50),  # 2 s at 25 fps
    ]
    first = document["events"][0]
    # 640×272 letterboxed into 64×64: scale 0.1, an 18 px bar on top; input box (24, 20, 40, 44)
    assert first["box"] == [240.0, 20.0, 400.0, 260.0]
    assert (out_dir / first["snapshot"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert "50 frames analysed" in stdout and "intrusion" in stdout and "loitering" in stdout
    assert "50/50 frames" in stderr


def test_analyze_says_to_fetch_models_when_body_has_none(db, tmp_path):
    Detector.objects.all().delete()
    with pytest.raises(CommandError, match="fetch_models"):
        analyze(str(BIKES), "--models", "body", "--out", str(tmp_path))


def test_analyze_says_to_fetch_models_when_falls_are_asked_for_without_a_fall_model(db, tmp_path):
    person_only = {"0": {"label": "person", "category": "body"}}  # no class with the fall attribute
    register_fixed_person_model(
        Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)], classes=person_only
    )
    with pytest.raises(CommandError, match="attribute fall.*fetch_models"):
        analyze(
            str(BIKES), "--models", "body", "--algo-args", '{"detect_fall": true}', "--out", str(tmp_path)
        )


def test_analyze_refuses_unknown_models_and_bad_rois(db, tmp_path):
    with pytest.raises(CommandError, match="unknown model"):
        analyze(str(BIKES), "--models", "cat", "--out", str(tmp_path))
    roi = tmp_path / "roi.xml"
    roi.write_text("<root><circle/></root>")
    with pytest.raises(CommandError, match="circle"):
        analyze(str(BIKES), "--roi", str(roi), "--out", str(tmp_path))


def test_analyze_reports_a_corrupt_video(db, tmp_path):
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 1000)
    with pytest.raises(CommandError, match="SourceCorrupt"):
        analyze(str(bad), "--models", "body", "--out", str(tmp_path / "out"), "--no-progress")
