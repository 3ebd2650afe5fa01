"""The ROI and calibration XML formats (tasks/xmlformats.py): round trips and every rule."""

from __future__ import annotations

import math

import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tasks import constants
from tasks.choices import LineDirection, RoiMode
from tasks.xmlformats import (
    MAX_POLYGON_POINTS,
    MIN_CALIBRATION_PAIRS,
    Calibration,
    CalibrationPair,
    Line,
    Roi,
    Zone,
    homography,
    parse_calibration,
    parse_roi,
    polygon_problem,
    render_calibration,
    render_roi,
    reprojection_errors,
)


def close(a: float, b: float) -> bool:
    # %.6g keeps six significant digits: half a unit in the sixth digit, relative.
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-300)


def points_close(a, b) -> bool:
    return len(a) == len(b) and all(
        close(p[0], q[0]) and close(p[1], q[1]) for p, q in zip(a, b, strict=True)
    )


def fmt(point) -> tuple[str, str]:
    return (f"{point[0]:.6g}", f"{point[1]:.6g}")


def polygon(name: str = "zone", points=((0, 0), (1, 0), (1, 1)), **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    body = "".join(f'<point x="{x}" y="{y}"/>' for x, y in points)
    return f'<polygon name="{name}"{extra}>{body}</polygon>'


def line(name: str = "gate", points=((0, 0.5), (1, 0.5)), **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    body = "".join(f'<point x="{x}" y="{y}"/>' for x, y in points)
    return f'<line name="{name}"{extra}>{body}</line>'


def roi(*children: str) -> str:
    return "<root>" + "".join(children) + "</root>"


SQUARE = [((0, 0), (0, 0)), ((1, 0), (10, 0)), ((1, 1), (10, 10)), ((0, 1), (0, 10))]


def calibration(pairs) -> str:
    return roi(
        *(f'<pair><image x="{a}" y="{b}"/><ground x="{c}" y="{d}"/></pair>' for (a, b), (c, d) in pairs)
    )


def refused(parse, text: str, fragment: str) -> str:
    with pytest.raises(ValidationError) as exc:
        parse(text)
    message = exc.value.messages[0]
    assert fragment in message, message
    return message


# ---- the seed's empty document and a full example ------------------------------------------------


def test_seed_empty_root_is_a_valid_roi_and_calibration():
    assert parse_roi(constants.EMPTY_XML) == Roi()
    assert parse_calibration(constants.EMPTY_XML) == Calibration()
    assert parse_roi("<root></root>") == Roi()


def test_documented_roi_example_parses():
    text = """<?xml version="1.0" encoding="UTF-8"?>
    <root>
      <polygon name="door" mode="include"> <point x="0.10" y="0.20"/> <point x="0.5" y="0.2"/> <point x="0.3" y="0.9"/> </polygon>
      <line name="gate" direction="both"> <point x="0" y="0.5"/> <point x="1" y="0.5"/> </line>
    </root>"""
    parsed = parse_roi(text)
    assert parsed == Roi(
        zones=(Zone("door", "include", ((0.1, 0.2), (0.5, 0.2), (0.3, 0.9))),),
        lines=(Line("gate", "both", (0.0, 0.5), (1.0, 0.5)),),
    )


def test_defaults_for_mode_and_direction():
    parsed = parse_roi(roi(polygon(), line()))
    assert parsed.zones[0].mode == RoiMode.INCLUDE
    assert parsed.lines[0].direction == LineDirection.BOTH


def test_rendered_document_has_declaration_and_is_accepted_by_the_model_validators():
    from tasks.validators import validate_calibration_xml, validate_roi_xml

    text = render_roi(Roi((Zone("a", "exclude", ((0, 0), (1, 0), (0, 1))),)))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<root>')
    validate_roi_xml(text)
    validate_calibration_xml(render_calibration(parse_calibration(calibration(SQUARE))))


# ---- round trips (hypothesis) ------------------------------------------------------------------------

coordinates = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)
points = st.tuples(coordinates, coordinates)
name_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cn", "Zl", "Zp"))
names = st.text(name_chars, min_size=1, max_size=64).filter(lambda n: n == n.strip() and n.strip())


@st.composite
def simple_polygons(draw) -> tuple[tuple[float, float], ...]:
    """Points around the centre in angle order (a star-shaped polygon: its edges never cross),
    with an area: the format refuses any other polygon."""
    count = draw(st.integers(3, 12))
    angle = st.floats(0.0, 2 * math.pi, exclude_max=True)
    angles = sorted(draw(st.lists(angle, min_size=count, max_size=count, unique=True)))
    radii = draw(st.lists(st.floats(0.05, 0.5), min_size=count, max_size=count))
    shape = tuple((0.5 + r * math.cos(a), 0.5 + r * math.sin(a)) for a, r in zip(angles, radii, strict=True))
    # What is written is six significant digits: that polygon must be simple too.
    assume(not polygon_problem(tuple((float(x), float(y)) for x, y in map(fmt, shape))))
    return shape


zones = st.builds(Zone, names, st.sampled_from(RoiMode.values), simple_polygons())
lines = st.builds(Line, names, st.sampled_from(LineDirection.values), points, points)


@st.composite
def rois(draw) -> Roi:
    zone_list = draw(st.lists(zones, max_size=5))
    line_list = draw(st.lists(lines, max_size=5))
    all_names = [z.name for z in zone_list] + [ln.name for ln in line_list]
    assume(len(set(all_names)) == len(all_names))
    # Two ends closer than the sixth significant digit print as the same point; such a line
    # cannot be written in this format at all.
    assume(all(fmt(ln.start) != fmt(ln.end) for ln in line_list))
    return Roi(tuple(zone_list), tuple(line_list))


def assert_rois_equal(parsed: Roi, original: Roi) -> None:
    assert len(parsed.zones) == len(original.zones)
    assert len(parsed.lines) == len(original.lines)
    for got, want in zip(parsed.zones, original.zones, strict=True):
        assert (got.name, got.mode) == (want.name, want.mode)
        assert points_close(got.points, want.points)
    for got, want in zip(parsed.lines, original.lines, strict=True):
        assert (got.name, got.direction) == (want.name, want.direction)
        assert points_close((got.start, got.end), (want.start, want.end))


@hypothesis_settings(max_examples=100, deadline=None)
@given(rois())
def test_roi_render_then_parse_gives_it_back(original):
    text = render_roi(original)
    parsed = parse_roi(text)
    assert_rois_equal(parsed, original)
    # The second trip is exact: what was printed is what is read.
    assert parse_roi(render_roi(parsed)) == parsed


@st.composite
def calibrations(draw) -> Calibration:
    """Four points near the four corners (so no three are on one line), then a few more;
    the ground is a rotated, scaled and shifted copy of the image plane, in metres."""
    corner = st.floats(0.0, 0.3)
    far = st.floats(0.7, 1.0)
    image = [
        (draw(corner), draw(corner)),
        (draw(far), draw(corner)),
        (draw(far), draw(far)),
        (draw(corner), draw(far)),
    ]
    image += draw(st.lists(points, max_size=4))
    scale = draw(st.floats(1.0, 500.0))
    angle = draw(st.floats(0.0, 2 * math.pi))
    dx, dy = draw(st.floats(-1000, 1000)), draw(st.floats(-1000, 1000))
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    pairs = tuple(CalibrationPair((x, y), (cos * x - sin * y + dx, sin * x + cos * y + dy)) for x, y in image)
    return Calibration(pairs)


@hypothesis_settings(max_examples=60, deadline=None)
@given(calibrations())
def test_calibration_render_then_parse_gives_it_back(original):
    parsed = parse_calibration(render_calibration(original))
    assert len(parsed.pairs) == len(original.pairs)
    for got, want in zip(parsed.pairs, original.pairs, strict=True):
        assert points_close((got.image,), (want.image,))
        assert math.isclose(got.ground[0], want.ground[0], rel_tol=1e-5, abs_tol=1e-3)
        assert math.isclose(got.ground[1], want.ground[1], rel_tol=1e-5, abs_tol=1e-3)
    assert homography(parsed) is not None


def test_names_with_markup_characters_survive_the_round_trip():
    original = Roi(
        (Zone("a<&\"'>b", "include", ((0.1, 0.2), (1e-7, 1.0), (0.123456789, 0.5))),),
        (Line("中文 gate", "right_to_left", (0.0, 0.0), (1.0, 1.0)),),
    )
    assert_rois_equal(parse_roi(render_roi(original)), original)


def test_a_polygon_of_the_maximum_size_round_trips():
    ring = tuple(
        (
            0.5 + 0.4 * math.cos(i * 2 * math.pi / MAX_POLYGON_POINTS),
            0.5 + 0.4 * math.sin(i * 2 * math.pi / MAX_POLYGON_POINTS),
        )
        for i in range(MAX_POLYGON_POINTS)
    )
    original = Roi((Zone("big", "include", ring),))
    assert_rois_equal(parse_roi(render_roi(original)), original)


# ---- ROI rules ------------------------------------------------------------------------------------


ROI_RULES = [
    ("<roi>" + polygon() + "</roi>", "must be <root>, not <roi>"),
    ('<root xmlns="urn:x"/>', "must be <root>"),
    (roi("<circle/>"), "unknown element <circle>"),
    (roi(polygon(), "<zone/>"), "unknown element <zone>"),
    (roi(polygon(points=())), "a polygon needs 3..256 points"),
    (roi(polygon(points=((0, 0), (1, 1)))), "a polygon needs 3..256 points"),
    (roi(polygon(points=[(i / 300, 0.5) for i in range(MAX_POLYGON_POINTS + 1)])), "3..256 points"),
    (
        roi('<polygon name="z"><point x="0" y="0"/><pt x="1" y="0"/><point x="1" y="1"/></polygon>'),
        "only contain <point>",
    ),
    (roi(line(points=((0, 0),))), "exactly 2 different points"),
    (roi(line(points=((0, 0), (1, 1), (0, 1)))), "exactly 2 different points"),
    (roi(line(points=((0.5, 0.5), (0.5, 0.5)))), "exactly 2 different points"),
    (roi(line(points=((0.5, 0.5), (0.50, 0.500)))), "exactly 2 different points"),
    (roi(line(points=())), "exactly 2 different points"),
    (roi(polygon(name="")), "needs a name of 1..64 characters"),
    (roi(polygon(name="   ")), "needs a name of 1..64 characters"),
    (roi(polygon(name="x" * 65)), "needs a name of 1..64 characters"),
    (roi('<polygon><point x="0" y="0"/><point x="1" y="0"/><point x="1" y="1"/></polygon>'), "needs a name"),
    (roi(line(name="")), "needs a name"),
    (roi(polygon(name="a"), polygon(name="a")), "the name 'a' is used twice"),
    (roi(line(name="a"), line(name="a")), "used twice"),
    (roi(polygon(name="a"), line(name="a")), "used twice"),
    (roi(polygon(name="a"), line(name=" a ")), "used twice"),
    (roi(polygon(mode="INCLUDE")), "mode='INCLUDE' must be one of include, exclude"),
    (roi(polygon(mode="")), "must be one of"),
    (roi(polygon(mode="both")), "must be one of"),
    (roi(line(direction="up")), "direction='up' must be one of both, left_to_right, right_to_left"),
    (roi(line(direction="include")), "must be one of"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), ROI_RULES, ids=[f"{i}-{fragment[:30]}" for i, (_, fragment) in enumerate(ROI_RULES)]
)
def test_roi_rules(text, fragment):
    message = refused(parse_roi, text, fragment)
    assert "(line " in message


@pytest.mark.parametrize(
    "value",
    ["-0.1", "1.0000001", "2", "-1e-9", "1e1", "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"],
)
def test_coordinates_outside_0_to_1_or_not_finite_are_refused(value):
    refused(parse_roi, roi(polygon(points=((value, 0.5), (1, 0), (1, 1)))), "x=")
    refused(parse_roi, roi(line(points=((0, 0), (0.5, value)))), "y=")


@pytest.mark.parametrize("value", ["", "abc", "0,5", "0x1", "1/2", "0.5.1", "½", "0.1_0", "0.٥", "1_0e-1"])
def test_coordinates_that_are_not_numbers_are_refused(value):
    refused(parse_roi, roi(polygon(points=((value, 0.5), (1, 0), (1, 1)))), "is not a number")


@pytest.mark.parametrize("value", ["0", "1", "0.5", ".5", "+0.25", "-0", "5e-1", "1E0", "0.000001", " 0.5 "])
def test_coordinates_in_range_in_any_decimal_notation_are_accepted(value):
    parsed = parse_roi(roi(polygon(points=((value, 0.5), (1, 0), (0.8, 1)))))
    assert parsed.zones[0].points[0][0] == float(value)


def test_missing_coordinate_attribute_is_refused():
    text = roi('<polygon name="z"><point y="0"/><point x="1" y="0"/><point x="1" y="1"/></polygon>')
    refused(parse_roi, text, "<point> needs the attribute x")


def test_polygon_point_count_bounds_are_inclusive():
    assert len(parse_roi(roi(polygon(points=((0, 0), (1, 0), (1, 1))))).zones[0].points) == 3
    step = 2 * math.pi / MAX_POLYGON_POINTS
    ring = [
        (0.5 + 0.5 * math.cos(i * step), 0.5 + 0.5 * math.sin(i * step)) for i in range(MAX_POLYGON_POINTS)
    ]
    assert len(parse_roi(roi(polygon(points=ring))).zones[0].points) == MAX_POLYGON_POINTS


def test_errors_name_the_line_of_the_offending_element():
    text = "<root>\n" + polygon(name="ok") + "\n" + "\n" + polygon(name="bad", mode="sideways") + "\n</root>"
    message = refused(parse_roi, text, "must be one of")
    assert message.endswith("(line 4)")


def test_roi_syntax_errors_come_from_the_hardened_parser():
    refused(parse_roi, "<root><polygon></root>", "XML error at line 1")
    refused(parse_roi, '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><root>&x;</root>', "DOCTYPE")


# ---- calibration rules --------------------------------------------------------------------------------


def test_a_valid_calibration_parses_and_has_a_homography():
    parsed = parse_calibration(calibration(SQUARE))
    assert len(parsed.pairs) == 4
    assert parsed.pairs[1] == CalibrationPair((1.0, 0.0), (10.0, 0.0))
    matrix = homography(parsed)
    assert matrix is not None
    # The image corner (1, 1) maps to the ground corner (10 m, 10 m).
    x, y, w = matrix @ [1.0, 1.0, 1.0]
    assert math.isclose(x / w, 10.0, abs_tol=1e-6) and math.isclose(y / w, 10.0, abs_tol=1e-6)


def test_ground_coordinates_are_metres_without_a_range():
    pairs = [
        ((0, 0), (-5000, -5000)),
        ((1, 0), (5000, -5000)),
        ((1, 1), (5000, 5000)),
        ((0, 1), (-5000, 5000)),
    ]
    assert len(parse_calibration(calibration(pairs)).pairs) == 4


@pytest.mark.parametrize("count", [1, 2, 3])
def test_calibration_needs_at_least_four_pairs(count):
    refused(parse_calibration, calibration(SQUARE[:count]), f"at least {MIN_CALIBRATION_PAIRS} point pairs")


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(
            [((0, 0), (0, 0)), ((0.5, 0.5), (10, 0)), ((1, 1), (10, 10)), ((0.25, 0.25), (0, 10))],
            id="image-collinear",
        ),
        pytest.param(
            [((0, 0), (0, 0)), ((0.5, 0), (10, 0)), ((1, 0), (10, 10)), ((0, 1), (0, 10))],
            id="three-image-collinear",
        ),
        pytest.param(
            [((0, 0), (0, 0)), ((1, 0), (1, 1)), ((1, 1), (2, 2)), ((0, 1), (3, 3))], id="ground-collinear"
        ),
        pytest.param(
            [((0, 0), (0, 0)), ((0, 0), (10, 0)), ((1, 1), (10, 10)), ((0, 1), (0, 10))], id="image-duplicate"
        ),
        pytest.param([((0.5, 0.5), (1, 1))] * 4, id="all-the-same"),
        pytest.param(
            [((0, 0), (1, 1)), ((1, 0), (1, 1)), ((1, 1), (1, 1)), ((0, 1), (1, 1))], id="ground-one-point"
        ),
    ],
)
def test_degenerate_calibration_is_refused(pairs):
    refused(parse_calibration, calibration(pairs), "on one line")


@pytest.mark.parametrize(
    ("pair", "fragment"),
    [
        ('<pair><image x="0" y="0"/></pair>', "exactly one <image> and one <ground>"),
        ('<pair><ground x="0" y="0"/></pair>', "exactly one <image> and one <ground>"),
        ("<pair/>", "exactly one <image> and one <ground>"),
        ('<pair><image x="0" y="0"/><image x="0" y="0"/><ground x="0" y="0"/></pair>', "exactly one <image>"),
        ('<pair><image x="0" y="0"/><image x="0" y="0"/></pair>', "exactly one <image>"),
        ('<pair><image x="0" y="0"/><ground x="0" y="0"/><note/></pair>', "exactly one <image>"),
        ('<pair><point x="0" y="0"/><ground x="0" y="0"/></pair>', "exactly one <image>"),
        (
            '<pair><image x="0" y="0"/><ground x="0" y="0"/><ground x="1" y="1"/></pair>',
            "exactly one <image>",
        ),
        ('<point x="0" y="0"/>', "unknown element <point>: use <pair>"),
        ('<pair><image x="1.5" y="0"/><ground x="0" y="0"/></pair>', "x=1.5 is outside"),
        ('<pair><image x="0" y="0"/><ground x="nan" y="0"/></pair>', "x='nan' is not a number"),
        ('<pair><image x="0" y="0"/><ground x="0" y="inf"/></pair>', "y='inf' is not a number"),
        ('<pair><image x="0" y="0"/><ground x="1e999" y="0"/></pair>', "is not a number"),
        ('<pair><image x="0" y="0"/><ground x="ten" y="0"/></pair>', "x='ten' is not a number"),
        ('<pair><image x="0" y="0"/><ground y="0"/></pair>', "<ground> needs the attribute x"),
    ],
)
def test_calibration_pair_structure(pair, fragment):
    text = calibration(SQUARE[1:]).replace("<root>", "<root>" + pair)
    message = refused(parse_calibration, text, fragment)
    assert "(line " in message
    assert "None" not in message


def test_calibration_root_tag_is_checked():
    refused(parse_calibration, calibration(SQUARE).replace("root>", "calibration>"), "must be <root>")


def test_pair_children_may_come_in_either_order():
    text = roi(
        *(f'<pair><ground x="{c}" y="{d}"/><image x="{a}" y="{b}"/></pair>' for (a, b), (c, d) in SQUARE)
    )
    assert parse_calibration(text) == parse_calibration(calibration(SQUARE))


def test_homography_of_too_few_pairs_is_none():
    assert homography(Calibration()) is None
    assert homography(Calibration(tuple(CalibrationPair(i, g) for i, g in SQUARE[:3]))) is None


# ---- geometry that cannot be wrong (shapely) ------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "fragment"),
    [
        pytest.param(
            ((0, 0), (1, 1), (1, 0), (0, 1)), "edges cross each other near x=0.50, y=0.50", id="bow-tie"
        ),
        pytest.param(((0.1, 0.1), (0.5, 0.5), (0.9, 0.9)), "has no area", id="points-on-a-line"),
        pytest.param(((0.3, 0.3), (0.3, 0.3), (0.3, 0.3), (0.3, 0.3)), "has no area", id="one-point"),
        pytest.param(((0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0.2)), "edges cross", id="crossed-square"),
    ],
)
def test_a_polygon_that_crosses_itself_or_has_no_area_is_refused_by_name_and_line(points, fragment):
    text = "<root>\n" + polygon(name="ok") + "\n" + polygon(name="door", points=points) + "\n</root>"
    message = refused(parse_roi, text, fragment)
    assert message.startswith("polygon 'door': ") and message.endswith("(line 3)")


def test_a_concave_polygon_is_fine():
    l_shape = ((0, 0), (1, 0), (1, 0.2), (0.2, 0.2), (0.2, 1), (0, 1))
    assert parse_roi(roi(polygon(points=l_shape))).zones[0].points == tuple(map(tuple, l_shape))


def test_three_collinear_image_points_of_four_are_refused_at_the_pair():
    pairs = [((0.1, 0.9), (0, 0)), ((0.5, 0.9), (4, 0)), ((0.9, 0.9), (8, 0)), ((0.5, 0.3), (4, 30))]
    text = "<root>\n" + "\n".join(calibration([p])[6:-7] for p in pairs) + "\n</root>"
    message = refused(parse_calibration, text, "pairs 1, 2, 3: their image points are on one line")
    assert message.endswith("(line 4)")  # the third pair: the one that completes the line


def test_a_fifth_point_on_a_line_with_two_others_is_fine_when_it_agrees():
    pairs = [*SQUARE, ((0.5, 0.5), (5, 5))]
    parsed = parse_calibration(calibration(pairs))
    assert reprojection_errors(parsed) == pytest.approx([0.0] * 5, abs=1e-6)


def test_contradictory_pairs_are_refused_at_the_pair_that_disagrees():
    pairs = [*SQUARE, ((0.5, 0.5), (5, 5)), ((0.25, 0.5), (9, 1))]
    message = refused(parse_calibration, calibration(pairs), "pair 6 contradicts the others")
    assert " m from where they map its image point" in message


def test_the_same_image_point_with_two_ground_points_is_a_contradiction():
    refused(parse_calibration, calibration([*SQUARE, ((0, 0), (3, 3))]), "contradicts the others")


def test_reprojection_errors_are_metres_per_pair():
    # A ground point 0.3 m off (under the contradiction limit) shows in its own error most.
    pairs = [*SQUARE, ((0.5, 0.5), (5.3, 5))]
    errors = reprojection_errors(parse_calibration(calibration(pairs)))
    assert len(errors) == 5 and max(errors) == errors[4] and 0.05 < errors[4] < 0.3
