#!/usr/bin/env python
"""Benchmark of the VIAS v2 batch task (issue 5): POST /v2/{project_id}/batch-tasks with 100 video
sources next to POST /tasks with 100 video channels, in the same run.

    .venv/bin/python bench/bench_batch_tasks.py [--repeat 30] [--sources 100] [--sqlite]

Measured through Django's test Client with an API token (the whole middleware + DRF stack):
  * v2 batch: one batch task over `--sources` existing video sources in 4 groups, hence that many
    tasks with one subtask each (webhook output, config, a weekly schedule);
  * native: one task with `--sources` new video channels (hence that many subtasks), bare, and with
    the foundation bench's 3 mtasks x 4 scenes x 2 ROIs tree;
latency median / p90 / min, SQL statements, INSERTs per table and whether every INSERT ran in one
transaction. Samples are interleaved (one of each per round); ratios are of medians of the same run.
Database and Redis as in bench_tasks_api.py (a throwaway PostgreSQL database, else SQLite). The last
line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_tasks_api import (  # noqa: E402 - one copy of the infrastructure
    capture,
    insert_table,
    summary,
    task_payload,
    test_helpers,
    throwaway_site,
    timed,
)

SCHEDULE = {
    "type": "weekly",
    "timezone": "+08:00",
    "days_of_week": [1, 2, 3, 4, 5],
    "periods": [[{"begin_at": "08:00", "end_at": "18:00"}]],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed samples of each (default 30)")
    parser.add_argument("--sources", type=int, default=100, help="video sources / channels per request")
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file")
    return parser.parse_args()


def batch_payload(index: int, sources: list[str]) -> dict[str, Any]:
    """The seed's add-batch-task body over `sources`, spread over 4 groups."""
    return {
        "name": f"bench_{index}",
        "service_name": "smoke_fire",
        "service_version": "1.0",
        "manufacturer": "VIAS",
        "description": "",
        "schedule": SCHEDULE,
        "batch_input": {
            "video_source_group": [
                {
                    "video_source_group_id": f"group-{g}",
                    "video_source_list": [{"video_source_id": s} for s in sources[g::4]],
                }
                for g in range(4)
            ]
        },
        "output": {"webhook": {"url": "https://93.184.216.34/hook", "headers": {"Authorization": "x"}}},
        "config": {"common": {"render_result_sw": 1, "fire_detection_sw": 1, "smoke_detection_sw": 1}},
    }


def bare_payload(prefix: str, vchans: int) -> dict[str, Any]:
    body = task_payload(prefix, vchans)
    body.pop("mtasks")
    return body


def make_sources(project, count: int) -> list[str]:
    from tasks.models import VideoChannel

    channels = [
        VideoChannel(
            project=project, vchan_refid=f"src-{i}", name=f"camera {i}", url=f"rtsp://cams.example/src/{i}"
        )
        for i in range(count)
    ]
    VideoChannel.objects.bulk_create(channels)
    return [c.vchan_refid for c in channels]


def insert_report(log) -> dict[str, Any]:
    inserts = log.inserts()
    return {
        "queries": len(log),
        "query_kinds": log.kinds(),
        "inserts": len(inserts),
        "inserts_by_table": dict(Counter(insert_table(sql) for sql, _ in inserts)),
        "insert_transactions": len({outer for _, outer in inserts if outer is not None}),
        "inserts_outside_transaction": sum(1 for _, outer in inserts if outer is None),
    }


def run(args: argparse.Namespace, db_label: str) -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    actor = test_helpers().make_actor("bench-v2", "bench-v2")
    sources = make_sources(actor.project, args.sources)
    batch_path = f"/v2/{actor.project.project_id}/batch-tasks"
    rounds = args.repeat + 3
    bodies = {
        "batch": iter([json.dumps(batch_payload(i, sources)) for i in range(rounds)]),
        "native_bare": iter([json.dumps(bare_payload(f"b{i}", args.sources)) for i in range(rounds)]),
        "native_tree": iter([json.dumps(task_payload(f"t{i}", args.sources)) for i in range(rounds)]),
    }

    def post(kind: str):
        path = batch_path if kind == "batch" else "/tasks"
        response = actor.post(path, next(bodies[kind]))
        assert response.status_code in (200, 201), (kind, response.status_code, response.content[:400])
        if kind == "batch":
            answer = json.loads(response.content)
            assert answer["succeed_count"] == args.sources, answer
        return response

    actor.get("/tasks?limit=1")  # the token's last_used_at write, out of the way
    for kind in bodies:
        post(kind)
    logs = {kind: capture(lambda kind=kind: post(kind))[1] for kind in bodies}
    samples: dict[str, list[float]] = {kind: [] for kind in bodies}
    ratios = []
    for _ in range(args.repeat):
        for kind in bodies:
            samples[kind].append(timed(lambda kind=kind: post(kind)))
        ratios.append(samples["batch"][-1] / samples["native_bare"][-1])
    med = {kind: statistics.median(values) for kind, values in samples.items()}
    return {
        "database": db_label,
        "db_vendor": connection.vendor,
        "redis": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpus": os.cpu_count(),
        "sources": args.sources,
        "repeat": args.repeat,
        **{kind: {**summary(samples[kind]), **insert_report(logs[kind])} for kind in bodies},
        "ratio_batch_vs_native_bare": round(med["batch"] / med["native_bare"], 2),
        "ratio_batch_vs_native_tree": round(med["batch"] / med["native_tree"], 2),
        "ratio_median_of_pairs_bare": round(statistics.median(ratios), 2),
        "batch_ms_per_task": round(med["batch"] * 1000 / args.sources, 2),
    }


LABELS = {
    "batch": "`POST /v2/{{p}}/batch-tasks`, {n} sources -> {n} tasks",
    "native_bare": "`POST /tasks`, {n} new channels, no mtasks",
    "native_tree": "`POST /tasks`, {n} new channels, 3x4x2 tree",
}


def print_table(result: dict[str, Any]) -> None:
    n = result["sources"]
    print(f"\n{result['database']}; {result['redis']}; Python {result['python']}, Django {result['django']}")
    print("| measurement | median ms | p90 ms | min ms | statements | INSERTs | transactions |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, label in LABELS.items():
        r = result[kind]
        print(
            f"| {label.format(n=n)} | {r['median_ms']} | {r['p90_ms']} | {r['min_ms']} | {r['queries']} "
            f"| {r['inserts']} | {r['insert_transactions']} |"
        )
    for kind in LABELS:
        print(
            f"{kind}: INSERTs by table {result[kind]['inserts_by_table']}, kinds {result[kind]['query_kinds']}"
        )
    print(
        f"ratio batch / native bare: {result['ratio_batch_vs_native_bare']} "
        f"(median of per-round ratios {result['ratio_median_of_pairs_bare']}); "
        f"batch / native with tree: {result['ratio_batch_vs_native_tree']}; "
        f"batch: {result['batch_ms_per_task']} ms per task"
    )


def main() -> int:
    args = parse_args()
    with throwaway_site(args.sqlite) as db_label:
        result = run(args, db_label)
    print_table(result)
    print("BENCH_JSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
