"""Detection quality against labelled frames (COCO JSON, tests/data/labels/vias_truth.coco.json),
and the counts a rule engine makes on whole clips. Used by bench/bench_quality.py and the tests.

Precision, recall and mAP@0.5 come from supervision's metrics (`supervision.metrics`), per COCO
class (person, bicycle, car, motorcycle, bus, truck, face) and per VIAS category (body = person,
motor = car + motorcycle + bus + truck, no_motor = bicycle, face). Precision and recall are those
of what the detector reports at its registered threshold, matched at IoU 0.5; mAP@0.5 ranks the
same detections by score.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from analysis.detect.runtime import Detection, FrameDetector

# COCO category ids (as in COCO's instances files) and the VIAS category each counts as.
COCO_IDS = {"person": 1, "bicycle": 2, "car": 3, "motorcycle": 4, "bus": 6, "truck": 8, "face": 100}
CATEGORY_OF = {
    "person": "body",
    "bicycle": "no_motor",
    "car": "motor",
    "motorcycle": "motor",
    "bus": "motor",
    "truck": "motor",
    "face": "face",
}
ALIASES = {"motorbike": "motorcycle", "pedestrian": "person"}  # Darknet's coco.names says motorbike
CATEGORY_IDS = {"body": 1, "no_motor": 2, "motor": 3, "face": 100}


@dataclass(frozen=True)
class Box:
    label: str  # COCO class name
    track: str  # the labelled object's identity within its video
    xyxy: tuple[float, float, float, float]


@dataclass
class Truth:
    """Labelled frames: (video file name, frame index) → boxes."""

    frames: dict[tuple[str, int], list[Box]]
    info: dict[str, Any] = field(default_factory=dict)

    def videos(self) -> list[str]:
        return sorted({video for video, _frame in self.frames})

    def of(self, video: str) -> dict[int, list[Box]]:
        return {frame: boxes for (v, frame), boxes in sorted(self.frames.items()) if v == video}

    def distinct(self, video: str, categories: Iterable[str]) -> int:
        """Distinct labelled objects of these VIAS categories in a video."""
        wanted = set(categories)
        return len(
            {b.track for boxes in self.of(video).values() for b in boxes if CATEGORY_OF[b.label] in wanted}
        )


def load_truth(path: str | Path) -> Truth:
    document = json.loads(Path(path).read_text())
    names = {c["id"]: c["name"] for c in document["categories"]}
    images = {i["id"]: (i["video"], int(i["frame_index"])) for i in document["images"]}
    frames: dict[tuple[str, int], list[Box]] = {key: [] for key in images.values()}
    for a in document["annotations"]:
        x, y, w, h = a["bbox"]
        frames[images[a["image_id"]]].append(
            Box(names[a["category_id"]], a.get("track", ""), (x, y, x + w, y + h))
        )
    return Truth(frames, document.get("info", {}))


def read_frames(video: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """The decoded frames with these indexes (0-based, in decoding order)."""
    wanted = set(indices)
    capture = cv2.VideoCapture(str(video))
    frames: dict[int, np.ndarray] = {}
    index = 0
    try:
        while wanted - set(frames):
            ok, image = capture.read()
            if not ok:
                break
            if index in wanted:
                frames[index] = image
            index += 1
    finally:
        capture.release()
    return frames


# -- detection metrics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    map50: float
    truth: int  # labelled boxes
    found: int  # detections


def _sv(
    boxes: Sequence[tuple[float, float, float, float]],
    class_ids: Sequence[int],
    scores: Sequence[float] | None,
):
    import supervision as sv

    return sv.Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
        class_id=np.asarray(class_ids, int),
        confidence=None if scores is None else np.asarray(scores, np.float32),
    )


def detection_scores(
    predictions: Sequence[Sequence[tuple[str, tuple[float, float, float, float], float]]],
    targets: Sequence[Sequence[tuple[str, tuple[float, float, float, float]]]],
) -> Scores:
    """Precision / recall at IoU 0.5 and mAP@0.5 for one class (or category) over the frames.
    A frame with no labelled box still counts its detections as false positives."""
    from supervision.metrics import MeanAveragePrecision, Precision, Recall

    preds = [_sv([b for _l, b, _s in p], [0] * len(p), [s for _l, _b, s in p]) for p in predictions]
    truths = [_sv([b for _l, b in t], [0] * len(t), None) for t in targets]
    n_truth, n_found = sum(len(t) for t in targets), sum(len(p) for p in predictions)
    if n_truth == 0:
        return Scores(0.0 if n_found else 1.0, 1.0, float("nan"), 0, n_found)
    precision = Precision().update(preds, truths).compute().precision_at_50
    recall = Recall().update(preds, truths).compute().recall_at_50
    map50 = MeanAveragePrecision().update(preds, truths).compute().map50
    if n_found == 0:
        precision, map50 = 1.0, 0.0
    return Scores(float(precision), float(recall), float(map50), n_truth, n_found)


def evaluate(
    detectors: Sequence[FrameDetector],
    truth: Truth,
    videos_dir: str | Path,
    classes: Iterable[str] | None = None,
    videos: Iterable[str] | None = None,
) -> dict[str, dict[str, Scores]]:
    """{"class": {name: Scores}, "category": {name: Scores}} over the labelled frames (of
    `videos`, default all). A detection's class is its label when that is a COCO class name,
    else its category's."""
    frames: list[list[Detection]] = []
    targets: list[list[Box]] = []
    for video in videos if videos is not None else truth.videos():
        labelled = truth.of(video)
        images = read_frames(Path(videos_dir) / video, labelled)
        for index, boxes in labelled.items():
            image = images[index]
            found: list[Detection] = []
            for detector in detectors:
                found.extend(detector.detect_batch([image])[0])
            frames.append(found)
            targets.append(boxes)
    names = list(classes) if classes is not None else list(COCO_IDS)
    per_class = {}
    for name in names:
        per_class[name] = detection_scores(
            [[(d.label, d.box, d.score) for d in f if _class_of(d) == name] for f in frames],
            [[(b.label, b.xyxy) for b in t if b.label == name] for t in targets],
        )
    per_category = {}
    for category in CATEGORY_IDS:
        if not any(CATEGORY_OF[n] == category for n in names):
            continue
        per_category[category] = detection_scores(
            [[(d.label, d.box, d.score) for d in f if d.category == category] for f in frames],
            [[(b.label, b.xyxy) for b in t if CATEGORY_OF[b.label] == category] for t in targets],
        )
    return {"class": per_class, "category": per_category}


def _class_of(detection: Detection) -> str:
    label = detection.label.strip().lower()
    label = ALIASES.get(label, label)
    if label in COCO_IDS:
        return label
    return {"body": "person", "no_motor": "bicycle", "motor": "car", "face": "face"}.get(
        detection.category, label
    )


# -- whole clips through the rules ------------------------------------------------------------------


@dataclass
class ClipRun:
    tracks: dict[str, int]  # distinct confirmed tracks per category
    counts: dict[str, dict[str, int]]  # line → direction → crossings
    by_class: dict[str, dict[str, dict[str, int]]]
    findings: dict[str, int]  # rule → findings
    seconds: float  # video time analysed
    # With `truth`: per category, the labelled objects (distinct `track` names) of the labelled
    # frames that were analysed, and how many of them a confirmed track covered (IoU ≥ 0.5) at
    # least once; a count of tracks near the truth can hide fragments that replace missed objects.
    labelled: dict[str, int] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)


def run_clip(
    detectors: Sequence[FrameDetector],
    video: str | Path,
    algo_type: str,
    rois: Sequence[str] = (),
    algo_args: dict[str, Any] | None = None,
    categories: Sequence[str] | None = None,
    fps: float = 5.0,
    truth: Truth | None = None,
) -> ClipRun:
    """The clip through a Pipeline (detectors, attribute stages the rules ask for, rules)."""
    from analysis.pipeline import Pipeline
    from analysis.rules.engine import RuleEngine
    from analysis.sources import VideoSource

    engine = RuleEngine(algo_type, rois=rois, algo_args=algo_args or {}, categories=categories, fps=fps)
    pipeline = Pipeline(detectors, engine)
    findings: dict[str, int] = defaultdict(int)
    last = 0.0
    labelled = truth.of(Path(video).name) if truth is not None else {}
    seen: dict[str, set[str]] = defaultdict(set)
    hit: dict[str, set[str]] = defaultdict(set)
    with VideoSource(video, fps=fps) as source:
        for frame in source.frames():
            for finding in pipeline.process(frame.image, frame.index, frame.offset_s):
                findings[finding.rule] += 1
            last = frame.offset_s
            for box in labelled.get(frame.index, []):
                category = CATEGORY_OF[box.label]
                if category not in engine.categories:
                    continue
                seen[category].add(box.track)
                if any(c == category and _iou(box.xyxy, b) >= 0.5 for _t, c, b in engine.last_tracks):
                    hit[category].add(box.track)
    for finding in pipeline.flush():
        findings[finding.rule] += 1
    summary = engine.summary()
    return ClipRun(
        tracks=summary["tracks_by_category"],
        counts=summary["counts"],
        by_class=summary["by_class"],
        findings=dict(findings),
        seconds=last + 1.0 / fps,
        labelled={c: len(v) for c, v in seen.items()},
        covered={c: len(hit[c]) for c in seen},
    )


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
