"""Rules per algorithm type, on detections plus tracking (supervision's ByteTrack, PolygonZone and
LineZone). One RuleEngine per running subtask; `step()` once per analysed frame, in order.

Times are video time (`offset_s`), so a file gives the same findings however fast it is analysed,
and a finding's key (rule:zone:track:frame) is the same when the same frames are analysed again.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import supervision as sv

from analysis.detect.runtime import Detection
from analysis.rules.geometry import FrameGeometry, GroundMapping, merge_rois, to_calibration
from tasks.choices import AlgoType, LineDirection
from tasks.xmlformats import Calibration, Line, Roi

# Rule names (Event.rule).
LINE_CROSS = "line_cross"
SPEEDING = "speeding"
FLOW = "flow"
OCCUPANCY = "occupancy"
INTRUSION = "intrusion"
LOITERING = "loitering"
FALL = "fall"
PARKING = "illegal_parking"
FACE_CAPTURE = "face_capture"
APPEAR = "appear"

# Categories a type's own rules work on; what a task without `models` detects.
TYPE_CATEGORIES: dict[str, frozenset[str]] = {
    AlgoType.TRAFFIC: frozenset({"motor", "no_motor"}),
    AlgoType.PASSENGER_FLOW: frozenset({"body"}),
    AlgoType.SECURITY: frozenset({"body"}),
    AlgoType.ILLEGAL_PARKING: frozenset({"motor"}),
    AlgoType.FACE: frozenset({"face"}),
}
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    AlgoType.TRAFFIC: ("motor", "no_motor"),
    AlgoType.PASSENGER_FLOW: ("body",),
    AlgoType.SECURITY: ("body",),
    AlgoType.ILLEGAL_PARKING: ("motor",),
    AlgoType.FACE: ("face",),
}

# algo_args defaults (tasks/validators.py ALGO_ARGS checks the given ones).
DEFAULTS: dict[str, Any] = {
    "min_score": 0.0,
    "min_track_frames": 1,
    "speed_limit_kmh": None,
    "occupancy_limit": None,
    "loiter_seconds": 60.0,
    "detect_fall": False,  # the fall model runs (second stage, on person crops) only when asked
    "park_seconds": 300.0,
    "min_face_px": 24,
}
# A track unseen this long is over (face captures are sent then).
LOST_SECONDS = 2.0
# A fallen person who is seen upright this long can fall again (a new event).
FALL_RESET_SECONDS = 3.0
# Speeds are measured over about this much video time.
SPEED_WINDOW_SECONDS = 1.0
FACE_MARGIN = 0.2
# ByteTrack (supervision): detections scoring at least a category's activation threshold are
# matched to tracks first, weighing IoU by the score (a match needs IoU × score ≥ 1 - TRACK_MATCH):
# at the library's 0.8 a car blurred to 0.3 needed IoU 0.67 with its track's prediction and came
# back as a new track; at 0.9 it needs 0.33. Lower ones (above 0.1) are matched in a second pass
# (IoU ≥ 0.5). A new track is born from the activation threshold + 0.1 and confirmed by the next
# frame's box (IoU × score ≥ 0.3, supervision's own gate). The default detector reports down to
# 0.1 (its registered threshold). Persons need more than vehicles (0.25 against 0.2 to be born):
# a false person raises an alarm. Measured on the labelled clips: docs/benchmarks.md.
TRACK_ACTIVATION = {"body": 0.15}
TRACK_ACTIVATION_DEFAULT = 0.1
TRACK_MATCH = 0.9


def categories_for(algo_type: str, models: Iterable[str] | None = None) -> list[str]:
    """The detector categories a task needs: its `models` when given, else its type's default."""
    chosen = [m for m in (models or []) if m]
    return list(dict.fromkeys(chosen)) if chosen else list(DEFAULT_CATEGORIES[str(algo_type)])


@dataclass(frozen=True)
class Finding:
    """What a rule found in one frame; becomes an Event. `crop`: a better picture than the frame
    (a face's best crop), else None and the snapshot is the frame with the box drawn."""

    rule: str
    category: str
    zone: str
    box: tuple[float, float, float, float]
    score: float
    track_id: int | None
    attributes: dict[str, Any]
    key: str
    frame_index: int
    offset_s: float
    crop: np.ndarray | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rule": self.rule,
            "category": self.category,
            "zone": self.zone,
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "track_id": self.track_id,
            "attributes": self.attributes,
            "frame_index": self.frame_index,
            "offset_s": round(self.offset_s, 3),
        }


def make_key(rule: str, zone: str, track_id: int | None, frame_index: int) -> str:
    return f"{rule}:{zone}:{'-' if track_id is None else track_id}:{frame_index}"


@dataclass
class _Face:
    quality: float
    box: tuple[float, float, float, float]
    score: float
    zone: str
    frame_index: int
    offset_s: float
    crop: np.ndarray | None


@dataclass
class _Track:
    track_id: int
    category: str
    first_offset: float
    last_offset: float = 0.0
    frames: int = 0
    inside: dict[str, float] = field(default_factory=dict)  # zone -> when this stint began
    fired: set[tuple[str, str]] = field(default_factory=set)  # (rule, zone) fired this stint
    ground: deque[tuple[float, float, float]] = field(default_factory=deque)
    speed_kmh: float | None = None
    fallen: bool = False
    last_fall: float = -math.inf
    appeared: bool = False
    face: _Face | None = None


class RuleEngine:
    """The rules of one algorithm type over a stream of per-frame detections."""

    def __init__(
        self,
        algo_type: str,
        rois: Iterable[str | Roi] = (),
        calibration_xml: str | Calibration | None = None,
        algo_args: dict[str, Any] | None = None,
        categories: Iterable[str] | None = None,
        fps: float | None = None,
    ) -> None:
        self.algo_type = str(AlgoType(str(algo_type)))
        self.categories = tuple(sorted(set(categories or DEFAULT_CATEGORIES[self.algo_type])))
        self._fps_given = fps
        self._trackers: dict[str, sv.ByteTrack] = {}
        self._ids: dict[tuple[str, int], int] = {}
        self._tracks: dict[int, _Track] = {}
        self._geometry: FrameGeometry | None = None
        self._line_zones: dict[tuple[Line, tuple[int, int], str], sv.LineZone] = {}
        self._occupancy: dict[str, int] = {}
        self._pending_occupancy: dict[str, tuple[int, int]] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # Traffic: line → class label (car, bus, bicycle, ...) → direction → crossings.
        self.class_counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        self.found: dict[str, int] = defaultdict(int)
        self.last_tracks: list[tuple[int, str, tuple[float, float, float, float]]] = []
        self.roi = Roi()
        self.calibration = Calibration()
        self.ground = GroundMapping(self.calibration)
        self.args: dict[str, Any] = dict(DEFAULTS)
        self.update(rois=rois, calibration_xml=calibration_xml, algo_args=algo_args or {})

    # -- configuration -----------------------------------------------------------------------

    @property
    def fps(self) -> float:
        from django.conf import settings

        return float(self.args.get("fps") or self._fps_given or settings.VIAS_DEFAULT_FPS)

    def wanted_attributes(self) -> set[str]:
        """Second-stage attributes the configured rules need (the pipeline runs their models)."""
        wanted = set()
        if self.algo_type == AlgoType.SECURITY and self.args.get("detect_fall") and "body" in self.categories:
            wanted.add("fall")
        return wanted

    def update(
        self,
        rois: Iterable[str | Roi] | None = None,
        calibration_xml: str | Calibration | None = None,
        algo_args: dict[str, Any] | None = None,
    ) -> None:
        """Apply a new configuration while running; tracks, counts and unchanged lines are kept.
        Everything is parsed first, so a bad document raises (ValidationError) and changes nothing."""
        roi = merge_rois(rois) if rois is not None else self.roi
        calibration = to_calibration(calibration_xml) if calibration_xml is not None else self.calibration
        if algo_args is not None:
            from tasks.validators import validate_algo_args

            validate_algo_args(self.algo_type, algo_args)
        self.roi = roi
        if calibration_xml is not None:
            self.calibration = calibration
            self.ground = GroundMapping(calibration)
            for track in self._tracks.values():
                track.ground.clear()
        if algo_args is not None:
            self.args = {**DEFAULTS, **algo_args}
        self._geometry = None  # rebuilt at the next frame
        for tracker in self._trackers.values():
            tracker.max_time_lost = self._max_time_lost()

    def _max_time_lost(self) -> int:
        return max(1, round(self.fps * LOST_SECONDS))

    def _tracker(self, category: str) -> sv.ByteTrack:
        tracker = self._trackers.get(category)
        if tracker is None:
            with warnings.catch_warnings():
                # ByteTrack moved to the `trackers` package, which needs the non-headless OpenCV.
                warnings.simplefilter("ignore", FutureWarning)
                tracker = sv.ByteTrack(
                    track_activation_threshold=TRACK_ACTIVATION.get(category, TRACK_ACTIVATION_DEFAULT),
                    lost_track_buffer=30,
                    minimum_matching_threshold=TRACK_MATCH,
                    frame_rate=self.fps,
                    minimum_consecutive_frames=1,
                )
            tracker.max_time_lost = self._max_time_lost()
            self._trackers[category] = tracker
        return tracker

    def _frame_geometry(self, width: int, height: int) -> FrameGeometry:
        geometry = self._geometry
        if geometry is None or (geometry.width, geometry.height) != (width, height):
            geometry = self._geometry = FrameGeometry(self.roi, width, height)
            live = {(line, (width, height)) for line in self.roi.lines}
            self._line_zones = {k: v for k, v in self._line_zones.items() if (k[0], k[1]) in live}
        return geometry

    def _line_zone(self, line: Line, size: tuple[int, int], category: str) -> sv.LineZone:
        key = (line, size, category)
        zone = self._line_zones.get(key)
        if zone is None:
            width, height = size
            start = sv.Point(line.start[0] * width, line.start[1] * height)
            end = sv.Point(line.end[0] * width, line.end[1] * height)
            zone = self._line_zones[key] = sv.LineZone(
                start=start, end=end, triggering_anchors=(sv.Position.BOTTOM_CENTER,)
            )
        return zone

    # -- per frame ---------------------------------------------------------------------------

    def step(
        self,
        detections: Sequence[Detection],
        frame_index: int,
        offset_s: float,
        frame_shape: tuple[int, ...],
        frame: np.ndarray | None = None,
    ) -> list[Finding]:
        """Findings of one analysed frame. `frame` is needed only for face crops."""
        height, width = int(frame_shape[0]), int(frame_shape[1])
        geometry = self._frame_geometry(width, height)
        min_score = float(self.args.get("min_score") or 0.0)
        by_category: dict[str, list[Detection]] = {c: [] for c in self.categories}
        for detection in detections:
            if detection.category in by_category and detection.score >= min_score:
                by_category[detection.category].append(detection)
        findings: list[Finding] = []
        context = _Frame(frame_index, offset_s, width, height, frame, geometry)
        tracked: list[_Row] = []
        for category in self.categories:
            rows = self._track_category(category, by_category[category], offset_s)
            tracked.extend(rows)
            findings.extend(self._apply(category, rows, context))
        # What the live view and the event clips draw (analysis/overlay.py).
        self.last_tracks = [(r.track.track_id, r.track.category, r.detection.box) for r in tracked]
        findings.extend(self._expire(offset_s))
        for finding in findings:
            self.found[finding.rule] += 1
        return findings

    def flush(self) -> list[Finding]:
        """At the end of the source: what waits for a track to end (face captures)."""
        findings = [f for track in list(self._tracks.values()) if (f := self._face_finding(track))]
        self._tracks.clear()
        for finding in findings:
            self.found[finding.rule] += 1
        return findings

    def summary(self) -> dict[str, Any]:
        return {
            "findings": dict(self.found),
            "counts": {line: dict(directions) for line, directions in self.counts.items()},
            "by_class": {
                line: {label: dict(directions) for label, directions in labels.items()}
                for line, labels in self.class_counts.items()
            },
            "occupancy": dict(self._occupancy),
            "tracks": len(self._ids),
            "tracks_by_category": {
                category: sum(1 for c, _local in self._ids if c == category) for category in self.categories
            },
        }

    def _track_category(self, category: str, detections: list[Detection], offset_s: float) -> list[_Row]:
        boxes = np.array([d.box for d in detections], dtype=np.float32).reshape(-1, 4)
        sv_detections = sv.Detections(
            xyxy=boxes,
            confidence=np.array([d.score for d in detections], dtype=np.float32),
            class_id=np.zeros(len(detections), dtype=int),
            data={"index": np.arange(len(detections))},
        )
        tracked = self._tracker(category).update_with_detections(sv_detections)
        rows = []
        for position in range(len(tracked)):
            local = int(cast(np.ndarray, tracked.tracker_id)[position])  # ByteTrack sets it
            if local < 0:
                continue
            track_id = self._ids.setdefault((category, local), len(self._ids) + 1)
            track = self._tracks.get(track_id)
            if track is None:
                track = self._tracks[track_id] = _Track(track_id, category, first_offset=offset_s)
            track.frames += 1
            track.last_offset = offset_s
            rows.append(_Row(track, detections[int(tracked.data["index"][position])]))
        return rows

    def _apply(self, category: str, rows: list[_Row], frame: _Frame) -> list[Finding]:
        sv_rows = sv.Detections(
            xyxy=np.array([r.detection.box for r in rows], dtype=np.float32).reshape(-1, 4),
            tracker_id=np.array([r.track.track_id for r in rows], dtype=int),
        )
        excluded = frame.geometry.excluded(sv_rows)
        zones = frame.geometry.zones_of(sv_rows)
        for position, row in enumerate(rows):
            row.excluded = bool(excluded[position])
            row.zones = [name for name, mask in zones if mask[position] and not row.excluded]
        findings: list[Finding] = []
        if category == "face":
            findings += self._faces(rows, frame)
        elif category in TYPE_CATEGORIES[self.algo_type]:
            if self.algo_type == AlgoType.TRAFFIC:
                findings += self._speeds(rows, frame)
                findings += self._lines(category, rows, sv_rows, excluded, frame, flow=False)
            elif self.algo_type == AlgoType.PASSENGER_FLOW:
                findings += self._lines(category, rows, sv_rows, excluded, frame, flow=True)
                findings += self._occupancy_of(category, rows, zones, frame)
            elif self.algo_type == AlgoType.SECURITY:
                findings += self._stints(rows, frame, INTRUSION, 0.0)
                findings += self._stints(rows, frame, LOITERING, float(self.args["loiter_seconds"]))
                if self.args.get("detect_fall"):
                    findings += self._falls(rows, frame)
            elif self.algo_type == AlgoType.ILLEGAL_PARKING:
                findings += self._stints(rows, frame, PARKING, float(self.args["park_seconds"]))
        else:
            findings += self._appear(rows, frame)
        self._update_stints(rows, frame)
        return findings

    # -- rules -------------------------------------------------------------------------------

    def _mature(self, track: _Track) -> bool:
        return track.frames >= int(self.args.get("min_track_frames") or 1)

    def _finding(
        self,
        rule: str,
        row: _Row,
        zone: str,
        frame: _Frame,
        attributes: dict[str, Any] | None = None,
    ) -> Finding:
        detection = row.detection
        attributes = {**({"label": detection.label} if detection.label else {}), **(attributes or {})}
        if detection.attributes:
            attributes.setdefault("attributes", list(detection.attributes))
        return Finding(
            rule=rule,
            category=detection.category,
            zone=zone,
            box=detection.box,
            score=detection.score,
            track_id=row.track.track_id,
            attributes=attributes,
            key=make_key(rule, zone, row.track.track_id, frame.index),
            frame_index=frame.index,
            offset_s=frame.offset_s,
        )

    def _update_stints(self, rows: list[_Row], frame: _Frame) -> None:
        """A stint in a zone starts when a mature track is first seen inside and ends when it is
        seen outside (a frame where it is not detected changes nothing)."""
        for row in rows:
            track = row.track
            if not self._mature(track):
                continue
            for zone in list(track.inside):
                if zone not in row.zones:
                    del track.inside[zone]
                    track.fired = {(rule, z) for rule, z in track.fired if z != zone}
            for zone in row.zones:
                track.inside.setdefault(zone, frame.offset_s)

    def _stints(self, rows: list[_Row], frame: _Frame, rule: str, threshold_s: float) -> list[Finding]:
        """`rule` once per stint when a track has been inside a zone for `threshold_s` (0: on entry)."""
        findings = []
        for row in rows:
            track = row.track
            if not self._mature(track):
                continue
            for zone in row.zones:
                entered = track.inside.get(zone, frame.offset_s)
                stayed = frame.offset_s - entered
                if stayed + 1e-9 >= threshold_s and (rule, zone) not in track.fired:
                    track.fired.add((rule, zone))
                    attributes = {"seconds": round(stayed, 2)} if threshold_s else {}
                    findings.append(self._finding(rule, row, zone, frame, attributes))
        return findings

    def _falls(self, rows: list[_Row], frame: _Frame) -> list[Finding]:
        findings = []
        for row in rows:
            track = row.track
            if "fall" in row.detection.attributes and row.zones:
                if not track.fallen and self._mature(track):
                    track.fallen = True
                    findings.append(self._finding(FALL, row, row.zones[0], frame))
                track.last_fall = frame.offset_s
            elif track.fallen and frame.offset_s - track.last_fall >= FALL_RESET_SECONDS:
                track.fallen = False
        return findings

    def _appear(self, rows: list[_Row], frame: _Frame) -> list[Finding]:
        findings = []
        for row in rows:
            if not row.track.appeared and row.zones and self._mature(row.track):
                row.track.appeared = True
                findings.append(self._finding(APPEAR, row, row.zones[0], frame))
        return findings

    def _lines(
        self,
        category: str,
        rows: list[_Row],
        sv_rows: sv.Detections,
        excluded: np.ndarray,
        frame: _Frame,
        flow: bool,
    ) -> list[Finding]:
        findings: list[Finding] = []
        if not self.roi.lines:
            return findings
        keep = ~excluded
        subset = sv_rows[keep] if len(sv_rows) else sv_rows
        kept_rows = [row for row, k in zip(rows, keep, strict=True) if k]
        for line in self.roi.lines:
            zone = self._line_zone(line, (frame.width, frame.height), category)
            crossed_in, crossed_out = zone.trigger(cast(sv.Detections, subset))
            for position, row in enumerate(kept_rows):
                # supervision's "in" is a crossing to the right side of A→B seen as the image is drawn.
                if crossed_in[position]:
                    crossing = LineDirection.RIGHT_TO_LEFT
                elif crossed_out[position]:
                    crossing = LineDirection.LEFT_TO_RIGHT
                else:
                    continue
                if not self._mature(row.track):
                    continue
                if flow:
                    inward = (
                        line.direction
                        if line.direction != LineDirection.BOTH
                        else LineDirection.LEFT_TO_RIGHT
                    )
                    direction = "in" if crossing == inward else "out"
                    self.counts[line.name][direction] += 1
                    attributes: dict[str, Any] = {
                        "line": line.name,
                        "direction": direction,
                        "crossing": str(crossing),
                    }
                    findings.append(self._finding(FLOW, row, line.name, frame, attributes))
                else:
                    if line.direction not in (LineDirection.BOTH, crossing):
                        continue
                    self.counts[line.name][str(crossing)] += 1
                    label = row.detection.label or row.detection.category
                    self.class_counts[line.name][label][str(crossing)] += 1
                    attributes = {"line": line.name, "direction": str(crossing), "class": label}
                    if row.track.speed_kmh is not None:
                        attributes["speed_kmh"] = round(row.track.speed_kmh, 1)
                    findings.append(self._finding(LINE_CROSS, row, line.name, frame, attributes))
        return findings

    def _speeds(self, rows: list[_Row], frame: _Frame) -> list[Finding]:
        findings: list[Finding] = []
        if not self.ground or not rows:
            return findings
        points = np.array([r.detection.bottom_centre for r in rows], dtype=np.float64)
        ground = self.ground.to_ground(points, frame.width, frame.height)
        limit = self.args.get("speed_limit_kmh")
        for row, (gx, gy) in zip(rows, ground, strict=True):
            history = row.track.ground
            history.append((frame.offset_s, float(gx), float(gy)))
            while len(history) > 2 and frame.offset_s - history[1][0] >= SPEED_WINDOW_SECONDS:
                history.popleft()
            then, x0, y0 = history[0]
            elapsed = frame.offset_s - then
            if elapsed >= SPEED_WINDOW_SECONDS / 2:
                row.track.speed_kmh = math.hypot(gx - x0, gy - y0) / elapsed * 3.6
            speed = row.track.speed_kmh
            if (
                limit
                and speed is not None
                and speed > limit
                and (SPEEDING, "*") not in row.track.fired
                and row.zones
                and self._mature(row.track)
            ):
                row.track.fired.add((SPEEDING, "*"))
                attributes = {"speed_kmh": round(speed, 1), "limit_kmh": limit}
                findings.append(self._finding(SPEEDING, row, row.zones[0], frame, attributes))
        return findings

    def _occupancy_of(
        self, category: str, rows: list[_Row], zones: list[tuple[str, np.ndarray]], frame: _Frame
    ) -> list[Finding]:
        """An occupancy finding when the number of people in a zone changes (and has held for
        min_track_frames frames)."""
        findings = []
        limit = self.args.get("occupancy_limit")
        stable_frames = int(self.args.get("min_track_frames") or 1)
        for name, _mask in zones:
            count = sum(1 for row in rows if name in row.zones and self._mature(row.track))
            if count == self._occupancy.get(name, 0):
                self._pending_occupancy.pop(name, None)
                continue
            pending, seen = self._pending_occupancy.get(name, (count, 0))
            seen = seen + 1 if pending == count else 1
            self._pending_occupancy[name] = (count, seen)
            if seen < stable_frames:
                continue
            self._pending_occupancy.pop(name, None)
            self._occupancy[name] = count
            attributes: dict[str, Any] = {"count": count}
            if limit is not None:
                attributes.update(limit=limit, over_limit=count > limit)
            findings.append(
                Finding(
                    rule=OCCUPANCY,
                    category=category,
                    zone=name,
                    box=frame.geometry.zone_box(name),
                    score=1.0,
                    track_id=None,
                    attributes=attributes,
                    key=make_key(OCCUPANCY, name, None, frame.index),
                    frame_index=frame.index,
                    offset_s=frame.offset_s,
                )
            )
        return findings

    def _faces(self, rows: list[_Row], frame: _Frame) -> list[Finding]:
        """Keep each face track's best view; the capture is sent when the track ends."""
        min_px = int(self.args.get("min_face_px") or 0)
        for row in rows:
            x1, y1, x2, y2 = row.detection.box
            w, h = x2 - x1, y2 - y1
            if not row.zones or min(w, h) < min_px:
                continue
            quality = row.detection.score * math.sqrt(max(w * h, 0.0))
            best = row.track.face
            if best is None or quality > best.quality:
                row.track.face = _Face(
                    quality,
                    row.detection.box,
                    row.detection.score,
                    row.zones[0],
                    frame.index,
                    frame.offset_s,
                    _crop(frame.image, row.detection.box) if frame.image is not None else None,
                )
        return []

    def _face_finding(self, track: _Track) -> Finding | None:
        face = track.face
        if face is None or not self._mature(track):
            return None
        track.face = None
        return Finding(
            rule=FACE_CAPTURE,
            category=track.category,
            zone=face.zone,
            box=face.box,
            score=face.score,
            track_id=track.track_id,
            attributes={"frames": track.frames, "seconds": round(track.last_offset - track.first_offset, 2)},
            key=make_key(FACE_CAPTURE, face.zone, track.track_id, face.frame_index),
            frame_index=face.frame_index,
            offset_s=face.offset_s,
            crop=face.crop,
        )

    def _expire(self, offset_s: float) -> list[Finding]:
        horizon = LOST_SECONDS + 1.0 / self.fps
        findings = []
        for track_id, track in list(self._tracks.items()):
            if offset_s - track.last_offset > horizon + 1e-9:
                if finding := self._face_finding(track):
                    findings.append(finding)
                del self._tracks[track_id]
        return findings


@dataclass
class _Row:
    """One tracked detection in the current frame."""

    track: _Track
    detection: Detection
    excluded: bool = False
    zones: list[str] = field(default_factory=list)


@dataclass
class _Frame:
    index: int
    offset_s: float
    width: int
    height: int
    image: np.ndarray | None
    geometry: FrameGeometry


def _crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * FACE_MARGIN, (y2 - y1) * FACE_MARGIN
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(math.ceil(x2 + mx))), min(height, int(math.ceil(y2 + my)))
    return image[top:bottom, left:right].copy()
