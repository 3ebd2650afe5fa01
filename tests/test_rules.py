"""Rules per algorithm type (analysis/rules) on synthetic detection sequences, tracked by ByteTrack.

Frames are 1000×1000 pixels at 5 analysed frames per second, so ROI coordinates 0..1 read as
thousandths of the frame and frame n is at n / 5 seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from analysis.detect.runtime import Detection
from analysis.rules import (
    APPEAR,
    FACE_CAPTURE,
    FALL,
    FLOW,
    INTRUSION,
    LINE_CROSS,
    LOITERING,
    OCCUPANCY,
    PARKING,
    SPEEDING,
    RuleEngine,
    categories_for,
)
from tasks.choices import AlgoType

SIZE = (1000, 1000, 3)
FPS = 5.0


def roi(*elements: str) -> str:
    return "<root>" + "".join(elements) + "</root>"


def polygon(name: str, x1: float, y1: float, x2: float, y2: float, mode: str = "include") -> str:
    points = "".join(f'<point x="{x}" y="{y}"/>' for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)))
    return f'<polygon name="{name}" mode="{mode}">{points}</polygon>'


def line(name: str, a: tuple[float, float], b: tuple[float, float], direction: str = "both") -> str:
    return (
        f'<line name="{name}" direction="{direction}"><point x="{a[0]}" y="{a[1]}"/>'
        f'<point x="{b[0]}" y="{b[1]}"/></line>'
    )


def box(cx: float, bottom: float, w: float = 60, h: float = 120) -> tuple[float, float, float, float]:
    """A box by its bottom-centre point (the point zones and lines test)."""
    return (cx - w / 2, bottom - h, cx + w / 2, bottom)


def det(b, category: str = "body", score: float = 0.9, attributes: tuple[str, ...] = ()) -> Detection:
    return Detection(box=b, score=score, category=category, label=category, attributes=attributes)


def run(engine: RuleEngine, frames: list[list[Detection]], start: int = 0, image=None) -> list:
    findings = []
    for n, detections in enumerate(frames, start=start):
        findings += engine.step(detections, n, n / FPS, SIZE, image)
    return findings


def walk(category: str, x: float, y0: float, y1: float, frames: int, **extra) -> list[list[Detection]]:
    """One object whose bottom-centre moves from (x, y0) to (x, y1) in `frames` frames."""
    return [[det(box(x, y0 + (y1 - y0) * n / (frames - 1)), category, **extra)] for n in range(frames)]


def rules_of(findings) -> list[str]:
    return [f.rule for f in findings]


# ---- categories -------------------------------------------------------------------------------------


def test_categories_come_from_the_task_models_or_the_type():
    assert categories_for(AlgoType.TRAFFIC) == ["motor", "no_motor"]  # cars, buses... and bicycles
    assert categories_for("2") == ["body"]
    assert categories_for("4") == ["face"]
    assert categories_for("1", ["face", "body", "face"]) == ["face", "body"]


# ---- traffic -------------------------------------------------------------------------------------


def test_traffic_counts_vehicles_per_line_and_direction():
    engine = RuleEngine(AlgoType.TRAFFIC, rois=[roi(line("stop", (0, 0.5), (1, 0.5)))], fps=FPS)
    down = run(engine, walk("motor", 300, 300, 700, 10))  # top to bottom: left of A→B to its right
    up = run(engine, walk("motor", 700, 700, 300, 10), start=20)
    assert rules_of(down) == [LINE_CROSS] and rules_of(up) == [LINE_CROSS]
    assert down[0].attributes["direction"] == "left_to_right" and down[0].zone == "stop"
    assert up[0].attributes["direction"] == "right_to_left"
    assert engine.summary()["counts"] == {"stop": {"left_to_right": 1, "right_to_left": 1}}
    # The crossing frame: the bottom-centre passes y=500 between frame 4 (478) and frame 5 (522).
    assert down[0].frame_index == 5 and down[0].key == f"line_cross:stop:{down[0].track_id}:5"


def test_traffic_counts_each_class_per_direction():
    engine = RuleEngine(AlgoType.TRAFFIC, rois=[roi(line("stop", (0, 0.5), (1, 0.5)))], fps=FPS)

    def vehicle(label: str, category: str, x: float, y0: float, y1: float) -> list[list[Detection]]:
        return [
            [Detection(box=box(x, y0 + (y1 - y0) * n / 9), score=0.9, category=category, label=label)]
            for n in range(10)
        ]

    findings = run(engine, vehicle("car", "motor", 300, 300, 700))
    findings += run(engine, vehicle("bus", "motor", 700, 700, 300), start=20)
    findings += run(engine, vehicle("bicycle", "no_motor", 500, 300, 700), start=40)
    findings += run(engine, vehicle("car", "motor", 400, 700, 300), start=60)
    assert [f.attributes["class"] for f in findings] == ["car", "bus", "bicycle", "car"]
    assert engine.summary()["by_class"] == {
        "stop": {
            "car": {"left_to_right": 1, "right_to_left": 1},
            "bus": {"right_to_left": 1},
            "bicycle": {"left_to_right": 1},
        }
    }
    assert engine.summary()["counts"] == {"stop": {"left_to_right": 2, "right_to_left": 2}}


def test_a_vehicle_keeps_its_track_through_low_scores_that_start_none():
    """A car seen at 0.9, then blurred at 0.3 for five frames, then at 0.9 again is one track,
    counted once at the line (ByteTrack's matching weighs IoU by the score: it took the
    blurred boxes for another object before, and the car came back as a second track).
    Detections at 0.15 alone never make a track, nor do a person's at 0.22 (a false person is an
    alarm)."""
    engine = RuleEngine(AlgoType.TRAFFIC, rois=[roi(line("stop", (0, 0.5), (1, 0.5)))], fps=FPS)
    frames = walk("motor", 300, 300, 700, 12)
    for n in range(3, 8):
        frames[n] = [det(frames[n][0].box, "motor", score=0.3)]
    findings = run(engine, frames)
    assert engine.summary()["tracks_by_category"]["motor"] == 1
    assert rules_of(findings) == [LINE_CROSS]
    faint = RuleEngine(AlgoType.TRAFFIC, fps=FPS)
    run(faint, walk("motor", 300, 300, 700, 12, score=0.15))  # from the first frame on
    assert faint.summary()["tracks"] == 0
    person = RuleEngine(AlgoType.SECURITY, fps=FPS)
    run(person, walk("body", 300, 300, 400, 6, score=0.22))
    assert person.summary()["tracks"] == 0


def test_passenger_flow_and_security_ignore_vehicles():
    for algo_type in (AlgoType.PASSENGER_FLOW, AlgoType.SECURITY):
        engine = RuleEngine(
            algo_type, rois=[roi(line("door", (0, 0.5), (1, 0.5)))], categories=["body", "motor"], fps=FPS
        )
        findings = run(engine, walk("motor", 300, 300, 700, 10))
        assert {f.rule for f in findings} <= {APPEAR}  # a vehicle only "appears"
        people = run(engine, walk("body", 300, 300, 700, 10), start=20)
        assert people and all(f.category == "body" for f in people)


def test_a_one_way_line_counts_only_its_direction():
    engine = RuleEngine(
        AlgoType.TRAFFIC, rois=[roi(line("in", (0, 0.5), (1, 0.5), "right_to_left"))], fps=FPS
    )
    assert run(engine, walk("motor", 300, 300, 700, 10)) == []
    assert rules_of(run(engine, walk("motor", 600, 700, 300, 10), start=20)) == [LINE_CROSS]


def test_a_crossing_outside_the_segment_is_not_counted():
    engine = RuleEngine(AlgoType.TRAFFIC, rois=[roi(line("left", (0, 0.5), (0.4, 0.5)))], fps=FPS)
    assert run(engine, walk("motor", 800, 300, 700, 10)) == []


CALIBRATION = (
    "<root>"
    '<pair><image x="0" y="0"/><ground x="0" y="0"/></pair>'
    '<pair><image x="1" y="0"/><ground x="20" y="0"/></pair>'
    '<pair><image x="1" y="1"/><ground x="20" y="20"/></pair>'
    '<pair><image x="0" y="1"/><ground x="0" y="20"/></pair>'
    "</root>"
)


def test_speed_from_the_calibration_and_speeding():
    # 20 m per frame height; 40 px per frame at 5 fps = 0.8 m × 5 = 4 m/s = 14.4 km/h.
    engine = RuleEngine(
        AlgoType.TRAFFIC,
        rois=[roi(line("stop", (0, 0.5), (1, 0.5)))],
        calibration_xml=CALIBRATION,
        algo_args={"speed_limit_kmh": 10},
        fps=FPS,
    )
    findings = run(engine, walk("motor", 500, 300, 660, 10))
    crossing = next(f for f in findings if f.rule == LINE_CROSS)
    assert crossing.attributes["speed_kmh"] == pytest.approx(14.4, abs=0.1)
    speeding = [f for f in findings if f.rule == SPEEDING]
    assert len(speeding) == 1  # once per track
    assert speeding[0].attributes == {
        "label": "motor",
        "speed_kmh": pytest.approx(14.4, abs=0.1),
        "limit_kmh": 10,
    }


def test_no_speed_without_a_calibration():
    engine = RuleEngine(
        AlgoType.TRAFFIC,
        rois=[roi(line("stop", (0, 0.5), (1, 0.5)))],
        algo_args={"speed_limit_kmh": 1},
        fps=FPS,
    )
    findings = run(engine, walk("motor", 500, 300, 660, 10))
    assert rules_of(findings) == [LINE_CROSS] and "speed_kmh" not in findings[0].attributes


# ---- passenger flow ------------------------------------------------------------------------------


def test_people_in_and_out_across_a_line():
    engine = RuleEngine(AlgoType.PASSENGER_FLOW, rois=[roi(line("door", (0, 0.5), (1, 0.5)))], fps=FPS)
    entering = run(engine, walk("body", 300, 300, 700, 10))
    leaving = run(engine, walk("body", 600, 700, 300, 10), start=30)
    flows = [f for f in entering + leaving if f.rule == FLOW]
    assert [f.attributes["direction"] for f in flows] == ["in", "out"]
    assert engine.summary()["counts"] == {"door": {"in": 1, "out": 1}}


def test_a_line_direction_names_the_way_in():
    engine = RuleEngine(
        AlgoType.PASSENGER_FLOW, rois=[roi(line("door", (0, 0.5), (1, 0.5), "right_to_left"))], fps=FPS
    )
    findings = run(engine, walk("body", 300, 300, 700, 10))
    assert [f.attributes["direction"] for f in findings if f.rule == FLOW] == ["out"]


def test_occupancy_of_a_zone():
    engine = RuleEngine(
        AlgoType.PASSENGER_FLOW,
        rois=[roi(polygon("hall", 0.1, 0.1, 0.5, 0.9))],
        algo_args={"occupancy_limit": 1},
        fps=FPS,
    )
    two = [[det(box(200, 500)), det(box(400, 500))] for _ in range(4)]
    one = [[det(box(200, 500)), det(box(800, 500))] for _ in range(4)]  # the second walked out
    findings = [f for f in run(engine, two + one) if f.rule == OCCUPANCY]
    assert [(f.frame_index, f.attributes["count"], f.attributes["over_limit"]) for f in findings] == [
        (0, 2, True),  # ByteTrack confirms the tracks of its first frame at once
        (4, 1, False),
    ]
    assert findings[0].track_id is None and findings[0].key == "occupancy:hall:-:0"
    assert findings[0].box == (100.0, 100.0, 500.0, 900.0)
    assert engine.summary()["occupancy"] == {"hall": 1}


# ---- security ------------------------------------------------------------------------------------


def test_intrusion_into_a_zone_once_per_entry():
    engine = RuleEngine(AlgoType.SECURITY, rois=[roi(polygon("yard", 0.0, 0.6, 1.0, 1.0))], fps=FPS)
    findings = run(engine, walk("body", 500, 300, 900, 13))  # enters at y ≥ 600: frame 6
    assert rules_of(findings) == [INTRUSION]
    assert findings[0].zone == "yard" and findings[0].frame_index == 6
    assert findings[0].key == f"intrusion:yard:{findings[0].track_id}:6"


def test_loitering_longer_than_the_threshold():
    engine = RuleEngine(
        AlgoType.SECURITY,
        rois=[roi(polygon("door", 0.2, 0.2, 0.8, 0.8))],
        algo_args={"loiter_seconds": 2},
        fps=FPS,
    )
    findings = run(engine, [[det(box(500, 500))] for _ in range(20)])
    assert rules_of(findings) == [INTRUSION, LOITERING]
    assert findings[1].frame_index == 10 and findings[1].attributes["seconds"] == 2.0


def test_a_box_in_an_exclude_zone_is_ignored():
    rois = [roi(polygon("all", 0, 0, 1, 1), polygon("tree", 0.4, 0.4, 0.6, 0.6, mode="exclude"))]
    engine = RuleEngine(AlgoType.SECURITY, rois=rois, fps=FPS)
    assert run(engine, [[det(box(500, 500))] for _ in range(5)]) == []
    assert rules_of(run(engine, [[det(box(200, 500))] for _ in range(5)], start=10)) == [INTRUSION]


def test_without_an_include_zone_the_whole_frame_is_watched():
    engine = RuleEngine(AlgoType.SECURITY, fps=FPS)
    findings = run(engine, [[det(box(500, 500))] for _ in range(3)])
    assert rules_of(findings) == [INTRUSION] and findings[0].zone == ""


def test_a_fall_once_per_fall():
    engine = RuleEngine(
        AlgoType.SECURITY, rois=[roi(polygon("hall", 0, 0, 1, 1))], algo_args={"detect_fall": True}, fps=FPS
    )
    standing = [[det(box(500, 500))] for _ in range(3)]
    fallen = [[det(box(500, 500), attributes=("fall",))] for _ in range(5)]
    findings = run(engine, standing + fallen + standing * 6 + fallen)
    falls = [f for f in findings if f.rule == FALL]
    assert [f.frame_index for f in falls] == [3, 26]  # up again for ≥ 3 s in between
    assert falls[0].attributes["attributes"] == ["fall"]


def test_falls_can_be_switched_off():
    engine = RuleEngine(AlgoType.SECURITY, algo_args={"detect_fall": False}, fps=FPS)
    findings = run(engine, [[det(box(500, 500), attributes=("fall",))] for _ in range(5)])
    assert FALL not in rules_of(findings)
    assert engine.wanted_attributes() == set()


def test_a_plain_security_task_raises_no_fall_and_needs_no_fall_model():
    engine = RuleEngine(AlgoType.SECURITY, fps=FPS)
    findings = run(engine, [[det(box(500, 500), attributes=("fall",))] for _ in range(5)])
    assert rules_of(findings) == [INTRUSION]
    assert engine.wanted_attributes() == set()
    asked = RuleEngine(AlgoType.SECURITY, algo_args={"detect_fall": True}, fps=FPS)
    assert asked.wanted_attributes() == {"fall"}
    assert RuleEngine(AlgoType.TRAFFIC, algo_args={}, fps=FPS).wanted_attributes() == set()


def test_min_track_frames_and_min_score():
    engine = RuleEngine(AlgoType.SECURITY, algo_args={"min_track_frames": 3, "min_score": 0.5}, fps=FPS)
    assert run(engine, [[det(box(500, 500), score=0.4)] for _ in range(5)]) == []
    findings = run(engine, [[det(box(200, 500))] for _ in range(5)], start=10)
    assert [f.frame_index for f in findings] == [13]  # tracked from frame 11 (confirmed), third frame 13


# ---- illegal parking ---------------------------------------------------------------------------------


def test_a_vehicle_parked_in_a_zone_longer_than_the_threshold():
    engine = RuleEngine(
        AlgoType.ILLEGAL_PARKING,
        rois=[roi(polygon("kerb", 0, 0.5, 1, 1))],
        algo_args={"park_seconds": 3},
        fps=FPS,
    )
    passing = run(engine, walk("motor", 200, 600, 900, 10))  # 1.8 s in the zone
    parked = run(engine, [[det(box(700, 800, 200, 100), "motor")] for _ in range(25)], start=20)
    assert passing == []
    assert rules_of(parked) == [PARKING]
    assert parked[0].frame_index == 36 and parked[0].attributes["seconds"] == 3.0  # tracked from 21


# ---- face ----------------------------------------------------------------------------------------


def test_a_face_is_captured_once_with_its_best_crop():
    image = np.zeros(SIZE, np.uint8)
    engine = RuleEngine(AlgoType.FACE, fps=FPS)
    sizes = [40, 60, 80, 70, 50]
    frames = [[det((400, 400, 400 + s, 400 + s), "face", score=0.9)] for s in sizes]
    assert run(engine, frames, image=image) == []  # sent when the track ends
    findings = run(engine, [[] for _ in range(15)], start=5)
    assert rules_of(findings) == [FACE_CAPTURE]
    capture = findings[0]
    assert capture.frame_index == 2 and capture.box == (400, 400, 480, 480)
    assert capture.crop.shape == (112, 112, 3)  # 80 px and a 20 % margin on each side
    assert capture.key == f"face_capture::{capture.track_id}:2"


def test_small_faces_are_ignored_and_flush_sends_what_waits():
    engine = RuleEngine(AlgoType.FACE, algo_args={"min_face_px": 30}, fps=FPS)
    run(engine, [[det((10, 10, 30, 30), "face"), det((500, 500, 560, 560), "face")] for _ in range(3)])
    findings = engine.flush()
    assert [f.box for f in findings] == [(500, 500, 560, 560)]
    assert engine.flush() == []


def test_other_asked_categories_are_reported_when_they_appear():
    engine = RuleEngine(AlgoType.SECURITY, categories=["body", "motor"], fps=FPS)
    findings = run(engine, [[det(box(500, 500)), det(box(200, 800), "motor")] for _ in range(3)])
    assert sorted(rules_of(findings)) == [APPEAR, INTRUSION]


# ---- running engines -----------------------------------------------------------------------------


def test_reconfigured_while_running_without_losing_tracks():
    engine = RuleEngine(AlgoType.SECURITY, rois=[roi(polygon("left", 0, 0, 0.3, 1))], fps=FPS)
    assert run(engine, [[det(box(500, 500))] for _ in range(5)]) == []
    engine.update(rois=[roi(polygon("middle", 0.4, 0, 0.6, 1))], algo_args={"loiter_seconds": 1})
    findings = run(engine, [[det(box(500, 500))] for _ in range(10)], start=5)
    assert rules_of(findings) == [INTRUSION, LOITERING]
    assert findings[0].track_id == 1 and findings[0].frame_index == 5  # the same track as before
    with pytest.raises(ValidationError):
        engine.update(rois=["<root><polygon/></root>"])
    with pytest.raises(ValidationError):
        engine.update(algo_args={"loiter_seconds": -1})
    assert [z.name for z in engine.roi.zones] == ["middle"] and engine.args["loiter_seconds"] == 1


def test_line_counts_survive_a_change_of_zones():
    rois = [roi(line("stop", (0, 0.5), (1, 0.5)))]
    engine = RuleEngine(AlgoType.TRAFFIC, rois=rois, fps=FPS)
    frames = walk("motor", 300, 300, 700, 10)
    run(engine, frames[:4])
    engine.update(rois=[*rois, roi(polygon("lane", 0, 0, 1, 1))])
    assert rules_of(run(engine, frames[4:], start=4)) == [LINE_CROSS]


def test_same_frames_give_the_same_keys():
    def keys():
        engine = RuleEngine(
            AlgoType.SECURITY,
            rois=[roi(polygon("yard", 0, 0.6, 1, 1))],
            algo_args={"loiter_seconds": 1},
            fps=FPS,
        )
        frames = walk("body", 500, 300, 900, 13) + [[det(box(500, 900))] for _ in range(10)]
        return [f.key for f in run(engine, frames)]

    first = keys()
    assert first and first == keys()


def test_roi_documents_are_merged_and_repeated_names_kept_apart():
    engine = RuleEngine(
        AlgoType.SECURITY, rois=[roi(polygon("a", 0, 0, 0.5, 1)), roi(polygon("a", 0.5, 0, 1, 1))], fps=FPS
    )
    assert [z.name for z in engine.roi.zones] == ["a", "a#2"]
