"""The face fallback: OpenCV's frontal-face Haar cascade, used while no face ONNX model is
registered. Much weaker than a neural detector, but needs nothing beyond OpenCV.

OpenCV 4 wheels (opencv-python-headless 4.14, pinned for this reason) bundle the cascade
(cv2.data.haarcascades) and its classifier. OpenCV 5's wheels dropped both: with one, the fallback
is unavailable unless `cv2.CascadeClassifier` exists and the cascade file is found in
cv2.data.haarcascades or the models directory; `available()` says which.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from analysis.detect.runtime import Detection

CASCADE = "haarcascade_frontalface_default.xml"
NAME = "opencv-haar-face"
# Frames wider than this are scaled down first: the cascade's cost grows with the pixel count.
MAX_WIDTH = 960


def cascade_path() -> Path | None:
    """The cascade file: OpenCV's bundled one, else one put in the models directory."""
    candidates = [Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".") / CASCADE]
    try:
        from django.conf import settings

        candidates.append(Path(settings.VIAS_MODELS_DIR) / CASCADE)
    except Exception:  # outside Django
        pass
    return next((path for path in candidates if path.is_file()), None)


def available() -> bool:
    return hasattr(cv2, "CascadeClassifier") and cascade_path() is not None


class HaarFaceDetector:
    """Faces with OpenCV's cascade. A score is derived from the cascade's level weight (0..1)."""

    name = NAME
    categories = frozenset({"face"})

    def __init__(self, min_size: int = 24, scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._local = threading.local()  # a CascadeClassifier is not safe to share between threads
        if not available():
            raise FileNotFoundError(f"this OpenCV ({cv2.__version__}) has no Haar cascade classifier or file")
        self.path = str(cascade_path())

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self.path)
        return cascade

    def detect(self, frame: np.ndarray) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = min(1.0, MAX_WIDTH / width)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        if scale < 1.0:
            grey = cv2.resize(
                grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        grey = cv2.equalizeHist(grey)
        size = max(8, round(self.min_size * scale))
        boxes, _levels, weights = self._cascade().detectMultiScale3(
            grey, self.scale_factor, self.min_neighbors, minSize=(size, size), outputRejectLevels=True
        )
        if len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=np.float32) / scale
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float32).reshape(-1)))
        return [
            Detection(
                box=(float(x), float(y), float(min(width, x + w)), float(min(height, y + h))),
                score=float(s),
                category="face",
                label="face",
                detector=self.name,
            )
            for (x, y, w, h), s in zip(boxes, scores, strict=True)
        ]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [self.detect(frame) for frame in frames]
