"""Dispatch to analysis nodes, node bookkeeping and the reaper (analysis/dispatch.py, node.py)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils import timezone

from analysis import dispatch, node
from analysis.models import Detector
from subtasks import services as subtask_services
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tests.analysis_helpers import age_heartbeat, live_node, queued_jobs, ready_task


def start(task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return subtask_services.start_task(task)


def test_the_cluster_settings_never_hand_out_a_slow_job_twice_and_bound_attempts():
    assert settings.Q_CLUSTER["retry"] > settings.Q_CLUSTER["timeout"]
    assert 1 <= settings.Q_CLUSTER["max_attempts"] <= 10
    assert settings.Q_CLUSTER["timeout"] > settings.VIAS_JOB_SEGMENT
    assert 1 <= settings.VIAS_MAX_DISPATCH_ATTEMPTS <= 10


def test_starting_puts_one_job_per_subtask_on_the_chosen_nodes_queue(
    alice, django_capture_on_commit_callbacks
):
    target = live_node(capacity=4)
    task = ready_task(alice, vchans=3)
    outcomes = start(task, django_capture_on_commit_callbacks)
    assert all(o.ok for o in outcomes)
    jobs = queued_jobs(target.name)
    assert sorted(job["args"][0] for job in jobs) == sorted(task.subtasks.values_list("pk", flat=True))
    assert {job["func"] for job in jobs} == {"analysis.jobs.run_subtask"}
    assert {job["args"][1] for job in jobs} == {target.name}
    assert set(task.subtasks.values_list("node_id", "attempts", "state")) == {(target.pk, 1, State.STARTING)}


def test_dispatch_spreads_by_free_capacity_and_never_overfills(alice, django_capture_on_commit_callbacks):
    small, big = live_node(capacity=1), live_node(capacity=2)
    task = ready_task(alice, vchans=4)
    start(task, django_capture_on_commit_callbacks)
    per_node = {n.name: len(queued_jobs(n.name)) for n in (small, big)}
    assert per_node == {small.name: 1, big.name: 2}
    waiting = task.subtasks.filter(node__isnull=True)
    assert waiting.count() == 1
    assert waiting.get().status_reason == dispatch.WAITING_REASON


def test_dead_and_draining_nodes_get_nothing(alice, django_capture_on_commit_callbacks):
    dead = live_node(capacity=5, last_heartbeat=None)
    stale = live_node(capacity=5)
    Node.objects.filter(pk=stale.pk).update(
        last_heartbeat=timezone.now() - timezone.timedelta(seconds=settings.VIAS_NODE_TIMEOUT + 1)
    )
    draining = live_node(capacity=5, draining=True)
    task = ready_task(alice)
    start(task, django_capture_on_commit_callbacks)
    assert [len(queued_jobs(n.name)) for n in (dead, stale, draining)] == [0, 0, 0]
    assert task.subtasks.get().node is None


def test_a_waiting_subtask_is_dispatched_when_a_node_comes_up(alice, django_capture_on_commit_callbacks):
    task = ready_task(alice)
    start(task, django_capture_on_commit_callbacks)
    assert task.subtasks.get().status_reason == dispatch.WAITING_REASON
    registered = node.register(
        f"node-up-{task.pk[:6]}", capacity=1, capabilities={"providers": ["CPUExecutionProvider"]}
    )
    with django_capture_on_commit_callbacks(execute=True):
        node.housekeeping()
    assert len(queued_jobs(registered.name)) == 1
    assert task.subtasks.get().node == registered


def test_a_task_asking_for_a_category_without_a_model_does_not_start_and_says_why(alice):
    task = ready_task(alice, algo_type="0")  # traffic: motor and no_motor
    Detector.objects.all().delete()
    answer = alice.post(f"/tasks/{task.pk}/start")
    assert answer.status_code == 409
    assert "motor, no_motor" in answer.json()["enote"] and "fetch_models" in answer.json()["enote"]
    assert set(task.subtasks.values_list("state", flat=True)) == {State.CONFIGURED}


def test_face_needs_no_registered_model_with_the_bundled_haar_cascade(alice):
    task = ready_task(alice, algo_type="4")
    Detector.objects.all().delete()
    assert dispatch.missing_categories(task) == []
    assert dispatch.missing_categories(ready_task(alice, algo_type="2")) == ["body"]


def running_on(node_obj, task):
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(
        state=State.RUNNING, node=node_obj, attempts=1, heartbeat_at=timezone.now()
    )
    return Subtask.objects.get(pk=subtask.pk)


def test_the_reaper_marks_a_silent_subtask_abnormal_and_dispatches_it_again(
    alice, django_capture_on_commit_callbacks
):
    first, second = live_node(capacity=1), live_node(capacity=1)
    task = ready_task(alice)
    subtask = running_on(first, task)
    Node.objects.filter(pk=first.pk).update(last_heartbeat=None)  # its machine is gone
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.reap() == [subtask.pk]
    subtask.refresh_from_db()
    assert (subtask.state, subtask.node, subtask.attempts) == (State.STARTING, second, 2)
    assert len(queued_jobs(second.name)) == 1
    assert "no heartbeat from node" in subtask.status_reason and first.name in subtask.status_reason


def test_a_fresh_heartbeat_is_left_alone(alice):
    task = ready_task(alice)
    subtask = running_on(live_node(), task)
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT - 5)
    assert dispatch.reap() == []


def test_after_the_last_attempt_the_subtask_fails_with_the_reason(alice):
    task = ready_task(alice)
    subtask = running_on(live_node(), task)
    Subtask.objects.filter(pk=subtask.pk).update(attempts=settings.VIAS_MAX_DISPATCH_ATTEMPTS)
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 1)
    dispatch.reap()
    subtask.refresh_from_db()
    assert subtask.state == State.FAILED
    assert f"gave up after {settings.VIAS_MAX_DISPATCH_ATTEMPTS} attempts" in subtask.status_reason


def test_a_silent_subtask_being_stopped_ends_stopped(alice):
    task = ready_task(alice)
    subtask = running_on(live_node(), task)
    Subtask.objects.filter(pk=subtask.pk).update(state=State.STOPPING)
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 1)
    dispatch.reap()
    subtask.refresh_from_db()
    assert subtask.state == State.STOPPED


def test_a_node_registers_its_capabilities_heartbeats_and_drains():
    registered = node.register("node-caps", capacity=3)
    assert registered.capacity == 3 and registered.hostname
    assert (
        "providers" in registered.capabilities
        and "CPUExecutionProvider" in registered.capabilities["providers"]
    )
    assert not node.is_draining("node-caps")
    node.start_draining("node-caps")
    assert node.is_draining("node-caps")
    assert Node.objects.get(name="node-caps").draining
    node.register("node-caps", capacity=3)  # it comes back
    assert not node.is_draining("node-caps")


def test_a_nodes_capabilities_list_only_the_models_on_its_disk(settings, tmp_path):
    from analysis.models import Detector

    settings.VIAS_MODELS_DIR = tmp_path
    (tmp_path / "here.onnx").write_bytes(b"onnx")
    classes = {"0": {"label": "person", "category": "body"}}
    Detector.objects.create(name="here", onnx_file="here.onnx", classes=classes)
    Detector.objects.create(name="elsewhere", onnx_file="elsewhere.onnx", classes=classes)
    Detector.objects.create(name="off", onnx_file="here.onnx", classes=classes, enabled=False)
    assert node.register("node-disk", capacity=1).capabilities["models"] == ["here"]


pytestmark = pytest.mark.django_db


def test_the_housekeeping_derives_each_running_mtasks_progress_in_one_statement(
    alice, django_assert_num_queries
):
    from tasks.models import MTask

    task = ready_task(alice, vchans=2, scenes=2)
    first, second = task.subtasks.order_by("position")
    # Files (a stream's mtask says the share of its window instead: tests/test_mtask_runs.py).
    Subtask.objects.filter(pk=first.pk).update(state=State.RUNNING, progress=40.0, source_url="a.mp4")
    Subtask.objects.filter(pk=second.pk).update(state=State.RUNNING, progress=81.0, source_url="b.mp4")
    # The mean's one UPDATE, and one SELECT for started stream mtasks (whose schedule says).
    with django_assert_num_queries(2):
        assert dispatch.refresh_mtask_progress() == 1
    assert MTask.objects.get(task=task).progress == 60


def lose_redis(node_obj: Node, seconds: float) -> None:
    """As if the node's loop had not reached Redis for `seconds` while it heartbeats the database
    (tests/test_beats.py shows a real unreachable Redis leaves `redis_ack_at` where it was)."""
    Node.objects.filter(pk=node_obj.pk).update(
        last_heartbeat=timezone.now(), redis_ack_at=timezone.now() - timezone.timedelta(seconds=seconds)
    )


def test_a_node_cut_from_redis_gets_no_new_work_even_with_the_most_free_slots(
    alice, django_capture_on_commit_callbacks
):
    cut, reachable = live_node(capacity=10), live_node(capacity=1)
    lose_redis(cut, settings.VIAS_NODE_TIMEOUT + 1)
    task = ready_task(alice, vchans=2)
    start(task, django_capture_on_commit_callbacks)
    assert len(queued_jobs(cut.name)) == 0 and len(queued_jobs(reachable.name)) == 1
    assert task.subtasks.filter(node__isnull=True).count() == 1  # waits rather than go to the cut node


def test_the_subtasks_of_a_node_cut_from_redis_move_though_their_jobs_still_heartbeat(
    alice, django_capture_on_commit_callbacks
):
    cut, other = live_node(capacity=2), live_node(capacity=2)
    subtask = running_on(cut, ready_task(alice))  # its job writes its own heartbeats: fresh
    lose_redis(cut, settings.VIAS_NODE_TIMEOUT + 1)
    assert dispatch.reap() == []  # suspected (no new work), not moved yet
    lose_redis(cut, settings.VIAS_NODE_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.reap() == [subtask.pk]
    subtask.refresh_from_db()
    assert (subtask.state, subtask.node, subtask.attempts) == (State.STARTING, other, 2)
    assert "has not reached Redis" in subtask.status_reason and cut.name in subtask.status_reason
    assert len(queued_jobs(other.name)) == 1


def test_when_no_node_reaches_redis_nothing_is_moved(alice):
    cut, also_cut = live_node(capacity=2), live_node(capacity=2)
    subtask = running_on(cut, ready_task(alice))
    for each in (cut, also_cut):
        lose_redis(each, settings.VIAS_NODE_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE + 1)
    assert dispatch.reap() == []  # Redis itself is away: there is nowhere to move it to
    assert Subtask.objects.get(pk=subtask.pk).state == State.RUNNING


def test_a_job_never_popped_from_its_queue_does_not_count_an_attempt_and_goes_elsewhere(
    alice, django_capture_on_commit_callbacks
):
    first, second = live_node(capacity=1), live_node(capacity=1)
    task = ready_task(alice)
    Node.objects.filter(pk=second.pk).update(capacity=0)
    start(task, django_capture_on_commit_callbacks)
    Node.objects.filter(pk=second.pk).update(capacity=1)
    subtask = task.subtasks.get()
    assert (subtask.node, subtask.attempts) == (first, 1)
    queued_jobs(first.name)  # its node never pops it
    # Even the last attempt: a dispatch nobody popped is given back, not counted.
    Subtask.objects.filter(pk=subtask.pk).update(attempts=settings.VIAS_MAX_DISPATCH_ATTEMPTS)
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.reap() == [subtask.pk]
    subtask.refresh_from_db()
    assert (subtask.state, subtask.node, subtask.attempts) == (
        State.STARTING,
        second,
        settings.VIAS_MAX_DISPATCH_ATTEMPTS,
    )
    assert len(queued_jobs(second.name)) == 1


def test_a_redispatch_goes_back_to_the_node_it_left_only_when_no_other_has_room(
    alice, django_capture_on_commit_callbacks
):
    only = live_node(capacity=1)
    subtask = running_on(only, ready_task(alice))
    age_heartbeat(subtask, settings.VIAS_HEARTBEAT_TIMEOUT + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch.reap() == [subtask.pk]
    subtask.refresh_from_db()
    assert (subtask.state, subtask.node, subtask.attempts) == (State.STARTING, only, 2)
