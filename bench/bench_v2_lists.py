#!/usr/bin/env python
"""Benchmark of the VIAS v2 lists (issue 16): GET /v2/{project_id}/tasks?page_size=1000 and
GET /v2/{project_id}/source/sources over 10,000 video sources, each next to a raw `.values()` +
`json.dumps` baseline of the same rows, in the same run.

    .venv/bin/python bench/bench_v2_lists.py [--repeat 9] [--sources 10000] [--tasks 1000] [--sqlite]

Measured through Django's test Client with an API token (the whole middleware + DRF stack). The
project holds `--sources` v2 video sources (10 groups of 100 hold the first 1,000), and one batch
task over `--tasks` of them, hence that many tasks with one subtask each. Samples are interleaved
(one of each per round); ratios are of medians of the same run. SQL statements per request are
counted too (constant: they do not grow with the rows). The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_tasks_api import capture, summary, test_helpers, throwaway_site  # noqa: E402

GROUPS, PER_GROUP = 10, 100
OUTPUT = {"webhook": {"url": "https://93.184.216.34/hook", "headers": {"Authorization": "x"}}}


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time of the
    process (Django, the JSON work and, with SQLite, the database too) varies far less."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=9, help="timed samples of each (default 9)")
    parser.add_argument("--sources", type=int, default=10_000, help="video sources (default 10000)")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks, one per source (default 1000)")
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file")
    return parser.parse_args()


def make_sources(project, count: int) -> list[str]:
    """`count` v2 url video sources in bulk; the first GROUPS x PER_GROUP also in groups."""
    from tasks.models import VideoChannel, VideoGroup

    channels = [
        VideoChannel(
            project=project,
            vchan_refid=f"src-{i:05d}",
            name=f"camera {i}",
            url=f"rtsp://cams.example/src/{i}",
            type_config=f"<type_config><url_address>rtsp://cams.example/src/{i}</url_address></type_config>",
            latitude="30.12345",
            longitude="120.12345",
            tags=["gate"],
        )
        for i in range(count)
    ]
    VideoChannel.objects.bulk_create(channels, batch_size=1000)
    saved = list(VideoChannel.objects.filter(project=project).order_by("vchan_refid"))
    for g in range(GROUPS):
        group = VideoGroup.objects.create(project=project, name=f"group{g}")
        group.channels.add(*saved[g * PER_GROUP : (g + 1) * PER_GROUP])
    return [c.vchan_refid for c in saved]


def batch_body(sources: list[str]) -> dict[str, Any]:
    per = 100
    return {
        "name": "bench_lists",
        "service_name": "security",
        "service_version": "1.0",
        "batch_input": {
            "video_source_group": [
                {
                    "video_source_group_id": f"grp-{g}",
                    "video_source_list": [{"video_source_id": s} for s in sources[g * per : (g + 1) * per]],
                }
                for g in range((len(sources) + per - 1) // per)
            ]
        },
        "output": OUTPUT,
    }


def task_baseline(project, limit: int) -> bytes:
    """The floor for the task list: its task rows and their subtasks' sources, .values(), json.dumps."""
    from subtasks.models import Subtask
    from tasks.api.v2.serializers import V2_COLUMNS
    from tasks.models import Task

    columns = (
        "task_id",
        "task_name",
        "description",
        "create_dt",
        "update_dt",
        "play_url",
        "output",
        *V2_COLUMNS,
    )
    tasks = list(
        Task.objects.filter(project=project).order_by("-create_dt", "task_id")[:limit].values(*columns)
    )
    sources = list(
        Subtask.objects.filter(task_id__in=[t["task_id"] for t in tasks])
        .order_by("task_id", "position")
        .values("task_id", "state", "status_reason", "video_channel__vchan_refid", "video_channel__name")
    )
    return json.dumps({"tasks": tasks, "sources": sources}, default=str).encode()


def source_baseline(project) -> bytes:
    """The floor for the source list: the channel rows and their group memberships, .values(), json.dumps."""
    from tasks.models import VideoChannel, VideoGroup

    columns = (
        "vchan_refid",
        "name",
        "access_type",
        "kind",
        "url",
        "latitude",
        "longitude",
        "tags",
    )
    channels = list(VideoChannel.objects.filter(project=project).order_by("-created_at").values(*columns))
    members = list(
        VideoGroup.channels.through.objects.filter(videogroup__project=project).values(
            "videochannel_id", "videogroup__group_id", "videogroup__name"
        )
    )
    return json.dumps({"sources": channels, "members": members}, default=str).encode()


def run(args: argparse.Namespace, db_label: str) -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    actor = test_helpers().make_actor("bench-v2-lists", "bench-v2-lists")
    project = actor.project
    sources = make_sources(project, args.sources)
    made = actor.post(f"/v2/{project.project_id}/batch-tasks", json.dumps(batch_body(sources[: args.tasks])))
    assert made.status_code == 200 and json.loads(made.content)["succeed_count"] == args.tasks, made.content[
        :300
    ]
    base = f"/v2/{project.project_id}"
    size = min(args.tasks, 1000)

    checked: set[str] = set()

    def get(path: str, expect: int, key: str) -> bytes:
        response = actor.get(base + path)
        assert response.status_code == 200, response.content[:300]
        if path not in checked:  # parsed once, outside the timed rounds: the baseline parses nothing
            assert len(json.loads(response.content)[key]) == expect
            checked.add(path)
        return response.content

    actions = {
        "tasks_endpoint": lambda: get(f"/tasks?page_size={size}", size, "tasks"),
        "tasks_baseline": lambda: task_baseline(project, size),
        "sources_endpoint": lambda: get("/source/sources", args.sources, "video_source_list"),
        "sources_baseline": lambda: source_baseline(project),
        "sources_page_endpoint": lambda: get(
            "/source/sources?is_paged=true&page_size=200", 200, "video_source_list"
        ),
    }
    for action in actions.values():
        action()  # warm: the token's last_used_at write, caches
    queries = {name: len(capture(action)[1]) for name, action in actions.items() if name.endswith("endpoint")}
    small = {
        "tasks_endpoint_page_5": len(capture(lambda: get("/tasks?page_size=5", 5, "tasks"))[1]),
        "sources_endpoint_page_5": len(
            capture(lambda: get("/source/sources?is_paged=true&page_size=5", 5, "video_source_list"))[1]
        ),
    }
    load_before = os.getloadavg()
    samples: dict[str, list[float]] = {name: [] for name in actions}
    cpu: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(args.repeat):
        for name, action in actions.items():
            wall_s, cpu_s = timed(action)
            samples[name].append(wall_s)
            cpu[name].append(cpu_s)
    med = {name: statistics.median(values) for name, values in samples.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "database": db_label,
        "db_vendor": connection.vendor,
        "redis": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpus": os.cpu_count(),
        "sources": args.sources,
        "tasks": args.tasks,
        "repeat": args.repeat,
        # The machine's 1-minute load average when the timed rounds began and ended.
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "bytes": {name: len(action()) for name, action in actions.items()},
        **{name: summary(values) for name, values in samples.items()},
        "queries": {**queries, **small},
        "cpu_median_ms": {name: round(value * 1000, 2) for name, value in med_cpu.items()},
        "ratio_tasks": round(med["tasks_endpoint"] / med["tasks_baseline"], 2),
        "ratio_sources": round(med["sources_endpoint"] / med["sources_baseline"], 2),
        "ratio_tasks_cpu": round(med_cpu["tasks_endpoint"] / med_cpu["tasks_baseline"], 2),
        "ratio_sources_cpu": round(med_cpu["sources_endpoint"] / med_cpu["sources_baseline"], 2),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['database']}; {result['redis']}; Python {result['python']}, Django {result['django']}")
    print("| measurement | median ms | p90 ms | min ms | CPU median ms | bytes | SQL statements |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in (
        "tasks_endpoint",
        "tasks_baseline",
        "sources_endpoint",
        "sources_baseline",
        "sources_page_endpoint",
    ):
        r = result[name]
        print(
            f"| {name} | {r['median_ms']} | {r['p90_ms']} | {r['min_ms']} | {result['cpu_median_ms'][name]} "
            f"| {result['bytes'][name]} "
            f"| {result['queries'].get(name, '')} |"
        )
    print(f"queries: {result['queries']}; load average (1 min) {result['load_average']}")
    print(f"ratio tasks endpoint / baseline: {result['ratio_tasks']}; sources: {result['ratio_sources']}")
    print(f"CPU-time ratio tasks: {result['ratio_tasks_cpu']}; sources: {result['ratio_sources_cpu']}")


def main() -> int:
    args = parse_args()
    with throwaway_site(args.sqlite) as db_label:
        result = run(args, db_label)
    print_table(result)
    print("BENCH_JSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
