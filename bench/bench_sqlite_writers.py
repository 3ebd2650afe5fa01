#!/usr/bin/env python
"""Concurrent writers on the embedded default (SQLite): 20 clients each POSTing /tasks to a real
threaded server (`manage.py runserver`, a fresh data dir and SQLite file per configuration).

    .venv/bin/python bench/bench_sqlite_writers.py [--writers 20] [--posts 25] [--rounds 3]

Two configurations in the same run, rounds interleaved (A, B, A, B, ...):
  * before: SQLite's defaults, DEFERRED transactions and the rollback journal (DELETE),
  * after:  IMMEDIATE transactions and WAL (the settings' defaults),
both with the same busy timeout. Per round: requests/s (answers of any kind / wall time), p50 and
p99 latency of the 200s (POST /tasks creates with 200), and the count of each status. Figures
are medians over rounds. The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live_server import LiveServer, task_body  # noqa: E402 - one copy of the server harness

CONFIGS = {
    "before (DEFERRED, rollback journal)": {
        "VIAS_SQLITE_TRANSACTION_MODE": "DEFERRED",
        "VIAS_SQLITE_JOURNAL_MODE": "DELETE",
    },
    "after (IMMEDIATE, WAL)": {
        "VIAS_SQLITE_TRANSACTION_MODE": "IMMEDIATE",
        "VIAS_SQLITE_JOURNAL_MODE": "WAL",
    },
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--posts", type=int, default=25, help="POST /tasks per writer per round")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def one_writer(server: LiveServer, round_no: int, writer: int, posts: int) -> list[tuple[int, float]]:
    samples = []
    for n in range(posts):
        body = task_body(f"r{round_no}w{writer}n{n}")
        started = time.perf_counter()
        status, _answer = server.request("POST", "/tasks", body)
        samples.append((status, time.perf_counter() - started))
    return samples


def one_round(env: dict[str, str], round_no: int, writers: int, posts: int) -> dict[str, Any]:
    with LiveServer(env) as server:
        started = time.perf_counter()
        with ThreadPoolExecutor(writers) as pool:
            batches = list(pool.map(lambda w: one_writer(server, round_no, w, posts), range(writers)))
        wall = time.perf_counter() - started
        samples = [sample for batch in batches for sample in batch]
        stored = len(server.task_ids())
    ok = sorted(latency for status, latency in samples if status == 200)
    return {
        "requests_per_s": len(samples) / wall,
        "p50_ms": 1000 * ok[len(ok) // 2] if ok else None,
        "p99_ms": 1000 * ok[min(len(ok) - 1, int(len(ok) * 0.99))] if ok else None,
        "statuses": dict(Counter(status for status, _ in samples)),
        "stored": stored,
        "created": len(ok),
    }


def main() -> None:
    args = parse_args()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for round_no in range(args.rounds):
        for name, env in CONFIGS.items():
            results[name].append(one_round(env, round_no, args.writers, args.posts))
            print(f"round {round_no} {name}: {results[name][-1]}", flush=True)
    summary: dict[str, Any] = {}
    for name, rounds in results.items():
        statuses: Counter[int] = Counter()
        for r in rounds:
            statuses.update(r["statuses"])
        summary[name] = {
            "requests_per_s": statistics.median(r["requests_per_s"] for r in rounds),
            "p50_ms": statistics.median(r["p50_ms"] or 0 for r in rounds),
            "p99_ms": statistics.median(r["p99_ms"] or 0 for r in rounds),
            "statuses": dict(statuses),
            "every_200_stored": all(r["stored"] == r["created"] for r in rounds),
        }
    print(
        f"\n{args.writers} writers x {args.posts} POST /tasks x {args.rounds} rounds, {platform.python_version()}"
    )
    print(f"{'configuration':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, row in summary.items():
        print(
            f"{name:40} {row['requests_per_s']:8.1f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f}  "
            f"{row['statuses']} stored={row['every_200_stored']}"
        )
    print("BENCH_JSON " + json.dumps({"writers": args.writers, "posts": args.posts, "results": summary}))


if __name__ == "__main__":
    main()
