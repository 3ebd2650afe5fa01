"""Mtask schedules at run time: what each subtask of a started task should do now, and the one
django-q2 Schedule row that wakes the task at its next edge (docs/state-machine.md).

`tasks.mtask_schedule.slot_at` says, for a subtask's mtask, which of its scenes runs at a moment
and when that changes. Here it is applied to a task's subtasks: the mtask of a subtask is the one
of the scenes that may configure it (tasks.scene_links: by channel, else the task's one scene),
and those scenes, in order, are its rotation (a dome camera's presets; a fixed camera has one).
A task whose subtasks all run now and never change needs no schedule (it runs as before).

One Schedule row per started task (`vias-mtask-<task_id>`, type ONCE at the soonest edge of any of
its mtasks) calls `subtasks.services.run_mtask_edge`, which applies the plan at that moment and
sets the next row: no loop per subtask, nothing in memory, so restarts lose nothing. Times are
wall-clock times in TIME_ZONE (django.utils.timezone's current zone).
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django_q.models import Schedule

from subtasks.choices import ACTIVE_STATES
from subtasks.models import Subtask
from tasks.models import MTask, Scene, Task
from tasks.mtask_schedule import BATCH, DailyWindow, Plan, ScheduleError, Slot, slot_at
from tasks.scene_links import candidates, ordered_scenes

EDGE_FUNC = "subtasks.services.run_mtask_edge"


def schedule_name(task_id: str) -> str:
    return f"vias-mtask-{task_id}"


@dataclass(frozen=True)
class Want:
    """What one subtask should do now."""

    subtask: Subtask
    scene: Scene | None  # the scene it analyses with while it runs (its rotation's turn)
    slot: Slot | None  # None: no mtask governs it (it runs whenever the task runs)
    mtask_id: int | None = None

    @property
    def run(self) -> bool:
        return self.slot is None or self.slot.running

    @property
    def next_start(self) -> datetime | None:
        return None if self.slot is None else self.slot.next_start


def plan_for(mtask: MTask, scenes: list[Scene], task: Task, activated: datetime) -> Plan:
    not_before = task.run_dt if task.run_dt and task.run_dt > activated else None
    window = DailyWindow(mtask.start_time, mtask.end_time, timezone.get_current_timezone())
    return Plan(mtask.type, window, mtask.time_interval, len(scenes), not_before, batch_started=None)


def want_of(subtask: Subtask, scenes: list[Scene], task: Task, now: datetime, activated: datetime) -> Want:
    channel = subtask.video_channel
    options = candidates(scenes, channel.vchan_refid if channel else "")
    if not options:
        return _unscheduled(subtask, task, now, activated)
    mtask = options[0].mtask
    rotation = [scene for scene in options if scene.mtask_id == mtask.pk]
    plan = plan_for(mtask, rotation, task, activated)
    if plan.type == 2:  # a batch counts its turns from when the task was started
        plan = Plan(plan.type, plan.window, plan.interval_minutes, plan.scenes, plan.not_before, activated)
    slot = slot_at(plan, now)
    return Want(subtask, rotation[slot.scene] if slot.scene is not None else None, slot, mtask.pk)


def _unscheduled(subtask: Subtask, task: Task, now: datetime, activated: datetime) -> Want:
    """No mtask governs the subtask (VCS and v2 tasks have none): it runs whenever the task runs,
    from its run_dt (VCS execStartTime) on."""
    if not (task.run_dt and task.run_dt > activated):
        return Want(subtask, None, None)
    whole_day = DailyWindow(None, None, timezone.get_current_timezone())
    return Want(subtask, None, slot_at(Plan(0, whole_day, 5, 1, not_before=task.run_dt), now))


def plan_task(task: Task, now: datetime, activated: datetime) -> tuple[list[Want], datetime | None]:
    """Each subtask's Want at `now`, and the soonest edge after which any of them changes."""
    scenes = ordered_scenes(task)
    subtasks = task.subtasks.select_related("video_channel", "scene__mtask").order_by("position")
    wants = [want_of(subtask, scenes, task, now, activated) for subtask in subtasks]
    edges = [w.slot.next_edge for w in wants if w.slot is not None and w.slot.next_edge is not None]
    return wants, min(edges, default=None)


def always_running(wants: list[Want], edge: datetime | None) -> bool:
    """Nothing to schedule: every subtask runs now and no edge will ever change that."""
    return edge is None and all(want.run for want in wants)


def set_edge(task: Task, edge: datetime | None, activated: datetime) -> None:
    """The task's one Schedule row, at `edge` (removed when there is none)."""
    if edge is None:
        remove(task.task_id)
        return
    Schedule.objects.update_or_create(
        name=schedule_name(task.task_id),
        defaults={
            "func": EDGE_FUNC,
            "args": f"{task.task_id!r}, {activated.isoformat()!r}",
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": edge,
        },
    )


def activated_at(task_id: str) -> datetime | None:
    """When the task was started, as its Schedule row remembers (None: it has no row)."""
    args = Schedule.objects.filter(name=schedule_name(task_id)).values_list("args", flat=True).first()
    if not args:
        return None
    try:
        _task_id, activated = ast.literal_eval(f"({args})")
        return datetime.fromisoformat(activated)
    except (ValueError, SyntaxError, TypeError):
        return None


def remove(task_id: str) -> None:
    Schedule.objects.filter(name=schedule_name(task_id)).delete()


STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
STREAM_Q = reduce(operator.or_, (Q(source_url__startswith=scheme) for scheme in STREAM_SCHEMES))


def write_progress(wants: list[Want]) -> None:
    """An mtask's progress as its schedule says: the share of the window elapsed (polling, time
    window) or of the scenes done (batch), for streams; a file's subtask writes the share of the
    file analysed itself (analysis.jobs). One UPDATE per mtask."""
    progress: dict[int, float] = {}
    for want in wants:
        if want.slot is None or want.mtask_id is None:
            continue
        if want.slot.done or want.subtask.source_url.startswith(STREAM_SCHEMES):
            progress.setdefault(want.mtask_id, want.slot.progress)
    for mtask_id, value in progress.items():
        MTask.objects.filter(pk=mtask_id).update(progress=int(value))


def schedule_owned_mtasks() -> QuerySet[Subtask, dict[str, Any]]:
    """The mtasks (as `scene__mtask_id` rows) whose progress their schedule says, not the mean of
    their subtasks': those with an active subtask analysing a stream (a stream has no end to
    measure against: its job's own progress is 0)."""
    return (
        Subtask.objects.filter(state__in=ACTIVE_STATES, scene__isnull=False)
        .filter(STREAM_Q)
        .values("scene__mtask_id")
    )


def window_share(mtask: dict[str, object], now: datetime) -> int:
    """The share of the mtask's current window elapsed at `now` (0 outside every window)."""
    try:
        window = DailyWindow(mtask["start_time"], mtask["end_time"], timezone.get_current_timezone())  # type: ignore[arg-type]
    except ScheduleError:
        return 0
    occurrence = window.occurrence_at(now)
    if occurrence is None:
        return 0
    opens, closes = occurrence
    return min(100, int(100 * (now - opens) / (closes - opens)))


def write_window_progress(now: datetime | None = None) -> int:
    """Every running stream mtask (polling, time window) gets the share of its window elapsed (a
    whole-day window: of the day): one SELECT and one UPDATE for the whole cluster, run by the housekeeping's
    periodic aggregate (analysis.dispatch.refresh_mtask_progress), not by each job per frame. A
    batch's share of scenes done changes only at its edges, which write it (write_progress)."""
    now = now or timezone.now()
    rows = list(
        MTask.objects.filter(pk__in=schedule_owned_mtasks())
        .exclude(type=BATCH)
        .values("pk", "start_time", "end_time")
    )
    if not rows:
        return 0
    shares = {row["pk"]: window_share(row, now) for row in rows}
    whens = [When(pk=pk, then=Value(share)) for pk, share in shares.items()]
    return MTask.objects.filter(pk__in=list(shares)).update(
        progress=Case(*whens, default=Value(0), output_field=IntegerField())
    )
