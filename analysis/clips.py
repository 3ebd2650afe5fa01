"""Event clips: a few seconds before and after each event, written by the node as WebM (VP8).

The job keeps the last PRE_SECONDS of annotated, scaled-down frames in a ring buffer. An event
starts a clip with a copy of that buffer; the following POST_SECONDS of frames are added, then a
thread writes the file with OpenCV's VideoWriter (to a temporary file, then into the artefacts
storage: MEDIA_ROOT, or the object store shared by every host). The job's own thread fills in `Event.clip` at
its next heartbeat (`take_written()`), so writer threads never touch the database. The end of
the run writes every clip still open with what it has.

Why WebM/VP8: the opencv-python-headless wheel writes VP8 ('VP80' into .webm) and MPEG-4 Part 2
('mp4v' into .mp4), but has no H.264 encoder ('avc1' fails to open). Chromium does not play
MPEG-4 Part 2, and plays VP8 in WebM everywhere, so clips are WebM.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vias.lib import artefacts

log = logging.getLogger(__name__)

PRE_SECONDS = 3.0
POST_SECONDS = 3.0
FOURCC = "VP80"
EXTENSION = ".webm"
MAX_FRAMES = 200  # a clip's frames at most, whatever the analysed fps


@dataclass
class _OpenClip:
    event_id: int
    path: str
    until_s: float
    frames: list[np.ndarray] = field(default_factory=list)


class ClipRecorder:
    """One per running subtask: `add()` every analysed frame, `start()` at every event."""

    def __init__(self, fps: float) -> None:
        self.fps = max(1.0, float(fps))
        self.ring: deque[np.ndarray] = deque(maxlen=max(1, round(PRE_SECONDS * self.fps)))
        self.open: list[_OpenClip] = []
        self.writers: list[threading.Thread] = []
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
        """Write what is still open, wait for the writers; what they wrote (as take_written)."""
        for clip in list(self.open):
            self._write(clip)
        for writer in self.writers:
            writer.join(timeout)
        return self.take_written()

    def _write(self, clip: _OpenClip) -> None:
        self.open.remove(clip)
        if not clip.frames:
            return
        writer = threading.Thread(
            target=self._encode, args=(clip,), name=f"clip-{clip.event_id}", daemon=True
        )
        writer.start()
        self.writers = [w for w in self.writers if w.is_alive()] + [writer]

    def _encode(self, clip: _OpenClip) -> None:
        try:
            # OpenCV writes files only: a temporary one, then into the artefacts storage (MEDIA_ROOT
            # or the object store every host reads, vias/lib/artefacts.py).
            with tempfile.TemporaryDirectory(prefix="vias-clip-") as scratch:
                local = Path(scratch) / Path(clip.path).name
                write_clip(local, clip.frames, self.fps)
                artefacts.save_file(clip.path, local)
            with self._lock:
                self._written.append((clip.event_id, clip.path))
        except Exception:  # noqa: BLE001 - a clip that cannot be written leaves the event without one
            log.exception("clip of event %s not written", clip.event_id)


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*FOURCC)  # type: ignore[attr-defined]  # missing from OpenCV's stubs
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {FOURCC} to {path.name}")
    try:
        for frame in frames:
            if frame.shape[:2] != (height, width):  # the stream changed resolution mid-clip
                frame = cv2.resize(frame, (width, height))
            writer.write(frame)
    finally:
        writer.release()


def clip_path(snapshot_path: str) -> str:
    """The clip beside the event's snapshot (same name, its own extension)."""
    return str(Path(snapshot_path).with_suffix(EXTENSION))
