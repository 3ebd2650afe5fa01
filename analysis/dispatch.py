"""Dispatching subtasks to analysis nodes, and the reaper that notices dead ones.

A node is a django-q2 cluster with its own queue (`manage.py node`). Dispatch picks the live
node with the most free capacity and puts one `analysis.jobs.run_subtask` job on that node's
queue. A Redis queue forgets a job whose worker dies, so liveness comes from heartbeats: the
job's beats reach `Subtask.heartbeat_at` (batched by its node's loop, analysis/node.py), and
the reaper (one node's loop at a time) marks a subtask whose heartbeat stopped ABNORMAL and
dispatches it again, a bounded number of times; a node live in the database but cut from Redis
gets no new work and its subtasks move too (docs/analysis-engine.md).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    When,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from analysis.hosting import enqueue_many, enqueue_to_queue, try_adopt
from analysis.models import Detector
from subtasks.choices import State
from subtasks.models import Node, Subtask
from subtasks.services import IllegalTransition, transition
from tasks.choices import AlgoType, DetectorModel
from tasks.models import Task

log = logging.getLogger(__name__)

# What a task analyses when it names no detector models (VCS `algorithms[].models` does).
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    AlgoType.TRAFFIC: (DetectorModel.MOTOR, DetectorModel.NO_MOTOR),
    AlgoType.PASSENGER_FLOW: (DetectorModel.BODY,),
    AlgoType.SECURITY: (DetectorModel.BODY,),
    AlgoType.ILLEGAL_PARKING: (DetectorModel.MOTOR,),
    AlgoType.FACE: (DetectorModel.FACE,),
}
# Subtasks a node is busy with (counted against its capacity).
BUSY_STATES = (State.STARTING, State.RUNNING, State.RECOVERING, State.ABNORMAL, State.STOPPING)
WAITING_REASON = gettext_noop("waiting for a free analysis node")
BROKER_REASON = gettext_noop("waiting for the message broker (Redis) to queue it")
# Transactions a dispatch tries (each finding its node filled meanwhile) before it waits.
TAKE_SLOT_TRIES = 5


def required_categories(task: Task) -> list[str]:
    return list(task.detector_models or DEFAULT_CATEGORIES[task.algo_type])


def missing_categories(task: Task) -> list[str]:
    """Categories the task asks for that no enabled registered detector provides."""
    provided = set(built_in_categories())
    for classes in Detector.objects.filter(enabled=True).values_list("classes", flat=True):
        provided.update(spec.get("category") for spec in classes.values())
    return [category for category in required_categories(task) if category not in provided]


def built_in_categories() -> set[str]:
    """OpenCV's Haar cascade finds faces without a registered model, where this OpenCV build has
    it (the pinned opencv-python-headless 4.14 does; OpenCV 5 wheels do not)."""
    # Imported here: OpenCV is loaded by the processes that analyse, not by every web process
    # that registers the engine at start-up.
    from analysis.detect.face import available

    return {DetectorModel.FACE} if available() else set()


def node_is_live(last_heartbeat: datetime | None, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return last_heartbeat is not None and now - last_heartbeat < timedelta(seconds=settings.VIAS_NODE_TIMEOUT)


def busy_count(node_ref: Any):
    """Subtasks of a node (OuterRef or pk) counted against its capacity, as a subquery."""
    return Coalesce(
        Subquery(
            Subtask.objects.filter(node=node_ref, state__in=BUSY_STATES)
            .order_by()
            .values("node")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        ),
        0,
    )


def live_nodes(now: datetime | None = None):
    """Nodes whose heartbeat reaches the database AND whose loop reaches Redis (its Redis
    acknowledgement, `Node.redis_ack_at`): a node cut from Redis cannot pop its queue."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
    return Node.objects.filter(last_heartbeat__gte=cutoff, redis_ack_at__gte=cutoff, draining=False).annotate(
        busy=busy_count(OuterRef("pk"))
    )


def free_nodes(now: datetime | None = None, avoid: int | None = None):
    """Live nodes with a free slot, the most free first; `avoid` (the node a subtask just left)
    last, so a re-dispatch prefers another node."""
    return (
        live_nodes(now)
        .filter(busy__lt=F("capacity"))
        .annotate(
            free=ExpressionWrapper(F("capacity") - F("busy"), output_field=IntegerField()),
            avoided=Case(When(pk=avoid, then=1), default=0, output_field=IntegerField()),
        )
        .order_by("avoided", "-free", "pk")
    )


def pick_node(now: datetime | None = None, avoid: int | None = None) -> Node | None:
    """The live node with the most free capacity, or None when all are full (no lock taken)."""
    return free_nodes(now, avoid).first()


def _slot_sql(lock: str, limit: str = "1", count_free: bool = False) -> tuple[str, str]:
    """The two statements of a slot, in plain SQL (PostgreSQL and SQLite): dispatch is the hot
    path of a start, and the ORM spent more time composing these than the database running them.
    Same rules as `free_nodes` (tests/test_admission.py checks both agree). `count_free` adds a
    fourth column to the pick, the number of free live nodes, held or not (two more cutoffs
    first in its parameters)."""
    node, subtask = Node._meta.db_table, Subtask._meta.db_table
    busy_states = ", ".join(f"'{state}'" for state in BUSY_STATES)

    def busy(alias: str) -> str:
        return (
            f"(SELECT COUNT(*) FROM {subtask} b WHERE b.node_id = {alias}.id AND b.state IN ({busy_states}))"
        )

    def free(alias: str) -> str:
        return (
            f"{alias}.last_heartbeat >= %s AND {alias}.redis_ack_at >= %s AND NOT {alias}.draining"
            f" AND {busy(alias)} < {alias}.capacity"
        )

    free_count = f", (SELECT COUNT(*) FROM {node} m WHERE {free('m')})" if count_free else ""
    pick = (
        f"SELECT n.id, n.name, n.capacity{free_count} FROM {node} n WHERE {free('n')}"
        f" ORDER BY CASE WHEN n.id = %s THEN 1 ELSE 0 END, n.capacity - {busy('n')} DESC, n.id"
        f" LIMIT {limit} {lock}"
    )
    claim = (
        f"UPDATE {subtask} SET node_id = %s, heartbeat_at = %s, attempts = %s, status_reason = %s"
        f" WHERE id = %s AND (SELECT COUNT(*) FROM {subtask} b WHERE b.node_id = %s"
        f" AND b.state IN ({busy_states})) < %s"
    )
    return pick, claim


class NodeFilled(Exception):
    """The node locked for a claim filled up before it (another dispatcher committed there)."""


def take_slot(subtask_id: int, avoid: int | None = None, **changes: Any) -> Node | None:
    """Give the subtask (already locked by the caller's transaction) a node's free slot, with
    `changes` (heartbeat_at, attempts, status_reason); the node, or None when all are full.

    No lock over all nodes: the best candidate is locked with SKIP LOCKED, so concurrent
    dispatchers each take a different node. The subtask's UPDATE is then conditional on the
    node's busy count, read again by that UPDATE: a statement that starts after the node's lock
    was granted sees every dispatcher that held it before (PostgreSQL's READ COMMITTED takes a
    snapshot per statement), whereas the count read while choosing may predate one of them.
    Two statements. Only when every free node is held by another dispatcher does this wait, on
    the best one, holding no other node's lock. NodeFilled when the claim finds the node full:
    the caller rolls back (which releases that node's lock: a dispatcher never waits for a node
    while holding another, so dispatchers cannot deadlock) and tries again. (SQLite has no row
    locks: its IMMEDIATE transactions run one writer at a time, which serialises dispatchers.)"""
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    cutoff = adapt(timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT))
    values = [adapt(changes["heartbeat_at"]), changes["attempts"], changes["status_reason"], subtask_id]
    for lock in ("FOR UPDATE OF n SKIP LOCKED", "FOR UPDATE OF n") if postgres else ("",):
        pick, claim = _slot_sql(lock)
        with connection.cursor() as cursor:
            cursor.execute(pick, [cutoff, cutoff, avoid if avoid is not None else -1])
            row = cursor.fetchone()
            if row is None:
                continue  # none free, or all free ones held: wait for the best (or none is free)
            node_id, name, capacity = row
            cursor.execute(claim, [node_id, *values, node_id, capacity])
            if not cursor.rowcount:
                raise NodeFilled(node_id)
        # The other fields load if asked for.
        return Node.from_db(connection.alias, ["id", "name", "capacity"], [node_id, name, capacity])
    return None


def dispatch(subtask_id: int, count_attempt: bool = True, avoid: int | None = None) -> Node | None:
    """Put a STARTING / RECOVERING subtask on a node's queue; without a free node it waits
    (status_reason says so) and the node loops dispatch it when capacity frees up. `avoid`: the
    node it just left, chosen only when no other has room. Three statements (the subtask's
    lock, the node's, the conditional UPDATE; on PostgreSQL a fourth, the asynchronous commit)
    and two Redis calls (a host's free slots, the queue)."""
    for _try in range(TAKE_SLOT_TRIES):
        try:
            return _dispatch_once(subtask_id, count_attempt, avoid)
        except NodeFilled:
            continue  # rolled back: the full node's lock is released; choose again
    Subtask.objects.filter(
        pk=subtask_id, state__in=(State.STARTING, State.RECOVERING), node__isnull=True
    ).update(status_reason=_(WAITING_REASON))
    return None


def _dispatch_once(subtask_id: int, count_attempt: bool, avoid: int | None) -> Node | None:
    with transaction.atomic():
        # Ordered by pk: the model's ordering (task, position) would join the task and lock its
        # row too, serialising the dispatches of every subtask of one task.
        subtask = (
            Subtask.objects.select_for_update()
            .filter(pk=subtask_id)
            .only("state", "attempts", "status_reason")
            .order_by("pk")
            .first()
        )
        if subtask is None or subtask.state not in (State.STARTING, State.RECOVERING):
            return None
        if connection.vendor == "postgresql":
            # The commit need not wait for the disk: a dispatch lost in a database crash is
            # harmless (its job finds the subtask not assigned to its node and does nothing;
            # the housekeeping dispatches the subtask again), and the flush was most of a
            # dispatch's wall time.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        attempts = subtask.attempts + (1 if count_attempt else 0)
        # heartbeat_at doubles as "queued at": a job that never starts is reaped like a dead one.
        reason = (
            "" if subtask.status_reason in (_(WAITING_REASON), _(BROKER_REASON)) else subtask.status_reason
        )
        node = take_slot(
            subtask_id, avoid, heartbeat_at=timezone.now(), attempts=attempts, status_reason=reason
        )
        if node is None:
            Subtask.objects.filter(pk=subtask_id).update(node=None, status_reason=_(WAITING_REASON))
            return None
        previous = subtask.attempts
        transaction.on_commit(lambda: _enqueue_or_wait(subtask_id, node, attempts, previous))
    return node


# Subtasks one batch transaction locks and places at most (a bigger start runs several).
BATCH_SIZE = 200


def dispatch_many(subtask_ids: Sequence[int]) -> dict[int, Node | None]:
    """Dispatch many waiting subtasks (STARTING / RECOVERING, on no node) at once: what a task's
    start and the housekeeping's waiting list do. Same rules as `dispatch` one by one (the most
    free live node first, capacity never exceeded, an attempt counted), in four statements per
    batch instead of three per subtask (plus, on PostgreSQL, the asynchronous commit's SET),
    and the jobs queued in one Redis round trip per batch.
    Each subtask's node, or None where it waits (status_reason says so); ids that are not
    waiting any more (stopped, or dispatched meanwhile) are left out."""
    placed: dict[int, Node | None] = {}
    pending = list(dict.fromkeys(subtask_ids))
    while pending:
        chunk, pending = pending[:BATCH_SIZE], pending[BATCH_SIZE:]
        fruitless = 0
        while chunk and fruitless < TAKE_SLOT_TRIES:
            done, chunk = _dispatch_batch(chunk)
            placed.update(done)
            fruitless = 0 if any(done.values()) else fruitless + 1
        if chunk:  # the nodes kept filling up under it: it waits, as a single dispatch would
            Subtask.objects.filter(pk__in=chunk, node__isnull=True).update(status_reason=_(WAITING_REASON))
            placed.update(dict.fromkeys(chunk))
    return placed


def _dispatch_batch(subtask_ids: list[int]) -> tuple[dict[int, Node | None], list[int]]:
    """One transaction: lock the waiting subtasks, lock free nodes (SKIP LOCKED, so concurrent
    dispatchers take different nodes), count their busy subtasks again (a statement after the
    locks sees every earlier holder's commit, as in `take_slot`), share the subtasks out most
    free first, one UPDATE. Returns what it placed (None: no live node has room, it waits) and
    the ids to try again (the nodes it could lock had too little room)."""
    with transaction.atomic():
        waiting = _lock_waiting(subtask_ids)
        if not waiting:
            return {}, []
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # as in _dispatch_once: the flush is not needed
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        found = _lock_free_nodes(len(waiting))
        if found is None:  # no live node has a free slot at all
            Subtask.objects.filter(pk__in=list(waiting)).update(status_reason=_(WAITING_REASON))
            return dict.fromkeys(waiting), []
        nodes, free_nodes_total = found
        # When other dispatchers hold some of the free nodes, no node takes more of this batch
        # than an even spread over all of them would give it: the rest goes in the next
        # transaction rather than piling onto the few this one could lock.
        contended = len(nodes) < min(free_nodes_total, len(waiting))
        per_node = -(-len(waiting) // free_nodes_total) if contended else len(waiting)
        shares = _share_out(list(waiting), nodes, per_node)
        _claim(shares, waiting, timezone.now())
        jobs = [(pk, node, waiting[pk][0] + 1, waiting[pk][0]) for pk, node in shares.items()]
        if jobs:
            transaction.on_commit(lambda: _enqueue_many_or_wait(jobs))
    return dict(shares), [pk for pk in waiting if pk not in shares]


def _lock_waiting(subtask_ids: list[int]) -> dict[int, tuple[int, str]]:
    """The ids still waiting for a node, locked in id order (so two batches never deadlock):
    {id: (attempts, status_reason)}."""
    table = Subtask._meta.db_table
    marks = ", ".join(["%s"] * len(subtask_ids))
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT id, attempts, status_reason FROM {table} WHERE id IN ({marks})"
        f" AND state IN (%s, %s) AND node_id IS NULL ORDER BY id{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*subtask_ids, State.STARTING, State.RECOVERING])
        return {pk: (attempts, reason) for pk, attempts, reason in cursor.fetchall()}


def _lock_free_nodes(wanted: int) -> tuple[list[tuple[int, str, int]], int] | None:
    """Up to `wanted` live nodes with room, locked, as (id, name, free) with free counted after
    the locks were granted (possibly none left: filled meanwhile), and how many live nodes have
    room, held by other dispatchers or not; None when none has. Waits on the best one only when
    every free node is held by another dispatcher."""
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    cutoff = adapt(timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT))
    free_total = 0

    def pick(lock: str, limit: int) -> list[tuple[int, str, int]]:
        nonlocal free_total
        sql, _claim_sql = _slot_sql(lock, limit="%s", count_free=True)
        with connection.cursor() as cursor:
            cursor.execute(sql, [cutoff, cutoff, cutoff, cutoff, -1, limit])
            rows = cursor.fetchall()
        if rows:
            free_total = max(free_total, rows[0][3])
        return [(node_id, name, capacity) for node_id, name, capacity, _free in rows]

    rows = pick("FOR UPDATE OF n SKIP LOCKED" if postgres else "", wanted)
    if not rows and postgres:
        rows = pick("FOR UPDATE OF n", 1)  # every free node is held: wait for the best one
        if rows:
            # The holder we waited for has committed: take the nodes it released too, so that a
            # batch that waited spreads out as one that did not (not all onto the one node).
            rows += [row for row in pick("FOR UPDATE OF n SKIP LOCKED", wanted) if row[0] != rows[0][0]]
    if not rows:
        return None
    busy = _busy_counts([node_id for node_id, _name, _capacity in rows])
    nodes = [(node_id, name, capacity - busy.get(node_id, 0)) for node_id, name, capacity in rows]
    return [node for node in nodes if node[2] > 0], max(free_total, len(rows))


def _busy_counts(node_ids: list[int]) -> dict[int, int]:
    table = Subtask._meta.db_table
    marks = ", ".join(["%s"] * len(node_ids))
    states = ", ".join(["%s"] * len(BUSY_STATES))
    sql = (
        f"SELECT node_id, COUNT(*) FROM {table} WHERE node_id IN ({marks})"
        f" AND state IN ({states}) GROUP BY node_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*node_ids, *BUSY_STATES])
        return dict(cursor.fetchall())


def _share_out(subtask_ids: list[int], nodes: list[tuple[int, str, int]], per_node: int) -> dict[int, Node]:
    """Each subtask to the node with the most room left at that moment (ties: the lower id), as
    `dispatch` one by one would; at most `per_node` to one node."""
    heap = [(-free, node_id, name, per_node) for node_id, name, free in nodes]
    heapq.heapify(heap)
    shares: dict[int, Node] = {}
    chosen: dict[int, Node] = {}
    for pk in subtask_ids:
        if not heap:
            break
        free, node_id, name, left = heapq.heappop(heap)
        if node_id not in chosen:
            chosen[node_id] = Node.from_db(connection.alias, ["id", "name"], [node_id, name])
        shares[pk] = chosen[node_id]
        if free + 1 < 0 and left > 1:
            heapq.heappush(heap, (free + 1, node_id, name, left - 1))
    return shares


def _claim(shares: dict[int, Node], waiting: dict[int, tuple[int, str]], now: datetime) -> None:
    """One UPDATE for the whole batch: node, queued-at, attempt, reason (a waiting reason is
    cleared, an earlier one, such as the reaper's, kept)."""
    if not shares:
        return
    cleared = (_(WAITING_REASON), _(BROKER_REASON))
    node_cases = " ".join("WHEN %s THEN %s" for _pk in shares)
    reason_cases = " ".join("WHEN %s THEN %s" for _pk in shares)
    marks = ", ".join(["%s"] * len(shares))
    table = Subtask._meta.db_table
    sql = (
        f"UPDATE {table} SET node_id = CASE id {node_cases} END,"
        f" status_reason = CASE id {reason_cases} END,"
        f" attempts = attempts + 1, heartbeat_at = %s WHERE id IN ({marks})"
    )
    params: list[Any] = []
    for pk, node in shares.items():
        params += [pk, node.pk]
    for pk in shares:
        reason = waiting[pk][1]
        params += [pk, "" if reason in cleared else reason]
    params += [connection.ops.adapt_datetimefield_value(now), *shares]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _enqueue_many_or_wait(jobs: list[tuple[int, Node, int, int]]) -> None:
    """Queue the batch's jobs (subtask, node, attempts, previous attempts) in one Redis round
    trip; if Redis is unreachable, undo each assignment as `_enqueue_or_wait` does."""
    try:
        enqueue_many([(pk, node.name) for pk, node, _attempts, _previous in jobs])
    except (redis.RedisError, OSError) as exc:
        log.warning("%d subtasks: could not queue them: %s; waiting", len(jobs), exc)
        for pk, node, attempts, previous in jobs:
            Subtask.objects.filter(pk=pk, node=node, attempts=attempts).update(
                node=None, attempts=previous, status_reason=_(BROKER_REASON)
            )


def _enqueue_or_wait(subtask_id: int, node: Node, attempts: int, previous_attempts: int) -> None:
    """Queue the job; if Redis is unreachable, undo the assignment (the attempt does not count:
    no job was queued) and leave the subtask waiting, for the housekeeping to dispatch again."""
    try:
        enqueue(subtask_id, node.name)
    except (redis.RedisError, OSError) as exc:
        log.warning("subtask %s: could not queue it on %s: %s; waiting", subtask_id, node.name, exc)
        Subtask.objects.filter(pk=subtask_id, node=node, attempts=attempts).update(
            node=None, attempts=previous_attempts, status_reason=_(BROKER_REASON)
        )


def enqueue(subtask_id: int, node_name: str, resume_frame: int = 0) -> None:
    """To a worker of that node already hosting subtasks, if one has room (analysis/hosting.py);
    otherwise onto the node's django-q2 queue."""
    if not try_adopt(subtask_id, node_name, resume_frame):
        enqueue_to_queue(subtask_id, node_name, resume_frame)


def dispatch_waiting() -> int:
    """Dispatch every subtask waiting for a node; the number that found one."""
    waiting = Subtask.objects.filter(state__in=(State.STARTING, State.RECOVERING), node__isnull=True)
    placed = dispatch_many(list(waiting.order_by("pk").values_list("pk", flat=True)))
    return sum(1 for node in placed.values() if node is not None)


def refresh_mtask_progress(now: datetime | None = None) -> int:
    """Every mtask with a running subtask gets the mean progress of its subtasks: one UPDATE for
    the whole cluster, run by the housekeeping, instead of an aggregate per subtask per second.
    A started stream mtask's progress is its window's share elapsed instead (one SELECT and, when
    there is one, one UPDATE: subtasks.mtask_runs.write_window_progress)."""
    from subtasks import mtask_runs
    from tasks.models import MTask

    mtask_runs.write_window_progress(now)
    running = (
        Subtask.objects.filter(state__in=BUSY_STATES, scene__isnull=False)
        .exclude(scene__mtask_id__in=mtask_runs.schedule_owned_mtasks())
        .values("scene__mtask_id")
    )
    mean = (
        Subtask.objects.filter(scene__mtask_id=OuterRef("pk"))
        .order_by()
        .values("scene__mtask_id")
        .annotate(mean=Avg("progress"))
        .values("mean")[:1]
    )
    return MTask.objects.filter(pk__in=running).update(progress=Cast(Coalesce(mean, 0.0), IntegerField()))


def silent_subtasks(now: datetime | None = None):
    """Subtasks on a node whose job has not heartbeaten for VIAS_HEARTBEAT_TIMEOUT."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.VIAS_HEARTBEAT_TIMEOUT)
    return Subtask.objects.filter(
        state__in=(State.STARTING, State.RUNNING, State.RECOVERING, State.STOPPING),
        node__isnull=False,
        heartbeat_at__lt=cutoff,
    )


def reapable(now: datetime | None = None):
    """Silent subtasks that are reaped now: those whose node still heartbeats (the node is fine,
    its job died), and, once VIAS_HEARTBEAT_GRACE more has passed, those whose node is silent
    too. A silent node may only be stalled (a frozen VM, a long GC pause, a swap storm): it is
    suspected first, and its subtasks are left to it for the grace period."""
    now = now or timezone.now()
    node_alive = Q(node__last_heartbeat__gte=now - timedelta(seconds=settings.VIAS_NODE_TIMEOUT))
    long_silent = Q(
        heartbeat_at__lt=now
        - timedelta(seconds=settings.VIAS_HEARTBEAT_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE)
    )
    return silent_subtasks(now).filter(node_alive | long_silent)


def cut_off(now: datetime | None = None):
    """Subtasks on a node that still heartbeats the database but has not reached Redis for
    VIAS_NODE_TIMEOUT + VIAS_HEARTBEAT_GRACE: it cannot pop jobs, receive commands or publish
    events, so its subtasks move as a dead node's do (their jobs write their own heartbeats
    meanwhile, so they are not silent). Only while another node does reach Redis: when none
    does, Redis itself is away and there is nowhere to move them to."""
    now = now or timezone.now()
    fresh = now - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
    lost = now - timedelta(seconds=settings.VIAS_NODE_TIMEOUT + settings.VIAS_HEARTBEAT_GRACE)
    others_reach_redis = Exists(Node.objects.filter(last_heartbeat__gte=fresh, redis_ack_at__gte=fresh))
    return Subtask.objects.filter(
        others_reach_redis,
        state__in=(State.STARTING, State.RUNNING, State.RECOVERING, State.STOPPING),
        node__last_heartbeat__gte=fresh,
        node__redis_ack_at__lt=lost,
    )


def suspects(now: datetime | None = None) -> list[int]:
    """Silent subtasks not reaped yet: their node is silent too, and within the grace period."""
    reaped = reapable(now).values("pk")
    return list(silent_subtasks(now).exclude(pk__in=reaped).values_list("pk", flat=True))


def reap(now: datetime | None = None) -> list[int]:
    """Subtasks whose job stopped heartbeating (see `reapable`): ABNORMAL with the reason, then
    dispatched again until VIAS_MAX_DISPATCH_ATTEMPTS, then FAILED. Returns the ids reaped."""
    now = now or timezone.now()
    suspected = suspects(now)
    if suspected:
        log.warning("subtasks %s: silent, on a silent node; suspected, not reaped yet", suspected)
    stale = reapable(now).select_related("task__project", "node")
    reaped = []
    for subtask in stale:
        reason = _("no heartbeat from node %(node)s since %(at)s") % {
            "node": subtask.node.name,
            "at": subtask.heartbeat_at.isoformat(timespec="seconds"),
        }
        if _reaped(subtask, reason):
            reaped.append(subtask.pk)
    for subtask in cut_off(now).exclude(pk__in=reaped).select_related("task__project", "node"):
        ack = subtask.node.redis_ack_at
        reason = _("node %(node)s has not reached Redis since %(at)s") % {
            "node": subtask.node.name,
            "at": ack.isoformat(timespec="seconds") if ack else "-",
        }
        if _reaped(subtask, reason):
            reaped.append(subtask.pk)
    return reaped


def _reaped(subtask: Subtask, reason: str) -> bool:
    try:
        _recover(subtask, reason)
    except IllegalTransition:
        return False  # it moved meanwhile (the job came back to life, or a stop won)
    return True


def _recover(subtask: Subtask, reason: str) -> None:
    """ABNORMAL, then dispatched again to another node where one has room. A subtask still
    STARTING was never popped from its queue (a job moves it to RUNNING first thing): that
    dispatch does not count as an attempt, and cannot use the last one up. (Its job, if a worker
    pops it later, finds the subtask gone from its node or RUNNING elsewhere and does nothing:
    every transition a job makes is conditional on the state it read and on its lease.)"""
    never_popped = subtask.state == State.STARTING
    with transaction.atomic():
        if subtask.state == State.STOPPING:
            transition(subtask, State.STOPPED, reason, node=None)
            return
        if subtask.state != State.ABNORMAL:
            transition(subtask, State.ABNORMAL, reason)
        if not never_popped and subtask.attempts >= settings.VIAS_MAX_DISPATCH_ATTEMPTS:
            message = _("%(reason)s; gave up after %(n)d attempts") % {
                "reason": reason,
                "n": subtask.attempts,
            }
            transition(subtask, State.FAILED, message, node=None)
            return
        left = subtask.node_id
        transition(subtask, State.STARTING, reason, node=None)
    log.warning("subtask %s: %s; dispatching again", subtask.pk, reason)
    dispatch(subtask.pk, count_attempt=not never_popped, avoid=left)
