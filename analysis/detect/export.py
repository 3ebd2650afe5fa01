"""Install-time rewrites of a YOLO ONNX export, done once per model file with the pinned `onnx`:

- `dynamic_input_size`: an Ultralytics YOLOv8/v5 export made with a fixed 640×640 input keeps
  its anchor grid and strides as constants (8400 anchors) and bakes the anchor count into a few
  Reshape shapes. Replacing the constants by a small subgraph that computes the same grid from
  the input's height and width (Shape → Range → Expand, per stride 8/16/32), and the baked counts
  by -1, lets the model take any stride-aligned rectangle. At the nominal size the outputs must
  equal the original's, or the rewrite is refused (None).
- `float16_variant`: the model with float16 weights and input, for providers that run float16
  (CUDA, TensorRT); made with onnxruntime's own converter (onnxruntime.transformers.float16).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)
_QUIET = 3


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics' make_anchors for these input sizes: anchor centres (2, A) and strides (A,)."""
    points, strides = [], []
    for stride in STRIDES:
        w, h = width // stride, height // stride
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full(w * h, stride))
    return np.concatenate(points, axis=1), np.concatenate(strides)


def _dims(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def dynamic_input_size(model_bytes: bytes) -> bytes | None:
    """The model with dynamic height and width, or None when its graph is not the expected YOLO
    export (no anchor constants found, a fixed size elsewhere) or the result differs."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    dims = _dims(graph.input[0])
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[2:]):
        return None  # already dynamic, or not an image model
    height, width = dims[2], dims[3]
    if height % max(STRIDES) or width % max(STRIDES):
        return None
    anchors, strides = _grid(width, height)
    count = anchors.shape[1]
    anchor_names, stride_names = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if (
            array.size == 2 * count
            and array.shape[-2:] == (2, count)
            and np.allclose(array.reshape(2, count), anchors)
        ):
            anchor_names.append((init.name, array.shape, array.dtype))
        elif array.size == count and array.shape[-1] == count and np.allclose(array.ravel(), strides):
            stride_names.append((init.name, array.shape, array.dtype))
    if not anchor_names or not stride_names:
        return None
    replaced = {name for name, _s, _d in anchor_names + stride_names}
    reshapes = _reshape_constants(graph, count)
    if reshapes is None:
        return None
    nodes = _grid_nodes(graph.input[0].name, anchor_names, stride_names)
    kept = [init for init in graph.initializer if init.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for name, array in reshapes.items():
        _set_initializer(graph, name, array)
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *existing])
    graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    graph.input[0].type.tensor_type.shape.dim[3].dim_param = "width"
    for output in graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value == count:
                dim.dim_param = "anchors"
    del graph.value_info[:]
    data = model.SerializeToString()
    return data if _same_at_nominal_size(model_bytes, data, (width, height)) else None


def _reshape_constants(graph, count: int) -> dict[str, np.ndarray] | None:
    """Reshape shape constants that name the anchor count, with that dimension made -1."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}
    patched: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        name = node.input[1]
        if name in initializers:
            shape = numpy_helper.to_array(initializers[name])
        elif name in constants:
            held = numpy_helper.to_array(constants[name].attribute[0].t)
            if count in held.tolist():
                return None  # the count in a Constant node: not the layout this rewrite knows
            continue
        else:
            continue  # computed at run time
        if count not in shape.tolist():
            continue
        if -1 in shape.tolist() or shape.tolist().count(count) != 1:
            return None
        fixed = shape.copy()
        fixed[fixed.tolist().index(count)] = -1
        patched[name] = fixed
    return patched


def _set_initializer(graph, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(array, name))
            return


def _grid_nodes(image: str, anchor_names, stride_names) -> list:
    """Nodes computing, from the input's shape, the anchors (2, A) and strides (1, A) under the
    names of the constants they replace (reshaped to each constant's own shape)."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value) -> object:
        return helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name)
        )

    p = "vias_grid/"
    nodes = [
        helper.make_node("Shape", [image], [p + "shape"]),
        const(p + "i2", np.array([2], np.int64)),
        const(p + "i3", np.array([3], np.int64)),
        helper.make_node("Gather", [p + "shape", p + "i2"], [p + "h"], axis=0),
        helper.make_node("Gather", [p + "shape", p + "i3"], [p + "w"], axis=0),
        const(p + "zero", np.array(0, np.int64)),
        const(p + "one", np.array(1, np.int64)),
        const(p + "half", np.array(0.5, np.float32)),
        const(p + "ax0", np.array([0], np.int64)),
        const(p + "ax1", np.array([1], np.int64)),
        const(p + "row", np.array([1, -1], np.int64)),
    ]
    points, steps = [], []
    for stride in STRIDES:
        q = f"{p}s{stride}/"
        nodes += [
            const(q + "stride", np.array([stride], np.int64)),
            helper.make_node("Div", [p + "h", q + "stride"], [q + "h"]),
            helper.make_node("Div", [p + "w", q + "stride"], [q + "w"]),
            helper.make_node("Squeeze", [q + "h", p + "ax0"], [q + "h0"]),
            helper.make_node("Squeeze", [q + "w", p + "ax0"], [q + "w0"]),
            helper.make_node("Range", [p + "zero", q + "h0", p + "one"], [q + "ry"]),
            helper.make_node("Range", [p + "zero", q + "w0", p + "one"], [q + "rx"]),
            helper.make_node("Cast", [q + "ry"], [q + "fy"], to=TensorProto.FLOAT),
            helper.make_node("Cast", [q + "rx"], [q + "fx"], to=TensorProto.FLOAT),
            helper.make_node("Add", [q + "fy", p + "half"], [q + "cy"]),
            helper.make_node("Add", [q + "fx", p + "half"], [q + "cx"]),
            helper.make_node("Concat", [q + "h", q + "w"], [q + "hw"], axis=0),
            helper.make_node("Unsqueeze", [q + "cy", p + "ax1"], [q + "col"]),  # (h, 1)
            helper.make_node("Unsqueeze", [q + "cx", p + "ax0"], [q + "line"]),  # (1, w)
            helper.make_node("Expand", [q + "col", q + "hw"], [q + "gy"]),
            helper.make_node("Expand", [q + "line", q + "hw"], [q + "gx"]),
            helper.make_node("Reshape", [q + "gx", p + "row"], [q + "x"]),
            helper.make_node("Reshape", [q + "gy", p + "row"], [q + "y"]),
            helper.make_node("Concat", [q + "x", q + "y"], [q + "xy"], axis=0),  # (2, h*w)
            const(q + "value", np.array([[float(stride)]], np.float32)),
            helper.make_node("Mul", [q + "h", q + "w"], [q + "n"]),
            helper.make_node("Concat", [p + "one_1d", q + "n"], [q + "shape"], axis=0),
            helper.make_node("Expand", [q + "value", q + "shape"], [q + "steps"]),  # (1, h*w)
        ]
        points.append(q + "xy")
        steps.append(q + "steps")
    nodes += [
        const(p + "one_1d", np.array([1], np.int64)),
        helper.make_node("Concat", points, [p + "anchors"], axis=1),
        helper.make_node("Concat", steps, [p + "strides"], axis=1),
    ]
    for target, (names, source) in (
        ("anchors", (anchor_names, p + "anchors")),
        ("strides", (stride_names, p + "strides")),
    ):
        for index, (name, shape, dtype) in enumerate(names):
            shaped = f"{p}{target}{index}/shape"
            nodes.append(const(shaped, np.array([-1 if d not in (1, 2) else d for d in shape], np.int64)))
            cast = f"{p}{target}{index}/f"
            nodes.append(
                helper.make_node(
                    "Cast", [source], [cast], to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
                )
            )
            nodes.append(helper.make_node("Reshape", [cast, shaped], [name]))
    return _ordered(nodes)


def _ordered(nodes: list) -> list:
    """Constants first, so every node's inputs are defined before it (ONNX wants a sorted graph)."""
    return [n for n in nodes if n.op_type == "Constant"] + [n for n in nodes if n.op_type != "Constant"]


def _session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _same_at_nominal_size(before: bytes, after: bytes, size: tuple[int, int]) -> bool:
    try:
        original, patched = _session(before), _session(after)
        spec = original.get_inputs()[0]
        dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        sample = np.random.default_rng(0).random((1, 3, size[1], size[0]), dtype=np.float32).astype(dtype)
        expected = original.run(None, {spec.name: sample})[0]
        got = patched.run(None, {spec.name: sample})[0]
        # A stride-aligned rectangle must run too and give the grid's anchor count.
        small = np.zeros((1, 3, max(STRIDES), 2 * max(STRIDES)), dtype)
        anchors = patched.run(None, {spec.name: small})[0]
    except Exception as exc:  # the rewritten graph does not run: keep the original
        log.warning("dynamic input size refused: %s", exc)
        return False
    expected_count = _grid(2 * max(STRIDES), max(STRIDES))[0].shape[1]
    return bool(np.allclose(got, expected, rtol=1e-4, atol=1e-3)) and expected_count in anchors.shape


def float16_variant(model_bytes: bytes) -> bytes | None:
    """Float16 weights and float16 input/output, or None when the converter fails."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load_from_string(model_bytes), keep_io_types=False)
        return model.SerializeToString()
    except Exception as exc:  # an op the converter does not know
        log.warning("no float16 variant: %s", exc)
        return None
