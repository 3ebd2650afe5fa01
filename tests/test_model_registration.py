"""Registering a model file (analysis.detect.registry.register_model, Detector.clean): the head,
classes and input size are read from the ONNX file; files that are not a runnable YOLO detection
export are refused with the reason and nothing is registered. Tiny models built in the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from django.core.exceptions import ValidationError

from analysis.detect.registry import classes_from_names, register_model
from analysis.models import Detector
from tests.onnx_models import build_model, yolov5_output, yolov8_output
from vias.lib import onnx_heads

COCO_NAMES = (
    "{0: 'person', 1: 'bicycle', 2: 'car', 3: 'motorcycle', 4: 'airplane', 5: 'bus', 6: 'train', 7: 'truck'}"
)


def with_metadata(path: Path, **properties: str) -> Path:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, properties)
    onnx.save(model, str(path))
    return path


def v8(tmp_path: Path, classes: int = 8, name: str = "v8.onnx", **meta: str) -> Path:
    path = build_model(tmp_path / name, yolov8_output([(32, 32, 8, 8, [0.9])] * 40, classes), batch=None)
    return with_metadata(path, **meta) if meta else path


def v5(tmp_path: Path, classes: int = 8, name: str = "v5.onnx", **meta: str) -> Path:
    output = yolov5_output([(32, 32, 8, 8, 0.9, [0.9])] * 40, classes)
    path = build_model(tmp_path / name, output, head="yolov5", batch=None)
    return with_metadata(path, **meta) if meta else path


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.VIAS_MODELS_DIR = tmp_path
    return tmp_path


def test_a_yolov8_or_yolo11_export_registers_with_its_classes_from_the_metadata(db, models_dir):
    path = v8(models_dir, names=COCO_NAMES, description="Ultralytics YOLO11n model trained on coco.yaml")
    info = onnx_heads.inspect(path)
    assert (info.head, info.classes, info.family) == ("yolov8", 8, "YOLO11")
    detector, changed = register_model("yolo11n", path.name)
    assert changed and detector.head == "yolov8" and (detector.input_width, detector.input_height) == (64, 64)
    assert detector.classes == {
        "0": {"label": "person", "category": "body"},
        "1": {"label": "bicycle", "category": "no_motor"},
        "2": {"label": "car", "category": "motor"},
        "3": {"label": "motorcycle", "category": "motor"},
        "5": {"label": "bus", "category": "motor"},
        "7": {"label": "truck", "category": "motor"},
    }  # airplane and train count as nothing here
    assert register_model("yolo11n", path.name) == (detector, False)  # idempotent


def test_a_yolov5_export_is_told_apart_by_its_output_shape(db, models_dir):
    path = v5(models_dir, names=COCO_NAMES)
    assert onnx_heads.inspect(path).head == "yolov5"
    detector, _ = register_model("yolov5s", path.name)
    assert detector.head == "yolov5" and detector.categories() == {"body", "motor", "no_motor"}


def test_without_names_the_static_shape_decides_and_a_class_table_is_needed(db, models_dir):
    path = v8(models_dir, classes=3)
    assert (onnx_heads.inspect(path).head, onnx_heads.inspect(path).classes) == ("yolov8", 3)
    with pytest.raises(ValueError, match="none of the model's classes"):
        register_model("anon", path.name)
    detector, _ = register_model("anon", path.name, classes={"2": {"label": "face", "category": "face"}})
    assert detector.categories() == {"face"}
    assert not Detector.objects.filter(name="anon").exclude(pk=detector.pk).exists()


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            lambda d: (d / "text.onnx").write_text("<html>not a model</html>") and d / "text.onnx",
            "not an ONNX model",
        ),
        (lambda d: (d / "zip.onnx").write_bytes(b"PK\x03\x04rest") and d / "zip.onnx", "zip"),
        (
            lambda d: (d / "junk.onnx").write_bytes(np.random.default_rng(1).bytes(4096)) and d / "junk.onnx",
            "not a loadable",
        ),
        (lambda d: _truncated(d), "not a loadable"),
        (lambda d: v8(d, classes=8, names="{0: 'person', 1: 'car'}"), "no known head for 2 classes"),
        (lambda d: v8(d, task="segment", names=COCO_NAMES), "segment model"),
        (lambda d: v8(d, end2end="True"), "end-to-end"),
        (lambda d: _shaped(d, [1, 300, 6], names="{0: 'person', 1: 'car'}"), "after NMS"),
        (lambda d: _shaped(d, [1, 4, 8400]), "matches no known head"),
        (lambda d: _shaped(d, [1, 84, 8400, 1]), "a YOLO detection head gives"),
        (lambda d: Path(d / "missing.onnx"), "no file"),
    ],
    ids=[
        "text",
        "zip",
        "random-bytes",
        "truncated",
        "names-mismatch",
        "segmentation",
        "end2end",
        "nms-output",
        "too-few-rows",
        "4d-output",
        "missing",
    ],
)
def test_files_that_are_no_runnable_detector_are_refused_and_nothing_is_registered(
    db, models_dir, make, reason
):
    path = make(models_dir)
    with pytest.raises(ValueError, match=reason):
        register_model("bad", Path(path).name)
    assert not Detector.objects.filter(name="bad").exists()


def test_the_admin_validation_refuses_a_bad_file_or_a_wrong_head(db, models_dir):
    (models_dir / "notes.onnx").write_text("hello")
    row = Detector(name="typed", onnx_file="notes.onnx", classes={"0": {"category": "body"}})
    with pytest.raises(ValidationError) as refused:
        row.full_clean()
    assert "not a loadable ONNX model" in str(refused.value.message_dict["onnx_file"])
    path = v5(models_dir, names=COCO_NAMES)
    row = Detector(name="typed", onnx_file=path.name, head="yolov8", classes={"0": {"category": "body"}})
    with pytest.raises(ValidationError) as refused:
        row.full_clean()
    assert "yolov5 head, not yolov8" in str(refused.value.message_dict["head"])
    row = Detector(name="typed", onnx_file=path.name, head="yolov5", classes={"12": {"category": "body"}})
    with pytest.raises(ValidationError, match="no class 12"):
        row.full_clean()


def test_class_names_map_onto_categories():
    assert classes_from_names({0: "person", 3: "motorbike", 9: "face", 4: "sheep"}) == {
        "0": {"label": "person", "category": "body"},
        "3": {"label": "motorbike", "category": "motor"},
        "9": {"label": "face", "category": "face"},
    }
    assert onnx_heads.parse_names("['person', 'car']") == {0: "person", 1: "car"}
    assert onnx_heads.parse_names("__import__('os')") == {}


def _truncated(directory: Path) -> Path:
    data = v8(directory, names=COCO_NAMES, name="whole.onnx").read_bytes()
    path = directory / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _shaped(directory: Path, shape: list[int], **meta: str) -> Path:
    """A model whose single output has this static shape (zeros)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Mul", ["zeros", "one"], ["output0"]),
        ],
        "odd",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)],
        initializer=[
            numpy_helper.from_array(np.zeros(shape, np.float32), "zeros"),
            numpy_helper.from_array(np.ones(1, np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if meta:
        helper.set_model_props(model, meta)
    path = directory / "shaped.onnx"
    onnx.save(model, str(path))
    return path
