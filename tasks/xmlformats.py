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
# A point this close to the line through two others (a share of the frame, or of the ground's
# extent) is on that line: about 1 px in a 1000 px frame.
COLLINEAR_DISTANCE = 1e-3
MIN_POLYGON_AREA = 1e-6  # of the frame: a polygon smaller than about 2 px² is no area at all
# A pair whose ground point lies further than this from where the others map its image point
# (the larger of metres and a share of the ground's extent) contradicts them.
CONTRADICTION_METRES = 0.5
CONTRADICTION_SHARE = 0.05
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
    problem = polygon_problem(points)
    if problem:
        raise _error(element, _("polygon %(name)r: %(problem)s") % {"name": name, "problem": problem})
    return Zone(name, mode, points)


def polygon_problem(points: tuple[Point, ...]) -> str:
    """Why these points make no usable polygon (zero area, edges that cross), or ''."""
    from shapely.geometry import Polygon
    from shapely.validation import explain_validity

    polygon = Polygon(points)
    if polygon.convex_hull.area < MIN_POLYGON_AREA:
        return _("it has no area (its points are on one line or on top of each other)")
    if not polygon.is_valid:
        # e.g. "Self-intersection[0.5 0.5]": say where, in the frame's 0..1 coordinates.
        where = re.search(r"\[([-0-9.e]+) ([-0-9.e]+)\]", explain_validity(polygon))
        if where:
            return _(
                "its edges cross each other near x=%(x).2f, y=%(y).2f; order the points around the shape"
            ) % {
                "x": float(where.group(1)),
                "y": float(where.group(2)),
            }
        return _("its edges cross each other; order the points around the shape")
    return ""


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
    pairs, elements = [], []
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
        elements.append(child)
    if pairs and len(pairs) < MIN_CALIBRATION_PAIRS:
        raise _error(root, _("a calibration needs at least %(n)d point pairs") % {"n": MIN_CALIBRATION_PAIRS})
    calibration = Calibration(tuple(pairs))
    problem = calibration_problem(calibration)
    if problem:
        index, message = problem
        raise _error(elements[index], message)
    return calibration


def _on_line(points: list[Point], i: int, j: int, scale: float) -> list[int] | None:
    """Indexes of the points within COLLINEAR_DISTANCE of the line through points i and j (i and j
    included); None when i and j are too close to define a line."""
    (ax, ay), (bx, by) = points[i], points[j]
    length = math.hypot(bx - ax, by - ay)
    if length <= COLLINEAR_DISTANCE * scale:
        return None
    return [
        k
        for k, (cx, cy) in enumerate(points)
        if abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)) / length <= COLLINEAR_DISTANCE * scale
    ]


def _degenerate_line(points: list[Point], scale: float) -> list[int] | None:
    """The points on one line that leave no 4 points with no three on a line, or None.

    With 4 pairs that is any 3 on a line, or two points on top of each other. With more, a
    homography still has a basis unless all the points, or all but one, are on one line
    (repeated points are left to the contradiction check). `scale`: the points' extent."""
    import itertools

    four = len(points) == MIN_CALIBRATION_PAIRS
    need = 3 if four else len(points) - 1
    for i, j in itertools.combinations(range(len(points)), 2):
        on_line = _on_line(points, i, j, scale)
        if on_line is None:
            if four:
                return [i, j]  # the same point twice: no 4 distinct points
            continue
        if len(on_line) >= need:
            return on_line
    return None


def _extent(points: list[Point]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return max(max(xs) - min(xs), max(ys) - min(ys))


def calibration_problem(calibration: Calibration) -> tuple[int, str] | None:
    """(index of the pair to point at, why) when the pairs cannot be a calibration, else None:
    image (or ground) points on one line so that no homography exists, or a pair the others
    contradict."""
    if not calibration.pairs:
        return None
    images = [p.image for p in calibration.pairs]
    grounds = [p.ground for p in calibration.pairs]
    for kind, points, scale in (("image", images, 1.0), ("ground", grounds, _extent(grounds) or 1.0)):
        on_line = _degenerate_line(points, scale)
        if on_line:
            numbers = {"pairs": ", ".join(str(k + 1) for k in on_line)}
            if kind == "image":
                message = _(
                    "pairs %(pairs)s: their image points are on one line; a calibration needs 4 points with no three on one line"
                )
            else:
                message = _(
                    "pairs %(pairs)s: their ground points are on one line but their image points are not"
                )
            return on_line[-1], message % numbers
    errors = reprojection_errors(calibration)
    if errors is None:
        return 0, _("the calibration points are degenerate (three or more on one line?)")
    limit = max(CONTRADICTION_METRES, CONTRADICTION_SHARE * _extent(grounds))
    worst = max(range(len(errors)), key=errors.__getitem__)
    if errors[worst] > limit:
        return worst, _(
            "pair %(n)d contradicts the others: its ground point is %(error).2f m from where they map its image point"
        ) % {"n": worst + 1, "error": errors[worst]}
    return None


def reprojection_errors(calibration: Calibration) -> list[float] | None:
    """For each pair, metres between its ground point and where the homography of all the pairs
    maps its image point (0 for exactly 4 pairs); None when the pairs define no homography."""
    import numpy as np

    matrix = homography(calibration)
    if matrix is None:
        return None
    image = np.array([[*p.image, 1.0] for p in calibration.pairs], dtype=np.float64)
    mapped = image @ matrix.T
    mapped = mapped[:, :2] / mapped[:, 2:3]
    ground = np.array([p.ground for p in calibration.pairs], dtype=np.float64)
    return [float(e) for e in np.linalg.norm(mapped - ground, axis=1)]


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
