"""Rules per algorithm type on detections plus tracking (see docs/analysis.md)."""

from analysis.rules.engine import (
    APPEAR,
    DEFAULT_CATEGORIES,
    FACE_CAPTURE,
    FALL,
    FLOW,
    INTRUSION,
    LINE_CROSS,
    LOITERING,
    OCCUPANCY,
    PARKING,
    SPEEDING,
    Finding,
    RuleEngine,
    categories_for,
    make_key,
)

__all__ = [
    "APPEAR",
    "DEFAULT_CATEGORIES",
    "FACE_CAPTURE",
    "FALL",
    "FLOW",
    "INTRUSION",
    "LINE_CROSS",
    "LOITERING",
    "OCCUPANCY",
    "PARKING",
    "SPEEDING",
    "Finding",
    "RuleEngine",
    "categories_for",
    "make_key",
]
