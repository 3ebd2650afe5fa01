#!/usr/bin/env python
"""What one announcement costs a running job (its once-a-second progress push), before and after
sending all its groups from one event loop, interleaved in one run.

`before`: one `async_to_sync(layer.group_send)` per group (a progress push names two groups, the
project's and the task's), as `vias.lib.announce._send` did; each call from a plain thread starts
an event loop in a new thread, and channels_redis opens a connection per loop. `after`:
`vias.lib.announce._send` now (one loop for all groups). Against the bundled Redis of a
throwaway site (bench_pipeline's), so the channel layer is the production one.

    .venv/bin/python bench/bench_announce.py [--rounds 30]

The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_pipeline import throwaway_site  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with throwaway_site():
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from vias.lib import announce

        layer = get_channel_layer()
        groups = [announce.project_group("p-bench"), announce.task_group("t-bench")]
        message = {"type": "vias.event", "kind": "progress", "project_id": "p-bench", "progress": 50.0}

        def before() -> None:
            for group in groups:
                async_to_sync(layer.group_send)(group, message)

        def after() -> None:
            announce._send(groups, message)

        samples: dict[str, list[float]] = {"before": [], "after": []}
        cpu: dict[str, list[float]] = {"before": [], "after": []}
        for call in (before, after):  # warm-up
            call()
        for _ in range(args.rounds):
            for name, call in (("before", before), ("after", after)):
                gc.collect()
                started, cpu_started = time.perf_counter(), time.process_time()
                call()
                samples[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - cpu_started) * 1000)
        result = {
            name: {"median_ms": statistics.median(values), "cpu_ms": statistics.median(cpu[name])}
            for name, values in samples.items()
        }
        result["ratio_after_before"] = result["after"]["median_ms"] / result["before"]["median_ms"]
        result["load"] = os.getloadavg()[0]
        result["layer"] = type(layer).__name__
    for name in ("before", "after"):
        print(
            f"{name:>6}: {result[name]['median_ms']:.2f} ms wall, {result[name]['cpu_ms']:.2f} ms CPU (median)"
        )
    print(
        f"after / before: {result['ratio_after_before']:.2f} ({result['layer']}, load {result['load']:.1f})"
    )
    print("BENCH_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
