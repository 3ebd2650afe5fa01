"""Batched heartbeats (issue 14): a node writes the heartbeats, progress and checkpoints of all
its subtasks in one fenced statement per tick; a stale attempt's beat is refused and its job
learns it on its inbox; with no loop flushing its node's beats a job writes its own."""

from __future__ import annotations

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analysis import control, node
from analysis.jobs import LostOwnership, StopNow, SubtaskRun
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tests.analysis_helpers import age_heartbeat, live_node, ready_task

pytestmark = pytest.mark.django_db


def this_node(capacity: int = 50) -> Node:
    """A node row this process holds (as `register` makes it), without its capabilities probe."""
    return live_node(capacity=capacity, instance=node.INSTANCE)


def running(owner: Node, alice, count: int) -> list[SubtaskRun]:
    task = ready_task(alice, vchans=count)
    Subtask.objects.filter(task=task).update(
        state=State.RUNNING, node=owner, attempts=1, heartbeat_at=timezone.now(), progress=0.0
    )
    runs = []
    for subtask in Subtask.objects.select_related("task__project", "scene", "node").filter(task=task):
        run = SubtaskRun(subtask, owner.name)
        run.inbox.open()
        run.progress.total = 100
        runs.append(run)
    return runs


def advance(runs: list[SubtaskRun], frames: int) -> None:
    for run in runs:
        run.progress.done += frames
        run.progress.last_frame += frames


def beats_of(runs: list[SubtaskRun]) -> dict[int, tuple]:
    rows = Subtask.objects.filter(pk__in=[r.subtask.pk for r in runs])
    return {
        pk: (progress, frame)
        for pk, progress, frame in rows.values_list("pk", "progress", "checkpoint_frame")
    }


@pytest.mark.parametrize("count", [3, 12])
def test_a_nodes_subtasks_beat_through_redis_and_the_node_writes_them_in_one_statement(alice, count):
    owner = this_node()
    runs = running(owner, alice, count)
    assert node.beat(owner.name, owner.pk)  # the loop claims its node's beats
    for run in runs:
        age_heartbeat(run.subtask, 20)
    advance(runs, 40)
    with CaptureQueriesContext(connection) as jobs:
        for run in runs:
            run._heartbeat()
    assert len(jobs) == 0  # the jobs wrote nothing themselves
    with CaptureQueriesContext(connection) as tick:
        assert node.beat(owner.name, owner.pk)
    # The node's heartbeat and one UPDATE for every subtask of the node, whatever their number.
    assert [q["sql"].split()[0] for q in tick.captured_queries] == ["UPDATE", "UPDATE"]
    assert beats_of(runs) == {r.subtask.pk: (40.0, 40) for r in runs}
    fresh = timezone.now() - timezone.timedelta(seconds=5)
    assert (
        Subtask.objects.filter(pk__in=[r.subtask.pk for r in runs], heartbeat_at__gte=fresh).count() == count
    )
    assert Node.objects.get(pk=owner.pk).redis_ack_at >= fresh


def test_a_job_that_died_is_not_kept_alive_by_its_node(alice):
    owner = this_node()
    (run,) = running(owner, alice, 1)
    node.beat(owner.name, owner.pk)
    run._heartbeat()
    node.beat(owner.name, owner.pk)
    age_heartbeat(run.subtask, 60)
    with CaptureQueriesContext(connection) as tick:
        node.beat(owner.name, owner.pk)  # nothing published since: only the node's own heartbeat
    assert len(tick) == 1
    assert Subtask.objects.get(pk=run.subtask.pk).heartbeat_at < timezone.now() - timezone.timedelta(
        seconds=50
    )


def test_a_stale_attempts_beat_is_refused_and_that_job_stops_while_the_owner_beats(alice):
    owner = this_node()
    stale, current, stopping = running(owner, alice, 3)
    node.beat(owner.name, owner.pk)
    Subtask.objects.filter(pk=stale.subtask.pk).update(attempts=2)  # the reaper gave it to attempt 2
    Subtask.objects.filter(pk=stopping.subtask.pk).update(state=State.STOPPING)  # a stop, database only
    advance([stale, current, stopping], 30)
    for run in (stale, current, stopping):
        run._heartbeat()
    with CaptureQueriesContext(connection) as tick:
        node.beat(owner.name, owner.pk)
    assert len(tick) == 3  # the refusal costs one more statement: which beats were refused
    assert beats_of([stale, current, stopping]) == {
        stale.subtask.pk: (0.0, 0),
        current.subtask.pk: (30.0, 30),
        stopping.subtask.pk: (0.0, 0),
    }
    # Each refused job finds the node's word on its inbox at its next frame.
    with pytest.raises(LostOwnership):
        stale._tick()
    with pytest.raises(StopNow):
        stopping._tick()
    current._tick()  # the owner goes on
    assert Subtask.objects.get(pk=stale.subtask.pk).attempts == 2


def test_with_no_loop_flushing_its_node_a_job_writes_its_own_fenced_heartbeat(alice):
    owner = this_node()
    (run,) = running(owner, alice, 1)
    advance([run], 25)
    with CaptureQueriesContext(connection) as own:
        run._heartbeat()
    assert [q["sql"].split()[0] for q in own.captured_queries] == ["UPDATE"]
    assert beats_of([run]) == {run.subtask.pk: (25.0, 25)}
    Subtask.objects.filter(pk=run.subtask.pk).update(attempts=2)
    with pytest.raises(LostOwnership):
        run._heartbeat()


def test_a_node_that_cannot_reach_redis_heartbeats_without_renewing_its_redis_acknowledgement(alice):
    owner = this_node()
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    Node.objects.filter(pk=owner.pk).update(redis_ack_at=long_ago, last_heartbeat=long_ago)
    with socket_nobody_listens_on() as port:
        unreachable = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        assert node.beat(owner.name, owner.pk, redis_client=unreachable)
    row = Node.objects.get(pk=owner.pk)
    assert row.last_heartbeat > long_ago and row.redis_ack_at == long_ago
    assert node.beat(owner.name, owner.pk, redis_client=control.client())
    assert Node.objects.get(pk=owner.pk).redis_ack_at > long_ago


class socket_nobody_listens_on:
    """A loopback port that refuses connections (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_with_a_heartbeat_timeout_too_short_for_a_loop_tick_every_job_writes_its_own(alice, settings):
    settings.VIAS_HEARTBEAT_TIMEOUT = 6  # a beat every 2 s plus a 5 s tick would not fit
    owner = this_node()
    (run,) = running(owner, alice, 1)
    node.beat(owner.name, owner.pk)
    advance([run], 10)
    with CaptureQueriesContext(connection) as own:
        run._heartbeat()
    assert len(own) == 1
    assert beats_of([run]) == {run.subtask.pk: (10.0, 10)}


def test_the_camera_figures_ride_on_the_batched_beat_one_statement_for_the_node(alice):
    from types import SimpleNamespace

    from analysis.models import CameraStats
    from analysis.observe import Observer

    owner = this_node()
    runs = running(owner, alice, 4)
    node.beat(owner.name, owner.pk)
    for run in runs:
        run.observer = Observer(run.subtask.pk, owner.name, 5, clips=False)
        run.pipeline = SimpleNamespace(detections=0, inference_s=0.0, detectors=[])
        run._heartbeat()  # the first beat makes each camera's row (the job's own write)
    node.beat(owner.name, owner.pk)
    assert CameraStats.objects.filter(subtask__in=[r.subtask for r in runs], frames_analysed=0).count() == 4
    for run in runs:
        run.observer.frames_analysed = 50
        run.pipeline.detections = 7
    with CaptureQueriesContext(connection) as jobs:
        for run in runs:
            run._heartbeat()
    assert len(jobs) == 0
    with CaptureQueriesContext(connection) as tick:
        node.beat(owner.name, owner.pk)
    # The node's heartbeat, the beats, and the figures of every camera of the node.
    assert [q["sql"].split()[0] for q in tick.captured_queries] == ["UPDATE", "UPDATE", "UPDATE"]
    figures = CameraStats.objects.filter(subtask__in=[r.subtask for r in runs])
    assert set(figures.values_list("frames_analysed", "detections", "node_name")) == {(50, 7, owner.name)}


def stats_run(run: SubtaskRun) -> None:
    """The observer and (fake) pipeline a job makes, fenced on its lease as the job's own is."""
    from types import SimpleNamespace

    from analysis.jobs import OWNED_STATES
    from analysis.observe import Observer

    lease = {**run.lease.owns(), "state__in": OWNED_STATES}
    run.observer = Observer(run.subtask.pk, run.node_name, 5, clips=False, continues=False, lease=lease)
    run.pipeline = SimpleNamespace(detections=0, inference_s=0.0, detectors=[])


def test_a_stale_runs_camera_figures_are_refused_on_the_batched_beat_and_in_its_own_write(alice):
    from analysis.models import CameraStats

    owner = this_node()
    batched, own, first = running(owner, alice, 3)
    for run in (batched, own, first):
        stats_run(run)
    node.beat(owner.name, owner.pk)  # the loop flushes this node's beats
    for run in (batched, own):
        run._heartbeat()  # the first beat makes the row
    node.beat(owner.name, owner.pk)
    assert CameraStats.objects.filter(subtask__in=[batched.subtask, own.subtask]).count() == 2
    for run in (batched, own, first):  # the reaper gave all three to attempt 2 (on another node)
        Subtask.objects.filter(pk=run.subtask.pk).update(attempts=2)
        run.observer.frames_analysed = 50
        run.pipeline.detections = 7
    CameraStats.objects.filter(subtask=first.subtask).delete()  # a first beat after losing the lease

    batched._heartbeat()  # handed to the loop, which refuses it
    first._heartbeat()  # handed; its row would be the job's own write
    node.beat(owner.name, owner.pk)
    with pytest.raises(LostOwnership):
        batched._tick()
    control.client().delete(node._flusher_key(owner.name))  # no loop flushes: the job writes its own
    with pytest.raises(LostOwnership):
        own._heartbeat()
    own.observer.close(own.pipeline)  # what a segment's end or a drain would write
    batched.observer.close(batched.pipeline)

    figures = CameraStats.objects.filter(subtask__in=[batched.subtask, own.subtask])
    assert set(figures.values_list("frames_analysed", "detections")) == {(0, 0)}
    assert not CameraStats.objects.filter(subtask=first.subtask).exists()
    # The owner's figures are written as before.
    Subtask.objects.filter(pk=own.subtask.pk).update(attempts=1)
    assert own.observer.flush(own.pipeline)
    assert CameraStats.objects.get(subtask=own.subtask).frames_analysed == 50
