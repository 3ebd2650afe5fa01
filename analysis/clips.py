"""Event clips: a few seconds before and after each event, written by the node as WebM (VP8).

The job keeps the last PRE_SECONDS of annotated, scaled-down frames in a ring buffer. An event
starts a clip with a copy of that buffer; the following POST_SECONDS of frames are added, then the
clip is handed to the process's clip encoder: ENCODER_THREADS background threads, at a lower CPU
priority than the analysis (ENCODER_NICE), that encode it in memory and store it in the artefacts
storage (MEDIA_ROOT, or the object store shared by every host). The job's own thread fills in
`Event.clip` at its next heartbeat (`take_written()`), so encoder threads never touch the database.
The end of the run hands over every clip still open with what it has and waits for its clips.

Why WebM/VP8: Chromium plays VP8 in WebM everywhere; the wheels have no H.264 encoder Chromium's
open builds play, and MPEG-4 Part 2 ('mp4v') does not play there. Why PyAV rather than OpenCV's
VideoWriter: OpenCV opens libvpx with its defaults (the "good" deadline at cpu-used 0, with no way
to pass encoder options: OPENCV_FFMPEG_WRITER_OPTIONS does not reach avcodec_open2), about 37 ms of
CPU per 640 px frame on the shared machine; libvpx's realtime deadline at cpu-used 16 with a
constant-quality cap takes about 4 ms for the same frame at a similar PSNR (docs/benchmarks.md,
"Clips off the analysis path").
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from vias.lib import artefacts

log = logging.getLogger(__name__)

PRE_SECONDS = 3.0
POST_SECONDS = 3.0
EXTENSION = ".webm"
MAX_FRAMES = 200  # a clip's frames at most, whatever the analysed fps
# libvpx for a clip the node writes next to live analysis: the realtime deadline at its fastest
# speed, constant quality (crf) under a bitrate cap of one bit per pixel and frame (the bitrate
# OpenCV's writer used), one thread (the encoder runs beside inference, not instead of it).
VP8_OPTIONS = {"deadline": "realtime", "cpu-used": "16", "crf": "10"}
ENCODER_THREADS = 1
# Encoder threads yield the CPU to the analysis when both want it; they still get a share of it.
ENCODER_NICE = 10
# Clips waiting for the encoder at most: past that the job waits (never drops a clip).
ENCODER_QUEUE = 32


@dataclass
class _OpenClip:
    event_id: int
    path: str
    until_s: float
    frames: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Job:
    clip: _OpenClip
    fps: float
    recorder: ClipRecorder
    done: threading.Event = field(default_factory=threading.Event)


class ClipRecorder:
    """One per running subtask: `add()` every analysed frame, `start()` at every event."""

    def __init__(self, fps: float) -> None:
        self.fps = max(1.0, float(fps))
        self.ring: deque[np.ndarray] = deque(maxlen=max(1, round(PRE_SECONDS * self.fps)))
        self.open: list[_OpenClip] = []
        self.pending: list[threading.Event] = []
        self._written: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def add(self, image: np.ndarray, offset_s: float) -> None:
        self.ring.append(image)
        for clip in list(self.open):
            if len(clip.frames) < MAX_FRAMES:
                clip.frames.append(image)
            if offset_s >= clip.until_s or len(clip.frames) >= MAX_FRAMES:
                self._write(clip)

    def start(self, event_id: int, path: str, offset_s: float) -> None:
        """The event's clip: the buffered frames (the current one included), then POST_SECONDS more."""
        self.open.append(_OpenClip(event_id, path, offset_s + POST_SECONDS, list(self.ring)))

    def take_written(self) -> list[tuple[int, str]]:
        """(event id, clip path) of the clips written since the last call."""
        with self._lock:
            written, self._written = self._written, []
        return written

    def close(self, timeout: float = 30.0) -> list[tuple[int, str]]:
        """Write what is still open, wait for this recorder's clips; what they wrote (as take_written)."""
        for clip in list(self.open):
            self._write(clip)
        deadline = time.monotonic() + timeout
        for done in self.pending:
            done.wait(max(0.0, deadline - time.monotonic()))
        self.pending = [done for done in self.pending if not done.is_set()]
        return self.take_written()

    def _write(self, clip: _OpenClip) -> None:
        self.open.remove(clip)
        if not clip.frames:
            return
        job = _Job(clip, self.fps, self)
        self.pending = [done for done in self.pending if not done.is_set()] + [job.done]
        encoder().submit(job)

    def _wrote(self, clip: _OpenClip) -> None:
        with self._lock:
            self._written.append((clip.event_id, clip.path))


class ClipEncoder:
    """The process's encoder threads and the queue of clips they take, oldest first."""

    def __init__(self, threads: int = ENCODER_THREADS, size: int = ENCODER_QUEUE) -> None:
        self.queue: queue.Queue[_Job] = queue.Queue(maxsize=size)
        self.threads = [
            threading.Thread(target=self._work, name=f"clip-encoder-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: _Job) -> None:
        self.queue.put(job)

    def _work(self) -> None:
        with suppress(AttributeError, OSError):  # Linux: the thread's own niceness (a task's id)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENCODER_NICE)
        while True:
            job = self.queue.get()
            try:
                artefacts.save_bytes(job.clip.path, encode_webm(job.clip.frames, job.fps))
                job.recorder._wrote(job.clip)
            except Exception:  # noqa: BLE001 - a clip that cannot be written leaves the event without one
                log.exception("clip of event %s not written", job.clip.event_id)
            finally:
                job.done.set()


_encoder: tuple[int, ClipEncoder] | None = None
_encoder_lock = threading.Lock()


def encoder() -> ClipEncoder:
    """The process's clip encoder, started at the first clip (again in a forked child)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None or _encoder[0] != os.getpid():
            _encoder = (os.getpid(), ClipEncoder())
        return _encoder[1]


def encode_webm(frames: list[np.ndarray], fps: float) -> bytes:
    """The frames as a VP8 WebM file, at `fps` (even width and height: 4:2:0 needs them)."""
    import av  # here, not at import: without PyAV the analysis runs and only the clips are missing

    height, width = (size - size % 2 for size in frames[0].shape[:2])
    rate = Fraction(fps).limit_denominator(1000)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=rate, options=VP8_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = int(width * height * fps)
        stream.codec_context.thread_count = 1
        for index, frame in enumerate(frames):
            # OpenCV's BGR to I420 rather than swscale's: faster, and a sharper result.
            yuv = np.asarray(cv2.cvtColor(_fit(frame, height, width), cv2.COLOR_BGR2YUV_I420), np.uint8)
            picture = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """The frame at the clip's size: an odd last row or column cut, another size (the stream changed
    resolution mid-clip) scaled."""
    rows, columns = frame.shape[:2]
    if (rows, columns) == (height, width):
        return frame
    if rows - height in (0, 1) and columns - width in (0, 1):
        return frame[:height, :width]
    return cv2.resize(frame, (width, height))


def clip_path(snapshot_path: str) -> str:
    """The clip beside the event's snapshot (same name, its own extension)."""
    return str(Path(snapshot_path).with_suffix(EXTENSION))
