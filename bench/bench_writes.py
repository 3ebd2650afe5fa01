#!/usr/bin/env python
"""Database statements per running subtask per second: 200 simulated subtasks on 10 nodes.

    .venv/bin/python bench/bench_writes.py [--subtasks 200] [--nodes 10] [--seconds 60] [--fps 5]
                                           [--database vias_cluster]

The subtasks are real `analysis.jobs.SubtaskRun` objects (their own lease, inbox on a private
redis-server, announcements) on RUNNING subtasks spread over `--nodes` nodes, each with a scene
in one of 10 mtasks. A virtual clock advances `--seconds` seconds; each subtask "analyses"
`--fps` frames a second (no detector: only the per-frame `_tick()` a job runs), and every 5
virtual seconds each node heartbeats and runs its housekeeping (reaper turn, reaper, mtask
aggregate, waiting dispatch), as `manage.py node` does. Every SQL statement of the run is counted
(Django's execute_wrapper). Rounds alternate, in one run, the batched heartbeats (each job hands
its beat to its node's loop through Redis, the loop writes all of the node's beats in one fenced
UPDATE per tick) and each job's own fenced UPDATE (the fallback, and what every job did
before), at VIAS_PROGRESS_INTERVAL 5 (the default), 1 and 10. Before issue 14 a tick cost 4
statements a second per subtask (UPDATE subtask, SELECT state, AVG over the mtask, UPDATE mtask).
Each job also has its real Observer (a stub pipeline, no clips), so the per-camera figures
(CameraStats) it writes with its beats are counted too: the job's own UPDATE per beat, or, batched,
one more UPDATE per node per tick.
The database (default `vias_cluster`, PostgreSQL on localhost) is dropped and created. The last
line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_dispatch import fresh_database, setup  # noqa: E402 - one copy of the setup


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subtasks", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--database", default="vias_cluster")
    # setup() reads these too
    parser.add_argument("--dispatchers", type=int, default=1)
    return parser.parse_args()


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def build(args: argparse.Namespace) -> list[int]:
    """`--subtasks` RUNNING subtasks in 10 tasks (one mtask, one scene per channel each)."""
    from django.utils import timezone

    from analysis.node import INSTANCE
    from subtasks.choices import State
    from subtasks.models import Node, Subtask
    from tasks import services
    from tasks.api.serializers import TaskIn
    from tasks.models import Project

    project = Project.objects.create(project_id="bench-writes", name="bench")
    per_task = args.subtasks // 10
    for t in range(10):
        refs = [f"w{t}-{i}" for i in range(per_task)]
        body = {
            "task_name": f"writes {t}",
            "algo_type": "1",
            "run_dt": "2018-12-03 10:27:30.999",
            "play_url": "rtsp://192.168.9.155:8554/live",
            "vchans": [
                {"vchan_refid": r, "name": r, "url": f"rtsp://10.1.{t}.{i + 1}/live"}
                for i, r in enumerate(refs)
            ],
            "mtasks": [
                {
                    "mtask_unid": f"m{t}",
                    "name": "all day",
                    "type": 0,
                    "time_interval": 5,
                    "start_time": "00:00:00",
                    "end_time": "23:59:59",
                    "scenes": [
                        {"scene_unid": f"s{t}-{i}", "name": r, "algo_type": 1, "vchan_refid": r}
                        for i, r in enumerate(refs)
                    ],
                }
            ],
        }
        serializer = TaskIn(data=body)
        serializer.is_valid(raise_exception=True)
        services.create_task(project, serializer.to_spec())
    now = timezone.now()
    nodes = Node.objects.bulk_create(
        Node(name=f"writes-node-{i}", capacity=args.subtasks, last_heartbeat=now, instance=INSTANCE)
        for i in range(args.nodes)
    )
    ids = list(Subtask.objects.order_by("pk").values_list("pk", flat=True))
    for index, pk in enumerate(ids):
        Subtask.objects.filter(pk=pk).update(
            state=State.RUNNING, node=nodes[index % len(nodes)], attempts=1, heartbeat_at=now
        )
    missing = Subtask.objects.filter(scene__isnull=True).count()
    assert missing == 0, f"{missing} subtasks without a scene"
    return ids


def simulate(args: argparse.Namespace, ids: list[int], interval: int, batched: bool) -> dict[str, Any]:
    """One round. `batched`: the jobs hand their beats to their node's loop, which writes them in
    one statement per node per tick (`node.beat`); otherwise every job writes its own fenced
    UPDATE (what a job does when no loop flushes its node's beats, and what every job did
    before the batching), and the node only heartbeats itself (`node.heartbeat`)."""
    from django.db import connection
    from django.test.utils import override_settings

    from analysis import control, node
    from analysis.jobs import SubtaskRun
    from analysis.observe import Observer
    from subtasks.models import Node, Subtask

    clock = VirtualClock()
    runs = []
    for subtask in Subtask.objects.select_related("task__project", "scene", "node").filter(pk__in=ids):
        run = SubtaskRun(subtask, subtask.node.name, clock=clock)
        # The camera figures a real job writes with its beats (no detector: a stub pipeline).
        run.observer = Observer(subtask.pk, subtask.node.name, args.fps, clips=False, clock=clock)
        run.pipeline = SimpleNamespace(detections=0, inference_s=0.0, detectors=[])
        run.inbox.open()
        run.progress.total = args.seconds * args.fps * 2
        runs.append(run)
    nodes = list(Node.objects.values_list("name", "pk"))
    for name, _pk in nodes:  # no claim left over from the previous round
        control.client().delete(node._flusher_key(name), node._beats_key(name))
    statements: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[sql.split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    def node_tick() -> None:
        for name, pk in nodes:
            if batched:
                node.beat(name, pk)
            else:
                node.heartbeat(name)
            node.housekeeping()

    steps = args.seconds * args.fps
    # Real time runs slower than the virtual clock here: no real-time timeout may reap anyone.
    patience = {"VIAS_HEARTBEAT_TIMEOUT": 36_000, "VIAS_NODE_TIMEOUT": 36_000}
    with override_settings(VIAS_PROGRESS_INTERVAL=interval, **patience):
        if batched:
            node_tick()  # the loops run before the jobs start (they claim their nodes' beats)
        for run in runs:  # each job's first beat makes its camera row: a start-up cost, not counted
            run._heartbeat()
        with connection.execute_wrapper(count):
            for step in range(1, steps + 1):
                clock.now = step / args.fps
                for run in runs:
                    run.progress.done += 1
                    run.progress.last_frame += 25 // args.fps
                    run._tick()
                if step % (5 * args.fps) == 0:
                    node_tick()
    for run in runs:
        run.inbox.close()
    total = sum(statements.values())
    running = Subtask.objects.filter(pk__in=ids, state="RUNNING").count()
    assert running == len(ids), f"only {running} of {len(ids)} subtasks still RUNNING"
    return {
        "statements": total,
        "per_subtask_per_s": total / (len(runs) * args.seconds),
        "by_kind": dict(statements),
    }


ROUNDS = [  # interleaved: each batched setting next to the per-job one it replaces
    ("per-job UPDATE, VIAS_PROGRESS_INTERVAL=5 (default)", 5, False),
    ("batched per node, VIAS_PROGRESS_INTERVAL=5 (default)", 5, True),
    ("per-job UPDATE, VIAS_PROGRESS_INTERVAL=1", 1, False),
    ("batched per node, VIAS_PROGRESS_INTERVAL=1", 1, True),
    ("batched per node, VIAS_PROGRESS_INTERVAL=10", 10, True),
]


def main() -> None:
    args = parse_args()
    fresh_database(args.database)
    with tempfile.TemporaryDirectory(prefix="vias-bw-") as tmp:
        redis_server = setup(args, Path(tmp))
        try:
            ids = build(args)
            results = {name: simulate(args, ids, i, batched) for name, i, batched in ROUNDS}
        finally:
            redis_server.stop()
    print(f"\n{args.subtasks} subtasks on {args.nodes} nodes, {args.seconds} virtual s at {args.fps} fps")
    print("before issue 14 (from the code): 4 statements per subtask per second")
    for name, row in results.items():
        print(f"{name:54} {row['per_subtask_per_s']:.3f} statements / subtask / s   {row['by_kind']}")
    print("BENCH_JSON " + json.dumps({"subtasks": args.subtasks, "nodes": args.nodes, "results": results}))


if __name__ == "__main__":
    main()
