"""Running a registered YOLO detector: one onnxruntime session per model file per process, shared
by every frame, subtask and thread of that process; batches where the model allows them."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Protocol

import numpy as np

from analysis.detect import yolo
from analysis.detect.providers import QUIET, usable_providers

log = logging.getLogger(__name__)

# Largest batch sent to a model with a dynamic batch dimension.
MAX_BATCH = 16


@dataclass(frozen=True, slots=True)
class Detection:
    """One object in one frame: box x1, y1, x2, y2 in the frame's pixels."""

    box: tuple[float, float, float, float]
    score: float
    category: str
    label: str = ""
    class_id: int = 0
    attributes: tuple[str, ...] = ()
    detector: str = ""

    @property
    def bottom_centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, self.box[3])


@dataclass(frozen=True)
class ClassSpec:
    label: str
    category: str
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectorSpec:
    """What running a detector needs, detached from the database row (hashable, picklable)."""

    name: str
    path: str
    head: str = "yolov8"
    input_width: int = 640
    input_height: int = 640
    classes: tuple[tuple[int, ClassSpec], ...] = ()
    score_threshold: float = 0.35
    nms_iou: float = 0.45
    filters: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    fp16: bool = False

    @classmethod
    def from_model(cls, detector: Any) -> DetectorSpec:
        """From an analysis.models.Detector row."""
        classes = tuple(
            sorted(
                (
                    int(index),
                    ClassSpec(
                        str(spec.get("label", index)), spec["category"], tuple(spec.get("attributes", []))
                    ),
                )
                for index, spec in detector.classes.items()
            )
        )
        filters = tuple(
            sorted(
                (category, tuple(sorted(limits.items())))
                for category, limits in (detector.filters or {}).items()
            )
        )
        return cls(
            name=detector.name,
            path=str(detector.path),
            head=detector.head,
            input_width=detector.input_width,
            input_height=detector.input_height,
            classes=classes,
            score_threshold=detector.score_threshold,
            nms_iou=detector.nms_iou,
            filters=filters,
            fp16=detector.fp16,
        )

    def categories(self) -> frozenset[str]:
        return frozenset(spec.category for _i, spec in self.classes)

    def filter_table(self) -> dict[str, dict[str, float]]:
        return {category: dict(limits) for category, limits in self.filters}


class FrameDetector(Protocol):
    name: str
    categories: frozenset[str]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]: ...


# -- sessions --------------------------------------------------------------------------------

_sessions: dict[tuple[Any, ...], Any] = {}
_sessions_lock = threading.Lock()


def intra_op_threads() -> int:
    """onnxruntime intra-op threads (VIAS_ORT_THREADS; 0: onnxruntime's choice, one per core)."""
    try:
        return max(0, int(os.environ.get("VIAS_ORT_THREADS", "0")))
    except ValueError:
        return 0


def spinning() -> bool:
    """Whether onnxruntime's idle worker threads spin (VIAS_ORT_SPIN=1). Off by default: a spinning
    pool starves the decode-ahead thread on a machine with few cores."""
    return os.environ.get("VIAS_ORT_SPIN", "0").strip() in ("1", "true", "yes")


def get_session(path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> Any:
    """The process's session for this model file, created on first use (thread-safe). A file that
    changes on disk (same path, new mtime or size) gets a new session."""
    import onnxruntime as ort

    resolved = Path(path).resolve()
    stat = resolved.stat()
    chosen = tuple(providers or usable_providers())
    threads = intra_op_threads() if threads is None else threads
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, chosen, threads, spinning())
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            options.log_severity_level = QUIET
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning() else "0")
            session = ort.InferenceSession(str(resolved), options, providers=list(chosen))
            for stale in [k for k in _sessions if k[0] == key[0]]:
                del _sessions[stale]
            _sessions[key] = session
            log.info("loaded %s on %s", resolved.name, session.get_providers()[0])
        return session


# -- YOLO ------------------------------------------------------------------------------------


class YoloDetector:
    """A YOLOv8 / YOLOv5 ONNX detector restricted to some categories."""

    def __init__(
        self, spec: DetectorSpec, categories: Iterable[str] | None = None, session: Any = None
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.categories = frozenset(categories) if categories is not None else spec.categories()
        self.session = session if session is not None else get_session(spec.path)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.fp16 = spec.fp16 or model_input.type == "tensor(float16)"
        batch = model_input.shape[0] if model_input.shape else 1
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else MAX_BATCH
        shape = model_input.shape
        # The model's own input size wins over the registry when it is fixed.
        self.height = shape[2] if len(shape) == 4 and isinstance(shape[2], int) else spec.input_height
        self.width = shape[3] if len(shape) == 4 and isinstance(shape[3], int) else spec.input_width
        table = dict(spec.classes)
        size = max(table) + 1 if table else 0
        self._category = np.array(
            [table[i].category if i in table else "" for i in range(size)], dtype=object
        )
        self._wanted = np.array(
            [i in table and table[i].category in self.categories for i in range(size)], dtype=bool
        )
        self._labels = [table[i].label if i in table else "" for i in range(size)]
        self._attributes = [table[i].attributes if i in table else () for i in range(size)]
        self._filters = spec.filter_table()
        limits = [spec.score_threshold] + [f["min_score"] for f in self._filters.values() if "min_score" in f]
        self._threshold = min(limits)

    def __repr__(self) -> str:
        return f"YoloDetector({self.name!r}, {sorted(self.categories)})"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        results: list[list[Detection]] = []
        for start in range(0, len(frames), self.max_batch):
            results.extend(self._run(frames[start : start + self.max_batch]))
        return results

    def infer(self, blob: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: blob})[0]

    def preprocess(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[yolo.Letterbox]]:
        boxed = [yolo.letterbox(frame, self.width, self.height) for frame in frames]
        return yolo.to_blob([b[0] for b in boxed], self.fp16), [b[1] for b in boxed]

    def _run(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        blob, boxes = self.preprocess(frames)
        return self.postprocess(self.infer(blob), boxes)

    def postprocess(self, output: np.ndarray, letterboxes: Sequence[yolo.Letterbox]) -> list[list[Detection]]:
        results = []
        for candidates, box in zip(
            yolo.decode(output, self.spec.head, self._threshold), letterboxes, strict=True
        ):
            # Classes the registry does not map, or that map onto categories not asked for, go first.
            ids = candidates.class_ids
            known = ids < len(self._wanted)
            known[known] = self._wanted[ids[known]]
            candidates = yolo.Candidates(candidates.boxes[known], candidates.scores[known], ids[known])
            kept = yolo.nms(candidates, self.spec.nms_iou)
            pixels = yolo.unletterbox(kept.boxes, box)
            categories = self._category[kept.class_ids] if len(kept.class_ids) else np.zeros(0, dtype=object)
            mask = yolo.filter_mask(pixels, kept.scores, categories, self._filters, self.spec.score_threshold)
            results.append(
                [
                    Detection(
                        box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                        score=float(s),
                        category=str(self._category[c]),
                        label=self._labels[c],
                        class_id=int(c),
                        attributes=self._attributes[c],
                        detector=self.name,
                    )
                    for b, s, c in zip(pixels[mask], kept.scores[mask], kept.class_ids[mask], strict=True)
                ]
            )
        return results


# -- sharing one detector between threads (concurrent subtasks on one GPU) --------------------


@dataclass
class _Request:
    frames: Sequence[np.ndarray]
    future: Future = field(default_factory=Future)


class BatchingDetector:
    """Collects frames that several threads (concurrent subtasks or streams in one process) ask
    about and runs them as one batch through the shared detector. Waits at most `max_wait_s` after
    the first request for others to join. Same interface as the detector it wraps."""

    def __init__(self, inner: FrameDetector, max_batch: int = MAX_BATCH, max_wait_s: float = 0.004) -> None:
        self.inner = inner
        self.name = inner.name
        self.categories = inner.categories
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: SimpleQueue[_Request | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"batch-{inner.name}", daemon=True)
        self._thread.start()
        self.batches = 0
        self.frames = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        request = _Request(frames)
        self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.frames)
            stop = False
            while size < self.max_batch:
                try:
                    more = self._queue.get(timeout=self.max_wait_s)
                except Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
                size += len(more.frames)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Request]) -> None:
        frames = [frame for request in batch for frame in request.frames]
        try:
            results = self.inner.detect_batch(frames)
        except BaseException as exc:  # every waiting caller gets the error
            for request in batch:
                request.future.set_exception(exc)
            return
        self.batches += 1
        self.frames += len(frames)
        start = 0
        for request in batch:
            request.future.set_result(results[start : start + len(request.frames)])
            start += len(request.frames)
