"""Which onnxruntime execution providers really work on this machine, and the GPU's name.

`onnxruntime.get_available_providers()` lists what the wheel was built with (onnxruntime-gpu
always lists CUDA and TensorRT), not what loads: on a machine without a driver or without the
CUDA libraries, a session asked for CUDA logs errors and quietly falls back to the CPU. So each
candidate is tried once per process on a tiny model, with onnxruntime's logging turned down,
and kept only when the session really runs on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# onnxruntime severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
QUIET = 3
SILENT = 4
_lock = threading.Lock()


def tensorrt_wanted() -> bool:
    """TensorRT is tried only when asked for (settings or environment VIAS_TENSORRT=1): building its
    engines takes minutes on the first run of each model."""
    try:
        from django.conf import settings

        configured = getattr(settings, "VIAS_TENSORRT", None)
    except Exception:  # settings not configured (a bare script)
        configured = None
    if configured is None:
        configured = os.environ.get("VIAS_TENSORRT", "")
    return str(configured).strip().lower() in ("1", "true", "yes", "on")


def _tiny_model() -> bytes:
    """A one-node ONNX model (y = x + x, float32 [1, 4]) serialised with onnx's helper API."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _loads(provider: str, model: bytes) -> bool:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = SILENT
    try:
        session = ort.InferenceSession(model, options, providers=[provider, CPU])
        if session.get_providers()[0] != provider:
            return False
        result = session.run(None, {"x": np.ones((1, 4), np.float32)})[0]
        return bool(np.allclose(result, 2.0))
    except Exception as exc:  # a provider that cannot load raises all kinds of errors
        log.debug("provider %s does not load: %s", provider, exc)
        return False


@cache
def _usable(tensorrt: bool) -> tuple[str, ...]:
    import onnxruntime as ort

    built = set(ort.get_available_providers())
    candidates = [p for p in (TENSORRT if tensorrt else None, CUDA) if p and p in built]
    usable: list[str] = []
    if candidates:
        model = _tiny_model()
        # Failed CUDA/TensorRT loads print through the default logger, not the session's.
        ort.set_default_logger_severity(SILENT)
        try:
            usable = [p for p in candidates if _loads(p, model)]
        finally:
            ort.set_default_logger_severity(QUIET)
    return (*usable, CPU)


def usable_providers() -> list[str]:
    """Providers in preference order (TensorRT when configured, CUDA, CPU last), each verified to
    load here; computed once per process."""
    with _lock:
        return list(_usable(tensorrt_wanted()))


@cache
def gpu_name() -> str:
    """The first GPU's name from nvidia-smi, or "" (no tool, no GPU, or an error)."""
    tool = shutil.which("nvidia-smi")
    if not tool:
        return ""
    try:
        out = subprocess.run(
            [tool, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    return names[0] if names else ""


def registered_models() -> list[str]:
    """Names of the enabled detectors in the registry (empty when the database is not reachable)."""
    try:
        from analysis.models import Detector

        return list(Detector.objects.filter(enabled=True).values_list("name", flat=True))
    except Exception:  # no database yet (a node starting before migrations), or no Django
        return []


def capabilities() -> dict[str, Any]:
    """What the Node row records: providers that load, the GPU's name, the models it can run."""
    import onnxruntime as ort

    return {
        "providers": usable_providers(),
        "gpu": gpu_name(),
        "models": registered_models(),
        "face_fallback": "opencv-haar",
        "onnxruntime": ort.__version__,
    }
