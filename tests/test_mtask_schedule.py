"""The mtask schedule computation (tasks/mtask_schedule.py): pure functions of a plan and a moment."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.mtask_schedule import (
    BATCH,
    POLLING,
    TIME_WINDOW,
    DailyWindow,
    Plan,
    ScheduleError,
    slot_at,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0, day: int = 1, tz=SHANGHAI) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=tz)


def window(start: str | None, end: str | None, tz=SHANGHAI) -> DailyWindow:
    parse = lambda v: time.fromisoformat(v) if v else None  # noqa: E731
    return DailyWindow(parse(start), parse(end), tz)


def test_polling_scenes_take_turns_every_interval_inside_the_window():
    plan = Plan(POLLING, window("08:00:00", "10:00:00"), 5, scenes=3)
    assert [slot_at(plan, at(8, m)).scene for m in (0, 4, 5, 9, 10, 15, 20)] == [0, 0, 1, 1, 2, 0, 1]
    slot = slot_at(plan, at(8, 7))
    assert slot.next_edge == at(8, 10) and slot.next_start is None and slot.running
    assert slot_at(plan, at(9, 58)).next_edge == at(10, 0)  # the window's end cuts the last turn


def test_outside_the_window_nothing_runs_and_the_next_start_is_the_opening():
    plan = Plan(POLLING, window("08:00:00", "10:00:00"), 5, scenes=2)
    before, after = slot_at(plan, at(7, 30)), slot_at(plan, at(10, 0))
    assert (before.scene, before.next_start, before.next_edge) == (None, at(8), at(8))
    assert (after.scene, after.next_start) == (None, at(8, day=2))


def test_a_window_whose_end_is_before_its_start_crosses_midnight():
    plan = Plan(POLLING, window("22:00:00", "02:00:00"), 60, scenes=2)
    assert slot_at(plan, at(23, 30)).scene == 1
    assert slot_at(plan, at(1, 30, day=2)).scene == 1  # 22:00 + 3 turns: scene 1
    assert slot_at(plan, at(0, 30, day=2)).scene == 0
    assert slot_at(plan, at(1, 59, day=2)).next_edge == at(2, day=2)
    waiting = slot_at(plan, at(12))
    assert (waiting.scene, waiting.next_start) == (None, at(22))


def test_a_fixed_camera_has_one_scene_and_runs_the_whole_window():
    plan = Plan(POLLING, window("08:00:00", "18:00:00"), 5, scenes=1)
    slot = slot_at(plan, at(9))
    assert (slot.scene, slot.next_edge) == (0, at(18))
    assert slot_at(plan, at(17, 59)).scene == 0


def test_the_whole_day_runs_for_ever_with_one_scene():
    for plan in (
        Plan(POLLING, window(None, None), 5, scenes=1),
        Plan(POLLING, window("00:00:00", "23:59:59"), 5, scenes=1),
    ):
        slot = slot_at(plan, at(23, 59))
        assert (slot.scene, slot.next_edge, slot.next_start) == (0, None, None)


def test_time_window_scenes_share_the_window_in_order():
    plan = Plan(TIME_WINDOW, window("08:00:00", "11:00:00"), 5, scenes=3)
    assert [slot_at(plan, at(h, 30)).scene for h in (8, 9, 10)] == [0, 1, 2]
    assert slot_at(plan, at(8, 30)).next_edge == at(9)
    assert slot_at(plan, at(10, 30)).next_edge == at(11)
    assert slot_at(plan, at(11)).scene is None


def test_progress_is_the_share_of_the_window_elapsed():
    plan = Plan(TIME_WINDOW, window("08:00:00", "10:00:00"), 5, scenes=1)
    assert slot_at(plan, at(8, 30)).progress == 25.0
    assert slot_at(plan, at(7)).progress == 0.0


def test_batch_runs_each_scene_once_in_order_then_is_done():
    started = at(9)
    plan = Plan(BATCH, window("08:00:00", "18:00:00"), 10, scenes=3, batch_started=started)
    assert [slot_at(plan, at(9, m)).scene for m in (0, 10, 25)] == [0, 1, 2]
    assert slot_at(plan, at(9, 15)).progress == pytest.approx(33.33)
    end = slot_at(plan, at(9, 30))
    assert (end.scene, end.done, end.progress, end.next_edge) == (None, True, 100.0, None)


def test_a_batch_not_yet_started_waits_for_its_window():
    plan = Plan(BATCH, window("08:00:00", "18:00:00"), 10, scenes=2)
    waiting = slot_at(plan, at(6))
    assert (waiting.scene, waiting.next_start) == (None, at(8))
    assert slot_at(plan, at(9)).scene == 0  # inside the window: starts now


def test_run_dt_in_the_future_delays_the_first_run():
    plan = Plan(POLLING, window("08:00:00", "18:00:00"), 5, scenes=1, not_before=at(9, day=3))
    slot = slot_at(plan, at(10))
    assert (slot.scene, slot.next_start) == (None, at(9, day=3))
    later = Plan(POLLING, window("08:00:00", "18:00:00"), 5, scenes=1, not_before=at(20, day=3))
    assert slot_at(later, at(10)).next_start == at(8, day=4)  # after run_dt, at the next opening
    assert slot_at(plan, at(9, day=3)).scene == 0


def test_the_window_is_wall_time_in_the_time_zone_across_a_daylight_saving_change():
    # Berlin leaves summer time on Sunday 2026-10-25: 08:00 is 06:00 UTC before, 07:00 UTC after.
    plan = Plan(POLLING, window("08:00:00", "09:00:00", BERLIN), 5, scenes=1)
    utc = ZoneInfo("UTC")
    saturday = slot_at(plan, datetime(2026, 10, 24, 4, tzinfo=utc))
    monday = slot_at(plan, datetime(2026, 10, 26, 4, tzinfo=utc))
    assert saturday.next_start.astimezone(utc) == datetime(2026, 10, 24, 6, tzinfo=utc)
    assert monday.next_start.astimezone(utc) == datetime(2026, 10, 26, 7, tzinfo=utc)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: window("08:00:00", "08:00:00"), "equal"),
        (lambda: window("08:00:00", None), "both"),
        (lambda: Plan(POLLING, window(None, None), 0, 1), "time_interval"),
        (lambda: Plan(POLLING, window(None, None), 7 * 24 * 60 + 1, 1), "time_interval"),
        (lambda: Plan(3, window(None, None), 5, 1), "type"),
    ],
)
def test_schedules_that_cannot_run_are_refused(build, message):
    with pytest.raises(ScheduleError, match=message):
        build()


@given(
    start=st.times().map(lambda t: t.replace(microsecond=0)),
    end=st.times().map(lambda t: t.replace(microsecond=0)),
    minutes=st.integers(0, 3 * 24 * 60),
    interval=st.integers(1, 180),
    scenes=st.integers(1, 4),
)
def test_the_next_edge_is_always_later_and_nothing_changes_before_it(start, end, minutes, interval, scenes):
    if start == end:
        return
    plan = Plan(POLLING, DailyWindow(start, end, SHANGHAI), interval, scenes)
    now = at(0) + timedelta(minutes=minutes)
    slot = slot_at(plan, now)
    if slot.next_edge is None:
        return
    assert slot.next_edge > now
    just_before = slot.next_edge - timedelta(seconds=1)
    assert slot_at(plan, just_before).scene == slot.scene
