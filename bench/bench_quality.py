#!/usr/bin/env python
"""Detection quality of the packaged models against the labelled frames (tests/data/labels), in one run:

1. per model and class: precision and recall at IoU 0.5 (at the model's registered threshold) and
   mAP@0.5, computed with supervision's metrics (analysis.quality);
2. distinct tracks per category against the truth counts, per video (security / traffic rules);
3. line crossings on the documented line of bikes.mp4 against the truth;
4. false events per minute on bigbuckbunny.mp4 (no person in it) for a security task.

Models: the default COCO detector (coco-yolov4-tiny, at its registered 416×416 and threshold
0.1, and at the previous threshold 0.25; its built file is square, so no other input size is
tried here), the fall model used as a person detector (the old default), the MTCNN face
detector and the Haar cascade fallback. Everything runs in a throwaway data directory after
`fetch_models` (cached packages; --offline to refuse downloads).

    .venv/bin/python bench/bench_quality.py [--offline] [--fps 5]

The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
LABELS = DATA / "labels"


def setup_django() -> None:
    os.environ["VIAS_DATA_DIR"] = tempfile.mkdtemp(prefix="vias-bench-quality-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "vias.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def models(offline: bool) -> dict[str, list]:
    """name → detectors to evaluate together."""
    from django.core.management import call_command

    from analysis.detect.face import HaarFaceDetector
    from analysis.detect.registry import detectors_for
    from analysis.detect.runtime import DetectorSpec, YoloDetector
    from analysis.models import Detector

    call_command("fetch_models", *(["--offline"] if offline else []), stdout=StringIO())
    [coco] = detectors_for(["body", "motor", "no_motor"])
    # The threshold registered before the trackers' two-stage association (0.25).
    previous = YoloDetector(dataclasses.replace(coco.spec, score_threshold=0.25), coco.categories)
    fall = YoloDetector(DetectorSpec.from_model(Detector.objects.get(name="person-fall-yolov8")))
    return {
        "coco-yolov4-tiny 416x416": [coco],
        "coco-yolov4-tiny 416x416 at 0.25": [previous],
        "person-fall-yolov8 as a detector": [fall],
        "face-mtcnn": detectors_for(["face"]),
        "opencv-haar-face": [HaarFaceDetector()],
    }


def rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def detection_table(candidates: dict[str, list], truth) -> dict:
    """Scores per model, scope and class."""
    from analysis.quality import evaluate

    table: dict = {}
    for name, detectors in candidates.items():
        face = "face" in name
        classes = ["face"] if face else ["person", "bicycle", "car", "motorcycle"]
        videos = ["carphone_pristine.mp4"] if face else None  # faces are labelled there only
        scope = (
            {"all labelled frames": videos, "bikes.mp4": ["bikes.mp4"]} if not face else {"carphone": videos}
        )
        table[name] = {}
        for label, chosen in scope.items():
            scores = evaluate(detectors, truth, DATA, classes=classes, videos=chosen)
            table[name][label] = {
                key: {
                    "precision": rounded(s.precision),
                    "recall": rounded(s.recall),
                    "map50": rounded(s.map50),
                    "truth": s.truth,
                    "found": s.found,
                }
                for key, s in {**scores["class"], **scores["category"]}.items()
            }
    return table


def cost_table(candidates: dict[str, list], truth, rounds: int = 5) -> dict:
    """Frames per second of each model on the labelled frames of bikes.mp4 (decoded beforehand),
    in interleaved rounds (one pass of every model per round), the median of the rounds."""
    import statistics

    from analysis.quality import read_frames

    labelled = truth.of("bikes.mp4")
    frames = list(read_frames(DATA / "bikes.mp4", labelled).values())
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _round in range(rounds):
        for name, detectors in candidates.items():
            started = time.perf_counter()
            for frame in frames:
                for detector in detectors:
                    detector.detect_batch([frame])
            times[name].append(time.perf_counter() - started)
    return {name: round(len(frames) / statistics.median(t), 1) for name, t in times.items()}


def clip_table(candidates: dict[str, list], fps: float, labels) -> dict:
    """Security runs at `fps` and 25 fps on every clip, traffic runs on bikes.mp4; tracks, the
    labelled objects a track covered, crossings and events."""
    from analysis.quality import run_clip

    counts = json.loads((LABELS / "vias_truth_counts.json").read_text())["videos"]
    line = counts["bikes.mp4"]["line"]
    out: dict = {}
    rates = sorted({fps, 25.0})
    for name in (
        "coco-yolov4-tiny 416x416",
        "coco-yolov4-tiny 416x416 at 0.25",
        "person-fall-yolov8 as a detector",
    ):
        detectors = candidates[name]
        rows: dict = {}
        for video, truth in counts.items():
            rows[video] = {"truth": truth["distinct"]}
            for rate in rates:
                security = run_clip(detectors, DATA / video, "2", fps=rate, truth=labels)
                rows[video][f"security_{rate:g}fps"] = {
                    "tracks": security.tracks,
                    "covered": security.covered,
                    "labelled": security.labelled,
                    "findings": security.findings,
                    "events_per_minute": round(sum(security.findings.values()) / security.seconds * 60, 2),
                }
        with_falls = run_clip(
            detectors, DATA / "bigbuckbunny.mp4", "2", fps=fps, algo_args={"detect_fall": True}
        )
        rows["bigbuckbunny.mp4"]["with_detect_fall"] = with_falls.findings
        if name.startswith("coco"):
            for rate in rates:
                traffic = run_clip(
                    detectors, DATA / "bikes.mp4", "0", rois=[line["roi"]], fps=rate, truth=labels
                )
                rows["bikes.mp4"][f"traffic_{rate:g}fps"] = {
                    "tracks": traffic.tracks,
                    "covered": traffic.covered,
                    "labelled": traffic.labelled,
                    "crossings": traffic.counts,
                    "by_class": traffic.by_class,
                    "truth_crossings": {"road": line["crossings"]},
                }
        out[name] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use the package cache only")
    parser.add_argument("--fps", type=float, default=5.0, help="analysis rate of the clip runs")
    args = parser.parse_args()
    setup_django()
    from analysis.quality import load_truth

    started = time.monotonic()
    truth = load_truth(LABELS / "vias_truth.coco.json")
    candidates = models(args.offline)
    rates = cost_table(candidates, truth)
    result = {
        "labelled_frames": len(truth.frames),
        "labelled_boxes": sum(len(b) for b in truth.frames.values()),
        "detection": detection_table(candidates, truth),
        "frames_per_second": rates,
        "clips": clip_table(candidates, args.fps, truth),
        "seconds": 0.0,
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    for name, scopes in result["detection"].items():
        for scope, rows in scopes.items():
            for key, s in rows.items():
                print(
                    f"{name:34} {scope:20} {key:10} P {s['precision']} R {s['recall']} mAP50 {s['map50']} "
                    f"({s['found']} found / {s['truth']} labelled)"
                )
    for name, rate in rates.items():
        print(f"{name:34} frames per second (bikes.mp4, median of interleaved rounds): {rate}")
    for name, rows in result["clips"].items():
        for video, row in rows.items():
            print(f"{name:34} {video:22} {json.dumps(row)}")
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
