"""ROI zones and lines scaled to a frame, and the calibration's image→ground mapping.

Zones and lines are stored normalised (0..1, tasks/xmlformats.py); supervision's PolygonZone and
LineZone work in pixels, so they are built per frame size. A detection is inside a zone when its
box's bottom-centre point is (where a person or a vehicle touches the ground).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import supervision as sv

from tasks.choices import RoiMode
from tasks.xmlformats import Calibration, Line, Roi, Zone, homography, parse_calibration, parse_roi

ANCHOR = sv.Position.BOTTOM_CENTER


def merge_rois(rois: Iterable[str | Roi]) -> Roi:
    """A scene's ROI documents merged in order; a name used again in a later document gets
    '#<n>' (n: the document's position, from 1) so that event keys stay distinct."""
    zones: list[Zone] = []
    lines: list[Line] = []
    seen: set[str] = set()
    for position, item in enumerate(rois, start=1):
        roi = parse_roi(item) if isinstance(item, str) else item
        for zone in roi.zones:
            name = zone.name if zone.name not in seen else f"{zone.name}#{position}"
            seen.add(name)
            zones.append(Zone(name, zone.mode, zone.points))
        for line in roi.lines:
            name = line.name if line.name not in seen else f"{line.name}#{position}"
            seen.add(name)
            lines.append(Line(name, line.direction, line.start, line.end))
    return Roi(tuple(zones), tuple(lines))


def to_calibration(value: str | Calibration | None) -> Calibration:
    if value is None or value == "":
        return Calibration()
    return parse_calibration(value) if isinstance(value, str) else value


def _pixels(points: Sequence[tuple[float, float]], width: int, height: int) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * [width, height]).astype(np.int64)


class FrameGeometry:
    """The zones of one scene's ROI at one frame size (lines live in the rule engine, which keeps
    their crossing history across configuration changes)."""

    def __init__(self, roi: Roi, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.includes = [
            (zone.name, sv.PolygonZone(_pixels(zone.points, width, height), triggering_anchors=(ANCHOR,)))
            for zone in roi.zones
            if zone.mode == RoiMode.INCLUDE
        ]
        self.excludes = [
            sv.PolygonZone(_pixels(zone.points, width, height), triggering_anchors=(ANCHOR,))
            for zone in roi.zones
            if zone.mode == RoiMode.EXCLUDE
        ]

    def excluded(self, detections: sv.Detections) -> np.ndarray:
        mask = np.zeros(len(detections), dtype=bool)
        for zone in self.excludes:
            mask |= zone.trigger(detections)
        return mask

    def zones_of(self, detections: sv.Detections) -> list[tuple[str, np.ndarray]]:
        """(zone name, inside mask) per include zone; with none, the whole frame as zone ""."""
        if not self.includes:
            return [("", np.ones(len(detections), dtype=bool))]
        return [(name, zone.trigger(detections)) for name, zone in self.includes]

    def zone_box(self, name: str) -> tuple[float, float, float, float]:
        for zone_name, zone in self.includes:
            if zone_name == name:
                xs, ys = zone.polygon[:, 0], zone.polygon[:, 1]
                return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        return (0.0, 0.0, float(self.width), float(self.height))


class GroundMapping:
    """Image pixels → ground metres through the calibration's homography (normalised image side)."""

    def __init__(self, calibration: Calibration) -> None:
        self.matrix = homography(calibration) if calibration.pairs else None

    def __bool__(self) -> bool:
        return self.matrix is not None

    def to_ground(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """(n, 2) pixel points → (n, 2) ground points in metres."""
        normalised = np.asarray(points, dtype=np.float64) / [width, height]
        ones = np.ones((len(normalised), 1))
        mapped = np.hstack([normalised, ones]) @ cast(np.ndarray, self.matrix).T  # calibrated
        return mapped[:, :2] / mapped[:, 2:3]
