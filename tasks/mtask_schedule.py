"""When an mtask's scenes run: pure functions of the schedule and a moment (docs/state-machine.md).

An mtask has a daily window `start_time`..`end_time` in the server's TIME_ZONE (a window whose
end is before its start crosses midnight; 23:59:59 means the end of the day; no times at all or
00:00:00..23:59:59 is the whole day), a `time_interval` in minutes and a type:

- 0 polling: inside the window the scenes take turns, each for `time_interval` minutes, from the
  window's opening (scene i runs in the turns k with k mod n == i). One scene runs all window long.
- 1 time window: inside the window the scenes run one after the other, each for an equal share
  of the window (one scene: the whole window). Our reading: the seed says only "时间段任务".
- 2 batch: from its first moment inside a window, each scene once, in order, for `time_interval`
  minutes, then the mtask is done (turns are timed for files too; a file is not re-analysed per scene).

`run_dt` (native) or `execStartTime` (VCS) in the future is `not_before`: nothing runs earlier.
Everything here is pure (no database, no clock): `slot_at(plan, now)` says what runs at `now`
and when that changes next, which is all a scheduler needs to set its one next edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

POLLING, TIME_WINDOW, BATCH = 0, 1, 2
DAY = timedelta(days=1)
END_OF_DAY = time(23, 59, 59)
MAX_INTERVAL_MINUTES = 7 * 24 * 60


class ScheduleError(ValueError):
    """A schedule that cannot run (equal window ends, a bad interval, an unknown type)."""


@dataclass(frozen=True)
class DailyWindow:
    """`start`..`end` every day in `tz`; both None: the whole day."""

    start: time | None
    end: time | None
    tz: tzinfo

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ScheduleError("give both start_time and end_time, or neither")
        if self.start is not None and self.start == self.end:
            raise ScheduleError("start_time and end_time are equal: the window would be empty")

    @property
    def all_day(self) -> bool:
        return self.start is None or (self.start == time(0) and self.end == END_OF_DAY)

    def _occurrence(self, day: date) -> tuple[datetime, datetime]:
        assert self.start is not None and self.end is not None
        opens = datetime.combine(day, self.start, tzinfo=self.tz)
        if self.end == END_OF_DAY:
            closes = datetime.combine(day + DAY, time(0), tzinfo=self.tz)
        elif self.end > self.start:
            closes = datetime.combine(day, self.end, tzinfo=self.tz)
        else:  # across midnight, into the next day
            closes = datetime.combine(day + DAY, self.end, tzinfo=self.tz)
        return opens, closes

    def occurrence_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The window [opens, closes) that contains `now`, or None outside every window."""
        if self.all_day:
            today = now.astimezone(self.tz).date()
            return datetime.combine(today, time(0), tzinfo=self.tz), datetime.combine(
                today + DAY, time(0), tzinfo=self.tz
            )
        local = now.astimezone(self.tz).date()
        for day in (local - DAY, local):
            opens, closes = self._occurrence(day)
            if opens <= now < closes:
                return opens, closes
        return None

    def next_open(self, after: datetime) -> datetime:
        """The first opening strictly after `after` (an all-day window opens every midnight)."""
        if self.all_day:
            return datetime.combine(after.astimezone(self.tz).date() + DAY, time(0), tzinfo=self.tz)
        local = after.astimezone(self.tz).date()
        for day in (local - DAY, local, local + DAY, local + 2 * DAY):
            opens, _closes = self._occurrence(day)
            if opens > after:
                return opens
        raise AssertionError("a daily window opens within two days")  # pragma: no cover


@dataclass(frozen=True)
class Plan:
    """One mtask's schedule: its type, window, interval, number of scenes and earliest start."""

    type: int
    window: DailyWindow
    interval_minutes: int
    scenes: int
    not_before: datetime | None = None
    # Batch only: when its first scene started (None: not yet started).
    batch_started: datetime | None = None

    def __post_init__(self) -> None:
        if self.type not in (POLLING, TIME_WINDOW, BATCH):
            raise ScheduleError(f"unknown mtask type {self.type}; use 0, 1 or 2")
        if not 1 <= self.interval_minutes <= MAX_INTERVAL_MINUTES:
            raise ScheduleError(f"time_interval must be 1..{MAX_INTERVAL_MINUTES} minutes")
        if self.scenes < 0:
            raise ScheduleError("a negative number of scenes")

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)


@dataclass(frozen=True)
class Slot:
    """What runs at a moment: the scene index (None: nothing), until when, and the progress."""

    scene: int | None
    # The next moment the answer changes (a scene's turn ends, the window opens or closes);
    # None when nothing will ever change again (a batch that is done, an mtask without scenes).
    next_edge: datetime | None
    # Waiting: when a scene runs next (None while running, or when nothing will run again).
    next_start: datetime | None
    progress: float
    done: bool = False

    @property
    def running(self) -> bool:
        return self.scene is not None


def slot_at(plan: Plan, now: datetime) -> Slot:
    """What the mtask runs at `now` and when that changes."""
    if plan.scenes == 0:
        return Slot(None, None, None, 0.0, done=plan.type == BATCH)
    if plan.type == BATCH:
        return _batch_slot(plan, now)
    if plan.not_before is not None and now < plan.not_before:
        start = first_start(plan.window, plan.not_before)
        return Slot(None, start, start, 0.0)
    occurrence = plan.window.occurrence_at(now)
    if occurrence is None:
        start = plan.window.next_open(now)
        return Slot(None, start, start, 0.0)
    opens, closes = occurrence
    progress = round(100.0 * (now - opens) / (closes - opens), 2)
    if plan.type == POLLING:
        return _polling_slot(plan, now, opens, closes, progress)
    return _time_window_slot(plan, now, opens, closes, progress)


def _polling_slot(plan: Plan, now: datetime, opens: datetime, closes: datetime, progress: float) -> Slot:
    turn = (now - opens) // plan.interval
    # One scene runs the whole window: no turns to take.
    edge = closes if plan.scenes == 1 else min(opens + (turn + 1) * plan.interval, closes)
    return Slot(turn % plan.scenes, _continuing(plan, edge, closes), None, progress)


def _time_window_slot(plan: Plan, now: datetime, opens: datetime, closes: datetime, progress: float) -> Slot:
    share = (closes - opens) / plan.scenes
    index = min(int((now - opens) / share), plan.scenes - 1)
    edge = closes if index == plan.scenes - 1 else opens + (index + 1) * share
    return Slot(index, _continuing(plan, edge, closes), None, progress)


def _continuing(plan: Plan, edge: datetime, closes: datetime) -> datetime | None:
    """One scene in an all-day window runs on for ever: its midnight is no edge."""
    return None if plan.window.all_day and plan.scenes == 1 else edge


def _batch_slot(plan: Plan, now: datetime) -> Slot:
    started = plan.batch_started
    if started is None:
        start = first_start(plan.window, max(now, plan.not_before or now))
        if start > now:
            return Slot(None, start, start, 0.0)
        started = now
    index = (now - started) // plan.interval
    if index >= plan.scenes:
        return Slot(None, None, None, 100.0, done=True)
    progress = round(100.0 * index / plan.scenes, 2)
    return Slot(index, started + (index + 1) * plan.interval, None, progress)


def first_start(window: DailyWindow, earliest: datetime) -> datetime:
    """The first moment at or after `earliest` inside the window."""
    if window.occurrence_at(earliest) is not None:
        return earliest
    return window.next_open(earliest)


def validate_window_and_type(
    type_: int, start: time | None, end: time | None, interval_minutes: int, tz: tzinfo
) -> None:
    """Raise ScheduleError for a schedule that cannot run (used by the model's clean())."""
    Plan(type_, DailyWindow(start, end, tz), interval_minutes, 0)
