"""The big task's state: the highest-priority state present among its subtasks.

The documented priority is written out again here, on purpose, rather than imported: the
tests check the code against the documentation, not the code against itself.
"""

from __future__ import annotations

import itertools
import random

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from subtasks.choices import TASK_STATE_PRIORITY, State, count_states, derive_task_state
from subtasks.models import Subtask
from tasks.models import Project, Task
from tasks.queries import task_rows

S = State
# docs: ABNORMAL > RECOVERING > RUNNING > STARTING > STOPPING > FAILED > STOPPED > PENDING > CONFIGURED > SUCCEEDED
DOCUMENTED_PRIORITY = [
    S.ABNORMAL,
    S.RECOVERING,
    S.RUNNING,
    S.STARTING,
    S.STOPPING,
    S.FAILED,
    S.STOPPED,
    S.PENDING,
    S.CONFIGURED,
    S.SUCCEEDED,
]
RANK = {state: rank for rank, state in enumerate(DOCUMENTED_PRIORITY)}
ALL_SUBSETS = [frozenset(c) for n in range(len(State) + 1) for c in itertools.combinations(list(State), n)]


def derive(states) -> State:
    return derive_task_state(count_states(states))


def test_priority_is_the_documented_one():
    assert list(TASK_STATE_PRIORITY) == DOCUMENTED_PRIORITY
    assert set(DOCUMENTED_PRIORITY) == set(State)


def test_no_subtasks_is_pending():
    assert derive([]) == S.PENDING
    assert derive_task_state({}) == S.PENDING
    assert derive_task_state(count_states([])) == S.PENDING


def test_every_subset_of_states_present():
    assert len(ALL_SUBSETS) == 2 ** len(State) == 1024
    for present in ALL_SUBSETS:
        counts = {state.value: int(state in present) for state in State}
        derived = derive_task_state(counts)
        if not present:
            assert derived == S.PENDING
            continue
        assert derived in present, (present, derived)
        assert not any(RANK[other] < RANK[derived] for other in present), (present, derived)
        assert derived == min(present, key=RANK.__getitem__)


SCENARIOS = [
    ("the seed's question: 3 running, 1 stopped", [S.RUNNING] * 3 + [S.STOPPED], S.RUNNING),
    ("one abnormal among running", [S.RUNNING] * 5 + [S.ABNORMAL], S.ABNORMAL),
    ("abnormal outranks recovering", [S.RECOVERING, S.ABNORMAL], S.ABNORMAL),
    ("recovering outranks running", [S.RUNNING, S.RECOVERING], S.RECOVERING),
    ("running outranks starting", [S.STARTING, S.RUNNING], S.RUNNING),
    ("starting outranks stopping", [S.STOPPING, S.STARTING], S.STARTING),
    ("stopping outranks failed", [S.FAILED, S.STOPPING], S.STOPPING),
    ("failed outranks stopped", [S.STOPPED, S.FAILED, S.SUCCEEDED], S.FAILED),
    ("stopped outranks pending", [S.PENDING, S.STOPPED], S.STOPPED),
    ("pending outranks configured", [S.CONFIGURED, S.PENDING], S.PENDING),
    ("configured outranks succeeded", [S.SUCCEEDED, S.CONFIGURED], S.CONFIGURED),
    ("all succeeded", [S.SUCCEEDED] * 4, S.SUCCEEDED),
    ("all stopped", [S.STOPPED] * 2, S.STOPPED),
    ("half done, half still running", [S.SUCCEEDED] * 2 + [S.RUNNING] * 2, S.RUNNING),
    ("some succeeded, one failed", [S.SUCCEEDED] * 9 + [S.FAILED], S.FAILED),
    ("fresh task, nothing configured", [S.PENDING] * 3, S.PENDING),
    ("partly configured", [S.CONFIGURED, S.CONFIGURED, S.PENDING], S.PENDING),
    ("all configured", [S.CONFIGURED] * 3, S.CONFIGURED),
    ("being stopped while one has not started", [S.STOPPING, S.STOPPED], S.STOPPING),
    ("just started", [S.STARTING, S.CONFIGURED], S.STARTING),
    ("every state at once", list(State), S.ABNORMAL),
    ("a single subtask", [S.STOPPING], S.STOPPING),
]


@pytest.mark.parametrize(("states", "expected"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_named_scenarios(states, expected):
    assert derive(states) == expected


def test_count_states_lists_every_state_in_canonical_order():
    counts = count_states([S.RUNNING, "RUNNING", S.STOPPED])
    assert list(counts) == list(State.values)
    assert counts["RUNNING"] == 2
    assert counts["STOPPED"] == 1
    assert sum(counts.values()) == 3


def test_count_states_refuses_unknown_states():
    with pytest.raises(ValueError):
        count_states(["RUNNING", "DANCING"])


def test_zero_counts_do_not_count_as_present():
    assert derive_task_state({"ABNORMAL": 0, "RUNNING": 0, "STOPPED": 2}) == S.STOPPED


# ---- properties over multisets -----------------------------------------------------------------------

state_lists = st.lists(st.sampled_from(list(State)), max_size=40)


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists, st.randoms(use_true_random=False))
def test_order_does_not_matter(states, rnd):
    shuffled = list(states)
    rnd.shuffle(shuffled)
    assert derive(shuffled) == derive(states)


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists, st.lists(st.integers(1, 50), min_size=len(State), max_size=len(State)))
def test_only_which_states_are_present_matters_not_how_many(states, multipliers):
    present = set(states)
    inflated = {state.value: (multipliers[i] if state in present else 0) for i, state in enumerate(State)}
    assert derive_task_state(inflated) == derive(states) == derive(sorted(present))


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists.filter(bool), st.data())
def test_adding_a_lower_priority_subtask_never_changes_it(states, data):
    before = derive(states)
    lower = [s for s in State if RANK[s] > RANK[before]]
    if not lower:
        return
    extra = data.draw(st.lists(st.sampled_from(lower), min_size=1, max_size=5))
    assert derive(states + extra) == before


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists.filter(bool), st.sampled_from(list(State)))
def test_adding_a_subtask_never_lowers_the_priority(states, extra):
    assert RANK[derive([*states, extra])] <= RANK[derive(states)]


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.integers(1, 100))
def test_all_succeeded_is_succeeded(n):
    assert derive([S.SUCCEEDED] * n) == S.SUCCEEDED


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists, st.integers(1, 5))
def test_any_abnormal_is_abnormal(states, n):
    assert derive(states + [S.ABNORMAL] * n) == S.ABNORMAL


@hypothesis_settings(max_examples=300, deadline=None)
@given(state_lists)
def test_derived_state_is_the_documented_maximum(states):
    expected = min(states, key=RANK.__getitem__) if states else S.PENDING
    assert derive(states) == expected


# ---- through the database: tasks.queries.task_rows ---------------------------------------------------


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(project_id="proj-rule", name="rule")


def new_task(project: Project, name: str) -> Task:
    return Task.objects.create(
        project=project, task_name=name, algo_type="1", run_dt=timezone.now(), play_url="rtsp://10.0.0.1/live"
    )


def store_subtasks(task: Task, states: list[State]) -> None:
    Subtask.objects.bulk_create(
        Subtask(task=task, position=i, state=state, source_url="rtsp://10.0.0.1/live")
        for i, state in enumerate(states)
    )


def check_rows(project: Project) -> int:
    rows = task_rows(Task.objects.filter(project=project))
    for row in rows:
        stored = list(Subtask.objects.filter(task_id=row["task_id"]).values_list("state", flat=True))
        assert row["state_counts"] == count_states(stored), row["task_name"]
        assert row["state"] == derive_task_state(count_states(stored)).value, row["task_name"]
        assert row["subtask_count"] == len(stored)
    return len(rows)


def test_task_rows_agree_with_the_stored_subtasks(project):
    rnd = random.Random(20240601)
    cases = [[], [S.RUNNING] * 3 + [S.STOPPED], [S.SUCCEEDED] * 3, list(State)]
    cases += [[rnd.choice(list(State)) for _ in range(rnd.randint(0, 12))] for _ in range(36)]
    for index, states in enumerate(cases):
        store_subtasks(new_task(project, f"task {index}: {','.join(states)}"), states)
    assert check_rows(project) == len(cases)


def test_the_seed_question_through_the_database(project):
    task = new_task(project, "front door")
    store_subtasks(task, [S.RUNNING, S.RUNNING, S.RUNNING, S.STOPPED])
    [row] = task_rows(Task.objects.filter(pk=task.pk))
    assert row["state"] == "RUNNING"
    assert row["state_counts"]["RUNNING"] == 3
    assert row["state_counts"]["STOPPED"] == 1
    assert sum(row["state_counts"].values()) == 4


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.lists(st.sampled_from(list(State)), max_size=8), min_size=1, max_size=4))
def test_task_rows_agree_with_random_stored_subtasks(project, tasks_states):
    # The db fixture's transaction spans every example: start each from an empty project.
    Subtask.objects.filter(task__project=project).delete()
    Task.objects.filter(project=project).delete()
    for index, states in enumerate(tasks_states):
        store_subtasks(new_task(project, f"t{index}"), states)
    assert check_rows(project) == len(tasks_states)
