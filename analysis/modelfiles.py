"""The files of the registered detectors on this machine's disk, as the web host serves them to
nodes without registry access (`GET /models`, `fetch_models --from`, docs/analysis-engine.md).

A detector's files: its ONNX file, the float16 variant beside it (analysis.detect.gpu), and, when
the file is in a folder of its own (face-mtcnn/pnet.onnx), every file of that folder. Only files
under VIAS_MODELS_DIR are listed: a detector registered by a full path elsewhere is not served.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from analysis.models import Detector

_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to VIAS_MODELS_DIR, with "/"
    absolute: Path
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def detector_files(detector: Detector) -> list[ModelFile]:
    from analysis.detect.gpu import fp16_path

    root = Path(settings.VIAS_MODELS_DIR).resolve()
    main = detector.path.resolve()
    if not main.is_file() or not main.is_relative_to(root):
        return []
    candidates = {main, fp16_path(main)}
    if main.parent != root:  # a folder of its own
        candidates.update(p for p in main.parent.iterdir() if p.suffix == ".onnx")
    files = []
    for path in sorted(candidates):
        resolved = path.resolve()
        if resolved.is_file() and resolved.is_relative_to(root):
            relative = resolved.relative_to(root).as_posix()
            files.append(ModelFile(relative, resolved, resolved.stat().st_size, sha256_of(resolved)))
    return files


def served_models() -> list[dict[str, Any]]:
    """The enabled detectors whose files this machine has, with their files."""
    listed = []
    for detector in Detector.objects.filter(enabled=True).order_by("name"):
        files = detector_files(detector)
        if files:
            listed.append(
                {
                    "name": detector.name,
                    "onnx_file": detector.onnx_file,
                    "files": [f.as_dict() for f in files],
                }
            )
    return listed


def served_file(name: str, relative: str) -> ModelFile | None:
    """One listed file of an enabled detector, or None: nothing else is ever served."""
    detector = Detector.objects.filter(enabled=True, name=name).first()
    if detector is None:
        return None
    return next((f for f in detector_files(detector) if f.path == relative), None)
