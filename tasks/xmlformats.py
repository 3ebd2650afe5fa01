"""The ROI and calibration XML formats (docs/xml-formats.md), parsed and written.

ROI:
    <root>
      <polygon name="door" mode="include"> <point x="0.10" y="0.20"/> ... (3..256 points) </polygon>
      <line name="gate" direction="both"> <point x="0" y="0.5"/> <point x="1" y="0.5"/> </line>
    </root>
Calibration (image point -> ground point in metres, at least 4 pairs, or none):
    <root>
      <pair><image x="0.1" y="0.9"/><ground x="0.0" y="0.0"/></pair> ...
    </root>
Image coordinates are normalised to 0..1 of the frame's width and height, so an ROI
survives a change of stream resolution. The seed's empty <root></root> is valid for both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _
from lxml import etree

from tasks.choices import LineDirection, RoiMode
from vias.lib.xmlsafe import parse_xml

MAX_POLYGON_POINTS = 256
MIN_CALIBRATION_PAIRS = 4
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")

Point = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    name: str
    mode: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Line:
    name: str
    direction: str
    start: Point
    end: Point


@dataclass(frozen=True)
class Roi:
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class CalibrationPair:
    image: Point
    ground: Point


@dataclass(frozen=True)
class Calibration:
    pairs: tuple[CalibrationPair, ...] = field(default_factory=tuple)


def _where(element: etree._Element) -> str:
    return _("line %(line)d") % {"line": element.sourceline or 0}


def _error(element: etree._Element, message: str) -> ValidationError:
    return ValidationError(f"{message} ({_where(element)})", code="xml_format")


def _check_root(root: etree._Element) -> None:
    if root.tag != "root":
        raise _error(root, _("the document element must be <root>, not <%(tag)s>") % {"tag": root.tag})


def _number(element: etree._Element, name: str, low: float | None, high: float | None) -> float:
    raw = element.get(name)
    if raw is None:
        raise _error(
            element, _("<%(tag)s> needs the attribute %(name)s") % {"tag": element.tag, "name": name}
        )
    # Plain decimal notation only: float() would also take "nan", "inf", "1_0" and non-ASCII digits.
    value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
    if not math.isfinite(value):
        raise _error(element, _("%(name)s=%(raw)r is not a number") % {"name": name, "raw": raw})
    if (low is not None and value < low) or (high is not None and value > high):
        raise _error(
            element,
            _("%(name)s=%(raw)s is outside %(low)s..%(high)s")
            % {"name": name, "raw": raw, "low": low, "high": high},
        )
    return value


def _image_point(element: etree._Element) -> Point:
    return (_number(element, "x", 0.0, 1.0), _number(element, "y", 0.0, 1.0))


def _points(element: etree._Element) -> tuple[Point, ...]:
    points = []
    for child in element:
        if child.tag != "point":
            raise _error(child, _("<%(tag)s> may only contain <point>") % {"tag": element.tag})
        points.append(_image_point(child))
    return tuple(points)


def _name(element: etree._Element, seen: set[str]) -> str:
    name = (element.get("name") or "").strip()
    if not name or len(name) > 64:
        raise _error(element, _("<%(tag)s> needs a name of 1..64 characters") % {"tag": element.tag})
    if name in seen:
        raise _error(element, _("the name %(name)r is used twice") % {"name": name})
    seen.add(name)
    return name


def _choice(element: etree._Element, name: str, choices: type[models.TextChoices], default: str) -> str:
    value = element.get(name, default)
    if value not in choices.values:
        raise _error(
            element,
            _("%(name)s=%(value)r must be one of %(choices)s")
            % {"name": name, "value": value, "choices": ", ".join(choices.values)},
        )
    return value


def _zone(element: etree._Element, seen: set[str]) -> Zone:
    name = _name(element, seen)
    mode = _choice(element, "mode", RoiMode, RoiMode.INCLUDE)
    points = _points(element)
    if not 3 <= len(points) <= MAX_POLYGON_POINTS:
        raise _error(element, _("a polygon needs 3..%(max)d points") % {"max": MAX_POLYGON_POINTS})
    return Zone(name, mode, points)


def _line(element: etree._Element, seen: set[str]) -> Line:
    name = _name(element, seen)
    direction = _choice(element, "direction", LineDirection, LineDirection.BOTH)
    points = _points(element)
    if len(points) != 2 or points[0] == points[1]:
        raise _error(element, _("a line needs exactly 2 different points"))
    return Line(name, direction, points[0], points[1])


def parse_roi(text: str) -> Roi:
    """The ROI document as zones and lines, or ValidationError saying what is wrong and where."""
    root = parse_xml(text)
    _check_root(root)
    zones, lines = [], []
    seen: set[str] = set()
    for child in root:
        if child.tag == "polygon":
            zones.append(_zone(child, seen))
        elif child.tag == "line":
            lines.append(_line(child, seen))
        else:
            raise _error(child, _("unknown element <%(tag)s>: use <polygon> or <line>") % {"tag": child.tag})
    return Roi(tuple(zones), tuple(lines))


def parse_calibration(text: str) -> Calibration:
    root = parse_xml(text)
    _check_root(root)
    pairs = []
    for child in root:
        if child.tag != "pair":
            raise _error(child, _("unknown element <%(tag)s>: use <pair>") % {"tag": child.tag})
        image, ground = child.find("image"), child.find("ground")
        if image is None or ground is None or len(child) != 2:
            raise _error(child, _("a <pair> holds exactly one <image> and one <ground>"))
        pairs.append(
            CalibrationPair(
                _image_point(image), (_number(ground, "x", None, None), _number(ground, "y", None, None))
            )
        )
    if pairs and len(pairs) < MIN_CALIBRATION_PAIRS:
        raise _error(root, _("a calibration needs at least %(n)d point pairs") % {"n": MIN_CALIBRATION_PAIRS})
    calibration = Calibration(tuple(pairs))
    if pairs and homography(calibration) is None:
        raise _error(root, _("the calibration points are degenerate (three or more on one line?)"))
    return calibration


def homography(calibration: Calibration):
    """The 3×3 image→ground matrix (numpy), or None when the pairs do not define one."""
    import cv2  # deferred: OpenCV is heavy and only needed when a calibration is given
    import numpy as np

    if len(calibration.pairs) < MIN_CALIBRATION_PAIRS:
        return None
    src = np.array([p.image for p in calibration.pairs], dtype=np.float64)
    dst = np.array([p.ground for p in calibration.pairs], dtype=np.float64)
    matrix, _mask = cv2.findHomography(src, dst, 0)
    if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
        return None
    return matrix


def render_roi(roi: Roi) -> str:
    root = etree.Element("root")
    for zone in roi.zones:
        element = etree.SubElement(root, "polygon", name=zone.name, mode=zone.mode)
        _append_points(element, zone.points)
    for line in roi.lines:
        element = etree.SubElement(root, "line", name=line.name, direction=line.direction)
        _append_points(element, (line.start, line.end))
    return _serialise(root)


def render_calibration(calibration: Calibration) -> str:
    root = etree.Element("root")
    for pair in calibration.pairs:
        element = etree.SubElement(root, "pair")
        etree.SubElement(element, "image", x=_fmt(pair.image[0]), y=_fmt(pair.image[1]))
        etree.SubElement(element, "ground", x=_fmt(pair.ground[0]), y=_fmt(pair.ground[1]))
    return _serialise(root)


def _append_points(element: etree._Element, points: tuple[Point, ...]) -> None:
    for x, y in points:
        etree.SubElement(element, "point", x=_fmt(x), y=_fmt(y))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _serialise(root: etree._Element) -> str:
    etree.indent(root, space="  ")
    body = etree.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'
