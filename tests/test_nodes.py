"""Real nodes (`manage.py node` subprocesses: django-q2 cluster, workers, heartbeats) against the
test database and Redis: a started task is analysed to the end; a worker killed with SIGKILL
mid-subtask is noticed and its subtask re-dispatched; SIGTERM drains a node and leaves no process."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.conf import settings

from analysis import control
from analysis.models import Event
from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tests.analysis_helpers import ready_task
from tests.nodes import NodeProcess, long_video, wait_for
from tests.test_jobs import WHOLE_FRAME

pytestmark = pytest.mark.django_db(transaction=True)


def started_task(actor, url: str, **algo_args):
    task = ready_task(actor, vchans=1, algo_type="2")
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(source_url=url)
    subtask_services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": algo_args})
    subtask_services.start_task(task)
    return task, subtask


def fetch(subtask) -> Subtask:
    return Subtask.objects.select_related("node").get(pk=subtask.pk)


def test_a_started_task_runs_on_a_node_to_the_end(alice, store, node_process):
    node = node_process(capacity=1)
    _task, subtask = started_task(alice, "bikes.mp4")
    wait_for(
        lambda: fetch(subtask).state == State.SUCCEEDED,
        timeout=90,
        what=lambda: f"SUCCEEDED\n{node.output()}",
    )
    done = fetch(subtask)
    assert done.node.name == node.name and done.progress == 100.0
    assert Event.objects.filter(subtask=subtask, rule="intrusion").count() == 1


def test_a_worker_killed_mid_subtask_is_noticed_and_the_subtask_dispatched_again(alice, store, node_process):
    long_video(store / "long.mp4", loops=8)
    node = node_process(capacity=1, heartbeat_timeout=6)
    _task, subtask = started_task(alice, "long.mp4", fps=25)
    pid = wait_for(lambda: control.live_pid(subtask.pk), timeout=60, what="the job to start")
    wait_for(lambda: fetch(subtask).progress > 2, timeout=60, what="some progress")
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: fetch(subtask).attempts >= 2, timeout=60, what=lambda: f"a second attempt\n{node.output()}"
    )
    wait_for(
        lambda: fetch(subtask).state in (State.SUCCEEDED, State.FAILED),
        timeout=120,
        what="the end of the run",
    )
    done = fetch(subtask)
    assert done.state == State.SUCCEEDED, done.status_reason
    # Each attempt counts; a loaded machine may need a third (a fresh worker must start in time).
    assert 2 <= done.attempts <= settings.VIAS_MAX_DISPATCH_ATTEMPTS
    # The second run analysed the same frames again: no event twice.
    keys = list(Event.objects.filter(subtask=subtask).values_list("key", flat=True))
    assert len(keys) == len(set(keys)) >= 1


def test_sigterm_drains_the_node_hands_subtasks_back_and_leaves_no_process(alice, store, node_process):
    long_video(store / "long.mp4", loops=8)
    node = node_process(capacity=1)
    _task, subtask = started_task(alice, "long.mp4", fps=10)
    wait_for(
        lambda: fetch(subtask).state == State.RUNNING and fetch(subtask).progress > 0,
        timeout=60,
        what="RUNNING",
    )
    assert node.descendants()  # the cluster and its workers
    leftovers = node.stop(timeout=30)
    assert node.process.returncode == 0, node.output()
    assert leftovers == []
    handed_back = fetch(subtask)
    assert handed_back.state == State.STARTING and handed_back.node is None
    assert "shutting down" in handed_back.status_reason or "waiting" in handed_back.status_reason
    assert Node.objects.get(name=node.name).draining


def test_with_hosting_on_a_second_subtask_runs_in_the_same_worker_sharing_its_session(
    alice, store, node_process
):
    long_video(store / "long.mp4", loops=8)
    node = node_process(capacity=2, VIAS_SUBTASKS_PER_WORKER="4")
    task = ready_task(alice, vchans=2, algo_type="2")
    first, second = task.subtasks.order_by("position")
    for subtask in (first, second):
        Subtask.objects.filter(pk=subtask.pk).update(source_url="long.mp4")
        subtask_services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": {"fps": 10}})
    subtask_services.start_subtask(first)
    host_pid = wait_for(
        lambda: control.live_pid(first.pk), timeout=60, what=lambda: f"a host\n{node.output()}"
    )
    subtask_services.start_subtask(second)
    wait_for(
        lambda: control.live_pid(second.pk), timeout=60, what=lambda: f"the second subtask\n{node.output()}"
    )
    assert control.live_pid(second.pk) == host_pid  # adopted by the host, not another worker
    wait_for(lambda: fetch(second).progress > 0, timeout=60, what="progress of the second subtask")
    subtask_services.stop_task(task)
    wait_for(
        lambda: {fetch(first).state, fetch(second).state} == {State.STOPPED}, timeout=30, what="both STOPPED"
    )


def test_kill_9_of_a_node_takes_its_cluster_and_workers_with_it(alice, store, node_process):
    long_video(store / "long.mp4", loops=8)
    node = node_process(capacity=1)
    _task, subtask = started_task(alice, "long.mp4", fps=25)
    worker_pid = wait_for(lambda: control.live_pid(subtask.pk), timeout=60, what="the job to start")
    wait_for(lambda: fetch(subtask).progress > 1, timeout=60, what="some progress")
    tree = node.descendants()
    assert worker_pid in [process.pid for process in tree]  # the busy worker is among them
    os.kill(node.process.pid, signal.SIGKILL)
    node.process.wait()

    def all_gone() -> bool:
        return not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    wait_for(all_gone, timeout=10, what=lambda: f"no process left: {[p for p in tree if p.is_running()]}")
    # Nobody heartbeats the subtask any more, so the reaper can hand it on.
    beat = fetch(subtask).heartbeat_at
    time.sleep(2)
    assert fetch(subtask).heartbeat_at == beat


def test_a_second_node_with_the_name_of_a_live_one_is_refused_with_a_clear_error(node_process):
    first = node_process(capacity=1)
    wait_for(lambda: Node.objects.get(name=first.name).instance, timeout=30, what="the claim")
    claim = Node.objects.get(name=first.name).instance
    second = NodeProcess(name=first.name)
    try:
        assert second.process.wait(timeout=60) != 0
    finally:
        second.stop()
    assert f"a node named '{first.name}' is already running" in second.output(), second.output()
    assert Node.objects.get(name=first.name).instance == claim  # the first keeps its name
    assert first.process.poll() is None
