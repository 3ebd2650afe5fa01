"""Weekly task schedules (VIAS v2 TaskSchedule) as django-q2 schedules (docs/dialects.md).

A task's `schedule` is `{"type": "weekly", "timezone": "+08:00", "days_of_week": [1..7],
"periods": [[{"begin_at": "08:00", "end_at": "18:00"}], ...]}`: `periods[i]` are the windows of
`days_of_week[i]` (a single list applies to every listed day). A window whose `end_at` is not
after its `begin_at` runs across midnight into the next day. Windows that overlap or touch (a gap
of at most a minute: 23:59 then 00:00 the next day) are one continuous run.

Starting a scheduled task (`subtasks.services.start_task`, for every dialect) activates it: each
merged window becomes two django-q2 schedules, one calling `subtasks.services.run_edge(task_id,
"start")` at its beginning and one `run_edge(task_id, "stop")` at its end, every week; if the task
is inside a window now it starts at once. Stopping it (`stop_task`, for every dialect) removes
them. This module only computes the windows and keeps the Schedule rows.

Offsets are fixed (no daylight saving in "+08:00"), so the schedules repeat every 10080 minutes
(`MINUTES` schedules: django-q2 shifts `WEEKLY` ones by the server's daylight-saving changes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django_q.models import Schedule

from tasks.models import Task
from tasks.validators import parse_clock, parse_utc_offset

DAY = 24 * 3600
WEEK = 7 * DAY
# Two windows this close (23:59 then 00:00 the next day) are one continuous run.
CONTIGUOUS = 60
START, STOP = "start", "stop"
# The core start/stop of the subtasks at a window edge (tasks.schedules cannot import it: it imports us).
EDGE_FUNC = "subtasks.services.run_edge"

Interval = tuple[int, int]  # [begin, end) in seconds after Monday 00:00 UTC; end may pass WEEK


def schedule_name(task_id: str, action: str, index: int) -> str:
    return f"vias-task-{task_id}-{action}-{index}"


def _prefix(task_id: str) -> str:
    return f"vias-task-{task_id}-"


def local_windows(schedule: dict[str, Any]) -> Iterable[Interval]:
    """Each window of the schedule in seconds after Monday 00:00 of its own time zone."""
    days = schedule["days_of_week"]
    periods = schedule["periods"]
    for index, day in enumerate(days):
        windows = periods[index] if len(periods) == len(days) else periods[0]
        for window in windows:
            begin = parse_clock(window["begin_at"], "begin_at")
            end = parse_clock(window["end_at"], "end_at")
            if end <= begin:  # across midnight, into the next day
                end += DAY
            yield (day - 1) * DAY + begin, (day - 1) * DAY + end


def weekly_intervals(schedule: dict[str, Any]) -> list[Interval]:
    """The schedule's run intervals in UTC, merged; [(0, WEEK)] when it never stops."""
    offset = parse_utc_offset(schedule["timezone"]) * 60
    spans = sorted(((b - offset) % WEEK, (b - offset) % WEEK + (e - b)) for b, e in local_windows(schedule))
    merged: list[list[int]] = []
    for begin, end in spans:
        if merged and begin - merged[-1][1] <= CONTIGUOUS:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    # The week is a circle: a run past Sunday night may join Monday's first one.
    while len(merged) > 1 and merged[0][0] + WEEK - merged[-1][1] <= CONTIGUOUS:
        first = merged.pop(0)
        merged[-1][1] = max(merged[-1][1], first[1] + WEEK)
    if any(end - begin >= WEEK - CONTIGUOUS for begin, end in merged):
        return [(0, WEEK)]
    return [(begin, end) for begin, end in merged]


def _week_start(now: datetime) -> datetime:
    utc = now.astimezone(UTC)
    return (utc - timedelta(days=utc.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def _second_of_week(now: datetime) -> float:
    return (now.astimezone(UTC) - _week_start(now)).total_seconds()


def in_window(schedule: dict[str, Any], now: datetime) -> bool:
    """Whether the task should be running at `now`."""
    if not schedule:
        return False
    moment = _second_of_week(now)
    return any(b <= moment < e or b <= moment + WEEK < e for b, e in weekly_intervals(schedule))


def next_at(second: int, now: datetime) -> datetime:
    """The first moment after `now` that is `second` seconds into a UTC week."""
    when = _week_start(now) + timedelta(seconds=second % WEEK)
    return when if when > now else when + timedelta(weeks=1)


def edges(schedule: dict[str, Any], now: datetime) -> list[tuple[str, datetime]]:
    """(action, next run) of every window edge, soonest first; none for a schedule that never stops."""
    intervals = weekly_intervals(schedule)
    if intervals == [(0, WEEK)]:
        return []
    found = [(START, next_at(b, now)) for b, _ in intervals] + [(STOP, next_at(e, now)) for _, e in intervals]
    return sorted(found, key=lambda edge: edge[1])


def sync(task: Task, now: datetime | None = None) -> list[Schedule]:
    """The task's django-q2 schedules made to match its schedule and whether it is active."""
    now = now or timezone.now()
    Schedule.objects.filter(name__startswith=_prefix(task.task_id)).delete()
    if task.schedule_active and not task.schedule:
        # Its schedule was removed: nothing is left to activate.
        Task.objects.filter(pk=task.pk).update(schedule_active=False)
        task.schedule_active = False
    if not (task.schedule_active and task.schedule):
        return []
    rows = [
        Schedule(
            name=schedule_name(task.task_id, action, index),
            func=EDGE_FUNC,
            args=f"{task.task_id!r}, {action!r}",
            schedule_type=Schedule.MINUTES,
            minutes=WEEK // 60,
            repeats=-1,
            next_run=when,
        )
        for index, (action, when) in enumerate(edges(task.schedule, now))
    ]
    return Schedule.objects.bulk_create(rows)


def remove(task_id: str) -> None:
    Schedule.objects.filter(name__startswith=_prefix(task_id)).delete()
