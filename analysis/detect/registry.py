"""Choosing detectors from the registry (analysis.models.Detector) for the categories a task needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cv2
from django.utils.translation import gettext as _

from analysis.detect import face as haar
from analysis.detect.face import HaarFaceDetector
from analysis.detect.mtcnn import MtcnnFaceDetector
from analysis.detect.runtime import DetectorSpec, FrameDetector, YoloDetector
from vias.lib import onnx_heads

FETCH_HINT_CATEGORIES = {"body", "motor", "no_motor", "face"}

# Class names (COCO's and common exports') → the category they count as; others are dropped.
NAME_CATEGORIES = {
    "person": "body",
    "pedestrian": "body",
    "bicycle": "no_motor",
    "car": "motor",
    "motorcycle": "motor",
    "motorbike": "motor",
    "bus": "motor",
    "truck": "motor",
    "face": "face",
}


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
    from analysis.models import Detector, Role

    wanted = list(dict.fromkeys(categories))
    rows = list(Detector.objects.filter(enabled=True, role=Role.DETECTOR).order_by("-priority", "name"))
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
        elif spec.head == "mtcnn":
            detectors.append(MtcnnFaceDetector(spec))
        else:
            grouped.setdefault(spec, set()).add(category)
    for spec, covered in grouped.items():
        if "no_motor" in covered and "body" in spec.categories():
            covered.add("body")  # the riders of the bicycles (analysis.detect.riders); rules ignore the rest
    detectors[:0] = [YoloDetector(spec, covered) for spec, covered in grouped.items()]
    return detectors


def attribute_detector(attribute: str) -> YoloDetector:
    """The second-stage model that gives `attribute` (e.g. fall) to crops of detections: the
    enabled registered model with the highest priority one of whose classes has it."""
    from analysis.models import Detector

    for row in Detector.objects.filter(enabled=True).order_by("-priority", "name"):
        if attribute in row.attributes() and row.head != "mtcnn":
            if not row.path.is_file():
                break
            return YoloDetector(DetectorSpec.from_model(row))
    raise MissingModel(
        "body",
        _(
            "no model gives the attribute %(attribute)s: run `python manage.py fetch_models`, or register "
            "one in the admin (Detectors) with a class whose attributes list it"
        )
        % {"attribute": attribute},
    )


def classes_from_names(names: dict[int, str]) -> dict[str, dict[str, Any]]:
    """A class table for the names this system knows (person → body, car → motor, ...)."""
    table: dict[str, dict[str, Any]] = {}
    for index, label in sorted(names.items()):
        category = NAME_CATEGORIES.get(label.strip().lower())
        if category:
            table[str(index)] = {"label": label, "category": category}
    return table


def register_model(
    name: str,
    onnx_file: str,
    classes: dict[str, Any] | None = None,
    licence: str = "",
    initial: dict[str, Any] | None = None,
) -> tuple[Any, bool]:
    """Create or update the Detector `name` for a model file: the head, input size and (unless
    given) classes are read from the file; a file that is no runnable detector is refused
    (ValueError with the reason) and nothing is written. Fields an operator tunes (thresholds,
    priority, enabled, role) are only set when the row is created. Returns (row, changed)."""
    from django.core.exceptions import ValidationError

    from analysis.models import Detector

    initial = dict(initial or {})
    head = initial.pop("head", None)
    probe = Detector(name=name, onnx_file=onnx_file, classes=classes or {"0": {"category": "body"}})
    fields: dict[str, Any] = {"onnx_file": onnx_file, "licence": licence[:255]}
    if head == "mtcnn":
        fields.update(
            head="mtcnn",
            classes=classes,
            input_width=initial.pop("input_width", 640),
            input_height=initial.pop("input_height", 640),
            fp16=False,
        )
    else:
        try:
            info = onnx_heads.inspect(probe.path)
        except onnx_heads.UnsupportedModel as exc:
            raise ValueError(str(exc)) from exc
        table = classes if classes is not None else classes_from_names(info.names)
        if not table:
            raise ValueError(
                f"none of the model's classes ({', '.join(list(info.names.values())[:8]) or 'unnamed'}) "
                "is a category this system counts; give a class table"
            )
        fields.update(
            head=info.head,
            classes=table,
            input_width=info.width or initial.pop("input_width", 640),
            input_height=info.height or initial.pop("input_height", 640),
            fp16=info.fp16,
        )
        initial.pop("input_width", None)
        initial.pop("input_height", None)
    existing = Detector.objects.filter(name=name).first()
    created = existing is None
    detector = existing if existing is not None else Detector(name=name, **fields, **initial)
    changed = [key for key, value in fields.items() if getattr(detector, key) != value]
    for key in changed:
        setattr(detector, key, fields[key])
    try:
        detector.full_clean()
    except ValidationError as exc:
        raise ValueError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
    if created or changed:
        detector.save()
    return detector, created or bool(changed)
