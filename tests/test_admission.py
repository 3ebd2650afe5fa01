"""Admission without a global lock (issue 14): concurrent dispatchers never overfill a node,
a re-dispatch prefers another node, and one reaper runs at a time. Meaningful on PostgreSQL
(row locks, SKIP LOCKED, advisory locks); on SQLite the IMMEDIATE write lock serialises them."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from analysis import dispatch
from analysis.node import reaper_turn
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tests.analysis_helpers import age_heartbeat, live_node, queued_jobs, ready_task

pytestmark = pytest.mark.django_db(transaction=True)


def starting_subtasks(actor, count: int) -> list[int]:
    task = ready_task(actor, vchans=count)
    ids = list(task.subtasks.values_list("pk", flat=True))
    Subtask.objects.filter(pk__in=ids).update(state=State.STARTING, node=None)
    return ids


def one_by_one(share: list[int]) -> None:
    for pk in share:
        dispatch.dispatch(pk)


@pytest.mark.parametrize(
    ("dispatch_share", "dispatchers"),
    [(one_by_one, 8), (dispatch.dispatch_many, 4)],  # single dispatches; batches (a task's start)
    ids=["one-by-one", "batch"],
)
def test_concurrent_dispatchers_fill_every_slot_once_and_never_overfill(alice, dispatch_share, dispatchers):
    nodes = [live_node(capacity=3) for _ in range(4)]  # 12 slots
    ids = starting_subtasks(alice, 20)
    barrier = threading.Barrier(dispatchers)
    errors: list[BaseException] = []

    def dispatcher(share: list[int]) -> None:
        try:
            barrier.wait()
            dispatch_share(share)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    shares = [ids[i::dispatchers] for i in range(dispatchers)]
    threads = [threading.Thread(target=dispatcher, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    placed = Subtask.objects.filter(pk__in=ids, node__isnull=False)
    assert Counter(placed.values_list("node_id", flat=True)) == {node.pk: 3 for node in nodes}
    assert set(placed.values_list("attempts", flat=True)) == {1}
    waiting = Subtask.objects.filter(pk__in=ids, node__isnull=True)
    assert waiting.count() == 8 and {s.status_reason for s in waiting} == {"waiting for a free analysis node"}


def test_a_reaped_subtask_goes_to_another_node_when_one_has_room(alice):
    first = live_node(capacity=4)
    second = live_node(capacity=1)  # fewer free slots: chosen only because the first is avoided
    (pk,) = starting_subtasks(alice, 1)
    assert dispatch.dispatch(pk) == first
    Subtask.objects.filter(pk=pk).update(state=State.RUNNING)
    age_heartbeat(Subtask.objects.get(pk=pk), 3600)  # its job died; its node still heartbeats
    assert dispatch.reap() == [pk]
    assert Subtask.objects.get(pk=pk).node == second


def test_the_avoided_node_is_still_used_when_it_is_the_only_one_with_room(alice):
    only = live_node(capacity=2)
    (pk,) = starting_subtasks(alice, 1)
    assert dispatch.dispatch(pk, avoid=only.pk) == only


def test_one_reaper_at_a_time(alice):
    if connection.vendor != "postgresql":
        pytest.skip("the reaper's turn is a PostgreSQL advisory lock; SQLite serialises writers itself")
    inside = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    def first_reaper() -> None:
        try:
            with reaper_turn() as mine:
                seen.append(mine)
                inside.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_reaper)
    thread.start()
    assert inside.wait(30)
    with reaper_turn() as mine:
        assert mine is False  # the other one holds the turn
    release.set()
    thread.join(30)
    with reaper_turn() as mine:
        assert mine is True
    assert seen == [True]
    assert Node.objects.count() == 0


def test_dispatch_picks_the_node_the_queryset_rules_name_and_costs_three_statements(alice):
    """take_slot's SQL and `free_nodes` agree: live, reaching Redis, not draining, room left, the
    most free first, the avoided one last."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    old = timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT + 1)
    live_node(capacity=9, last_heartbeat=old)  # silent
    live_node(capacity=9, redis_ack_at=old)  # cut from Redis
    live_node(capacity=9, draining=True)
    full = live_node(capacity=1)
    Subtask.objects.filter(pk=starting_subtasks(alice, 1)[0]).update(node=full)
    roomy, second = live_node(capacity=5), live_node(capacity=3)
    ids = starting_subtasks(alice, 3)
    assert dispatch.pick_node() == roomy
    with CaptureQueriesContext(connection) as queries:
        assert dispatch.dispatch(ids[0]) == roomy
    statements = [q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in ("SELECT", "UPDATE")]
    # The subtask's lock (its row only: no join that would lock its task's row), the node's lock
    # and the claim (besides BEGIN, COMMIT and, on PostgreSQL, the asynchronous commit's SET).
    assert len(statements) == 3 and "JOIN" not in statements[0], statements
    assert dispatch.pick_node(avoid=roomy.pk) == second
    assert dispatch.dispatch(ids[1], avoid=roomy.pk) == second
    Node.objects.filter(pk__in=[roomy.pk, second.pk]).update(capacity=1)
    assert dispatch.pick_node() is None
    assert dispatch.dispatch(ids[2]) is None
    assert Subtask.objects.get(pk=ids[2]).node is None


def test_a_batch_places_subtasks_as_single_dispatches_would_and_queues_each_job_once(alice):
    """Most free first, ties to the lower id, capacity kept, one job per placed subtask on its
    node's queue; a subtask that is not waiting (stopped, or already on a node) is left alone."""
    roomy, small = live_node(capacity=4), live_node(capacity=2)
    Subtask.objects.filter(pk=starting_subtasks(alice, 1)[0]).update(node=small)  # small: 1 free
    ids = starting_subtasks(alice, 6)

    def placements(dispatch_all) -> list[int | None]:
        Subtask.objects.filter(pk__in=ids).update(node=None, attempts=0, status_reason="")
        dispatch_all(ids)
        for node in (roomy, small):
            queued_jobs(node.name)  # emptied for the next run
        return [Subtask.objects.get(pk=pk).node_id for pk in ids]

    one_by_one = placements(lambda pks: [dispatch.dispatch(pk) for pk in pks])
    batched = placements(dispatch.dispatch_many)
    assert batched == one_by_one == [roomy.pk, roomy.pk, roomy.pk, roomy.pk, small.pk, None]

    stopped, on_a_node, *rest = starting_subtasks(alice, 4)
    Subtask.objects.filter(pk=stopped).update(state=State.STOPPED)
    Subtask.objects.filter(pk__in=ids).update(node=None, state=State.STOPPED)
    Node.objects.filter(pk=roomy.pk).update(capacity=10)
    Subtask.objects.filter(pk=on_a_node).update(node=roomy)
    placed = dispatch.dispatch_many([stopped, on_a_node, *rest])
    assert set(placed) == set(rest) and all(node == roomy for node in placed.values())
    jobs = queued_jobs(roomy.name)
    assert sorted(job["args"][0] for job in jobs) == sorted(rest)
    assert {tuple(job["args"][1:]) for job in jobs} == {(roomy.name, 0)}


def test_a_batch_costs_the_same_statements_for_3_subtasks_as_for_12(alice):
    for _ in range(3):
        live_node(capacity=10)

    def statements(count: int) -> list[str]:
        ids = starting_subtasks(alice, count)
        with CaptureQueriesContext(connection) as queries:
            placed = dispatch.dispatch_many(ids)
        assert len(placed) == count and all(placed.values())
        return [
            q["sql"].split()[0]
            for q in queries.captured_queries
            if q["sql"].split()[0] in ("SELECT", "UPDATE")
        ]

    # The subtasks' locks, the nodes' locks, their busy counts, the claim: four, whatever the size.
    assert statements(3) == statements(12) == ["SELECT", "SELECT", "SELECT", "UPDATE"]


def test_a_batch_that_redis_cannot_queue_is_undone_and_waits_for_the_broker(alice, settings):
    """Redis unreachable when the batch's jobs are queued (a loopback port nobody listens on, for
    this test's dispatch only): no job is queued, so no subtask stays on the node or spends an
    attempt."""
    import socket

    node = live_node(capacity=10)
    ids = starting_subtasks(alice, 3)
    with socket.socket() as probe:  # a free port, closed again: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    real_url = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    try:
        placed = dispatch.dispatch_many(ids)
    finally:
        settings.REDIS_URL = real_url
    assert set(placed.values()) == {node}  # claimed, then undone after the failed queueing
    for subtask in Subtask.objects.filter(pk__in=ids):
        assert (subtask.node_id, subtask.attempts) == (None, 0)
        assert subtask.status_reason == "waiting for the message broker (Redis) to queue it"
    assert queued_jobs(node.name) == []
