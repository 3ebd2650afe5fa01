"""Every subtask state change goes through `transition`; the big-task start/stop and the
configuration steps are built on it. Views, admin actions, consumers and queue jobs call these."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subtasks import callbacks, mtask_runs
from subtasks.choices import (
    ACTIVE_STATES,
    STARTABLE_STATES,
    STOP_DIRECTLY,
    STOP_VIA_NODE,
    State,
    can_transition,
)
from subtasks.engine import Ack, engine
from subtasks.models import Subtask
from tasks import schedules
from tasks.models import Project, Task, VideoChannel
from tasks.validators import validate_detector_models
from vias.lib.announce import announce
from vias.lib.broker import require_broker
from vias.lib.errors import Conflict, Invalid, NotFound, ServiceError, clean
from vias.lib.ssrf import check_source_url

log = logging.getLogger(__name__)

CONFIG_FIELDS = ("rois", "calibration_xml", "config_xml", "algo_args")


class IllegalTransition(Conflict):
    """A state change the state machine does not allow."""


class LeaseLost(IllegalTransition):
    """The subtask was given to another job (another attempt or node) meanwhile: a stale job's
    write is refused."""


@dataclass(frozen=True)
class Lease:
    """What a job owns a subtask by: the attempt it was dispatched as, on its node. Every write a
    job makes is conditional on both (fencing), so a job the reaper gave up on writes nothing."""

    attempt: int
    node_id: int | None

    def owns(self) -> dict[str, Any]:
        """Filter arguments for Subtask rows this lease still holds."""
        return {"attempts": self.attempt, "node_id": self.node_id}


@dataclass(frozen=True)
class Outcome:
    """What one subtask did in answer to a command on its big task."""

    subtask_id: int
    state: str
    ok: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_id": self.subtask_id, "state": self.state, "ok": self.ok, "reason": self.reason}


def get_subtask(project: Project, subtask_id: int | str) -> Subtask:
    try:
        pk = int(subtask_id)
    except (TypeError, ValueError):
        raise NotFound(_("no subtask %(id)s") % {"id": subtask_id}, field="subtask_id") from None
    subtask = (
        Subtask.objects.for_project(project).select_related("task", "task__project").filter(pk=pk).first()
    )
    if subtask is None:
        raise NotFound(_("no subtask %(id)s") % {"id": subtask_id}, field="subtask_id")
    return subtask


def transition(
    subtask: Subtask, target: State, reason: str = "", lease: Lease | None = None, **fields: Any
) -> Subtask:
    """Move one subtask to `target` if the state machine allows it, then announce.

    The UPDATE is conditional on the state read, so two concurrent changes cannot both win; with a
    `lease` (a job's own changes) also on the job's attempt and node.
    """
    current = State(subtask.state)
    if not can_transition(current, target):
        raise IllegalTransition(
            _("subtask %(id)s cannot go from %(from)s to %(to)s")
            % {"id": subtask.pk, "from": current, "to": target}
        )
    now = timezone.now()
    changes: dict[str, Any] = {"state": target, "status_reason": reason, "updated_at": now, **fields}
    if target == State.RUNNING and current == State.STARTING:
        changes.setdefault("started_at", now)
    if target in (State.STOPPED, State.SUCCEEDED, State.FAILED):
        changes.setdefault("finished_at", now)
    owned = lease.owns() if lease is not None else {}
    updated = Subtask.objects.filter(pk=subtask.pk, state=current, **owned).update(**changes)
    if not updated:
        now_row = Subtask.objects.filter(pk=subtask.pk).values("state", "attempts", "node_id").first()
        if now_row is None:  # deleted meanwhile: a 404, not an unhandled DoesNotExist
            raise NotFound(_("no subtask %(id)s") % {"id": subtask.pk}, field="subtask_id")
        subtask.state = now_row["state"]
        if lease is not None and (now_row["attempts"], now_row["node_id"]) != (lease.attempt, lease.node_id):
            raise LeaseLost(_("subtask %(id)s was given to another job meanwhile") % {"id": subtask.pk})
        raise IllegalTransition(
            _("subtask %(id)s changed state meanwhile (now %(state)s)")
            % {"id": subtask.pk, "state": subtask.state}
        )
    for name, value in changes.items():
        setattr(subtask, name, value)
    _announce_state(subtask, current)
    callbacks.state_changed(subtask, current)
    return subtask


def _announce_state(subtask: Subtask, previous: State) -> None:
    task = subtask.task
    announce(
        task.project.project_id,
        "subtask.state",
        {
            "task_id": task.task_id,
            "subtask_id": subtask.pk,
            "state": subtask.state,
            "previous": previous,
            "reason": subtask.status_reason,
        },
        task_id=task.task_id,
    )


@transaction.atomic
def configure_subtask(subtask: Subtask, spec: dict[str, Any]) -> Subtask:
    """Set a subtask's ROIs, calibration, config and algo_args (validated by the model)."""
    subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
    for name in CONFIG_FIELDS:
        if name in spec:
            setattr(subtask, name, spec[name])
    if set(spec) & set(CONFIG_FIELDS):
        subtask.follows_scene = False  # its own configuration now: scene edits leave it alone
    clean(subtask, "", exclude=["task", "video_channel", "scene", "node"])
    subtask.save(update_fields=[*CONFIG_FIELDS, "follows_scene", "updated_at"])
    announce(
        subtask.task.project.project_id,
        "subtask.configured",
        {"task_id": subtask.task_id, "subtask_id": subtask.pk},
        task_id=subtask.task_id,
    )
    return subtask


def _tell(subtask_ids: list[int], command: dict[str, Any]) -> None:
    engine().notify_subtasks(subtask_ids, command)


def apply_config(subtask: Subtask, spec: dict[str, Any], timeout: float | None = None) -> tuple[Subtask, Ack]:
    """configure_subtask, then have a running subtask apply it now; the device's acknowledgement
    (or "applied" when nothing runs: the job reads the stored configuration when it starts)."""
    require_broker()  # during a Redis outage: 503 before the write, not a change nobody applies
    subtask = configure_subtask(subtask, spec)
    command = {"op": "update", "fields": sorted(spec)}
    return subtask, engine().send_to_subtasks([subtask.pk], command, timeout)[0]


@transaction.atomic
def mark_config_complete(subtask: Subtask) -> Subtask:
    """The operator's "config complete": the subtask may now be dispatched."""
    subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
    Subtask.objects.filter(pk=subtask.pk).update(config_complete=True)
    subtask.config_complete = True
    if subtask.state == State.PENDING:
        transition(subtask, State.CONFIGURED)
    return subtask


@transaction.atomic
def delete_subtask(subtask: Subtask) -> None:
    if subtask.state in ACTIVE_STATES:
        raise Conflict(
            _("subtask %(id)s is %(state)s; stop it first") % {"id": subtask.pk, "state": subtask.state}
        )
    task, pk = subtask.task, subtask.pk
    before = callbacks.task_state_before(task)
    subtask.delete()
    callbacks.subtasks_changed(task, before, _("subtask %(id)s deleted") % {"id": pk})
    announce(
        task.project.project_id,
        "subtask.deleted",
        {"task_id": task.task_id, "subtask_id": pk},
        task_id=task.task_id,
    )


def start_task(task: Task, now: datetime | None = None) -> list[Outcome]:
    """Start a big task, for every dialect, the admin and the websocket alike.

    A task with a weekly schedule is activated: its django-q2 Schedule rows call `run_edge` at
    each window edge, and it starts now only inside a window. One without a schedule starts at
    once: every config-complete subtask that is not running is dispatched. Reports each subtask
    that was asked to start (none when a scheduled task is outside its windows).

    During a Redis outage nothing could be queued: 503 (Unavailable) before anything is written.
    """
    require_broker()
    return _start_task(task, now)


@transaction.atomic
def _start_task(task: Task, now: datetime | None) -> list[Outcome]:
    _check_onvif_addresses(task)
    if not task.schedule:
        return _start_by_mtasks(task, now or timezone.now())
    _set_schedule_active(task, True)
    schedules.sync(task, now)
    return _start_subtasks(task) if schedules.in_window(task.schedule, now or timezone.now()) else []


def _start_by_mtasks(task: Task, now: datetime) -> list[Outcome]:
    """Start a task as its mtask schedules say (subtasks.mtask_runs): at once when they all run
    now and always will; otherwise the task is activated, what is inside its window starts (with
    its rotation's scene), the rest waits with its next start, and one Schedule row wakes the task
    at its next edge."""
    wants, edge = mtask_runs.plan_task(task, now, activated=now)
    if mtask_runs.always_running(wants, edge):
        return _start_subtasks(task)
    if all(want.mtask_id is None for want in wants):
        _check_startable(task)  # only a delayed first run (run_dt, VCS execStartTime): refused now
    else:
        _check_detectors(task)
    _set_schedule_active(task, True)
    mtask_runs.set_edge(task, edge, activated=now)
    outcomes = [_apply_want(want) for want in wants]
    mtask_runs.write_progress(wants)
    return outcomes


def _check_onvif_addresses(task: Task) -> None:
    """A dome camera whose ONVIF address the source URL policy refuses now (stored while allowed;
    the policy or its host's address changed since) cannot be turned: its task does not start."""
    channels = VideoChannel.objects.filter(subtasks__task=task, ptz=True).exclude(onvif_url="").distinct()
    for refid, url in channels.values_list("vchan_refid", "onvif_url"):
        try:
            check_source_url(url)
        except ValidationError as exc:
            raise Conflict(
                _("the ONVIF address of dome camera %(refid)s is refused: %(reason)s")
                % {"refid": refid, "reason": " ".join(exc.messages)},
                field="onvif_url",
            ) from None


def _check_startable(task: Task) -> None:
    subtasks = list(Subtask.objects.filter(task=task))
    if not subtasks:
        raise Conflict(_("the task has no subtasks to start"))
    _check_detectors(task)
    if not any(s.config_complete or s.state in ACTIVE_STATES for s in subtasks):
        raise Conflict(
            _("no subtask is config-complete; configure the subtasks and mark them config-complete first")
        )


def _apply_want(want: mtask_runs.Want, only_waiting: bool = False) -> Outcome:
    """One subtask made to do what its mtask schedule says now (inside a transaction).
    `only_waiting`: start only a subtask that waits for its window (a re-plan after an edit leaves
    a finished or individually stopped subtask alone; the next edge runs it as usual)."""
    subtask = (
        # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the channel's outer join.
        Subtask.objects.select_for_update(of=("self",))
        .select_related("task__project", "video_channel")
        .get(pk=want.subtask.pk)
    )
    if not subtask.config_complete:
        return Outcome(subtask.pk, subtask.state, False, _("not config-complete"))
    if not want.run:
        Subtask.objects.filter(pk=subtask.pk).update(waiting_until=want.next_start)
        if want.next_start != subtask.waiting_until:
            _announce_waiting(subtask, want.next_start)
        outcome = _stop_one(subtask) if subtask.state in ACTIVE_STATES else None
        when = timezone.localtime(want.next_start).isoformat() if want.next_start else "-"
        return Outcome(
            subtask.pk,
            outcome.state if outcome else subtask.state,
            True,
            _("waiting until %(t)s") % {"t": when},
        )
    was_waiting = subtask.waiting_until is not None
    Subtask.objects.filter(pk=subtask.pk).update(waiting_until=None)
    if was_waiting:
        _announce_waiting(subtask, None)
    if want.scene is not None and want.scene.pk != subtask.scene_id:
        _turn_to(subtask, want.scene)
    if only_waiting and not was_waiting and subtask.state not in ACTIVE_STATES:
        return Outcome(subtask.pk, subtask.state, True, _("not waiting: left as it is"))
    return _start_one(subtask)


def _announce_waiting(subtask: Subtask, waiting_until: datetime | None) -> None:
    """A subtask now waits for its mtask's window until `waiting_until` (None: no longer waits);
    websocket subscribers hear it as a "subtask.schedule" push (docs/websocket.md)."""
    subtask.waiting_until = waiting_until
    task = subtask.task
    announce(
        task.project.project_id,
        "subtask.schedule",
        {
            "task_id": task.task_id,
            "subtask_id": subtask.pk,
            "waiting_until": waiting_until.isoformat() if waiting_until else None,
        },
        task_id=task.task_id,
    )


def _turn_to(subtask: Subtask, scene: Any) -> None:
    """Its rotation's next scene: the subtask takes the scene's configuration; a running job
    moves the camera to the scene's preset, waits for it to settle and analyses with it."""
    from tasks.scene_links import Link, scene_key, write

    write([Link(subtask, scene, scene_key(subtask.scene))])
    if subtask.state in ACTIVE_STATES:
        command = {"op": "scene", "preset": scene.preset, "scene_id": scene.pk}
        transaction.on_commit(partial(_tell, [subtask.pk], command))


def run_mtask_edge(task_id: str, activated: str, now: datetime | None = None) -> str:
    """What the task's Schedule row runs at an edge of its mtask schedules: apply the plan now,
    then set the next edge. Nothing when the task was stopped or deleted meanwhile."""
    now = now or timezone.now()
    task = Task.objects.select_related("project").filter(pk=task_id).first()
    if task is None or not task.schedule_active:
        mtask_runs.remove(task_id)
        return "no active task"
    started = datetime.fromisoformat(activated)
    with transaction.atomic():
        wants, edge = mtask_runs.plan_task(task, now, activated=started)
        outcomes = [_apply_want(want) for want in wants]
        mtask_runs.write_progress(wants)
        mtask_runs.set_edge(task, edge, activated=started)
    running = sum(1 for want in wants if want.run)
    return f"edge at {now.isoformat()}: {running} of {len(outcomes)} subtasks run; next {edge}"


@transaction.atomic
def replan_task(task: Task, now: datetime | None = None) -> list[Outcome]:
    """A started task's schedules applied again at once after an edit (an mtask's window, type or
    interval, its scenes, run_dt, a v2 weekly schedule), for every edge that edits (native PUT,
    websocket, v2, the admin): its Schedule rows are replaced; a subtask now outside its window
    stops and waits, one now inside that was waiting starts, a dome turns to its rotation's scene.
    Nothing for a task that is not started (it plans when it starts). Runs inside the edit's
    transaction; dispatches and commands go after commit."""
    now = now or timezone.now()
    if task.schedule:  # a v2 weekly schedule
        if not task.schedule_active:
            return []
        schedules.sync(task, now)
        if schedules.in_window(task.schedule, now):
            subtasks = Subtask.objects.select_for_update().select_related("task__project").filter(task=task)
            return [_start_one(subtask) for subtask in subtasks]
        return _stop_subtasks(task)
    if not (task.schedule_active or task.subtasks.active().exists()):
        return []
    activated = mtask_runs.activated_at(task.task_id) or now
    wants, edge = mtask_runs.plan_task(task, now, activated=activated)
    if mtask_runs.always_running(wants, edge):
        mtask_runs.remove(task.task_id)  # runs all the time now: no edge to wake it
        if task.schedule_active:
            _set_schedule_active(task, False)
        return [_apply_want(want, only_waiting=True) for want in wants]
    _set_schedule_active(task, True)
    mtask_runs.set_edge(task, edge, activated=activated)
    outcomes = [_apply_want(want, only_waiting=True) for want in wants]
    mtask_runs.write_progress(wants)
    return outcomes


@transaction.atomic
def stop_task(task: Task) -> list[Outcome]:
    """Stop a big task and deactivate its schedule: no Schedule row is left to start it again.

    Not yet picked up -> STOPPED; on a node -> STOPPING (the node confirms)."""
    if task.schedule_active:
        _set_schedule_active(task, False)
    schedules.remove(task.task_id)
    mtask_runs.remove(task.task_id)
    waiting = Subtask.objects.filter(task=task, waiting_until__isnull=False)
    for subtask in waiting.select_related("task__project"):
        _announce_waiting(subtask, None)
    waiting.update(waiting_until=None)
    return _stop_subtasks(task)


def run_edge(task_id: str, action: str) -> str:
    """What a django-q2 schedule runs at a window edge: the subtasks of an active scheduled task
    start or stop; the schedule itself stays active."""
    task = Task.objects.select_related("project").filter(pk=task_id).first()
    if task is None or not task.schedule_active:
        schedules.remove(task_id)  # deleted or deactivated meanwhile: these schedules are left over
        return "no active scheduled task"
    try:
        with transaction.atomic():
            outcomes = _start_subtasks(task) if action == schedules.START else _stop_subtasks(task)
    except ServiceError as exc:
        log.info("scheduled %s of task %s: %s", action, task_id, exc.message)
        return exc.message
    return f"{action}: {sum(o.ok for o in outcomes)} of {len(outcomes)} subtasks"


def _set_schedule_active(task: Task, active: bool) -> None:
    Task.objects.filter(pk=task.pk).update(schedule_active=active)
    task.schedule_active = active


def _start_subtasks(task: Task) -> list[Outcome]:
    """Dispatch every config-complete subtask that is not running; report each subtask."""
    subtasks = list(Subtask.objects.select_for_update().select_related("task__project").filter(task=task))
    if not subtasks:
        raise Conflict(_("the task has no subtasks to start"))
    _check_detectors(task)
    outcomes = [_start_one(subtask) for subtask in subtasks]
    if not any(o.ok for o in outcomes) and not any(s.state in ACTIVE_STATES for s in subtasks):
        raise Conflict(
            _("no subtask is config-complete; configure the subtasks and mark them config-complete first")
        )
    return outcomes


def _start_one(subtask: Subtask) -> Outcome:
    if subtask.state in ACTIVE_STATES:
        return Outcome(subtask.pk, subtask.state, True, _("already %(state)s") % {"state": subtask.state})
    if not subtask.config_complete:
        return Outcome(subtask.pk, subtask.state, False, _("not config-complete"))
    if subtask.state not in STARTABLE_STATES:
        return Outcome(
            subtask.pk, subtask.state, False, _("cannot start from %(state)s") % {"state": subtask.state}
        )
    transition(
        subtask,
        State.STARTING,
        attempts=0,
        progress=0.0,
        checkpoint_frame=0,
        heartbeat_at=None,
        finished_at=None,
        node=None,
    )
    _dispatch_after_commit(subtask.pk)
    return Outcome(subtask.pk, subtask.state, True)


class _Dispatches:
    """The subtasks one transaction started, dispatched together once it commits: a task's start
    is one batch (a few statements and one Redis round trip) instead of one dispatch each."""

    def __init__(self, subtask_id: int) -> None:
        self.ids = [subtask_id]

    def __call__(self) -> None:
        engine().dispatch_many(self.ids)


def _dispatch_after_commit(subtask_id: int) -> None:
    # Joins the batch this transaction already has (Django keeps the callbacks of the open
    # transaction in run_on_commit, and drops them with a rolled-back savepoint; an id that
    # joined and was rolled back is skipped by the dispatch, which takes only waiting subtasks).
    if connection.in_atomic_block:
        for entry in connection.run_on_commit:  # (savepoint ids, callback, robust)
            callback = entry[1]
            if isinstance(callback, _Dispatches):
                callback.ids.append(subtask_id)
                return
    transaction.on_commit(_Dispatches(subtask_id))


def _dispatch(subtask_id: int) -> None:
    engine().dispatch(subtask_id)


def _check_detectors(task: Task) -> None:
    """A task asking for a category no registered detector provides does not start."""
    missing = engine().missing_categories(task)
    if missing:
        raise Conflict(
            _(
                "no detector model is registered for %(categories)s; run `manage.py fetch_models` or register one"
            )
            % {"categories": ", ".join(missing)}
        )


def _stop_subtasks(task: Task) -> list[Outcome]:
    subtasks = list(Subtask.objects.select_for_update().select_related("task__project").filter(task=task))
    return [_stop_one(subtask) for subtask in subtasks]


def _stop_one(subtask: Subtask) -> Outcome:
    if subtask.state in STOP_DIRECTLY:
        transition(subtask, State.STOPPED, _("stopped before it started"))
    elif subtask.state in STOP_VIA_NODE:
        transition(subtask, State.STOPPING, _("stop requested"))
        # The job also sees STOPPING at its next heartbeat; the command makes it immediate.
        transaction.on_commit(partial(_tell, [subtask.pk], {"op": "stop"}))
    else:
        return Outcome(subtask.pk, subtask.state, True, _("not running"))
    return Outcome(subtask.pk, subtask.state, True)


# ---- commands that reach running subtasks (websocket protocol, docs/websocket.md) -------------------
# Each writes first (the database stays the source of truth), then tells the running subtasks through
# the control channel and returns one subtasks.engine.Ack per subtask. A subtask that is not running
# answers "applied" at once: it reads the database when it starts.


def start_subtask(subtask: Subtask) -> Outcome:
    """Dispatch one config-complete subtask (start_task's rules, for one subtask)."""
    require_broker()
    with transaction.atomic():
        subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
        _check_detectors(subtask.task)
        return _start_one(subtask)


def stop_subtask(subtask: Subtask) -> Outcome:
    """Stop one subtask (stop_task's rule, for one subtask)."""
    with transaction.atomic():
        subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
        return _stop_one(subtask)


def dispatch_again(subtask: Subtask) -> Outcome:
    """Put a subtask on a node's queue again: one waiting for a node (STARTING, RECOVERING) is
    dispatched now; an ABNORMAL one goes back to STARTING first (the reaper's path); a FAILED,
    STOPPED or SUCCEEDED one is started again (start_subtask's rules)."""
    require_broker()
    if subtask.state in (State.STARTING, State.RECOVERING):
        node = engine().dispatch(subtask.pk, count_attempt=False)
        reason = (
            _("on node %(node)s") % {"node": node.name} if node else _("waiting for a free analysis node")
        )
        return Outcome(subtask.pk, subtask.state, True, reason)
    if subtask.state == State.ABNORMAL:
        with transaction.atomic():
            locked = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
            transition(locked, State.STARTING, _("dispatched again"), node=None)
            transaction.on_commit(partial(_dispatch, locked.pk))
        return Outcome(locked.pk, locked.state, True)
    if subtask.state in STARTABLE_STATES:
        return start_subtask(subtask)
    raise Conflict(
        _("subtask %(id)s is %(state)s: nothing to dispatch") % {"id": subtask.pk, "state": subtask.state}
    )


def set_pic_task_models(task: Task, models: Any, timeout: float | None = None) -> list[Ack]:
    """Change a picture task's algorithm combination (Task.detector_models) and send it straight
    to its subtasks. Refused for video tasks; validated by the model's own validator."""
    require_broker()
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("project").get(pk=task.pk)
        if not task.is_picture_task:
            raise Invalid(
                _("only picture tasks (pull_pic_files, push_pic_files) take a picture task config"),
                field="task_id",
            )
        try:
            validate_detector_models(models)
        except ValidationError as exc:
            raise ValidationError({"detector_models": exc.messages}) from None
        task.detector_models = list(models)
        task.save(update_fields=["detector_models", "update_dt"])
        subtask_ids = list(task.subtasks.order_by("position").values_list("pk", flat=True))
        announce(task.project.project_id, "task.updated", {"task_id": task.task_id}, task_id=task.task_id)
    command = {"op": "update", "fields": {"detector_models": task.detector_models}}
    return engine().send_to_subtasks(subtask_ids, command, timeout)
