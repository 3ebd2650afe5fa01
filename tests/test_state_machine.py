"""The canonical subtask state machine, exercised through the service every change goes through.

Every one of the 10x10 (from, to) pairs is tried against a real row: allowed ones move it,
the others raise IllegalTransition and leave the row exactly as it was.
"""

from __future__ import annotations

import itertools

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from subtasks import services
from subtasks.choices import (
    ACTIVE_STATES,
    FINISHED_STATES,
    STARTABLE_STATES,
    STOP_DIRECTLY,
    STOP_VIA_NODE,
    TRANSITIONS,
    State,
    can_transition,
)
from subtasks.models import Subtask
from subtasks.services import IllegalTransition, Outcome, transition
from tasks.models import Project, Task
from vias.lib.errors import Conflict, NotFound

S = State
ALL_PAIRS = list(itertools.product(State, State))
ROI = (
    '<root><polygon name="door"><point x="0" y="0"/><point x="1" y="0"/><point x="1" y="1"/></polygon></root>'
)


@pytest.fixture
def task(db) -> Task:
    project = Project.objects.create(project_id="proj-sm", name="state machine")
    return Task.objects.create(
        project=project,
        task_name="front door",
        algo_type="1",
        run_dt=timezone.now(),
        play_url="rtsp://10.0.0.1/live",
    )


def make_subtask(task: Task, state: State = S.PENDING, position: int = 0, **fields) -> Subtask:
    return Subtask.objects.create(
        task=task, position=position, state=state, source_url="rtsp://10.0.0.1/live", **fields
    )


def snapshot(subtask: Subtask) -> dict:
    row = Subtask.objects.get(pk=subtask.pk)
    return {**model_to_dict(row), "updated_at": row.updated_at, "created_at": row.created_at}


# ---- the table itself ---------------------------------------------------------------------------


def test_every_state_has_a_row_of_legal_targets():
    assert set(TRANSITIONS) == set(State)
    for source, targets in TRANSITIONS.items():
        assert targets <= set(State)
        assert source not in targets, f"{source} -> {source} would be a no-op transition"


def test_the_command_sets_agree_with_the_table():
    for state in STARTABLE_STATES:
        assert can_transition(state, S.STARTING)
    for state in STOP_DIRECTLY:
        assert can_transition(state, S.STOPPED)
    for state in STOP_VIA_NODE:
        assert can_transition(state, S.STOPPING)
    assert can_transition(S.PENDING, S.CONFIGURED)
    assert not (ACTIVE_STATES & STARTABLE_STATES)
    assert not (ACTIVE_STATES & FINISHED_STATES)
    assert STOP_DIRECTLY | STOP_VIA_NODE <= ACTIVE_STATES


def test_every_state_is_reachable_from_pending_and_can_get_back_to_a_startable_state():
    def reachable(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for target in TRANSITIONS[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    assert reachable(S.PENDING) == set(State)
    for state in State:
        assert reachable(state) & STARTABLE_STATES, f"{state} is a dead end"


def test_can_transition_accepts_plain_strings():
    assert can_transition("PENDING", "CONFIGURED")
    assert not can_transition("PENDING", "RUNNING")


# ---- every pair against a real row ---------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_transition_pair(task, source, target):
    subtask = make_subtask(task, source)
    before = snapshot(subtask)
    if target in TRANSITIONS[source]:
        result = transition(subtask, target, "because")
        row = Subtask.objects.get(pk=subtask.pk)
        assert row.state == target
        assert row.status_reason == "because"
        assert result.state == target
        if target in FINISHED_STATES:
            assert row.finished_at is not None
        if source == S.STARTING and target == S.RUNNING:
            assert row.started_at is not None
    else:
        with pytest.raises(IllegalTransition) as exc:
            transition(subtask, target, "because")
        assert f"cannot go from {source.value} to {target.value}" in str(exc.value)
        assert exc.value.status == 409
        assert snapshot(subtask) == before
        assert subtask.state == source


def test_count_of_legal_pairs_matches_the_table(task):
    legal = 0
    for source, target in ALL_PAIRS:
        subtask = make_subtask(task, source, position=legal + 100)
        try:
            transition(subtask, target)
        except IllegalTransition:
            assert Subtask.objects.get(pk=subtask.pk).state == source
        else:
            legal += 1
            assert Subtask.objects.get(pk=subtask.pk).state == target
    assert legal == sum(len(targets) for targets in TRANSITIONS.values())


def test_transition_writes_extra_fields_and_keeps_given_timestamps(task):
    subtask = make_subtask(task, S.STARTING)
    started = timezone.now() - timezone.timedelta(hours=1)
    transition(subtask, S.RUNNING, started_at=started, progress=12.5)
    row = Subtask.objects.get(pk=subtask.pk)
    assert row.started_at == started
    assert row.progress == 12.5
    assert row.finished_at is None


def test_running_after_recovery_keeps_the_first_start_time(task):
    started = timezone.now() - timezone.timedelta(hours=2)
    subtask = make_subtask(task, S.RECOVERING, started_at=started)
    transition(subtask, S.RUNNING)
    assert Subtask.objects.get(pk=subtask.pk).started_at == started


# ---- the conditional update -----------------------------------------------------------------------


def test_stale_instance_loses_cleanly(task):
    fresh = make_subtask(task, S.PENDING)
    stale = Subtask.objects.get(pk=fresh.pk)
    transition(fresh, S.CONFIGURED, "operator")
    before = snapshot(fresh)

    with pytest.raises(IllegalTransition) as exc:
        transition(stale, S.CONFIGURED, "someone else")
    assert "changed state meanwhile" in str(exc.value)
    assert "CONFIGURED" in str(exc.value)
    assert snapshot(fresh) == before
    # The loser now knows where the row really is.
    assert stale.state == S.CONFIGURED
    assert stale.status_reason == ""


def test_stale_instance_cannot_overwrite_a_later_state(task):
    subtask = make_subtask(task, S.RUNNING)
    stale = Subtask.objects.get(pk=subtask.pk)
    transition(subtask, S.STOPPING)
    transition(subtask, S.STOPPED)
    before = snapshot(subtask)
    # RUNNING -> FAILED is legal from what the stale copy believes, but the row moved on.
    with pytest.raises(IllegalTransition):
        transition(stale, S.FAILED, "late crash report")
    assert snapshot(subtask) == before


def test_row_deleted_meanwhile_is_not_found(task):
    subtask = make_subtask(task, S.PENDING)
    stale = Subtask.objects.get(pk=subtask.pk)
    Subtask.objects.filter(pk=subtask.pk).delete()
    with pytest.raises(NotFound):
        transition(stale, S.CONFIGURED)
    assert not Subtask.objects.filter(pk=subtask.pk).exists()


# ---- start_task ----------------------------------------------------------------------------------


def outcome_for(outcomes: list[Outcome], subtask: Subtask) -> Outcome:
    return next(o for o in outcomes if o.subtask_id == subtask.pk)


def test_start_task_dispatches_config_complete_subtasks_and_skips_the_rest(task):
    ready = make_subtask(task, S.CONFIGURED, 0, config_complete=True)
    again = make_subtask(task, S.FAILED, 1, config_complete=True, attempts=3, progress=40.0)
    not_ready = make_subtask(task, S.PENDING, 2)
    configured_not_complete = make_subtask(task, S.CONFIGURED, 3, config_complete=False)
    running = make_subtask(task, S.RUNNING, 4, config_complete=True)

    outcomes = services.start_task(task)

    assert len(outcomes) == 5
    assert outcome_for(outcomes, ready) == Outcome(ready.pk, S.STARTING, True)
    assert outcome_for(outcomes, again).state == S.STARTING
    skipped = outcome_for(outcomes, not_ready)
    assert (skipped.ok, skipped.state, skipped.reason) == (False, S.PENDING, "not config-complete")
    assert outcome_for(outcomes, configured_not_complete).ok is False
    assert outcome_for(outcomes, running).ok is True
    assert "already" in outcome_for(outcomes, running).reason

    states = dict(Subtask.objects.filter(task=task).values_list("pk", "state"))
    assert states == {
        ready.pk: S.STARTING,
        again.pk: S.STARTING,
        not_ready.pk: S.PENDING,
        configured_not_complete.pk: S.CONFIGURED,
        running.pk: S.RUNNING,
    }
    restarted = Subtask.objects.get(pk=again.pk)
    assert (restarted.attempts, restarted.progress, restarted.finished_at) == (0, 0.0, None)


def test_start_task_with_nothing_startable_is_a_conflict(task):
    make_subtask(task, S.PENDING, 0)
    make_subtask(task, S.CONFIGURED, 1, config_complete=False)
    make_subtask(task, S.STOPPED, 2, config_complete=False)
    with pytest.raises(Conflict, match="config-complete"):
        services.start_task(task)
    assert set(Subtask.objects.filter(task=task).values_list("state", flat=True)) == {
        S.PENDING,
        S.CONFIGURED,
        S.STOPPED,
    }


def test_start_task_without_subtasks_is_a_conflict(task):
    with pytest.raises(Conflict, match="no subtasks"):
        services.start_task(task)


def test_start_task_while_already_running_reports_rather_than_fails(task):
    make_subtask(task, S.RUNNING, 0, config_complete=True)
    make_subtask(task, S.PENDING, 1)
    outcomes = services.start_task(task)
    assert [o.ok for o in outcomes] == [True, False]


# ---- stop_task ------------------------------------------------------------------------------------


def test_stop_task_outcomes(task):
    starting = make_subtask(task, S.STARTING, 0)
    running = make_subtask(task, S.RUNNING, 1)
    abnormal = make_subtask(task, S.ABNORMAL, 2)
    recovering = make_subtask(task, S.RECOVERING, 3)
    stopped = make_subtask(task, S.STOPPED, 4)
    pending = make_subtask(task, S.PENDING, 5)

    outcomes = services.stop_task(task)

    assert all(o.ok for o in outcomes)
    assert outcome_for(outcomes, starting).state == S.STOPPED
    assert outcome_for(outcomes, running).state == S.STOPPING
    assert outcome_for(outcomes, abnormal).state == S.STOPPING
    assert outcome_for(outcomes, recovering).state == S.STOPPING
    assert outcome_for(outcomes, stopped).reason == "not running"
    assert outcome_for(outcomes, pending).state == S.PENDING

    rows = {s.pk: s for s in Subtask.objects.filter(task=task)}
    assert rows[starting.pk].state == S.STOPPED
    assert rows[starting.pk].finished_at is not None
    assert rows[starting.pk].status_reason == "stopped before it started"
    assert rows[running.pk].state == S.STOPPING
    assert rows[running.pk].status_reason == "stop requested"
    assert rows[stopped.pk].state == S.STOPPED
    assert rows[pending.pk].state == S.PENDING


def test_stop_task_twice_is_harmless(task):
    make_subtask(task, S.RUNNING)
    services.stop_task(task)
    outcomes = services.stop_task(task)
    assert [o.state for o in outcomes] == [S.STOPPING]


def test_start_then_stop_round_trip(task):
    subtask = make_subtask(task, S.PENDING)
    services.mark_config_complete(subtask)
    services.start_task(task)
    assert Subtask.objects.get(pk=subtask.pk).state == S.STARTING
    services.stop_task(task)
    assert Subtask.objects.get(pk=subtask.pk).state == S.STOPPED
    services.start_task(task)
    assert Subtask.objects.get(pk=subtask.pk).state == S.STARTING


def test_outcome_as_dict():
    assert Outcome(7, "RUNNING", True, "x").as_dict() == {
        "subtask_id": 7,
        "state": "RUNNING",
        "ok": True,
        "reason": "x",
    }


# ---- configuration steps -----------------------------------------------------------------------------


def test_mark_config_complete_moves_pending_to_configured(task):
    subtask = make_subtask(task, S.PENDING)
    result = services.mark_config_complete(subtask)
    row = Subtask.objects.get(pk=subtask.pk)
    assert (row.state, row.config_complete) == (S.CONFIGURED, True)
    assert (result.state, result.config_complete) == (S.CONFIGURED, True)


@pytest.mark.parametrize("state", [S.STOPPED, S.RUNNING, S.FAILED])
def test_mark_config_complete_elsewhere_only_sets_the_flag(task, state):
    subtask = make_subtask(task, state)
    services.mark_config_complete(subtask)
    row = Subtask.objects.get(pk=subtask.pk)
    assert (row.state, row.config_complete) == (state, True)


def test_configure_subtask_stores_valid_config(task):
    subtask = make_subtask(task, S.PENDING)
    services.configure_subtask(subtask, {"rois": [ROI], "algo_args": {"fps": 5, "occupancy_limit": 10}})
    row = Subtask.objects.get(pk=subtask.pk)
    assert row.rois == [ROI]
    assert row.algo_args == {"fps": 5, "occupancy_limit": 10}


@pytest.mark.parametrize(
    "spec",
    [
        {"rois": ["<root><polygon/></root>"]},
        {"rois": "not a list"},
        {"calibration_xml": "<root><pair/></root>"},
        {"config_xml": "<root>"},
        {"algo_args": {"speed_limit_kmh": 50}},  # a traffic key on a passenger-flow task
        {"algo_args": {"fps": float("nan")}},
    ],
)
def test_configure_subtask_refuses_invalid_config_and_keeps_the_row(task, spec):
    from django.core.exceptions import ValidationError

    subtask = make_subtask(task, S.PENDING)
    before = snapshot(subtask)
    with pytest.raises(ValidationError):
        services.configure_subtask(subtask, spec)
    assert snapshot(subtask) == before


@pytest.mark.parametrize("state", sorted(ACTIVE_STATES))
def test_delete_subtask_refuses_active_ones(task, state):
    subtask = make_subtask(task, state)
    with pytest.raises(Conflict, match="stop it first"):
        services.delete_subtask(subtask)
    assert Subtask.objects.filter(pk=subtask.pk).exists()


@pytest.mark.parametrize("state", sorted(set(State) - ACTIVE_STATES))
def test_delete_subtask_removes_inactive_ones(task, state):
    subtask = make_subtask(task, state)
    services.delete_subtask(subtask)
    assert not Subtask.objects.filter(pk=subtask.pk).exists()
