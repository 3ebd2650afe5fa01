#!/usr/bin/env python
"""Concurrent streams in one process against raw batched onnxruntime, in one run (what
bench/gpu_check.sh runs on a GPU machine; it runs on a CPU too).

For each stream count N (rounds interleave the counts, medians are reported):
- streams: N threads, each decoding its own copy of the looped clip (VideoSource + the
  decode-ahead Prefetcher) and running the production per-frame code (analysis.pipeline.Pipeline:
  one shared BatchingDetector, ByteTrack and the security rules over the whole frame, a JPEG
  snapshot per finding via render_snapshot); aggregate analysed frames per second;
- raw: onnxruntime's session.run alone on a prepared blob of N frames of the same input size,
  same session, same batch size: what the model costs without decoding, pre/post-processing,
  rules or batching;
- ratio = streams / raw (target ≥ 0.8 at 16 streams on a GPU);
- GPU utilisation (nvidia-smi, sampled every 200 ms during the streams run; empty without one);
- RSS per stream: the peak resident memory during the run minus the process's before the first
  run, divided by N.

No database, Redis or site: Django is configured with the settings the rules and ROI parser read.

    python bench/bench_streams.py --model PATH [--streams 1,4,16,32] [--frames 200] [--rounds 2]
                                  [--fps 25] [--max-wait-ms 4]

The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT / "tests" / "data" / "bikes.mp4"
WHOLE_FRAME = (
    '<root><polygon name="yard" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
    '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
)
CLASSES = ((0, ("Normal", "body", ())), (1, ("Fall", "body", ("fall",))))


def configure() -> None:
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            VIAS_DEFAULT_FPS=5, VIAS_MAX_XML_BYTES=256 * 1024, USE_I18N=False, INSTALLED_APPS=[]
        )
    django.setup()
    if os.environ.get("VIAS_PRELOAD_CUDA") == "1":  # gpu_check.sh: CUDA libraries from pip packages
        import onnxruntime

        preload = getattr(onnxruntime, "preload_dlls", None)
        try:
            if callable(preload):
                preload()
        except Exception as exc:  # LD_LIBRARY_PATH from gpu_check.sh may still do
            print(f"onnxruntime.preload_dlls: {exc}", flush=True)


def looped_clip(target: Path, loops: int) -> Path:
    import cv2

    reader = cv2.VideoCapture(str(BIKES))
    frames = []
    while (read := reader.read())[0]:
        frames.append(read[1])
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for _ in range(loops):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return target


def make_detector(model: Path):
    from analysis.detect.runtime import ClassSpec, DetectorSpec, YoloDetector

    classes = tuple((i, ClassSpec(label, category, attrs)) for i, (label, category, attrs) in CLASSES)
    return YoloDetector(DetectorSpec("person-fall-yolov8", str(model), classes=classes, score_threshold=0.5))


class GpuSampler:
    """nvidia-smi's utilisation and memory, every 200 ms, while the block runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        tool = shutil.which("nvidia-smi")
        if tool:
            self._process = subprocess.Popen(
                [
                    tool,
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                util, memory = (float(v) for v in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((util, memory))

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        utils = [u for u, _m in self.samples]
        return {
            "util_median": statistics.median(utils),
            "util_max": max(utils),
            "memory_mib_max": max(m for _u, m in self.samples),
        }


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def streams_run(shared, video: Path, streams: int, frames: int, fps: float) -> dict[str, Any]:
    from analysis.pipeline import Pipeline, render_snapshot
    from analysis.rules.engine import RuleEngine
    from analysis.sources import Prefetcher, VideoSource

    done = [0] * streams
    findings = [0] * streams
    errors: list[BaseException] = []
    peak = [rss()]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.02)

    def stream(n: int) -> None:
        try:
            from tasks.xmlformats import parse_roi

            pipeline = Pipeline([shared], RuleEngine("2", rois=[parse_roi(WHOLE_FRAME)], fps=fps))
            with VideoSource(video, fps=fps) as source, Prefetcher(source.frames()) as decoded:
                for frame in decoded:
                    for finding in pipeline.process(frame.image, frame.index, frame.offset_s):
                        render_snapshot(frame.image, finding)
                        findings[n] += 1
                    done[n] += 1
                    if done[n] >= frames:
                        break
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=stream, args=(n,)) for n in range(streams)]
    batches_before, frames_before, busy_before = shared.batches, shared.frames, shared.infer_busy_s
    with GpuSampler() as gpu:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    running.clear()
    sampler.join()
    if errors:
        raise errors[0]
    batches = shared.batches - batches_before
    return {
        "fps": sum(done) / seconds,
        "frames": sum(done),
        "findings": sum(findings),
        "mean_batch": (shared.frames - frames_before) / max(1, batches),
        "inference_busy": (shared.infer_busy_s - busy_before) / seconds,
        "gpu": gpu.summary(),
        "peak_rss": peak[0],
    }


def raw_fps(detector, images: list[Any], batch: int, seconds: float = 2.0) -> float:
    """session.run alone on a blob of `batch` frames, for about `seconds`."""
    blob, _ = detector.preprocess([images[i % len(images)] for i in range(batch)])
    blob = blob.copy()
    feed = {detector.input_name: blob}
    detector.session.run(None, feed)  # warm-up at this shape
    runs, started = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - started < seconds:
        detector.session.run(None, feed)
        runs += 1
    return batch * runs / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--streams", default="1,4,16,32")
    parser.add_argument("--frames", type=int, default=200, help="analysed frames per stream")
    parser.add_argument("--fps", type=float, default=25.0, help="analysis rate (25: every frame)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-wait-ms", type=float, default=4.0)
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    args = parser.parse_args()
    counts = [int(s) for s in args.streams.split(",") if s.strip()]
    configure()
    import cv2
    import onnxruntime as ort

    from analysis.detect.providers import gpu_name, usable_providers
    from analysis.detect.runtime import BatchingDetector

    work = Path(tempfile.mkdtemp(prefix="vias-streams-"))
    loops = max(1, -(-args.frames // max(1, int(250 * args.fps / 25))))
    video = looped_clip(work / "bikes-looped.mp4", loops)
    detector = make_detector(args.model)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "providers": usable_providers(),
        "session_provider": detector.session.get_providers()[0],
        "model": str(args.model),
        "input_type": detector.session.get_inputs()[0].type,
        "io_binding": detector.io_binding,
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
    }
    print(f"machine {machine}", flush=True)
    from analysis.sources import VideoSource

    with VideoSource(video, fps=args.fps) as source:
        images = [f.image for _, f in zip(range(64), source.frames(), strict=False)]
    print(
        f"input {detector.input_size(images[0])} for {images[0].shape[1]}x{images[0].shape[0]} frames",
        flush=True,
    )
    shared = BatchingDetector(detector, max_batch=max(counts), max_wait_s=args.max_wait_ms / 1000)
    streams_run(shared, video, 1, 5, args.fps)  # warm-up: sessions, arenas, cuDNN search
    for count in counts:
        raw_fps(detector, images, count, 0.5)
    baseline = rss()
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(1, args.rounds + 1):
            record: dict[str, Any] = {}
            for count in counts:
                result = streams_run(shared, video, count, args.frames, args.fps)
                raw = raw_fps(detector, images, count, args.raw_seconds)
                result.update(
                    raw_fps=raw,
                    ratio=result["fps"] / raw,
                    rss_per_stream_mb=(result.pop("peak_rss") - baseline) / count / 2**20,
                )
                record[str(count)] = result
                gpu = result["gpu"] or {}
                print(
                    f"round {number} {count:>3} streams: {result['fps']:8.1f} fps aggregate, raw ort at batch {count} "
                    f"{raw:8.1f} fps, ratio {result['ratio']:.2f}, mean batch {result['mean_batch']:.1f}, inference busy "
                    f"{result['inference_busy']:.0%}, GPU util {gpu.get('util_median', '-')}%, "
                    f"RSS/stream {result['rss_per_stream_mb']:.0f} MB, findings {result['findings']}",
                    flush=True,
                )
            rounds.append(record)
    finally:
        shared.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for count in counts:
        rows = [r[str(count)] for r in rounds]
        summary[str(count)] = {
            key: statistics.median(row[key] for row in rows)
            for key in ("fps", "raw_fps", "ratio", "mean_batch", "inference_busy", "rss_per_stream_mb")
        }
        utils = [row["gpu"]["util_median"] for row in rows if row["gpu"]]
        summary[str(count)]["gpu_util_median"] = statistics.median(utils) if utils else None
    print("\nmedians:")
    for count, row in summary.items():
        print(f"{count:>3} streams: {row}")
    print(
        "BENCH_JSON "
        + json.dumps(
            {"machine": machine, "args": vars(args), "summary": summary, "rounds": rounds}, default=str
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
