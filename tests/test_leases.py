"""Leases with fencing (issue 14): a job owns its subtask by (attempt, node); once the reaper has
given the subtask to a new attempt, the old job's writes (state, progress, events) are refused and
it stops itself. A silent subtask on a silent node is suspected before it is reaped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from analysis import dispatch
from analysis.jobs import SubtaskRun, run_subtask
from analysis.models import Event
from subtasks.choices import State
from subtasks.models import Node, Subtask
from subtasks.services import Lease, LeaseLost, transition
from tests.analysis_helpers import age_heartbeat, job_in_thread, live_node, ready_task
from tests.nodes import long_video, wait_for
from tests.test_jobs import security_task

pytestmark = pytest.mark.django_db(transaction=True)


def running_on(node: Node, task) -> Subtask:
    subtask = task.subtasks.first()
    Subtask.objects.filter(pk=subtask.pk).update(
        state=State.RUNNING, node=node, attempts=1, heartbeat_at=timezone.now()
    )
    return Subtask.objects.select_related("task__project").get(pk=subtask.pk)


def test_a_silent_subtask_on_a_silent_node_is_suspected_and_reaped_only_after_the_grace(alice):
    stalled = live_node(capacity=1)
    live_node(capacity=1)
    subtask = running_on(stalled, ready_task(alice))
    Node.objects.filter(pk=stalled.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT + 5)
    )
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 5)
    assert dispatch.suspects() == [subtask.pk]
    assert dispatch.reap() == []
    assert Subtask.objects.get(pk=subtask.pk).state == State.RUNNING
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 1)
    assert dispatch.reap() == [subtask.pk]
    assert Subtask.objects.get(pk=subtask.pk).attempts == 2


def test_a_silent_subtask_on_a_node_that_still_heartbeats_is_reaped_at_the_timeout(alice):
    subtask = running_on(live_node(capacity=2), ready_task(alice))
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 1)
    assert dispatch.suspects() == []
    assert dispatch.reap() == [subtask.pk]


def test_a_transition_under_a_stale_lease_is_refused_and_changes_nothing(alice):
    node = live_node(capacity=2)
    subtask = running_on(node, ready_task(alice))
    Subtask.objects.filter(pk=subtask.pk).update(attempts=2)  # the reaper gave it to attempt 2
    with pytest.raises(LeaseLost):
        transition(subtask, State.FAILED, "stale", lease=Lease(1, node.pk))
    assert Subtask.objects.values_list("state", "attempts").get(pk=subtask.pk) == (State.RUNNING, 2)
    transition(subtask, State.FAILED, "the owner", lease=Lease(2, node.pk))
    assert Subtask.objects.get(pk=subtask.pk).state == State.FAILED


def test_two_jobs_of_different_attempts_only_the_current_one_writes(alice, store, settings):
    settings.VIAS_PROGRESS_INTERVAL = 1  # on an idle machine the tiny model analyses the file in seconds
    long_video(store / "long.mp4", loops=8)
    _task, subtask, node = security_task(alice, "long.mp4", fps=25)
    thread, results = job_in_thread(subtask.pk, node.name)
    try:
        wait_for(
            lambda: Subtask.objects.get(pk=subtask.pk).progress > 1, timeout=60, what="attempt 1 running"
        )
        wait_for(
            lambda: Event.objects.filter(subtask=subtask).exists(), timeout=60, what="an event of attempt 1"
        )
        # As after a stall longer than timeout + grace: the reaper gives the subtask to attempt 2.
        later = timezone.now() + timedelta(
            seconds=settings.VIAS_HEARTBEAT_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 5
        )
        assert dispatch.reap(now=later) == [subtask.pk]
        taken_over = timezone.now()
        thread.join(timeout=30)
    finally:
        thread.join(timeout=30)
    assert results == ["lost the subtask to another job"]
    stale = Subtask.objects.get(pk=subtask.pk)
    # Attempt 1 wrote nothing after the takeover: no state, no progress, no event.
    assert (stale.state, stale.attempts, stale.node_id) == (State.STARTING, 2, node.pk)
    assert stale.progress == Subtask.objects.get(pk=subtask.pk).progress
    assert not Event.objects.filter(subtask=subtask, created_at__gt=taken_over).exists()
    events_before = Event.objects.filter(subtask=subtask).count()

    # The stale run's own late writes are refused too, through the same methods a job uses.
    old_run = SubtaskRun(
        Subtask.objects.select_related("task__project", "scene").get(pk=subtask.pk), node.name
    )
    old_run.lease = Lease(1, node.pk)
    old_run._finish(State.FAILED, "stale job")
    assert Subtask.objects.get(pk=subtask.pk).state == State.STARTING

    assert run_subtask(subtask.pk, node.name) == "succeeded"  # attempt 2, the owner
    done = Subtask.objects.get(pk=subtask.pk)
    assert (done.state, done.attempts, done.progress) == (State.SUCCEEDED, 2, 100.0)
    keys = list(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
    assert len(keys) == len(set(keys)) >= events_before


def test_a_run_whose_video_ends_while_a_stop_is_asked_ends_stopped_not_stuck_stopping(alice):
    """The stop and the end of the file race: the stop wins, and the subtask does not stay STOPPING."""

    node = live_node(capacity=1)
    subtask = running_on(node, ready_task(alice))
    run = SubtaskRun(Subtask.objects.select_related("task__project", "scene").get(pk=subtask.pk), node.name)
    run.lease = Lease(1, node.pk)
    transition(subtask, State.STOPPING, "stop requested")  # the operator's stop, as stop_task writes it
    assert run._finish(State.SUCCEEDED, "end of the video") is True
    assert Subtask.objects.get(pk=subtask.pk).state == State.STOPPED
