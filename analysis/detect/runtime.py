"""Running a registered YOLO detector: one onnxruntime session per model file per process, shared
by every frame, subtask and thread of that process; batches where the model allows them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue, SimpleQueue
from typing import Any, Protocol, cast

import numpy as np

from analysis.detect import gpu, yolo
from analysis.detect.preprocess import BatchBuffers, BufferPool, InputShape
from analysis.detect.providers import QUIET, usable_providers

log = logging.getLogger(__name__)

# Largest batch sent to a model with a dynamic batch dimension.
MAX_BATCH = 32


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


def group_by_size(
    frames: Sequence[np.ndarray], size_of: Callable[[np.ndarray], tuple[int, int]]
) -> list[list[int]]:
    """Indices of the frames, grouped by the input size they need (first-seen order)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, frame in enumerate(frames):
        groups.setdefault(size_of(frame), []).append(index)
    return list(groups.values())


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
            session = ort.InferenceSession(
                str(resolved),
                options,
                providers=list(chosen),
                provider_options=[gpu.provider_options(p, resolved) for p in chosen],
            )
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
        if session is None:
            session = get_session(gpu.model_file(spec.path, usable_providers()))
        self.session = session
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        # The file decides the input type: a registry saying fp16 over a float32 file must not
        # send float16 (onnxruntime refuses it); the float16 variant is a file of its own.
        self.fp16 = model_input.type == "tensor(float16)"
        self.input_dtype = np.float16 if self.fp16 else np.float32
        shape = list(model_input.shape)
        batch = shape[0] if shape else 1
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else MAX_BATCH
        # The model's own input size wins over the registry when it is fixed; a dynamic one takes
        # the registry's size as the longest it letterboxes to.
        fixed_h = len(shape) == 4 and isinstance(shape[2], int) and shape[2] > 0
        fixed_w = len(shape) == 4 and isinstance(shape[3], int) and shape[3] > 0
        self.height = shape[2] if fixed_h else spec.input_height
        self.width = shape[3] if fixed_w else spec.input_width
        self.input_shape = InputShape(
            self.width, self.height, dynamic=len(shape) == 4 and not (fixed_h or fixed_w)
        )
        self._local = threading.local()
        self.output_name = self.session.get_outputs()[0].name
        self.io_binding = gpu.io_binding_wanted(self.session)
        self._device = gpu.io_device(self.session)
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
        # NMS groups: classes that mean the same to the rules (one category, the same attributes)
        # compete with each other, so a car also scored as a truck is one box, not two boxes that
        # the category's tracker would take for two vehicles. Normal / Fall stay apart.
        meaning: dict[tuple[str, tuple[str, ...]], int] = {}
        self._nms_groups = np.array(
            [
                meaning.setdefault((table[i].category, table[i].attributes), len(meaning))
                if i in table
                else -1 - i
                for i in range(size)
            ],
            dtype=np.int64,
        )
        self._filters = spec.filter_table()
        limits = [spec.score_threshold] + [f["min_score"] for f in self._filters.values() if "min_score" in f]
        self._threshold = min(limits)

    def __repr__(self) -> str:
        return f"YoloDetector({self.name!r}, {sorted(self.categories)})"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def input_size(self, frame: np.ndarray) -> tuple[int, int]:
        """(width, height) of the model input this frame is letterboxed into."""
        return self.input_shape.size_for(frame.shape[1], frame.shape[0])

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Frames of one input size go through the model together, at most max_batch at a time."""
        results: list[list[Detection] | None] = [None] * len(frames)
        for indices in group_by_size(frames, self.input_size):
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                for index, found in zip(chunk, self._run([frames[i] for i in chunk]), strict=True):
                    results[index] = found
        return [found or [] for found in results]

    def infer(self, blob: np.ndarray) -> np.ndarray:
        if self.io_binding:
            inputs = getattr(self._local, "device_inputs", None)
            if inputs is None:
                inputs = self._local.device_inputs = {}
            return gpu.run_bound(self.session, self.input_name, self.output_name, blob, self._device, inputs)
        return self.session.run(None, {self.input_name: blob})[0]

    def preprocess(
        self, frames: Sequence[np.ndarray], buffers: BatchBuffers | None = None
    ) -> tuple[np.ndarray, list[yolo.Letterbox]]:
        """Letterbox + normalise frames of one input size into `buffers` (this thread's own when
        not given: the answer stays valid until this thread's next call)."""
        if buffers is None:
            buffers = getattr(self._local, "buffers", None)
            if buffers is None:
                buffers = self._local.buffers = BatchBuffers(self.input_dtype)
        width, height = self.input_size(frames[0])
        return buffers.prepare(frames, width, height)

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
            kept = yolo.nms(candidates, self.spec.nms_iou, groups=self._nms_groups)
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


@dataclass
class _Open:
    """A batch being collected: requests whose frames share one input size."""

    deadline: float
    requests: list[_Request] = field(default_factory=list)
    size: int = 0


@dataclass
class _Batch:
    requests: list[_Request]
    blob: Any = None
    letterboxes: list[Any] = field(default_factory=list)
    buffers: BatchBuffers | None = None
    output: Any = None
    results: list[list[Detection]] | None = None
    error: BaseException | None = None


_STOP = object()
HELD_POLL_S = 0.001


class StagedDetector(FrameDetector, Protocol):
    """A detector whose work splits into the batch pipeline's three stages (YoloDetector)."""

    def input_size(self, frame: np.ndarray) -> tuple[int, int]: ...

    def preprocess(
        self, frames: Sequence[np.ndarray], buffers: BatchBuffers | None = None
    ) -> tuple[Any, list[Any]]: ...

    def infer(self, blob: Any) -> Any: ...

    def postprocess(self, output: Any, letterboxes: Sequence[Any]) -> list[list[Detection]]: ...


def _staged(inner: Any) -> bool:
    """Whether the detector exposes its three stages (YoloDetector); others run whole."""
    return all(
        callable(getattr(inner, name, None)) for name in ("input_size", "preprocess", "infer", "postprocess")
    )


class BatchingDetector:
    """One batch pipeline per model per process, shared by every thread (concurrent subtasks or
    streams) that asks it about frames. Same interface as the detector it wraps.

    Three stages, each its own thread, joined by short queues, so they overlap:
      collect + preprocess: requests are grouped by input size; a batch closes when it holds
        `max_batch` frames, or once `max_wait_s` have passed since its *first* frame arrived (the
        deadline does not move when more come) and no prepared batch is still waiting for the
        inference stage (while inference is busy with a batch queued, the open one keeps
        growing); it is letterboxed and normalised into a pooled buffer;
      inference: the session runs batch k while batch k+1 is being prepared;
      postprocess: decode, NMS and filters of batch k, while batch k+1 runs.
    A detector without stages (the Haar face fallback) runs whole in the inference stage."""

    def __init__(
        self, inner: FrameDetector, max_batch: int | None = None, max_wait_s: float = 0.004, depth: int = 2
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.categories = inner.categories
        self.max_batch = max(1, max_batch or getattr(inner, "max_batch", MAX_BATCH))
        self.max_wait_s = max_wait_s
        self.staged = _staged(inner)
        self._stages = cast(StagedDetector, inner)  # used only when self.staged
        dtype = getattr(inner, "input_dtype", np.float32)
        # One buffer per batch that can be in flight: being prepared, queued, running, queued for post.
        self._pool = BufferPool(2 * depth + 1, dtype)
        self._inbox: SimpleQueue[Any] = SimpleQueue()
        self._ready: Queue[Any] = Queue(maxsize=depth)
        self._done: Queue[Any] = Queue(maxsize=depth)
        self.batches = 0
        self.frames = 0
        self.infer_busy_s = 0.0  # seconds the inference stage spent running batches
        self.started = time.perf_counter()
        self._threads = [
            threading.Thread(target=target, name=f"{stage}-{inner.name}", daemon=True)
            for stage, target in (("collect", self._collect), ("infer", self._infer), ("post", self._post))
        ]
        for thread in self._threads:
            thread.start()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        if not frames:
            return []
        request = _Request(frames)
        self._inbox.put(request)
        return request.future.result()

    def close(self) -> None:
        self._inbox.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- stage 1: collect and preprocess ----------------------------------------------------------

    def _key(self, request: _Request) -> Any:
        if not self.staged:
            return None
        sizes = {self._stages.input_size(frame) for frame in request.frames}
        return sizes.pop() if len(sizes) == 1 else ("mixed", id(request))

    def _collect(self) -> None:
        open_batches: dict[Any, _Open] = {}
        while True:
            wait = None
            if open_batches:
                due = min(b.deadline for b in open_batches.values()) - time.monotonic()
                # Past its deadline but held (a prepared batch already waits): look again soon.
                wait = max(due, HELD_POLL_S)
            try:
                item = self._inbox.get(timeout=wait)
            except Empty:
                item = None
            if item is _STOP:
                for batch in open_batches.values():
                    self._close(batch)
                self._ready.put(_STOP)
                return
            if item is not None:
                key = self._key(item)
                batch = open_batches.get(key) or open_batches.setdefault(
                    key, _Open(time.monotonic() + self.max_wait_s)
                )
                batch.requests.append(item)
                batch.size += len(item.frames)
                if batch.size >= self.max_batch or (isinstance(key, tuple) and key and key[0] == "mixed"):
                    self._close(open_batches.pop(key))
            # A batch past its deadline closes only when no prepared batch is waiting for the
            # inference stage: inference always has the next batch ready, and while it is busy the
            # open batch keeps growing instead of queueing as many small ones.
            now = time.monotonic()
            for key in [k for k, b in open_batches.items() if b.deadline <= now]:
                if not self._ready.empty():
                    break
                self._close(open_batches.pop(key))

    def _close(self, open_batch: _Open) -> None:
        batch = _Batch(open_batch.requests)
        frames = [frame for request in batch.requests for frame in request.frames]
        sizes = {self._stages.input_size(frame) for frame in frames} if self.staged else set()
        if self.staged and len(sizes) == 1:
            try:
                batch.buffers = self._pool.take()
                batch.blob, batch.letterboxes = self._stages.preprocess(frames, batch.buffers)
            except BaseException as exc:  # handed to the callers by the post stage
                batch.error = exc
        self._ready.put(batch)

    # -- stage 2: inference -----------------------------------------------------------------------

    def _infer(self) -> None:
        while True:
            batch = self._ready.get()
            if batch is _STOP:
                self._done.put(_STOP)
                return
            if batch.error is None:
                started = time.perf_counter()
                try:
                    if batch.blob is not None:
                        batch.output = self._stages.infer(batch.blob)
                    else:  # a detector without stages, or frames of several sizes
                        frames = [frame for request in batch.requests for frame in request.frames]
                        batch.results = self.inner.detect_batch(frames)
                except BaseException as exc:
                    batch.error = exc
                self.infer_busy_s += time.perf_counter() - started
            self._done.put(batch)

    # -- stage 3: postprocess and answer ----------------------------------------------------------

    def _post(self) -> None:
        while True:
            batch = self._done.get()
            if batch is _STOP:
                return
            try:
                if batch.error is None and batch.results is None:
                    batch.results = self._stages.postprocess(batch.output, batch.letterboxes)
            except BaseException as exc:
                batch.error = exc
            finally:
                if batch.buffers is not None:
                    self._pool.give(batch.buffers)
            self._answer(batch)

    def _answer(self, batch: _Batch) -> None:
        if batch.error is not None or batch.results is None:
            error = batch.error or RuntimeError("no result")
            for request in batch.requests:
                request.future.set_exception(error)
            return
        self.batches += 1
        start = 0
        for request in batch.requests:
            request.future.set_result(batch.results[start : start + len(request.frames)])
            start += len(request.frames)
        self.frames += start
