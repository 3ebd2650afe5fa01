"""Darknet (.cfg + .weights) → ONNX, for the tiny YOLO networks registry packages ship.

The converted graph takes `images` (batch, 3, height, width; RGB 0..1, both sides multiples of
32, every dimension dynamic) and gives `output0` (batch, anchors, 5 + classes) in the YOLOv5
layout the runtime already decodes: centre x, centre y, width, height in input pixels,
objectness and per-class probabilities (Darknet's logistic scores). Batch normalisation is folded
into the convolutions.

Covers what YOLOv3-tiny and YOLOv4-tiny use: convolutional (batch-normalised or biased, leaky or
linear), route (with groups / group_id), maxpool, upsample, shortcut and yolo (with scale_x_y).
Anything else is refused with the layer's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LEAKY_SLOPE = 0.1
BN_EPSILON = 1e-5
OPSET = 13


class DarknetError(ValueError):
    """A .cfg/.weights pair this converter cannot translate faithfully."""


@dataclass
class Section:
    kind: str
    options: dict[str, str] = field(default_factory=dict)

    def integer(self, key: str, default: int = 0) -> int:
        return int(self.options.get(key, default))

    def number(self, key: str, default: float = 0.0) -> float:
        return float(self.options.get(key, default))

    def integers(self, key: str) -> list[int]:
        return [int(v) for v in re.split(r"\s*,\s*", self.options.get(key, "").strip()) if v]


def parse_cfg(text: str) -> list[Section]:
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(Section(line.strip("[]").strip()))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise DarknetError("a Darknet .cfg starts with a [net] section")
    return sections


class _Weights:
    """Darknet's .weights: a small header, then float32 blocks in layer order."""

    def __init__(self, data: bytes) -> None:
        major, minor, _revision = np.frombuffer(data[:12], np.int32)
        seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 4
        self.values = np.frombuffer(data[12 + seen_bytes :], np.float32)
        self.offset = 0

    def take(self, count: int) -> np.ndarray:
        if self.offset + count > len(self.values):
            raise DarknetError("the .weights file is shorter than its .cfg needs (truncated?)")
        block = self.values[self.offset : self.offset + count]
        self.offset += count
        return block.copy()


def convert(cfg_text: str, weights: bytes, names: list[str], metadata: dict[str, str] | None = None) -> bytes:
    """The ONNX model (serialised) for this network; `names` are the class labels in order."""
    import onnx
    from onnx import TensorProto, helper

    sections = parse_cfg(cfg_text)
    builder = _Builder(_Weights(weights))
    outputs: list[str] = []
    channels = [sections[0].integer("channels", 3)]  # channels of each layer's output, input first
    tensors = ["images"]
    strides = [1]
    for index, section in enumerate(sections[1:]):
        name, chans, stride = builder.layer(index, section, tensors, channels, strides, outputs)
        tensors.append(name)
        channels.append(chans)
        strides.append(stride)
    if builder.weights.offset != len(builder.weights.values):
        raise DarknetError(
            f"the .weights file has {len(builder.weights.values) - builder.weights.offset} values "
            "more than the .cfg uses: not the same network"
        )
    if not outputs:
        raise DarknetError("the .cfg has no [yolo] layer")
    classes = builder.classes
    if len(names) != classes:
        raise DarknetError(f"{len(names)} class names for a network with {classes} classes")
    builder.nodes.append(helper.make_node("Concat", outputs, ["output0"], axis=1))
    graph = helper.make_graph(
        builder.nodes,
        "darknet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", "anchors", 5 + classes])],
        initializer=builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    net = sections[0]
    properties = {
        "names": repr(dict(enumerate(names))),
        "stride": str(max(strides)),
        "imgsz": repr([net.integer("height", 416), net.integer("width", 416)]),
        "task": "detect",
        "head": "yolov5",
        **(metadata or {}),
    }
    onnx.helper.set_model_props(model, properties)
    onnx.checker.check_model(model)
    return model.SerializeToString()


class _Builder:
    def __init__(self, weights: _Weights) -> None:
        self.weights = weights
        self.nodes: list = []
        self.initializers: list = []
        self.classes = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def layer(
        self,
        index: int,
        section: Section,
        tensors: list[str],
        channels: list[int],
        strides: list[int],
        outputs: list[str],
    ) -> tuple[str, int, int]:
        """Add one layer; its output tensor, channels and stride. tensors[0] is the input."""
        previous, chans, stride = tensors[-1], channels[-1], strides[-1]

        def ref(offset: int) -> int:  # a .cfg layer reference → a position in `tensors`
            return index + 1 + offset if offset < 0 else offset + 1

        kind = section.kind
        name = f"l{index}_{kind}"
        if kind == "convolutional":
            return (
                self.convolution(name, section, previous, chans),
                section.integer("filters"),
                stride * max(1, section.integer("stride", 1)),
            )
        if kind == "maxpool":
            size, step = section.integer("size", 2), section.integer("stride", 2)
            if step == 1:  # Darknet pads so that the size stays
                padded = self.node(
                    "Pad",
                    [previous, self.const(f"{name}_pads", np.array([0, 0, 0, 0, 0, 0, size - 1, size - 1]))],
                    f"{name}_pad",
                    mode="edge",
                )
                return (
                    self.node("MaxPool", [padded], name, kernel_shape=[size, size], strides=[1, 1]),
                    chans,
                    stride,
                )
            if size != step:
                raise DarknetError(f"layer {index}: maxpool size {size} with stride {step} is not supported")
            return (
                self.node("MaxPool", [previous], name, kernel_shape=[size, size], strides=[step, step]),
                chans,
                stride * step,
            )
        if kind == "upsample":
            step = section.integer("stride", 2)
            scales = self.const(f"{name}_scales", np.array([1, 1, step, step], np.float32))
            out = self.node("Resize", [previous, "", scales], name, mode="nearest")
            return out, chans, stride // step
        if kind == "route":
            layers = [ref(v) for v in section.integers("layers")]
            groups, group = section.integer("groups", 1), section.integer("group_id", 0)
            if len(layers) == 1 and groups == 1:
                return tensors[layers[0]], channels[layers[0]], strides[layers[0]]
            if groups > 1:
                if len(layers) != 1:
                    raise DarknetError(f"layer {index}: grouped routes of several layers are not supported")
                source, width = tensors[layers[0]], channels[layers[0]] // groups
                starts = self.const(f"{name}_starts", np.array([group * width], np.int64))
                ends = self.const(f"{name}_ends", np.array([(group + 1) * width], np.int64))
                axes = self.const(f"{name}_axes", np.array([1], np.int64))
                return self.node("Slice", [source, starts, ends, axes], name), width, strides[layers[0]]
            out = self.node("Concat", [tensors[i] for i in layers], name, axis=1)
            return out, sum(channels[i] for i in layers), strides[layers[0]]
        if kind == "shortcut":
            other = ref(section.integers("from")[0])
            if section.options.get("activation", "linear") != "linear":
                raise DarknetError(f"layer {index}: shortcut activations are not supported")
            return self.node("Add", [previous, tensors[other]], name), chans, stride
        if kind == "yolo":
            outputs.append(self.yolo(name, section, previous, stride))
            return previous, chans, stride
        raise DarknetError(f"layer {index}: [{kind}] is not supported")

    def convolution(self, name: str, section: Section, previous: str, in_channels: int) -> str:
        filters, size = section.integer("filters"), section.integer("size", 1)
        step, groups = section.integer("stride", 1), section.integer("groups", 1)
        padding = size // 2 if section.integer("pad", 0) else section.integer("padding", 0)
        count = filters * (in_channels // groups) * size * size
        if section.integer("batch_normalize", 0):
            bias, scale, mean, var = (self.weights.take(filters) for _ in range(4))
            kernel = self.weights.take(count).reshape(filters, in_channels // groups, size, size)
            factor = scale / np.sqrt(var + BN_EPSILON)
            kernel = kernel * factor[:, None, None, None]
            bias = bias - mean * factor
        else:
            bias = self.weights.take(filters)
            kernel = self.weights.take(count).reshape(filters, in_channels // groups, size, size)
        out = self.node(
            "Conv",
            [
                previous,
                self.const(f"{name}_w", kernel.astype(np.float32)),
                self.const(f"{name}_b", bias.astype(np.float32)),
            ],
            f"{name}_conv",
            kernel_shape=[size, size],
            strides=[step, step],
            pads=[padding] * 4,
            group=groups,
        )
        activation = section.options.get("activation", "linear")
        if activation == "leaky":
            return self.node("LeakyRelu", [out], name, alpha=LEAKY_SLOPE)
        if activation == "linear":
            return self.node("Identity", [out], name)
        raise DarknetError(f"{name}: activation {activation} is not supported")

    def yolo(self, name: str, section: Section, previous: str, stride: int) -> str:
        """Decode one [yolo] layer to (batch, 3·h·w, 5 + classes) in input pixels."""
        classes = section.integer("classes", 80)
        if self.classes and classes != self.classes:
            raise DarknetError("[yolo] layers disagree on the number of classes")
        self.classes = classes
        mask = section.integers("mask")
        pairs = np.array(section.integers("anchors"), np.float32).reshape(-1, 2)[mask]
        scale = section.number("scale_x_y", 1.0)
        depth = 5 + classes
        c = self.const
        shape = self.node("Shape", [previous], f"{name}_shape")
        height = self.node("Gather", [shape, c(f"{name}_i2", np.array(2, np.int64))], f"{name}_h")
        width = self.node("Gather", [shape, c(f"{name}_i3", np.array(3, np.int64))], f"{name}_w")
        cells = self.node("Mul", [height, width], f"{name}_hw")
        index = self.node(
            "Range",
            [c(f"{name}_zero", np.array(0, np.int64)), cells, c(f"{name}_one", np.array(1, np.int64))],
            f"{name}_r",
        )
        grid_x = self.node("Cast", [self.node("Mod", [index, width], f"{name}_gxi")], f"{name}_gx", to=1)
        grid_y = self.node("Cast", [self.node("Div", [index, width], f"{name}_gyi")], f"{name}_gy", to=1)
        axis1 = c(f"{name}_ax1", np.array([1], np.int64))
        grid = self.node(
            "Concat",
            [
                self.node("Unsqueeze", [grid_x, axis1], f"{name}_gx1"),
                self.node("Unsqueeze", [grid_y, axis1], f"{name}_gy1"),
            ],
            f"{name}_grid",
            axis=1,
        )  # (h·w, 2), broadcast over batch and anchors
        cells_first = self.node(
            "Reshape",
            [previous, c(f"{name}_s1", np.array([0, len(mask), depth, -1], np.int64))],
            f"{name}_r1",
        )
        pred = self.node("Transpose", [cells_first], f"{name}_t", perm=[0, 1, 3, 2])  # (b, 3, h·w, depth)

        def part(start: int, end: int, tag: str) -> str:
            return self.node(
                "Slice",
                [
                    pred,
                    c(f"{name}_{tag}s", np.array([start], np.int64)),
                    c(f"{name}_{tag}e", np.array([end], np.int64)),
                    c(f"{name}_{tag}a", np.array([3], np.int64)),
                ],
                f"{name}_part_{tag}",
            )

        xy = self.node("Sigmoid", [part(0, 2, "xy")], f"{name}_xysig")
        xy = self.node("Mul", [xy, c(f"{name}_sc", np.array(scale, np.float32))], f"{name}_xy1")
        xy = self.node("Add", [xy, c(f"{name}_off", np.array(-(scale - 1) / 2, np.float32))], f"{name}_xy2")
        xy = self.node("Add", [xy, grid], f"{name}_xy3")
        xy = self.node("Mul", [xy, c(f"{name}_st", np.array(stride, np.float32))], f"{name}_xy")
        wh = self.node("Exp", [part(2, 4, "wh")], f"{name}_whexp")
        wh = self.node("Mul", [wh, c(f"{name}_anc", pairs.reshape(1, len(mask), 1, 2))], f"{name}_wh")
        scores = self.node("Sigmoid", [part(4, depth, "sc")], f"{name}_scores")
        joined = self.node("Concat", [xy, wh, scores], f"{name}_cat", axis=3)
        return self.node(
            "Reshape", [joined, c(f"{name}_s2", np.array([0, -1, depth], np.int64))], f"{name}_out"
        )


def convert_files(cfg: Path, weights: Path, names: Path, metadata: dict[str, str] | None = None) -> bytes:
    labels = [line.strip() for line in names.read_text().splitlines() if line.strip()]
    return convert(cfg.read_text(), weights.read_bytes(), labels, metadata)
