"""How a session is set up on a GPU: explicit provider options, the float16 variant of a model
file, and IO binding. Everything here is chosen from the providers that really load
(analysis.detect.providers), so on a CPU-only machine it all falls back to plain CPU sessions.

Environment (all optional):
  VIAS_CUDA_DEVICE     GPU index for this process (default 0; one process per GPU)
  VIAS_CUDNN_SEARCH    HEURISTIC (default: cuDNN's heuristics pick a convolution algorithm at
                       once), EXHAUSTIVE (benchmarks every algorithm once per input shape, then
                       caches the fastest: worth it for one fixed shape, but batches of 1..32
                       and one rectangle per camera aspect make dozens of shapes, each costing a
                       search of seconds on first use) or DEFAULT
  VIAS_FP16            0 turns off the float16 variant on GPUs (default on when the file exists)
  VIAS_IO_BINDING      1 forces IO binding on the CPU too (the GPU uses it always)
  VIAS_TRT_CACHE       TensorRT engine cache directory (default VIAS_DATA_DIR/trt-cache)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from analysis.detect.providers import CPU, CUDA, TENSORRT

GPU_PROVIDERS = (TENSORRT, CUDA)
FP16_SUFFIX = ".fp16.onnx"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def cuda_device() -> int:
    try:
        return max(0, int(_env("VIAS_CUDA_DEVICE", "0")))
    except ValueError:
        return 0


def trt_cache_dir() -> Path:
    configured = os.environ.get("VIAS_TRT_CACHE", "").strip()
    if configured:
        return Path(configured)
    try:
        from django.conf import settings

        return Path(settings.DATA_DIR) / "trt-cache"
    except Exception:  # a bare script without settings
        return Path(".cache") / "trt-cache"


def provider_options(provider: str, model: str | Path | None = None) -> dict[str, str]:
    """onnxruntime options for a provider; {} for the CPU. For TensorRT and a model with dynamic
    dimensions, one optimisation profile covering batches 1..32 and inputs up to 640×640, so a
    new batch size or frame aspect does not build a new engine."""
    device = str(cuda_device())
    if provider == CUDA:
        return {
            "device_id": device,
            # Grow the arena by what is asked, not in doubling chunks: several models share a GPU.
            "arena_extend_strategy": "kSameAsRequested",
            "cudnn_conv_algo_search": _env("VIAS_CUDNN_SEARCH", "HEURISTIC").upper(),
            "cudnn_conv_use_max_workspace": "1",
            "do_copy_in_default_stream": "1",
        }
    if provider == TENSORRT:
        cache = trt_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "device_id": device,
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": "True" if fp16_wanted() else "False",
            **(trt_profile(model) if model is not None else {}),
        }
    return {}


def trt_profile(model: str | Path, max_batch: int = 32, longest: int = 640) -> dict[str, str]:
    """TensorRT's min/opt/max input shapes for a model whose batch or sides are dynamic."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        return {}
    dims = inputs[0].type.tensor_type.shape.dim
    fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    if len(fixed) != 4 or all(v is not None for v in fixed):
        return {}

    def shape(batch: int, side: int) -> str:
        values = [v if v is not None else x for v, x in zip(fixed, (batch, 3, side, side), strict=True)]
        return f"{inputs[0].name}:" + "x".join(map(str, values))

    return {
        "trt_profile_min_shapes": shape(1, 32),
        "trt_profile_opt_shapes": shape(max_batch, longest),
        "trt_profile_max_shapes": shape(max_batch, longest),
    }


def with_options(providers: list[str] | tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """The providers as onnxruntime takes them with options: [(name, {option: value}), ...]."""
    return [(provider, provider_options(provider)) for provider in providers]


def on_gpu(providers: list[str] | tuple[str, ...]) -> bool:
    return bool(providers) and providers[0] in GPU_PROVIDERS


def fp16_wanted() -> bool:
    return _env("VIAS_FP16", "1").lower() not in ("0", "false", "no", "off")


def fp16_path(path: str | Path) -> Path:
    """Where install time puts a model's float16 variant: model.onnx → model.fp16.onnx."""
    path = Path(path)
    return path if path.name.endswith(FP16_SUFFIX) else path.with_name(path.stem + FP16_SUFFIX)


def model_file(path: str | Path, providers: list[str] | tuple[str, ...]) -> Path:
    """The file to load: the float16 variant where the first provider runs float16 (a GPU) and
    it was made at install time, the file itself otherwise (the CPU runs float32 faster)."""
    variant = fp16_path(path)
    if on_gpu(providers) and fp16_wanted() and variant.is_file():
        return variant
    return Path(path)


def io_binding_wanted(session: Any) -> bool:
    first = session.get_providers()[0]
    return first in GPU_PROVIDERS or _env("VIAS_IO_BINDING", "0") in ("1", "true", "yes")


def io_device(session: Any) -> str:
    return "cuda" if session.get_providers()[0] in GPU_PROVIDERS else "cpu"


def run_bound(
    session: Any, input_name: str, output_name: str, blob: Any, device: str, inputs: dict | None = None
) -> Any:
    """One run through IO binding: the input copied into a device buffer kept per shape in
    `inputs` (no device allocation per run), the output left on the device by the run and
    copied back in one transfer. Pinned host memory is not used: onnxruntime's Python API has
    no pinned host allocation (its device types are cpu, cuda, ...; no cuda_pinned)."""
    import onnxruntime as ort

    binding = session.io_binding()
    device_id = cuda_device() if device == "cuda" else 0
    key = (blob.shape, blob.dtype.str)
    value = inputs.get(key) if inputs is not None else None
    if value is None:
        value = ort.OrtValue.ortvalue_from_shape_and_type(blob.shape, blob.dtype, device, device_id)
        if inputs is not None:
            inputs[key] = value
    value.update_inplace(blob)
    binding.bind_ortvalue_input(input_name, value)
    binding.bind_output(output_name, device, device_id)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


__all__ = [
    "CPU",
    "FP16_SUFFIX",
    "cuda_device",
    "fp16_path",
    "io_binding_wanted",
    "model_file",
    "on_gpu",
    "provider_options",
    "run_bound",
    "with_options",
]
