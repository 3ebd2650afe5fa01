#!/usr/bin/env python
"""What one event clip costs to encode, the node's encoder (analysis/clips.py: PyAV, libvpx's
realtime deadline) against OpenCV's VideoWriter (VP8 into WebM with libvpx's defaults, what the
node used before), on the same frames, interleaved round by round (order reversed every other
round) so that the load of a shared machine weighs on both alike; medians of the rounds.

The frames: bikes.mp4 (640x272) at the analysis rate, PRE_SECONDS + POST_SECONDS of them, as a
clip holds. Figures per clip: CPU seconds of the process (the encoding runs on the calling
thread: the node's encoder thread), wall seconds, file size and the PSNR of the decoded frames
against the originals (OpenCV's decoder).

    .venv/bin/python bench/bench_clips.py [--fps 5] [--rounds 7]

The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.clips import POST_SECONDS, PRE_SECONDS, encode_webm  # noqa: E402

BIKES = ROOT / "tests" / "data" / "bikes.mp4"


def clip_frames(fps: float) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(BIKES))
    source_fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(source_fps / fps))
    wanted = round((PRE_SECONDS + POST_SECONDS) * fps)
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < wanted:
        ok, frame = video.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(frame)
        index += 1
    video.release()
    return frames


def opencv_webm(frames: list[np.ndarray], fps: float) -> bytes:
    """The node's writer before: OpenCV's VideoWriter, VP8 into WebM (a file, then read back)."""
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="vias-bench-clip-") as scratch:
        path = Path(scratch) / "clip.webm"
        fourcc = cv2.VideoWriter_fourcc(*"VP80")  # type: ignore[attr-defined]  # missing from OpenCV's stubs
        writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
        for frame in frames:
            writer.write(frame)
        writer.release()
        return path.read_bytes()


def psnr(data: bytes, frames: list[np.ndarray]) -> float:
    with tempfile.TemporaryDirectory(prefix="vias-bench-clip-") as scratch:
        path = Path(scratch) / "clip.webm"
        path.write_bytes(data)
        video = cv2.VideoCapture(str(path))
        values = []
        for frame in frames:
            ok, decoded = video.read()
            if not ok:
                break
            values.append(cv2.PSNR(decoded, frame[: decoded.shape[0], : decoded.shape[1]]))
        video.release()
    return statistics.mean(values) if values else 0.0


def measure(encode: Callable[[list[np.ndarray], float], bytes], frames: list[np.ndarray], fps: float) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    data = encode(frames, fps)
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "bytes": len(data),
        "data": data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fps", type=float, default=5.0, help="the analysis rate (bikes.mp4 is 25 fps)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    frames = clip_frames(args.fps)
    encoders = {"opencv": opencv_webm, "node": encode_webm}
    for encode in encoders.values():  # warm-up: libraries loaded, first allocations made
        encode(frames[:2], args.fps)
    runs: dict[str, list[dict]] = {name: [] for name in encoders}
    for number in range(args.rounds):
        order = list(encoders) if number % 2 == 0 else list(reversed(encoders))
        for name in order:
            runs[name].append(measure(encoders[name], frames, args.fps))
        print(
            f"round {number + 1}: "
            + "  ".join(f"{name} {runs[name][-1]['cpu_s']:.3f} s CPU" for name in encoders)
            + f"  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    result: dict = {"frames": len(frames), "size": list(frames[0].shape[1::-1]), "fps": args.fps}
    for name in encoders:
        result[name] = {
            "cpu_s": statistics.median(r["cpu_s"] for r in runs[name]),
            "wall_s": statistics.median(r["wall_s"] for r in runs[name]),
            "kb": runs[name][-1]["bytes"] / 1024,
            "psnr_db": psnr(runs[name][-1]["data"], frames),
        }
    result["cpu_ratio"] = result["opencv"]["cpu_s"] / result["node"]["cpu_s"]
    print(
        f"{len(frames)} frames {result['size'][0]}x{result['size'][1]} at {args.fps:g} fps, medians of {args.rounds}"
    )
    for name in encoders:
        row = result[name]
        print(
            f"{name:>7}: {row['cpu_s']:.3f} s CPU ({1000 * row['cpu_s'] / len(frames):.1f} ms/frame), "
            f"{row['wall_s']:.3f} s wall, {row['kb']:.0f} KB, PSNR {row['psnr_db']:.1f} dB"
        )
    print(f"OpenCV ÷ node, CPU: {result['cpu_ratio']:.1f}x")
    print("BENCH_JSON " + json.dumps(result))


if __name__ == "__main__":
    main()
