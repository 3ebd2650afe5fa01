"""The VIAS v2 `target_roi`: a JSON string of polygons in pixel coordinates,
`{"polygons": [{"data": [[x, y], ...], "name": "a"}]}`, which becomes the task's ROIs.

ROIs here are normalised to the frame (docs/xml-formats.md), so the polygons are divided by the
source's frame size; the analysis reads that size once, from the first frame, when the video
source does not know it yet (analysis/jobs.py). The switches of `config.common` that change
snapshots are read here too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from tasks.choices import RoiMode
from tasks.xmlformats import MAX_POLYGON_POINTS, Roi, Zone, render_roi

MAX_POLYGONS = 16
MAX_NAME = 64
MAX_PIXEL = 100_000
DEFAULT_JPEG_QUALITY = 85

Polygon = tuple[str, tuple[tuple[float, float], ...]]


def _fail(message: str) -> ValidationError:
    return ValidationError(_("target_roi: %(m)s") % {"m": message})


def _point(value: Any, where: str) -> tuple[float, float]:
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) and 0 <= v <= MAX_PIXEL for v in value):
        raise _fail(_("%(w)s must be [x, y] pixels, 0..%(n)d") % {"w": where, "n": MAX_PIXEL})
    return float(value[0]), float(value[1])


def parse_target_roi(text: str) -> list[Polygon]:
    """The polygons of a target_roi string; ValidationError saying what is wrong and where."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        raise _fail(_("not a JSON string")) from None
    polygons = document.get("polygons") if isinstance(document, dict) else None
    if not isinstance(polygons, list) or not 1 <= len(polygons) <= MAX_POLYGONS:
        raise _fail(_("polygons must be a list of 1..%(n)d polygons") % {"n": MAX_POLYGONS})
    parsed: list[Polygon] = []
    for index, polygon in enumerate(polygons):
        where = f"polygons[{index}]"
        data = polygon.get("data") if isinstance(polygon, dict) else None
        if not isinstance(data, list) or not 3 <= len(data) <= MAX_POLYGON_POINTS:
            raise _fail(_("%(w)s.data must be 3..%(n)d points") % {"w": where, "n": MAX_POLYGON_POINTS})
        name = polygon.get("name", f"roi_{index + 1}")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise _fail(_("%(w)s.name must be 1..%(n)d characters") % {"w": where, "n": MAX_NAME})
        if name in {p[0] for p in parsed}:
            raise _fail(_("%(w)s.name %(name)r is used twice") % {"w": where, "name": name})
        points = tuple(_point(p, f"{where}.data[{i}]") for i, p in enumerate(data))
        parsed.append((name, points))
    return parsed


def validate_target_roi(value: str) -> None:
    if value:
        parse_target_roi(value)


def roi_xml(text: str, width: int, height: int) -> str:
    """The target_roi as one ROI document normalised to a `width` x `height` frame; points beyond
    the frame are clamped to its edge (the frame size may be smaller than the client thought)."""
    zones = tuple(
        Zone(name, RoiMode.INCLUDE, tuple((min(x / width, 1.0), min(y / height, 1.0)) for x, y in points))
        for name, points in parse_target_roi(text)
    )
    return render_roi(Roi(zones=zones))


def validate_switches(common: dict[str, Any]) -> None:
    """render_roi_sw / render_result_sw are 0 or 1; image_compression_ratio a JPEG quality 1..100."""
    for name in ("render_roi_sw", "render_result_sw"):
        value = common.get(name, 0)
        if isinstance(value, bool) or value not in (0, 1):
            raise ValidationError(_("config.common.%(n)s must be 0 or 1") % {"n": name})
    ratio = common.get("image_compression_ratio")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int) or not 1 <= ratio <= 100):
        raise ValidationError(_("config.common.image_compression_ratio must be an integer 1..100"))
    if "target_roi" in common:
        if not isinstance(common["target_roi"], str):
            raise ValidationError(_("config.common.target_roi must be a JSON string"))
        validate_target_roi(common["target_roi"])


def snapshot_options(config: dict[str, Any]) -> dict[str, Any]:
    """How a task's snapshots are drawn: the box (render_result_sw, default on), the ROIs
    (render_roi_sw, default off) and the JPEG quality (image_compression_ratio)."""
    common = (config.get("common") if isinstance(config, dict) else None) or {}
    return {
        "draw_result": common.get("render_result_sw", 1) != 0,
        "draw_rois": common.get("render_roi_sw", 0) == 1,
        "quality": common.get("image_compression_ratio") or DEFAULT_JPEG_QUALITY,
    }
