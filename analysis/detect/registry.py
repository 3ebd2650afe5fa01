"""Choosing detectors from the registry (analysis.models.Detector) for the categories a task needs."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
from django.utils.translation import gettext as _

from analysis.detect import face as haar
from analysis.detect.face import HaarFaceDetector
from analysis.detect.runtime import DetectorSpec, FrameDetector, YoloDetector

FETCH_HINT_CATEGORIES = {"body"}


class MissingModel(Exception):
    """No usable detector for a category: the task must not start, and this says why."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def _missing(category: str) -> MissingModel:
    if category in FETCH_HINT_CATEGORIES:
        hint = _("run `python manage.py fetch_models`, or register an ONNX model in the admin (Detectors)")
    else:
        hint = _("register an ONNX model that maps some class to it in the admin (Detectors)")
    return MissingModel(
        category,
        _("no detector is registered for the category %(category)s: %(hint)s")
        % {"category": category, "hint": hint},
    )


def pick_specs(categories: Iterable[str], require_files: bool = True) -> dict[str, DetectorSpec | None]:
    """Per category, the enabled registered detector with the highest priority that covers it
    (None for face when none is registered: the Haar fallback). MissingModel otherwise, and
    when `require_files`, also when the chosen model's file is missing."""
    from analysis.models import Detector

    wanted = list(dict.fromkeys(categories))
    rows = list(Detector.objects.filter(enabled=True).order_by("-priority", "name"))
    chosen: dict[str, DetectorSpec | None] = {}
    for category in wanted:
        row = next((r for r in rows if category in r.categories()), None)
        if row is None:
            if category == "face":
                if haar.available():
                    chosen[category] = None
                    continue
                raise MissingModel(
                    category,
                    _(
                        "no detector is registered for the category face, and this OpenCV (%(version)s) "
                        "has no Haar face cascade to fall back on: register a face ONNX model in the admin "
                        "(Detectors)"
                    )
                    % {"version": cv2.__version__},
                )
            raise _missing(category)
        if require_files and not row.path.is_file():
            raise MissingModel(
                category,
                _("the detector %(name)s for %(category)s has no model file %(path)s")
                % {"name": row.name, "category": category, "path": row.path}
                + (
                    "; " + _("run `python manage.py fetch_models`")
                    if category in FETCH_HINT_CATEGORIES
                    else ""
                ),
            )
        chosen[category] = DetectorSpec.from_model(row)
    return chosen


def check_categories(categories: Iterable[str]) -> None:
    """Raise MissingModel when some category has no registered detector (cheap: reads the registry
    only; a missing model file is found by detectors_for when the job starts)."""
    pick_specs(categories, require_files=False)


def detectors_for(categories: Iterable[str]) -> list[FrameDetector]:
    """The detectors to run for these categories, one per model (a model covering two asked
    categories runs once), each restricted to the categories it was picked for."""
    chosen = pick_specs(categories)
    grouped: dict[DetectorSpec, set[str]] = {}
    detectors: list[FrameDetector] = []
    for category, spec in chosen.items():
        if spec is None:
            detectors.append(HaarFaceDetector())
        else:
            grouped.setdefault(spec, set()).add(category)
    detectors[:0] = [YoloDetector(spec, covered) for spec, covered in grouped.items()]
    return detectors
