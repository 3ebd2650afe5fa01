"""What kind of YOLO export an ONNX file is, read from its metadata and its output shape.

A file is accepted when it loads in onnxruntime, takes one image tensor (batch, 3, height, width)
and gives one output in a layout the runtime decodes:

  yolov8  (batch, 4 + classes, anchors): YOLOv8, YOLO11 and YOLOv9 (Ultralytics' anchor-free
          head; a class score is the confidence);
  yolov5  (batch, anchors, 5 + classes): YOLOv5, YOLOv7 and the Darknet tiny networks converted
          by analysis.detect.darknet (objectness × class score).

The class names come from the metadata Ultralytics' exporter writes (`names`, a Python dict
literal) and decide the layout when they are there; otherwise the static dimensions do (the
anchors outnumber 4 or 5 + classes). End-to-end exports (NMS inside, YOLOv10 / YOLO26 style),
segmentation or pose heads, several outputs and anything that does not load are refused with the
reason: `UnsupportedModel`. Lives in vias/lib so that the Detector model can validate with it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUIET = 3  # onnxruntime's "error" log severity


class UnsupportedModel(ValueError):
    """The file is not a detection model this system can run; the message says why."""


@dataclass(frozen=True)
class ModelInfo:
    head: str  # "yolov8" or "yolov5"
    classes: int
    names: dict[int, str] = field(default_factory=dict)  # empty when the metadata has none
    width: int | None = None  # None: dynamic
    height: int | None = None
    fp16: bool = False
    dynamic_batch: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """A human name for the export, from the metadata where it says."""
        description = self.metadata.get("description", "")
        for word in ("YOLO11", "YOLOv8", "YOLOv9", "YOLOv5", "YOLOv7"):
            if word.lower() in description.lower():
                return word
        return self.metadata.get("family", self.head)


def parse_names(text: str) -> dict[int, str]:
    """Ultralytics' `names` metadata: "{0: 'person', 1: 'bicycle'}" (or a list literal)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {}
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict):
        return {}
    try:
        return {int(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return {}


def inspect(path: str | Path) -> ModelInfo:
    """Read what the file is, or raise UnsupportedModel saying why it cannot be registered."""
    session = _session(path)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    if len(inputs) != 1:
        raise UnsupportedModel(f"the model takes {len(inputs)} inputs; a detector takes one image tensor")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise UnsupportedModel(
            f"the input {inputs[0].name} has the shape {shape}; expected (batch, 3, height, width)"
        )
    if inputs[0].type not in ("tensor(float)", "tensor(float16)"):
        raise UnsupportedModel(f"the input is {inputs[0].type}; expected float or float16")
    if metadata.get("end2end", "").lower() == "true":
        raise UnsupportedModel(
            "an end-to-end export (NMS inside the model, YOLOv10/YOLO26 style) is not supported: "
            "export it again with end2end=False"
        )
    task = metadata.get("task", "detect")
    if task not in ("detect", ""):
        raise UnsupportedModel(f"a {task} model; only detection heads are supported")
    if len(outputs) != 1:
        described = ", ".join(f"{o.name} {list(o.shape)}" for o in outputs)
        raise UnsupportedModel(f"{len(outputs)} outputs ({described}); a detection head has one")
    names = parse_names(metadata.get("names", ""))
    head, classes = _head(list(outputs[0].shape), len(names), metadata.get("head", ""))
    height, width = (v if isinstance(v, int) and v > 0 else None for v in shape[2:])
    batch = shape[0]
    return ModelInfo(
        head=head,
        classes=classes,
        names=names,
        width=width,
        height=height,
        fp16=inputs[0].type == "tensor(float16)",
        dynamic_batch=not (isinstance(batch, int) and batch > 0),
        metadata=metadata,
    )


def _session(path: str | Path) -> Any:
    import onnxruntime as ort

    file = Path(path)
    if not file.is_file():
        raise UnsupportedModel(f"no file {file}")
    with file.open("rb") as handle:
        start = handle.read(64)
    if not start or start.lstrip()[:1] in (b"<", b"{", b"[") or start[:4] == b"PK\x03\x04":
        raise UnsupportedModel(
            f"{file.name} is not an ONNX model (it looks like text, JSON or a zip archive)"
        )
    options = ort.SessionOptions()
    options.log_severity_level = QUIET
    try:
        return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModel(
            f"{file.name} is not a loadable ONNX model (truncated or corrupt?): {reason}"
        ) from exc


def _head(shape: list[Any], named: int, hint: str) -> tuple[str, int]:
    """The layout and class count of a (batch, a, b) output."""
    if len(shape) == 2:
        shape = [1, *shape]
    if len(shape) != 3:
        raise UnsupportedModel(
            f"the output has the shape {shape}; a YOLO detection head gives (batch, 4 + classes, anchors) "
            "or (batch, anchors, 5 + classes)"
        )
    rows, cols = (v if isinstance(v, int) and v > 0 else None for v in shape[1:])
    if named:
        if rows == 4 + named and (cols is None or cols > rows) and hint != "yolov5":
            return "yolov8", named
        if cols == 5 + named and (rows is None or rows > cols):
            return "yolov5", named
        if cols == 6 or rows == 6:
            raise UnsupportedModel(
                f"the output {shape} looks like boxes after NMS (x1, y1, x2, y2, score, class): "
                "export without NMS"
            )
        raise UnsupportedModel(
            f"the output {shape} matches no known head for {named} classes: expected (batch, {4 + named}, "
            f"anchors) for YOLOv8/11 or (batch, anchors, {5 + named}) for YOLOv5"
        )
    if hint in ("yolov5", "yolov8"):
        width = cols if hint == "yolov5" else rows
        if width is not None and width > (5 if hint == "yolov5" else 4):
            return hint, width - (5 if hint == "yolov5" else 4)
    if rows is not None and cols is not None:
        if 4 < rows < cols:
            return "yolov8", rows - 4
        if 5 < cols < rows:
            return "yolov5", cols - 5
    elif rows is not None and rows > 4 and cols is None:
        return "yolov8", rows - 4
    elif cols is not None and cols > 5 and rows is None:
        return "yolov5", cols - 5
    raise UnsupportedModel(
        f"the output has the shape {shape}, which matches no known head: expected (batch, 4 + classes, "
        "anchors) for YOLOv8/11 or (batch, anchors, 5 + classes) for YOLOv5"
    )
