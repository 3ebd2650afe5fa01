"""What a running subtask shows the operator: per-camera stats, the live view and event clips.

One Observer per job (analysis/jobs.py). A run may take several jobs: a job ends its segment
(VIAS_JOB_SEGMENT) and a fresh one continues, a node dies and the run is dispatched again, a
draining node hands it back. Only the first job of a run starts the counters at zero; every later
one continues from the figures in the CameraStats row (`continues`). The job calls `frame()` after each analysed frame,
`event()` after storing each event, `reconnected()` when a stream comes back, and `flush()` with
its once-a-second heartbeat, which writes the CameraStats row (one UPDATE) and fills in the
clips written since. Every write of the row is fenced on the job's lease (`lease`): a stale job
(another attempt or node owns the subtask) overwrites nothing. Nothing here changes what the
analysis finds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from analysis import overlay
from analysis.clips import ClipRecorder, clip_path
from analysis.live import LivePublisher

RATE_WINDOW_S = 10.0  # analysed fps over this much wall time
DETECTION_WINDOW_S = 60.0  # detections per minute over this much wall time


def provider_of(detectors: Sequence[Any]) -> str:
    """ "CUDA" or "CPU": the execution provider of the first detector's onnxruntime session."""
    for detector in detectors:
        inner = getattr(detector, "inner", detector)
        session = getattr(inner, "session", None)
        if session is not None:
            name = session.get_providers()[0]
            return name.removesuffix("ExecutionProvider") or name
    return ""


def continues_run(subtask: Any, resume_frame: int) -> bool:
    """Whether a job continues a run an earlier job began, so that its counters go on: a new
    segment, or a file dispatched again, continues after a frame; a re-dispatch counts an attempt
    (`start_task` resets the attempts to 0 and the run's first dispatch makes it 1); a stream
    handed back by a draining node or dispatched again from the admin (the attempt not counted,
    no frame to resume from) has a checkpoint its earlier job's heartbeats wrote (a new run
    resets it to 0)."""
    return resume_frame > 0 or subtask.attempts > 1 or subtask.checkpoint_frame > 0


class Observer:
    """Counters of one run, the live publisher and the clip recorder."""

    def __init__(
        self,
        subtask_id: int,
        node_name: str,
        fps: float,
        clips: bool = True,
        clock: Callable[[], float] = time.monotonic,
        continues: bool | None = None,
        resume_frame: int = 0,
        lease: dict[str, Any] | None = None,
    ) -> None:
        self.subtask_id = subtask_id
        # Fencing: Subtask filter arguments (attempt, node, states) this job owns its subtask by;
        # every write of the row is conditional on them, so a stale job (another attempt or node
        # owns the subtask now) overwrites nothing. None: unfenced (a benchmark's observer).
        self.lease = lease
        self.node_name = node_name
        self.clock = clock
        self.live = LivePublisher(subtask_id, clock=clock)
        self.clips = ClipRecorder(fps) if clips and settings.VIAS_EVENT_CLIPS else None
        self.source_fps = 0.0
        self.frames_analysed = 0
        self.frames_decoded = 0
        self.reconnects = 0
        self.events = 0
        self.last_frame_at: datetime | None = None
        self.started_at = timezone.now()
        self._first_index: int | None = None
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, frames, detections)
        # What the run's earlier jobs counted (a new pipeline counts its detections from zero).
        self._decoded_before = 0
        self._detections_before = 0
        self._inference_s_before = 0.0
        # continues: True, a later job of the run; False, its first (the row is zeroed at once);
        # None, no row is read or zeroed before the first flush (a benchmark's observer).
        if continues:
            self._continue_from_row()
            # Decoding goes on from the frame after the last job's: the frames skipped between
            # it and the first analysed one were decoded too.
            self._first_index = resume_frame or None
        elif continues is False:
            self._start_row()

    def _start_row(self) -> None:
        """The run's first job: the row counts from zero at once, so that a re-dispatch before this
        job's first heartbeat does not continue the previous run's figures."""

        zero = {
            name: 0
            for name in (
                "frames_decoded",
                "frames_analysed",
                "source_fps",
                "analysed_fps",
                "detections",
                "detections_per_minute",
                "inference_ms",
                "inference_seconds",
                "reconnects",
                "events",
            )
        }
        self._write(
            {**zero, "node_name": self.node_name, "last_frame_at": None, "started_at": self.started_at}
        )

    def _write(self, fields: dict[str, Any]) -> bool:
        """One fenced UPDATE of the row (an INSERT the first time, while the lease holds); False
        when the lease no longer holds and nothing was written."""
        from analysis.models import CameraStats
        from subtasks.models import Subtask

        fence = {f"subtask__{name}": value for name, value in (self.lease or {}).items()}
        rows = CameraStats.objects.filter(subtask_id=self.subtask_id, **fence)
        if rows.update(**fields, updated_at=timezone.now()):
            return True
        if self.lease is not None and not Subtask.objects.filter(pk=self.subtask_id, **self.lease).exists():
            return False
        CameraStats.objects.update_or_create(subtask_id=self.subtask_id, defaults=fields)
        return True

    def _continue_from_row(self) -> None:
        from analysis.models import CameraStats

        row = CameraStats.objects.filter(subtask_id=self.subtask_id).first()
        if row is None:
            return
        self.frames_analysed = row.frames_analysed
        self._decoded_before = row.frames_decoded
        self.frames_decoded = row.frames_decoded
        self.reconnects = row.reconnects
        self.events = row.events
        self.last_frame_at = row.last_frame_at
        self.started_at = row.started_at or self.started_at
        self._detections_before = row.detections
        self._inference_s_before = row.inference_seconds

    # -- from the job -------------------------------------------------------------------------------

    def frame(self, image: np.ndarray, frame_index: int, offset_s: float, pipeline: Any) -> None:
        self.frames_analysed += 1
        if self._first_index is None or self._first_index > frame_index:
            self._first_index = frame_index
        self.frames_decoded = max(
            self.frames_decoded, self._decoded_before + frame_index - self._first_index + 1
        )
        self.last_frame_at = timezone.now()
        live_due = self.live.due()
        if self.clips is None and not live_due:
            return  # nobody watches and no clips: draw nothing
        annotated = overlay.annotate(image, pipeline.engine)
        if self.clips is not None:
            self.clips.add(annotated, offset_s)
        if live_due:
            self.live.publish(overlay.encode_jpeg(annotated))

    def event(self, event_id: int, snapshot: str, offset_s: float) -> None:
        self.events += 1
        if self.clips is not None:
            self.clips.start(event_id, clip_path(snapshot), offset_s)

    def reconnected(self) -> None:
        self.reconnects += 1

    def flush(self, pipeline: Any) -> bool:
        """Write the stats row (one fenced UPDATE, an INSERT the first time) and the clips written
        since; False, and nothing written, when the lease no longer holds."""
        if not self._write(self.figures(pipeline)):
            return False
        self.flush_clips()
        return True

    def flush_clips(self) -> None:
        """Only the clips written since (the figures went with the node's batched beat)."""
        if self.clips is not None:
            _store_clips(self.clips.take_written())

    def close(self, pipeline: Any) -> None:
        """The run ended: write the open clips and the final figures."""
        if self.clips is not None:
            _store_clips(self.clips.close())
        if pipeline is not None:
            self.flush(pipeline)

    # -- figures --------------------------------------------------------------------------------

    def figures(self, pipeline: Any) -> dict[str, Any]:
        now = self.clock()
        detections = self._detections_before + int(pipeline.detections)
        self._samples.append((now, self.frames_analysed, detections))
        while self._samples and now - self._samples[0][0] > DETECTION_WINDOW_S:
            self._samples.popleft()
        recent = [s for s in self._samples if now - s[0] <= RATE_WINDOW_S]
        fps = _rate(recent[0], recent[-1], 1) if len(recent) > 1 else 0.0
        per_minute = _rate(self._samples[0], self._samples[-1], 2) * 60 if len(self._samples) > 1 else 0.0
        inference_s = self._inference_s_before + float(pipeline.inference_s)
        return {
            "node_name": self.node_name,
            "provider": provider_of(pipeline.detectors),
            "frames_decoded": self.frames_decoded,
            "frames_analysed": self.frames_analysed,
            "source_fps": round(self.source_fps, 2),
            "analysed_fps": round(fps, 2),
            "detections": detections,
            "detections_per_minute": round(per_minute, 1),
            "inference_ms": round(1000 * inference_s / self.frames_analysed, 2)
            if self.frames_analysed
            else 0.0,
            "inference_seconds": round(inference_s, 3),
            "reconnects": self.reconnects,
            "events": self.events,
            "last_frame_at": self.last_frame_at,
            "started_at": self.started_at,
        }


def _rate(first: tuple[float, int, int], last: tuple[float, int, int], column: int) -> float:
    elapsed = last[0] - first[0]
    return (last[column] - first[column]) / elapsed if elapsed > 0 else 0.0


def _store_clips(written: list[tuple[int, str]]) -> None:
    from analysis.models import Event

    for event_id, path in written:
        Event.objects.filter(pk=event_id).update(clip=path)
