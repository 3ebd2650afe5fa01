"""The django-q2 job that analyses one subtask on a node: `run_subtask`.

The job owns its subtask while `Subtask.attempts` still equals the attempt it started with and
the node is its own: its heartbeat is conditional on both, so a job the reaper gave up on
notices it lost the subtask and ends without touching it. Between frames it reads the control
channel; once a second it announces progress and looks for its node draining; every
VIAS_PROGRESS_INTERVAL it hands its heartbeat (progress, checkpoint) to its node's loop, which
writes all the node's beats in one statement per tick (docs/analysis-engine.md).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Avg, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from analysis import control, hosting, node
from analysis.dispatch import dispatch, enqueue, required_categories
from analysis.models import Event
from analysis.outage import SOFT_ERRORS, RedisGrace
from subtasks.choices import State
from subtasks.models import Subtask
from subtasks.mtask_runs import STREAM_SCHEMES
from subtasks.services import IllegalTransition, transition
from tasks.choices import PICTURE_SOURCES, SourceType
from tasks.models import MTask, Scene, VideoChannel
from tasks.validators import resolve_video_path, roi_xml, snapshot_options
from vias.lib import artefacts
from vias.lib.announce import announce

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
# States in which this run's heartbeat goes through; STOPPING is answered by stopping.
BEATING_STATES = node.BEATING_STATES
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# Only this job's own run may move the subtask on from these.
OWNED_STATES = (State.RUNNING, State.ABNORMAL, State.RECOVERING, State.STOPPING)


class LostOwnership(Exception):
    """The reaper gave this subtask to another job, or it was deleted."""


class StopNow(Exception):
    """A stop was asked (command or database)."""


class NodeDraining(Exception):
    """This node is shutting down: hand the subtask back."""


class SegmentEnd(Exception):
    """The job ran as long as django-q2 lets one job run: continue in a fresh job."""


def run_subtask(subtask_id: int, node_name: str, resume_frame: int = 0) -> str:
    """The django-q2 job. With VIAS_SUBTASKS_PER_WORKER > 1 this worker hosts several subtasks
    in threads (analysis/hosting.py); otherwise it runs this one."""
    if hosting.per_worker() > 1:
        return hosting.host((subtask_id, node_name, resume_frame), run_one_subtask)
    return run_one_subtask(subtask_id, node_name, resume_frame)


def run_one_subtask(subtask_id: int, node_name: str, resume_frame: int = 0) -> str:
    if not transaction.get_connection().in_atomic_block:  # a worker: drop a connection gone stale
        close_old_connections()
    subtask = (
        Subtask.objects.select_related("task__project", "task__store_conf", "scene", "node")
        .filter(pk=subtask_id)
        .first()
    )
    if subtask is None:
        return "gone"
    if subtask.node is None or subtask.node.name != node_name:
        return "dispatched elsewhere"
    from subtasks.services import Lease

    if subtask.state in (State.STARTING, State.RECOVERING):
        resume_frame = max(resume_frame, resume_point(subtask))
        try:  # conditional on the attempt read above: a re-dispatch meanwhile wins
            transition(
                subtask,
                State.RUNNING,
                lease=Lease(subtask.attempts, subtask.node_id),
                heartbeat_at=timezone.now(),
            )
        except IllegalTransition:
            return "skipped: changed meanwhile"
    elif not (subtask.state == State.RUNNING and resume_frame > 0):
        return f"skipped: {subtask.state}"
    return SubtaskRun(subtask, node_name).run(resume_frame)


def beat_interval() -> float:
    return node.beat_interval()


def resume_point(subtask: Subtask) -> int:
    """Where a re-dispatched file subtask continues: after its checkpoint, and after the last
    frame it stored an event for (analysed before the crash, past the checkpoint), so that no
    frame that produced events is analysed twice. 0 for streams and pictures: they go on live."""
    from analysis.sources import is_stream

    if subtask.task.source_type in PICTURE_SOURCES or is_stream(subtask.source_url):
        return 0
    if subtask.checkpoint_frame == 0:
        return 0
    last_event = Event.objects.filter(subtask=subtask).aggregate(f=Max("frame_index"))["f"] or 0
    return max(subtask.checkpoint_frame, last_event) + 1


def target_rois(subtask: Subtask, size: tuple[int, int] | None = None) -> list[str] | None:
    """The task's v2 target_roi (pixels) as ROIs normalised to the source's frame size, [] for
    none; None while that size is unknown (the first frame tells it, SubtaskRun._fit_target_roi)."""
    text = subtask.task.target_roi
    if not text:
        return []
    channel = subtask.video_channel
    width, height = size or ((channel.width, channel.height) if channel else (None, None))
    if not (width and height):
        return None
    return [roi_xml(text, width, height)]


def all_rois(subtask: Subtask, size: tuple[int, int] | None = None) -> list[str]:
    return [*subtask.rois, *(target_rois(subtask, size) or [])]


def build_pipeline(subtask: Subtask):
    """Detectors for the categories the task asks for, and its algorithm type's rules."""
    from analysis.pipeline import Pipeline
    from analysis.rules.engine import RuleEngine

    categories = required_categories(subtask.task)
    engine = RuleEngine(
        subtask.task.algo_type,
        rois=all_rois(subtask),
        calibration_xml=subtask.calibration_xml,
        algo_args=subtask.algo_args,
        categories=categories,
    )
    return Pipeline(hosting.shared_detectors(categories), engine)


def update_pipeline(pipeline, subtask: Subtask, detectors: bool = False) -> None:
    """A running subtask's new configuration, without restarting it (tracks are kept)."""
    pipeline.engine.update(
        rois=all_rois(subtask), calibration_xml=subtask.calibration_xml, algo_args=subtask.algo_args
    )
    if detectors:
        pipeline.detectors = hosting.shared_detectors(required_categories(subtask.task))


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    last_frame: int = 0

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.done / self.total) if self.total else 0.0


@dataclass
class SubtaskRun:
    subtask: Subtask
    node_name: str
    progress: Progress = field(default_factory=Progress)
    stop_asked: bool = False
    # The clock the run's intervals are measured on (a benchmark drives a virtual one).
    clock: Callable[[], float] = time.monotonic
    _last_tick: float = 0.0
    _last_beat: float | None = None
    roi_pending: bool = False
    _stats_made: bool = False

    def __post_init__(self) -> None:
        from subtasks.services import Lease

        self._started = self.clock()

        # Every write this run makes is conditional on it (fencing): see Lease.
        self.lease = Lease(self.subtask.attempts, self.subtask.node_id)
        self.task = self.subtask.task
        self.inbox = control.Inbox(self.subtask.pk)
        self.pipeline: Any = None
        # Redis may blink: its calls are skipped while it is away, fatal only after the grace.
        self.redis = RedisGrace(what=f"subtask {self.subtask.pk}")
        self._recoveries_seen = 0
        self.unpublished: list[Event] = []  # events stored during an outage, sent once it ends
        self.observer: Any = None  # analysis.observe.Observer, once the pipeline is built

    # -- the run --------------------------------------------------------------------------------

    def run(self, resume_frame: int) -> str:
        self.redis.call(self.inbox.open, None)
        try:
            try:
                return self._run(resume_frame)
            except LostOwnership:
                # Fenced: a stale run writes nothing more, not even its per-camera figures over
                # those of the run that took the subtask over (tests/test_multihost.py).
                self.observer = None
                return "lost the subtask to another job"
            except StopNow:
                self._finish(State.STOPPED, _("stopped"))
                return "stopped"
            except NodeDraining:
                self._close_observer()  # the figures are stored before the next job reads them
                self._hand_back()
                return "handed back: node draining"
            except SegmentEnd:
                self._close_observer()
                enqueue(self.subtask.pk, self.node_name, self.progress.last_frame + 1)
                return f"continues from frame {self.progress.last_frame + 1}"
            except Exception as exc:  # noqa: BLE001 - whatever broke, the subtask must not stay RUNNING
                from analysis.sources import SourceCorrupt

                if not isinstance(exc, SourceCorrupt):
                    log.exception("subtask %s failed", self.subtask.pk)
                self._finish(State.FAILED, f"{type(exc).__name__}: {exc}"[:1000])
                return "failed"
            finally:
                self._close_observer()
        finally:
            with suppress(*SOFT_ERRORS):  # else its live key expires on its own
                self.inbox.close()

    def _run(self, resume_frame: int) -> str:
        from analysis.observe import Observer, continues_run

        self._turn_camera()
        self.pipeline = build_pipeline(self.subtask)
        pictures = self.task.source_type in PICTURE_SOURCES
        self.observer = Observer(
            self.subtask.pk,
            self.node_name,
            self.pipeline.engine.fps,
            clips=not pictures,
            continues=continues_run(self.subtask, resume_frame),
            resume_frame=resume_frame,
            lease={**self.lease.owns(), "state__in": OWNED_STATES},  # a stale job writes no figures
        )
        self.roi_pending = target_rois(self.subtask) is None
        if pictures:
            self._run_pictures()
        else:
            self._run_video(resume_frame)
        for finding in self.pipeline.flush():  # what waited for its track to end (face captures)
            self._store(finding, None, "")
        self._close_observer()  # the last clips are on the events before the subtask says it is done
        if not self._finish(State.SUCCEEDED, ""):
            return "lost the subtask to another job"
        return "succeeded"

    def _run_video(self, resume_frame: int) -> None:
        from analysis.sources import Prefetcher, SourceUnavailable, VideoSource, is_sampled, is_stream

        url = self.subtask.source_url
        stream = is_stream(url)
        location = url if stream else str(resolve_video_path(url))
        backoff = BACKOFF_FIRST
        start = resume_frame
        while True:
            try:
                with VideoSource(
                    location,
                    fps=self.pipeline.engine.fps,
                    start_frame=start,
                    open_timeout_s=settings.VIAS_SOURCE_OPEN_TIMEOUT,
                    read_timeout_s=settings.VIAS_SOURCE_READ_TIMEOUT,
                ) as video:
                    self.progress.total = video.total_samples
                    self.observer.source_fps = video.native_fps
                    self.progress.done = sum(1 for i in range(start) if is_sampled(i, video.step))
                    if self.subtask.state != State.RUNNING:
                        self._move(State.RUNNING, "")
                    backoff = BACKOFF_FIRST
                    # While a stalled stream blocks a read, keep heartbeating and obeying commands.
                    with Prefetcher(video.frames(), on_wait=self._tick) as frames:
                        for frame in frames:
                            self._analyse(frame.image, frame.index, frame.offset_s)
                    return
            except SourceUnavailable as exc:
                if not stream:
                    raise
                start = 0
                self.observer.reconnected()
                self._reconnect_wait(exc.reason, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _run_pictures(self) -> None:
        if self.task.source_type == SourceType.PUSH_PIC_FILES:
            self._run_pushed_pictures()
            return
        from analysis.sources import iter_pictures

        for index, picture in enumerate(iter_pictures(self.task.pull_source_url)):
            self._analyse(picture.image, index, 0.0, picture=picture.name)

    def _run_pushed_pictures(self) -> None:
        """Pictures clients POST arrive until the subtask is stopped (or its node drains)."""
        from analysis.pictures import pop_picture

        index = 0
        while True:
            picture = self.redis.call(lambda: pop_picture(self.subtask.pk, timeout=0.2), None)
            if picture is None:
                if self.redis.down:
                    time.sleep(0.2)  # the queue is in Redis: nothing to do until it is back
                self._tick()
                continue
            name, frame = picture
            self._analyse(frame, index, 0.0, picture=name)
            index += 1

    def _reconnect_wait(self, reason: str, backoff: float) -> None:
        if self.subtask.state != State.ABNORMAL:
            self._move(State.ABNORMAL, reason)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline:
            self._tick(force=False)
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self._move(State.RECOVERING, _("reconnecting after: %(reason)s") % {"reason": reason})

    # -- per frame ------------------------------------------------------------------------------

    def _fit_target_roi(self, frame: Any) -> None:
        """The frame size, read once: kept on the video source, then the polygons are normalised."""
        height, width = frame.shape[:2]
        channel = self.subtask.video_channel
        if channel is not None and not (channel.width and channel.height):
            VideoChannel.objects.filter(pk=channel.pk).update(width=width, height=height)
            channel.width, channel.height = width, height
        self.pipeline.engine.update(rois=all_rois(self.subtask, (width, height)))
        self.roi_pending = False

    def _analyse(self, frame: Any, frame_index: int, offset_s: float, picture: str = "") -> None:
        if self.roi_pending:
            self._fit_target_roi(frame)
        findings = self.pipeline.process(frame, frame_index, offset_s)
        self.observer.frame(frame, frame_index, offset_s, self.pipeline)
        for finding in findings:
            self._store(finding, frame, picture)
        self.progress.done += 1
        self.progress.last_frame = frame_index
        self._tick()

    def _store(self, finding: Any, frame: Any, picture: str) -> None:
        from analysis.pipeline import render_snapshot

        digest = hashlib.sha1(finding.key.encode()).hexdigest()[:12]
        snapshot = f"events/{self.task.task_id}/{self.subtask.pk}/{finding.frame_index}-{digest}.jpg"
        attributes = dict(finding.attributes, **({"picture": picture} if picture else {}))
        try:
            with transaction.atomic():
                # Fencing: the event is stored only while this run still owns the subtask. On
                # PostgreSQL the UPDATE also locks the row until the event commits, so a reaper
                # taking the subtask over waits for it and the next owner sees every event.
                if not self._owned().update(heartbeat_at=timezone.now()):
                    raise LostOwnership
                event = Event.objects.create(
                    subtask=self.subtask,
                    task=self.task,
                    key=finding.key[:200],
                    # A face capture's best frame may be earlier than the frame that ended its track.
                    occurred_at=self._occurred_at(finding.offset_s),
                    offset_s=finding.offset_s,
                    frame_index=finding.frame_index,
                    category=finding.category,
                    rule=finding.rule,
                    zone=finding.zone,
                    box=[round(float(v), 1) for v in finding.box],
                    score=float(finding.score),
                    track_id=finding.track_id,
                    attributes=attributes,
                    snapshot=snapshot,
                )
        except IntegrityError:
            return  # this part of the source was analysed before: same key, no second event
        options = snapshot_options(self.task.config)
        zones = self.pipeline.engine.roi.zones if options.pop("draw_rois") else ()
        # frame None: the finding's own crop. The artefacts storage: MEDIA_ROOT or the object store.
        artefacts.save_bytes(snapshot, render_snapshot(frame, finding, zones=zones, **options))
        self.observer.event(event.pk, snapshot, finding.offset_s)
        self.unpublished.append(event)
        self._publish_pending()

    def _publish_pending(self) -> None:
        """Send the stored events to the outputs in order; during an outage they wait."""
        from analysis.outputs import publish

        while self.unpublished and not self.redis.down:
            publish(self.unpublished.pop(0))

    def _occurred_at(self, offset_s: float) -> datetime:
        """VCS-SPS: the file's begin time plus the offset; a live stream: now."""
        base = self.subtask.video_begin_time or self.subtask.started_at
        if base is None or self.subtask.source_url.startswith(("rtsp", "http")):
            return timezone.now()
        return base + timedelta(seconds=offset_s)

    # -- once a frame / once a second -----------------------------------------------------------

    def _tick(self, force: bool = False) -> None:
        no_commands: list[control.Command] = []
        # Read after a sender's wake-up (no Redis round trip per frame otherwise).
        for command in self.redis.call(self.inbox.pending, no_commands):
            if command.op == node.LEASE_OP:  # the node's batched UPDATE refused this job's beat
                self._beat_refused()
                continue
            self._handle(command)
        now = self.clock()
        if not force and now - self._last_tick < TICK_SECONDS:
            return
        self._last_tick = now
        self.redis.call(self.inbox.keep_alive, None)
        if self.redis.recoveries > self._recoveries_seen:
            self._after_outage()
        if self.stop_asked:
            raise StopNow
        if force or self._last_beat is None or now - self._last_beat >= beat_interval():
            self._last_beat = now
            self._heartbeat()
        self._announce_progress()
        if self.redis.call(lambda: node.is_draining(self.node_name), False):
            raise NodeDraining
        if now - self._started > settings.VIAS_JOB_SEGMENT:
            raise SegmentEnd

    def _after_outage(self) -> None:
        """Commands sent while Redis was away are lost: reload what may have changed, send what waited."""
        self._recoveries_seen = self.redis.recoveries
        self._reload_config()
        self._publish_pending()

    def _owned(self):
        """This run's subtask row, as long as its lease holds."""
        return Subtask.objects.filter(pk=self.subtask.pk, state__in=OWNED_STATES, **self.lease.owns())

    def _heartbeat(self) -> None:
        """Heartbeat, progress and checkpoint: handed to the node's loop, which writes the beats
        of all the node's subtasks in one fenced UPDATE per tick (analysis/node.py); written here
        in this job's own fenced UPDATE when no loop flushes the node's beats or Redis is down.
        The mtask's progress is the housekeeping's periodic aggregate."""
        percent = round(self.progress.percent, 2)
        # The per-camera figures ride on the heartbeat (once the job has made their row).
        stats = (
            self.observer.figures(self.pipeline) if self.observer is not None and self._stats_made else None
        )
        beat = node.Beat(
            self.subtask.pk, self.lease.attempt, time.time(), percent, self.progress.last_frame, stats
        )
        handed = self.lease.node_id is not None and self.redis.call(
            lambda: node.publish_beat(self.node_name, beat), False
        )
        if not handed:
            self._write_heartbeat(percent)
        self.subtask.progress = percent
        if self.observer is None:
            return
        if handed and stats is not None:
            self.observer.flush_clips()  # the figures went with the beat
        else:
            self.observer.flush(self.pipeline)
            self._stats_made = True

    def _write_heartbeat(self, percent: float) -> None:
        """This job's own fenced UPDATE. No row updated: stopped (StopNow) or lost the lease."""
        beating = Subtask.objects.filter(pk=self.subtask.pk, state__in=BEATING_STATES, **self.lease.owns())
        checkpoint = {"checkpoint_frame": self.progress.last_frame} if self.progress.last_frame else {}
        if not beating.update(heartbeat_at=timezone.now(), progress=percent, **checkpoint):
            self._beat_refused()

    def _beat_refused(self) -> None:
        """A heartbeat was refused (here, or by the node's batched UPDATE): a stop asked through
        the database ends the run as STOPPED, a lost lease ends it without a word."""
        row = Subtask.objects.filter(pk=self.subtask.pk).values("state", "attempts", "node_id").first()
        if row is None or (row["attempts"], row["node_id"]) != self._lease_key():
            raise LostOwnership
        if row["state"] == State.STOPPING:
            raise StopNow
        if row["state"] not in BEATING_STATES:
            raise LostOwnership

    def _lease_key(self) -> tuple[int, int | None]:
        return (self.lease.attempt, self.lease.node_id)

    def _announce_progress(self) -> None:
        """Once a second on the channel layer (Redis, not the database)."""
        percent = round(self.progress.percent, 2)
        if self.redis.down:
            return  # the push would only wait for a timeout
        announce(
            self.task.project.project_id,
            "progress",
            {
                "task_id": self.task.task_id,
                "subtask_id": self.subtask.pk,
                "progress": percent,
                "frames": self.progress.done,
                "total": self.progress.total,
            },
            task_id=self.task.task_id,
        )

    def _close_observer(self) -> None:
        """Open clips written and the last figures stored, however the run ended."""
        observer, self.observer = self.observer, None
        if observer is None:
            return
        try:
            observer.close(self.pipeline)
        except Exception:  # noqa: BLE001 - the console's figures must not change how a run ends
            log.exception("subtask %s: final stats not written", self.subtask.pk)

    def _write_mtask_progress(self) -> None:
        """The mtask's progress: the mean of its subtasks' (one aggregate query and one UPDATE).
        A stream's mtask is left to its schedule (the share of its window elapsed)."""
        if self.subtask.scene_id is None or self.subtask.source_url.startswith(STREAM_SCHEMES):
            return
        mtask_id = cast(Scene, self.subtask.scene).mtask_id  # scene_id is set
        mean = Subtask.objects.filter(scene__mtask_id=mtask_id).aggregate(p=Avg("progress"))["p"] or 0
        MTask.objects.filter(pk=mtask_id).update(progress=int(mean))

    def _handle(self, command: control.Command) -> None:
        try:
            if command.op == "stop":
                self.stop_asked = True
            elif command.op in ("update", "reload"):
                self._reload_config()
            elif command.op == "scene":  # its mtask's rotation: another preset, another scene
                self._turn_camera()
                self._reload_config()
            elif command.op == "store_conf":
                self.task.refresh_from_db(fields=["store_conf"])
            else:
                self._ack(command, ok=False, reason=_("unknown command %(op)s") % {"op": command.op})
                return
        except Exception as exc:  # noqa: BLE001 - a bad update is refused, the run goes on
            self._ack(command, ok=False, reason=f"{type(exc).__name__}: {exc}")
            return
        self._ack(command)

    def _ack(self, command: control.Command, ok: bool = True, reason: str = "") -> None:
        self.redis.call(lambda: self.inbox.ack(command, ok=ok, reason=reason), None)

    def _turn_camera(self) -> None:
        """A dome camera goes to its scene's preset (ONVIF) and settles before it is analysed."""
        from analysis import ptz

        fresh = Subtask.objects.select_related("video_channel", "scene").get(pk=self.subtask.pk)
        channel = fresh.video_channel
        if channel is None or not channel.ptz or not channel.onvif_url or fresh.scene is None:
            return
        camera = ptz.Camera(channel.onvif_url, channel.onvif_username, channel.onvif_password)
        ptz.goto_preset(camera, fresh.scene.preset)
        time.sleep(settings.VIAS_PTZ_SETTLE_MS / 1000)

    def _reload_config(self) -> None:
        fresh = Subtask.objects.select_related("task").get(pk=self.subtask.pk)
        for name in ("rois", "calibration_xml", "config_xml", "algo_args"):
            setattr(self.subtask, name, getattr(fresh, name))
        models_changed = self.task.detector_models != fresh.task.detector_models
        self.task.detector_models = fresh.task.detector_models
        update_pipeline(self.pipeline, self.subtask, detectors=models_changed)

    # -- state ----------------------------------------------------------------------------------

    def _move(self, target: State, reason: str, **fields: Any) -> None:
        from subtasks.services import LeaseLost

        try:
            transition(self.subtask, target, reason, lease=self.lease, **fields)
        except LeaseLost:
            raise LostOwnership from None
        except IllegalTransition:
            state_now = Subtask.objects.filter(pk=self.subtask.pk).values_list("state", flat=True).first()
            if state_now == State.STOPPING:
                raise StopNow from None
            raise LostOwnership from None

    def _finish(self, target: State, reason: str) -> bool:
        """End the run as `target`; False when the lease is gone (another job owns the subtask:
        nothing is written)."""

        if not self._refresh_state():
            log.info("subtask %s: not finishing as %s: it was given to another job", self.subtask.pk, target)
            return False
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if target == State.SUCCEEDED:
            fields["progress"] = 100.0
            self.progress.done = self.progress.total
        if self.subtask.state == State.STOPPING and target == State.SUCCEEDED:
            target, reason = State.STOPPED, _("stopped")  # a stop asked for wins over the end
        try:
            if target == State.STOPPED and self.subtask.state != State.STOPPING:
                transition(self.subtask, State.STOPPING, reason, lease=self.lease)
            transition(self.subtask, target, reason, lease=self.lease, **fields)
        except IllegalTransition as exc:  # LeaseLost too: a stale run ends without a word
            log.info("subtask %s: not finishing as %s: %s", self.subtask.pk, target, exc)
            if self._refresh_state() and self.subtask.state == State.STOPPING and target != State.STOPPED:
                # The stop arrived between our read and our write: the stop is what happened.
                self._finish(State.STOPPED, _("stopped"))
                return True
        else:
            if target == State.SUCCEEDED:
                self._announce_progress()  # the live bars end at 100 %, not the last tick's
        self._write_mtask_progress()
        return True

    def _hand_back(self) -> None:
        reason = _("node %(node)s is shutting down; handed back") % {"node": self.node_name}
        if not self._refresh_state():
            return  # another job owns it now: nothing to hand back
        if self.subtask.state == State.STOPPING:
            self._finish(State.STOPPED, _("stopped"))
            return
        if self.subtask.state != State.ABNORMAL:
            self._move(State.ABNORMAL, reason)
        self._move(State.STARTING, reason, node=None)
        dispatch(self.subtask.pk, count_attempt=False)

    def _refresh_state(self) -> bool:
        """Read the subtask's state again; False when this run's lease no longer holds."""
        row = Subtask.objects.filter(pk=self.subtask.pk).values("state", "attempts", "node_id").first()
        if row is None:
            return False
        self.subtask.state = row["state"]
        return (row["attempts"], row["node_id"]) == self._lease_key()
