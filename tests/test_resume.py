"""Resume (issue 14): a re-dispatched file subtask continues after its last checkpointed frame
(written with its heartbeat), not from frame 0; events stay unique."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis import dispatch
from analysis.jobs import run_subtask
from analysis.models import Event
from subtasks.choices import State
from subtasks.models import Subtask
from tests.analysis_helpers import job_in_thread
from tests.nodes import long_video, wait_for
from tests.test_jobs import security_task

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_re_dispatched_file_subtask_continues_after_its_checkpoint(alice, store, settings):
    # A checkpoint every second: on an idle machine the tiny model analyses the file in seconds.
    settings.VIAS_PROGRESS_INTERVAL = 1
    long_video(store / "long.mp4", loops=8)
    _task, subtask, node = security_task(alice, "long.mp4", fps=25)
    thread, first = job_in_thread(subtask.pk, node.name)
    try:
        wait_for(
            lambda: Subtask.objects.get(pk=subtask.pk).progress > 20, timeout=120, what="attempt 1 at 20 %"
        )
        # The job dies (as after a crash): the reaper hands the subtask to attempt 2.
        later = timezone.now() + timedelta(
            seconds=settings.VIAS_HEARTBEAT_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 5
        )
        assert dispatch.reap(now=later) == [subtask.pk]
        taken_over = timezone.now()
    finally:
        thread.join(timeout=60)
    assert first == ["lost the subtask to another job"]
    reaped = Subtask.objects.get(pk=subtask.pk)
    checkpoint = reaped.checkpoint_frame
    assert checkpoint > 0 and reaped.attempts == 2
    events_of_attempt_1 = set(Event.objects.filter(subtask=subtask).values_list("key", flat=True))

    at_reap = reaped.progress
    thread, second = job_in_thread(subtask.pk, node.name)
    seen: list[float] = []
    while thread.is_alive():  # the progress attempt 2 reports, from its first heartbeat on
        seen.append(Subtask.objects.get(pk=subtask.pk).progress)
        thread.join(timeout=0.05)
    assert second == ["succeeded"]
    # It never went back to the start: it continued from where attempt 1 was.
    assert len(seen) > 3 and min(seen) >= at_reap - 1, (at_reap, seen[:10])
    done = Subtask.objects.get(pk=subtask.pk)
    assert (done.state, done.progress) == (State.SUCCEEDED, 100.0)
    new_events = Event.objects.filter(subtask=subtask, created_at__gt=taken_over)
    # Attempt 2 analysed only what came after the checkpoint: its events (the person, tracked
    # afresh from there) are all later frames, none of the first part again.
    assert new_events.exists()
    assert min(new_events.values_list("frame_index", flat=True)) > checkpoint
    keys = list(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
    assert len(keys) == len(set(keys)) and events_of_attempt_1 <= set(keys)


def test_a_fresh_start_begins_at_frame_0_again(alice, store):
    _task, subtask, node = security_task(alice, "bikes.mp4")
    Subtask.objects.filter(pk=subtask.pk).update(checkpoint_frame=10_000)  # a previous run's
    from subtasks import services

    services.stop_subtask(Subtask.objects.get(pk=subtask.pk))
    services.start_subtask(Subtask.objects.get(pk=subtask.pk))
    assert Subtask.objects.get(pk=subtask.pk).checkpoint_frame == 0
    assert run_subtask(subtask.pk, node.name) == "succeeded"
    assert Event.objects.filter(subtask=subtask, rule="intrusion").count() == 1
