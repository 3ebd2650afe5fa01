"""Weekly schedules become django-q2 schedules that start and stop the task at the window edges.
The clock is moved by passing `now` to the computation and by faking django-q2's clock while its
real scheduler runs the real edge function (synchronously)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_q import scheduler as q_scheduler
from django_q.conf import Conf
from django_q.models import Schedule

from subtasks import services
from subtasks.choices import State
from subtasks.models import Subtask
from tasks import schedules
from tasks.models import Task
from tests.test_v2_helpers import add_sources, create_task, v2, v2_ok

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
H = timedelta(hours=1)


def weekly(days, periods, tz="+08:00"):
    return {"type": "weekly", "timezone": tz, "days_of_week": days, "periods": periods}


def w(begin: str, end: str) -> dict[str, str]:
    return {"begin_at": begin, "end_at": end}


# ---- the computation ------------------------------------------------------------------------------------


def test_a_window_in_another_time_zone_is_shifted_to_utc():
    s = weekly([1], [[w("08:00", "10:00")]])  # Monday 08:00-10:00 at +08:00 = Monday 00:00-02:00 UTC

    assert schedules.weekly_intervals(s) == [(0, 2 * 3600)]
    assert schedules.edges(s, MONDAY - H) == [("start", MONDAY), ("stop", MONDAY + 2 * H)]
    assert not schedules.in_window(s, MONDAY - timedelta(seconds=1))
    assert schedules.in_window(s, MONDAY + H)
    assert not schedules.in_window(s, MONDAY + 2 * H)


def test_a_window_across_midnight_runs_into_the_next_day():
    s = weekly([7], [[w("22:00", "06:00")]], tz="+00:00")  # Sunday 22:00 -> Monday 06:00

    assert schedules.in_window(s, MONDAY - H)  # Sunday 23:00
    assert schedules.in_window(s, MONDAY + 5 * H)
    assert not schedules.in_window(s, MONDAY + 6 * H)
    assert schedules.edges(s, MONDAY) == [("stop", MONDAY + 6 * H), ("start", MONDAY + 6 * 24 * H + 22 * H)]


def test_2359_then_0000_the_next_day_is_one_continuous_run():
    s = weekly([1, 2], [[w("20:00", "23:59:00")], [w("00:00", "04:00")]], tz="+00:00")

    assert schedules.weekly_intervals(s) == [(20 * 3600, 28 * 3600)]
    assert [a for a, _ in schedules.edges(s, MONDAY)] == ["start", "stop"]


def test_one_list_of_periods_applies_to_every_day_and_overlaps_merge():
    s = weekly([1, 3], [[w("08:00", "12:00"), w("11:00", "13:00")]], tz="+00:00")

    assert schedules.weekly_intervals(s) == [
        (8 * 3600, 13 * 3600),
        (2 * 86400 + 8 * 3600, 2 * 86400 + 13 * 3600),
    ]


def test_every_day_all_day_never_stops():
    s = weekly(list(range(1, 8)), [[w("00:00", "23:59")]], tz="-05:30")

    assert schedules.weekly_intervals(s) == [(0, schedules.WEEK)]
    assert schedules.edges(s, MONDAY) == []
    assert schedules.in_window(s, MONDAY + 77 * H)


def test_the_week_wraps_around():
    s = weekly([1], [[w("01:00", "03:00")]], tz="+02:00")  # Monday 01:00 +02:00 = Sunday 23:00 UTC

    assert schedules.in_window(s, MONDAY - timedelta(minutes=30))
    assert schedules.in_window(s, MONDAY + timedelta(minutes=30))
    assert schedules.edges(s, MONDAY) == [("stop", MONDAY + H), ("start", MONDAY + 7 * 24 * H - H)]


# ---- real django-q2 schedules, the clock moved across a window ---------------------------------------------


class FakeClock:
    def __init__(self, now: datetime):
        self.now_value = now

    def now(self) -> datetime:
        return self.now_value


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """django-q2's scheduler reads this clock; its tasks run at once, in this process (Conf.SYNC)."""
    fake = FakeClock(MONDAY)
    monkeypatch.setattr(q_scheduler, "timezone", fake)
    monkeypatch.setattr(q_scheduler, "localtime", lambda value=None: fake.now())
    monkeypatch.setattr(Conf, "SYNC", True)
    return fake


def states(task_id: str) -> set[str]:
    return set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True))


def test_the_scheduler_starts_and_stops_the_task_at_the_window_edges(alice, clock):
    add_sources(alice, 2)
    body = weekly([1], [[w("08:00", "10:00")]])
    task_id = create_task(alice, sources=["cam-0", "cam-1"], schedule=body)["id"]
    task = Task.objects.get(pk=task_id)

    services.start_task(task, now=MONDAY - 2 * H)  # Sunday 22:00 UTC: outside the window, nothing starts yet
    rows = {row.name.split("-")[-2]: row for row in Schedule.objects.filter(name__contains=task_id)}
    assert (rows["start"].next_run, rows["stop"].next_run) == (MONDAY, MONDAY + 2 * H)
    assert rows["start"].func == "subtasks.services.run_edge" and rows["start"].minutes == 7 * 24 * 60
    assert states(task_id) == {State.CONFIGURED}

    clock.now_value = MONDAY - H
    q_scheduler.scheduler()
    assert states(task_id) == {State.CONFIGURED}

    clock.now_value = MONDAY + timedelta(minutes=1)  # across the start edge
    q_scheduler.scheduler()
    assert states(task_id) == {State.STARTING}
    Subtask.objects.filter(task_id=task_id).update(state=State.RUNNING)  # a node picked them up

    clock.now_value = MONDAY + 2 * H + timedelta(minutes=1)  # across the stop edge
    q_scheduler.scheduler()
    assert states(task_id) == {State.STOPPING}
    assert Schedule.objects.get(pk=rows["start"].pk).next_run == MONDAY + 7 * 24 * H
    assert Schedule.objects.get(pk=rows["stop"].pk).next_run == MONDAY + 7 * 24 * H + 2 * H


def test_starting_inside_a_window_starts_at_once_and_stop_removes_the_schedules(alice):
    add_sources(alice, 1)
    task_id = create_task(alice, sources=["cam-0"], schedule=weekly([1], [[w("08:00", "10:00")]]))["id"]
    task = Task.objects.get(pk=task_id)

    outcomes = services.start_task(task, now=MONDAY + H)

    assert [o.ok for o in outcomes] == [True] and states(task_id) == {State.STARTING}
    assert Schedule.objects.filter(name__contains=task_id).count() == 2
    v2_ok(alice.put(v2(alice, f"/tasks/{task_id}/action/stop")))
    assert not Schedule.objects.filter(name__contains=task_id).exists()
    assert Task.objects.get(pk=task_id).schedule_active is False


def test_an_edge_of_a_deleted_task_removes_its_schedules(alice):
    add_sources(alice, 1)
    task_id = create_task(alice, sources=["cam-0"], schedule=weekly([2], [[w("08:00", "10:00")]]))["id"]
    v2_ok(alice.put(v2(alice, f"/tasks/{task_id}/action/start")))
    assert Schedule.objects.filter(name__contains=task_id).exists()
    Subtask.objects.filter(task_id=task_id).delete()
    Task.objects.filter(pk=task_id).delete()

    assert services.run_edge(task_id, "start") == "no active scheduled task"
    assert not Schedule.objects.filter(name__contains=task_id).exists()


def test_changing_an_active_schedule_moves_its_edges(alice):
    add_sources(alice, 1)
    task_id = create_task(alice, sources=["cam-0"], schedule=weekly([3], [[w("08:00", "10:00")]]))["id"]
    v2_ok(alice.put(v2(alice, f"/tasks/{task_id}/action/start")))
    before = set(Schedule.objects.filter(name__contains=task_id).values_list("next_run", flat=True))

    v2_ok(alice.put(v2(alice, f"/tasks/{task_id}"), {"schedule": weekly([4], [[w("09:00", "11:00")]])}))

    after = set(Schedule.objects.filter(name__contains=task_id).values_list("next_run", flat=True))
    assert len(after) == 2 and after != before
