"""An analysis node's own bookkeeping: register, heartbeat, drain, and the housekeeping loop
(heartbeat, reaper, dispatch of waiting subtasks) that `manage.py node` runs in a thread.

Batched heartbeats: a job does not write its own heartbeat. It publishes (attempt, progress,
checkpoint, time) into its node's beats hash in Redis (`publish_beat`, one Redis call per beat),
and the node's loop takes the whole hash every tick and writes it in ONE fenced UPDATE for all of
the node's subtasks (`write_beats`; their camera figures in one more): each row is written only while the job's (attempt, node)
lease still holds and the subtask is in a beating state. A job whose row was refused is told on
its control inbox (op "lease") and stops (or ends as STOPPED when a stop was asked through the
database). A job writes its own fenced UPDATE when no loop flushes its node's beats (the loop's
key in Redis expired) or Redis is down. The loop's round trip to Redis is also the node's Redis
acknowledgement (`Node.redis_ack_at`), written with its heartbeat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Case, DateTimeField, F, FloatField, IntegerField, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analysis import control
from analysis.dispatch import dispatch_waiting, reap, refresh_mtask_progress
from analysis.outage import SOFT_ERRORS
from subtasks.choices import State
from subtasks.models import Node, Subtask

log = logging.getLogger(__name__)

LOOP_INTERVAL = 5.0
# This process's claim on its node name (Node.instance): its pid, and a random part.
INSTANCE = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class NodeNameTaken(Exception):
    """Another live process already runs a node of this name."""


def _stopping_key(name: str) -> str:
    return f"{control.settings.VIAS_CONTROL_PREFIX}:node-stopping:{name}"


def node_capabilities() -> dict[str, Any]:
    """What this machine can run: onnxruntime providers that really load, GPU name, models."""
    try:
        from analysis.detect.providers import capabilities
    except ImportError:  # the detection package is optional for a node that only delivers outputs
        return {}
    found = capabilities()
    found["models"] = models_on_disk()
    return found


def models_on_disk() -> list[str]:
    """The enabled registered detectors whose ONNX file is on this machine's disk: the registry
    is shared, the files are not (each node runs `fetch_models` or gets them copied)."""
    from analysis.models import Detector

    return [d.name for d in Detector.objects.filter(enabled=True).order_by("name") if Path(d.path).is_file()]


def register(name: str, capacity: int, capabilities: dict[str, Any] | None = None) -> Node:
    """Claim the name for this process. Refused (NodeNameTaken) while another process holds it
    and heartbeats: two hosts started with the same --name must not share one Node row."""
    values = {
        "hostname": socket.gethostname(),
        "capacity": capacity,
        "capabilities": capabilities if capabilities is not None else node_capabilities(),
        "last_heartbeat": timezone.now(),
        "draining": False,
        "instance": INSTANCE,
    }
    try:
        with transaction.atomic():
            node = Node.objects.select_for_update().filter(name=name).first()
            if node is None:
                node = Node.objects.create(name=name, **values)
            else:
                _refuse_if_taken(node)
                Node.objects.filter(pk=node.pk).update(**values)
    except IntegrityError:  # another process created the row at the same moment
        raise NodeNameTaken(
            f"a node named {name!r} is registering right now; choose another --name"
        ) from None
    control.client().delete(_stopping_key(name))
    return Node.objects.get(name=name)


def _refuse_if_taken(node: Node) -> None:
    timeout = settings.VIAS_NODE_TIMEOUT
    if node.last_heartbeat is None:
        return
    age = (timezone.now() - node.last_heartbeat).total_seconds()
    if node.instance and node.instance != INSTANCE and age < timeout and not _dead_here(node):
        raise NodeNameTaken(
            f"a node named {node.name!r} is already running on {node.hostname or 'another host'} "
            f"(last heartbeat {age:.0f} s ago); choose another --name, or stop that node "
            f"(after a crash its name is free {timeout} s after its last heartbeat)"
        )


def _dead_here(node: Node) -> bool:
    """The holder ran on this host and its process is gone (a crash just now, then a restart)."""
    pid = node.instance.split("-", 1)[0]
    if node.hostname != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def heartbeat(name: str, redis_ok: bool = True) -> bool:
    """False when the name is no longer this process's (another node took it over). `redis_ok`:
    this tick's round trip to Redis worked, so the node's Redis acknowledgement is renewed too."""
    now = timezone.now()
    fields = {"last_heartbeat": now, **({"redis_ack_at": now} if redis_ok else {})}
    alive = bool(Node.objects.filter(name=name, instance=INSTANCE).update(**fields))
    if alive and redis_ok:
        try:
            from analysis import sysstats

            sysstats.publish(name)  # CPU, memory, GPU for the System page
        except Exception:  # noqa: BLE001 - the load figures are extras; the heartbeat is what counts
            log.warning("node %s: load sample not published", name, exc_info=True)
    return alive


# -- batched heartbeats -----------------------------------------------------------------------

# States in which a job's heartbeat goes through (STOPPING is answered by stopping).
BEATING_STATES = (State.RUNNING, State.ABNORMAL, State.RECOVERING)
# The command a job whose beat was refused finds on its inbox.
LEASE_OP = "lease"
# Beats of one node written per statement (SQLite's and the planner's comfort, not a real limit).
BEATS_PER_STATEMENT = 250
# Store a job's beat only while a loop flushes its node's beats; 0 tells the job to write its own.
PUBLISH = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Beat:
    """One job's heartbeat: what its fenced UPDATE would write."""

    subtask_id: int
    attempt: int
    at: float  # wall-clock time of the beat (epoch seconds): the subtask's heartbeat_at
    progress: float
    checkpoint: int = 0
    # The camera's figures (CameraStats fields, analysis/observe.py), once its row exists.
    stats: dict[str, Any] | None = None

    def encode(self) -> str:
        return json.dumps(
            [self.attempt, self.at, self.progress, self.checkpoint, self.stats], cls=DjangoJSONEncoder
        )

    @classmethod
    def decode(cls, subtask_id: bytes | str, raw: bytes | str) -> Beat:
        attempt, at, progress, checkpoint, stats = json.loads(raw)
        return cls(int(subtask_id), int(attempt), float(at), float(progress), int(checkpoint), stats)


def _beats_key(name: str) -> str:
    return f"{control.settings.VIAS_CONTROL_PREFIX}:beats:{name}"


def _flusher_key(name: str) -> str:
    return f"{control.settings.VIAS_CONTROL_PREFIX}:beats-flusher:{name}"


def beat_interval() -> float:
    """Seconds between a job's heartbeats: VIAS_PROGRESS_INTERVAL, but at least three per
    VIAS_HEARTBEAT_TIMEOUT so that a slow write never gets a live job reaped."""
    return min(float(settings.VIAS_PROGRESS_INTERVAL), settings.VIAS_HEARTBEAT_TIMEOUT / 3)


def batching() -> bool:
    """Whether the loop takes its jobs' beats. A batched beat reaches the database up to a loop
    tick later than the job's own would, so only while a beat plus a tick fit twice in the
    heartbeat timeout (the defaults: 5 + 5 s against 30 s); with a shorter timeout (the tests'
    few seconds) every job writes its own."""
    return beat_interval() + LOOP_INTERVAL <= settings.VIAS_HEARTBEAT_TIMEOUT / 2


def flusher_ttl() -> int:
    """The loop's claim to take its jobs' beats outlives two missed ticks; if the loop stops
    (the node then stops heartbeating too, and is suspected), the jobs write their own again."""
    return int(3 * LOOP_INTERVAL)


def publish_beat(node_name: str, beat: Beat, redis_client: redis.Redis | None = None) -> bool:
    """Hand a job's beat to its node's loop (one Redis call); False when no loop flushes this
    node's beats: the job then writes its own. Redis errors are the caller's (RedisGrace)."""
    redis_client = redis_client or control.client()
    keys = [_beats_key(node_name), _flusher_key(node_name)]
    return bool(redis_client.eval(PUBLISH, 2, *keys, str(beat.subtask_id), beat.encode()))


def take_beats(name: str, redis_client: redis.Redis | None = None) -> list[Beat]:
    """Every beat published since the last tick, removed, and the loop's claim renewed (one
    MULTI). A dead job publishes nothing more, so its subtask's heartbeat goes stale."""
    redis_client = redis_client or control.client()
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.hgetall(_beats_key(name))
        pipe.delete(_beats_key(name))
        if batching():
            pipe.set(_flusher_key(name), INSTANCE, ex=flusher_ttl())
        else:
            pipe.delete(_flusher_key(name))
        raw = pipe.execute()[0]
    return [Beat.decode(pk, value) for pk, value in raw.items()]


def write_beats(node_id: int, beats: Iterable[Beat]) -> list[int]:
    """One fenced UPDATE for all the node's beats; the subtasks whose beat was refused (another
    attempt or node owns them now, or they are no longer beating). Costs a second statement only
    when some beat was refused."""
    beats = list(beats)
    refused: list[int] = []
    for start in range(0, len(beats), BEATS_PER_STATEMENT):
        refused += _write_chunk(node_id, beats[start : start + BEATS_PER_STATEMENT])
    _write_stats([b for b in beats if b.stats and b.subtask_id not in refused])
    return refused


def _write_stats(beats: list[Beat]) -> None:
    """The accepted beats' camera figures: one UPDATE (by CASE on the subtask) for them all."""
    from analysis.models import CameraStats

    if not beats:
        return
    now = timezone.now()
    rows = []
    for b in beats:
        fields = dict(cast(dict[str, Any], b.stats))
        for name in ("last_frame_at", "started_at"):
            fields[name] = parse_datetime(fields[name]) if fields.get(name) else None
        rows.append(CameraStats(subtask_id=b.subtask_id, updated_at=now, **fields))
    names = sorted({name for b in beats for name in cast(dict[str, Any], b.stats)} | {"updated_at"})
    CameraStats.objects.bulk_update(rows, names, batch_size=BEATS_PER_STATEMENT)


def _write_chunk(node_id: int, beats: list[Beat]) -> list[int]:
    if not beats:
        return []
    owned = Q(*(Q(pk=b.subtask_id, attempts=b.attempt) for b in beats), _connector=Q.OR)
    rows = Subtask.objects.filter(owned, node_id=node_id, state__in=BEATING_STATES)
    at = {b.subtask_id: datetime.fromtimestamp(b.at, tz=UTC) for b in beats}
    checkpoints = [When(pk=b.subtask_id, then=Value(b.checkpoint)) for b in beats if b.checkpoint]
    written = rows.update(
        heartbeat_at=Case(
            *(When(pk=pk, then=Value(when)) for pk, when in at.items()),
            default=F("heartbeat_at"),
            output_field=DateTimeField(),
        ),
        progress=Case(
            *(When(pk=b.subtask_id, then=Value(round(b.progress, 2))) for b in beats),
            default=F("progress"),
            output_field=FloatField(),
        ),
        checkpoint_frame=Case(*checkpoints, default=F("checkpoint_frame"), output_field=IntegerField()),
    )
    if written == len(beats):
        return []
    leases = {b.subtask_id: b.attempt for b in beats}
    holding = Subtask.objects.filter(pk__in=leases, node_id=node_id, state__in=BEATING_STATES)
    kept = {pk for pk, attempts in holding.values_list("pk", "attempts") if leases[pk] == attempts}
    return [pk for pk in leases if pk not in kept]


def beat(name: str, node_id: int | None, redis_client: redis.Redis | None = None) -> bool:
    """The node's tick: take its jobs' beats from Redis, heartbeat the node (with its Redis
    acknowledgement when that round trip worked), write the beats in one statement and tell the
    jobs whose beat was refused. False when the name is no longer this process's."""
    return tick(name, node_id, redis_client)[0]


def loop_redis_timeout() -> float:
    """Seconds the loop's own Redis round trip may take: well inside VIAS_NODE_TIMEOUT, so that
    a node cut from Redis (packets dropped, no reset) still heartbeats PostgreSQL and is seen as
    cut from Redis, not as dead. (The shared client waits 30 s, the default node timeout.)"""
    return max(1.0, min(5.0, settings.VIAS_NODE_TIMEOUT / 4))


@cache
def _loop_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def loop_client() -> redis.Redis:
    return _loop_client(settings.REDIS_URL, loop_redis_timeout())


def tick(name: str, node_id: int | None, redis_client: redis.Redis | None = None) -> tuple[bool, bool]:
    """`beat`, and whether this tick reached Redis: (the name is still ours, Redis answered)."""
    try:
        beats = take_beats(name, redis_client)
        redis_ok = True
    except SOFT_ERRORS as exc:
        log.warning("node %s: Redis unreachable (%s); no Redis acknowledgement this tick", name, exc)
        beats, redis_ok = [], False
    if not heartbeat(name, redis_ok):
        return False, redis_ok
    if node_id is not None and beats:
        refused = write_beats(node_id, beats)
        if refused:
            log.info("node %s: beats refused for subtasks %s (lease lost or stopping)", name, refused)
            control.notify_subtasks(refused, {"op": LEASE_OP})
    return True, redis_ok


def release(name: str) -> None:
    """A node that stopped cleanly frees its name at once."""
    Node.objects.filter(name=name, instance=INSTANCE).update(instance="", last_heartbeat=None)


def start_draining(name: str) -> None:
    """The node is going away: no new subtasks, and its running jobs hand their subtasks back."""
    Node.objects.filter(name=name).update(draining=True)
    control.client().set(_stopping_key(name), "1", ex=3600)


def is_draining(name: str) -> bool:
    return bool(control.client().exists(_stopping_key(name)))


# pg_advisory_lock key of the reaper's turn (any fixed bigint; "VIASREAP" in ASCII).
REAPER_LOCK_KEY = 0x5649415352454150


@contextmanager
def reaper_turn() -> Iterator[bool]:
    """Whether this node reaps this round: one reaper at a time, not one per node racing.

    PostgreSQL: a session advisory lock, tried without waiting (released at the end, or by the
    server if the node's connection dies). SQLite: the reaper runs in one IMMEDIATE transaction,
    whose write lock is the turn (another node's reaper waits, then finds nothing left to do)."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [REAPER_LOCK_KEY])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [REAPER_LOCK_KEY])


def housekeeping() -> None:
    with reaper_turn() as mine:
        if mine:
            reap()
            refresh_mtask_progress()
    dispatch_waiting()


class NodeLoop(threading.Thread):
    """Every LOOP_INTERVAL seconds until stopped: write the node's heartbeat and its jobs' beats
    (`tick`, its Redis round trip on a short timeout), then, when that reached Redis, the
    housekeeping (reaper, mtask progress, waiting subtasks)."""

    def __init__(self, name: str, interval: float = LOOP_INTERVAL, node_id: int | None = None) -> None:
        super().__init__(name=f"vias-node-{name}", daemon=True)
        self.node_name = name
        self.node_id = node_id if node_id is not None else Node.objects.get(name=name).pk
        self.interval = interval
        self.stopped = threading.Event()
        self.name_lost = False

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                close_old_connections()
                ours, redis_ok = tick(self.node_name, self.node_id, loop_client())
                if not ours:
                    log.error("node %s: the name was taken over by another process; stopping", self.node_name)
                    self.name_lost = True
                    return
                if redis_ok:
                    housekeeping()
                # else: no reaping or dispatching from a node that cannot reach Redis: both end
                # in a Redis enqueue that would hold this loop, and so its PostgreSQL heartbeat,
                # for the shared client's socket timeout; the nodes that reach Redis do it.
            except Exception:  # noqa: BLE001 - a database or Redis hiccup must not end the loop
                log.exception("node %s housekeeping failed", self.node_name)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
