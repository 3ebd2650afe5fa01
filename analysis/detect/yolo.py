"""YOLO pre- and post-processing, vectorised with numpy: letterbox, blob, decode, NMS, filters.

Both heads give, per anchor, a box (centre x, centre y, width, height in input pixels) and class
scores:
  YOLOv8: output (batch, 4 + classes, anchors); a class score is the confidence.
  YOLOv5: output (batch, anchors, 5 + classes); confidence = objectness × class score.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114  # the grey Ultralytics pads with
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: scale, then padding on the left and top."""

    scale: float
    pad_x: float
    pad_y: float
    width: int  # the original frame's size
    height: int


def letterbox(
    frame: np.ndarray, width: int, height: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to width×height (Ultralytics' centred letterbox)."""
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = round(w * scale), round(h * scale)
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    left, top = round(pad_x - 0.1), round(pad_y - 0.1)
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    out[...] = PAD_VALUE
    resized = (
        frame
        if (new_w, new_h) == (w, h)
        else cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    out[top : top + new_h, left : left + new_w] = resized
    return out, Letterbox(scale, float(left), float(top), w, h)


def to_blob(images: list[np.ndarray], fp16: bool = False) -> np.ndarray:
    """BGR uint8 images (same size) → float NCHW RGB in 0..1."""
    blob = cv2.dnn.blobFromImages(images, scalefactor=1 / 255.0, swapRB=True, crop=False)
    return blob.astype(np.float16) if fp16 else blob


@dataclass(frozen=True)
class Candidates:
    """One image's raw detections before class mapping: boxes xyxy in input pixels."""

    boxes: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    class_ids: np.ndarray  # (n,) int64


def decode(output: np.ndarray, head: str, threshold: float) -> list[Candidates]:
    """Per image of the batch, candidates whose confidence is at least `threshold`."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 2:
        output = output[None]
    results = []
    for pred in output:
        if head == "yolov8":
            pred = pred.T  # (anchors, 4 + classes)
            class_scores = pred[:, 4:]
        elif head == "yolov5":
            class_scores = pred[:, 5:] * pred[:, 4:5]
        else:
            raise ValueError(f"unknown head {head!r}")
        if class_scores.shape[1] == 0:
            results.append(_empty())
            continue
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_ids)), class_ids]
        keep = scores >= threshold
        xywh = pred[keep, :4]
        boxes = np.empty_like(xywh)
        boxes[:, :2] = xywh[:, :2] - xywh[:, 2:4] / 2
        boxes[:, 2:] = xywh[:, :2] + xywh[:, 2:4] / 2
        results.append(Candidates(boxes, scores[keep], class_ids[keep].astype(np.int64)))
    return results


def _empty() -> Candidates:
    return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def nms(
    candidates: Candidates, iou: float, limit: int = MAX_DETECTIONS, groups: np.ndarray | None = None
) -> Candidates:
    """Non-maximum suppression (OpenCV's batched NMS), best first: boxes compete within their
    class, or within their group when `groups` (one id per class id) is given."""
    if len(candidates.scores) == 0:
        return candidates
    xywh = candidates.boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    batch = candidates.class_ids if groups is None else groups[candidates.class_ids]
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), candidates.scores.tolist(), batch.tolist(), 0.0, float(iou))
    kept = np.asarray(keep, dtype=np.int64).reshape(-1)
    kept = kept[np.argsort(-candidates.scores[kept], kind="stable")][:limit]
    return Candidates(candidates.boxes[kept], candidates.scores[kept], candidates.class_ids[kept])


def unletterbox(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """Input-pixel boxes back to the original frame's pixels, clipped to the frame."""
    out = boxes.copy()
    xs, ys = out[:, 0::2], out[:, 1::2]  # views: x1, x2 and y1, y2
    xs -= box.pad_x
    ys -= box.pad_y
    out /= box.scale
    np.clip(xs, 0, box.width, out=xs)
    np.clip(ys, 0, box.height, out=ys)
    return out


def filter_mask(
    boxes: np.ndarray,
    scores: np.ndarray,
    categories: np.ndarray,
    filters: dict[str, dict[str, float]],
    default_score: float,
) -> np.ndarray:
    """Which detections pass their category's limits (min_score, min/max area, min/max aspect w/h)."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    aspects = np.divide(widths, heights, out=np.full_like(widths, np.inf), where=heights > 0)
    keep = (widths > 0) & (heights > 0)
    min_scores = np.full(len(scores), default_score, dtype=np.float32)
    for category, limits in filters.items():
        rows = categories == category
        if not rows.any():
            continue
        if "min_score" in limits:
            min_scores[rows] = limits["min_score"]
        for key, values, above in (
            ("min_area", areas, True),
            ("max_area", areas, False),
            ("min_aspect", aspects, True),
            ("max_aspect", aspects, False),
        ):
            if key in limits:
                ok = values >= limits[key] if above else values <= limits[key]
                keep &= ~rows | ok
    return keep & (scores >= min_scores)
