"""A bicycle and its rider are one `no_motor` object (the VCS category is "non-motor vehicle and
rider"): the bicycle's box grows to cover the person riding it and gets the attribute `rider`.
The person stays a `body` detection too (a person counter still counts them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from analysis.detect.runtime import Detection

# A person rides a bicycle when most of their width is over it and their feet are within it.
MIN_WIDTH_OVERLAP = 0.5


def rides(person: Detection, bicycle: Detection) -> bool:
    px1, _py1, px2, py2 = person.box
    bx1, by1, bx2, by2 = bicycle.box
    overlap = max(0.0, min(px2, bx2) - max(px1, bx1))
    width = max(px2 - px1, 1e-6)
    return overlap / width >= MIN_WIDTH_OVERLAP and by1 <= py2 <= by2 + 0.1 * (by2 - by1)


def merge_riders(detections: Sequence[Detection]) -> list[Detection]:
    """The detections, each bicycle that someone rides replaced by bicycle ∪ rider."""
    people = [d for d in detections if d.category == "body"]
    out = []
    for detection in detections:
        if detection.category == "no_motor" and "rider" not in detection.attributes:
            rider = max((p for p in people if rides(p, detection)), key=lambda p: p.score, default=None)
            if rider is not None:
                x1, y1, x2, y2 = detection.box
                rx1, ry1, rx2, ry2 = rider.box
                detection = dataclasses.replace(
                    detection,
                    box=(min(x1, rx1), min(y1, ry1), max(x2, rx2), max(y2, ry2)),
                    attributes=(*detection.attributes, "rider"),
                )
        out.append(detection)
    return out
