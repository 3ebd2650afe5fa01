"""Tiny ONNX detectors built with onnx's helper API, so the detection tests need no download.

The graph ignores the picture except for its mean brightness m (0..1): the output is a fixed
YOLO-shaped tensor whose class scores are multiplied by m (`scale_by_mean=True`). A white
frame therefore gives exactly the scores written in, and a black frame none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def yolov8_output(anchors: list[tuple[float, float, float, float, list[float]]], classes: int) -> np.ndarray:
    """(1, 4 + classes, A): per anchor centre x, centre y, width, height (input pixels), scores."""
    out = np.zeros((1, 4 + classes, len(anchors)), np.float32)
    for a, (cx, cy, w, h, scores) in enumerate(anchors):
        out[0, :4, a] = (cx, cy, w, h)
        out[0, 4 : 4 + len(scores), a] = scores
    return out


def yolov5_output(
    anchors: list[tuple[float, float, float, float, float, list[float]]], classes: int
) -> np.ndarray:
    """(1, A, 5 + classes): per anchor cx, cy, w, h, objectness, class scores."""
    out = np.zeros((1, len(anchors), 5 + classes), np.float32)
    for a, (cx, cy, w, h, obj, scores) in enumerate(anchors):
        out[0, a, :5] = (cx, cy, w, h, obj)
        out[0, a, 5 : 5 + len(scores)] = scores
    return out


def build_model(
    path: Path,
    output: np.ndarray,
    head: str = "yolov8",
    width: int = 64,
    height: int = 64,
    batch: int | None = 1,
    fp16: bool = False,
    scale_by_mean: bool = True,
    dynamic_size: bool = False,
) -> Path:
    """Write an ONNX model: input "images" (batch, 3, height, width), output "output0" = fixed
    boxes + scores (× the input's mean when scale_by_mean). batch None: a dynamic batch;
    dynamic_size: height and width are named dimensions (any size runs)."""
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    batch_dim: int | str = batch if batch is not None else "N"
    score_mask = np.zeros_like(output)
    if head == "yolov8":
        score_mask[:, 4:, :] = 1.0
    else:
        score_mask[:, :, 4:] = 1.0
    fixed = output * (1 - score_mask) if scale_by_mean else output
    scaled = output * score_mask if scale_by_mean else np.zeros_like(output)
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["mean4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4", "shape3"], ["mean"]),
        helper.make_node("Mul", ["scaled", "mean"], ["scores"]),
        helper.make_node("Add", ["fixed", "scores"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-yolo",
        [
            helper.make_tensor_value_info(
                "images",
                elem,
                [batch_dim, 3, "H" if dynamic_size else height, "W" if dynamic_size else width],
            )
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch_dim, *output.shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
            numpy_helper.from_array(fixed.astype(np.float32), "fixed"),
            numpy_helper.from_array(scaled.astype(np.float32), "scaled"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def white(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


def black(width: int, height: int) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


PERSON_CLASSES = {
    "0": {"label": "Normal", "category": "body"},
    "1": {"label": "Fall", "category": "body", "attributes": ["fall"]},
}


def register_fixed_person_model(
    models_dir: Path,
    detections: list[tuple[float, float, float, float, int, float]],
    name: str = "tiny-person",
    classes: dict | None = None,
    priority: int = 10,
):
    """A registered YOLOv8 detector (input 64×64, the person model's classes by default) that finds
    the same objects in every frame: (centre x, centre y, width, height, class, score) in input
    pixels. Returns the Detector row."""
    from analysis.models import Detector

    classes = classes or PERSON_CLASSES
    count = max(int(i) for i in classes) + 1
    anchors = []
    for cx, cy, w, h, class_id, score in detections:
        scores = [0.0] * count
        scores[class_id] = score
        anchors.append((cx, cy, w, h, scores))
    path = build_model(Path(models_dir) / f"{name}.onnx", yolov8_output(anchors, count), scale_by_mean=False)
    detector, _ = Detector.objects.update_or_create(
        name=name,
        defaults={
            "onnx_file": str(path),
            "head": "yolov8",
            "input_width": 64,
            "input_height": 64,
            "classes": classes,
            "priority": priority,
            "enabled": True,
        },
    )
    return detector
