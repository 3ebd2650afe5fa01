"""What the detector sees, drawn on a frame: the live view and the event clips show this.

Zones (include green, exclude grey), lines (yellow), every tracked box with its track id, and the
line counts and findings so far in a corner. The frame is scaled down first (MAX_WIDTH): drawing
and encoding a small frame costs about a millisecond, and the operator needs no more.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MAX_WIDTH = 640
ZONE_COLOUR = (80, 200, 80)  # BGR
EXCLUDED_COLOUR = (160, 160, 160)
LINE_COLOUR = (0, 220, 255)
BOX_COLOUR = (0, 0, 255)
TEXT_COLOUR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def scaled(frame: np.ndarray, max_width: int = MAX_WIDTH) -> tuple[np.ndarray, float]:
    """The frame at most `max_width` wide (a copy, so drawing never touches the analysed frame)."""
    height, width = frame.shape[:2]
    if width <= max_width:
        return frame.copy(), 1.0
    factor = max_width / width
    size = (max_width, max(1, round(height * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), factor


def annotate(frame: np.ndarray, engine: Any, max_width: int = MAX_WIDTH) -> np.ndarray:
    """A small copy of `frame` with the engine's zones, lines, current tracks and counts drawn."""
    image, factor = scaled(frame, max_width)
    height, width = image.shape[:2]

    def pixel(point: tuple[float, float]) -> tuple[int, int]:
        return round(point[0] * width), round(point[1] * height)

    for zone in engine.roi.zones:
        colour = EXCLUDED_COLOUR if zone.mode == "exclude" else ZONE_COLOUR
        polygon = np.array([pixel(p) for p in zone.points], dtype=np.int32)
        cv2.polylines(image, [polygon], True, colour, 2, cv2.LINE_AA)
        _label(image, zone.name, tuple(polygon[0]), colour)
    for line in engine.roi.lines:
        start, end = pixel(line.start), pixel(line.end)
        cv2.line(image, start, end, LINE_COLOUR, 2, cv2.LINE_AA)
        _label(image, line.name, start, LINE_COLOUR)
    for track_id, category, box in getattr(engine, "last_tracks", ()):
        x1, y1, x2, y2 = (round(v * factor) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, 2)
        _label(image, f"#{track_id} {category}", (x1, y1), BOX_COLOUR)
    _corner_text(image, _summary_lines(engine))
    return image


def encode_jpeg(image: np.ndarray, quality: int = 75) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded")
    return encoded.tobytes()


def _summary_lines(engine: Any) -> list[str]:
    lines = [
        f"{name}: " + " ".join(f"{d}={n}" for d, n in sorted(dirs.items()))
        for name, dirs in engine.counts.items()
    ]
    found = ", ".join(f"{rule} {n}" for rule, n in sorted(engine.found.items()))
    lines.append(f"tracks {len(getattr(engine, 'last_tracks', ()))}" + (f" | {found}" if found else ""))
    return lines


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, 0.45, 1)
    x, y = int(origin[0]), max(text_h + baseline, int(origin[1]))
    cv2.rectangle(image, (x, y - text_h - baseline), (x + text_w + 4, y), colour, -1)
    cv2.putText(image, text, (x + 2, y - baseline), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def _corner_text(image: np.ndarray, lines: list[str]) -> None:
    for row, text in enumerate(lines):
        y = 18 + 18 * row
        cv2.putText(image, text, (8, y), FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, text, (8, y), FONT, 0.5, TEXT_COLOUR, 1, cv2.LINE_AA)
