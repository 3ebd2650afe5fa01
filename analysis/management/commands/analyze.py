"""`manage.py analyze VIDEO`: run the analysis pipeline in this process on one video file.

    python manage.py analyze clip.mp4 --models body,face --roi roi.xml --algo-type 2 --fps 5 --out out/

Same detectors (from the registry), rules and snapshots as a subtask's job, without tasks, queues
or database rows other than the registry: a progress bar on stderr, a summary table on stdout,
and `events.json` plus `snapshots/*.jpg` in the output directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from tasks.choices import AlgoType, DetectorModel

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Analyse a video file with the registered detectors and the rules of an algorithm type."

    def add_arguments(self, parser) -> None:
        parser.add_argument("video", type=Path)
        parser.add_argument(
            "--models", default="", help="categories, comma-separated: face, body, motor, no_motor"
        )
        parser.add_argument(
            "--roi", type=Path, action="append", default=[], help="an ROI XML file (repeatable)"
        )
        parser.add_argument("--calibration", type=Path, default=None, help="a calibration XML file")
        parser.add_argument("--algo-type", default=AlgoType.SECURITY, choices=AlgoType.values)
        parser.add_argument("--algo-args", default="{}", help="JSON, e.g. '{\"loiter_seconds\": 10}'")
        parser.add_argument("--fps", type=float, default=None, help="analysed frames per second")
        parser.add_argument("--out", type=Path, default=Path("analyze-out"))
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from analysis.detect.registry import MissingModel, detectors_for
        from analysis.pipeline import Pipeline
        from analysis.rules.engine import RuleEngine, categories_for
        from analysis.sources import Prefetcher, SourceError, VideoSource

        algo_type = str(options["algo_type"])
        categories = categories_for(algo_type, [m.strip() for m in options["models"].split(",") if m.strip()])
        unknown = [c for c in categories if c not in DetectorModel.values]
        if unknown:
            raise CommandError(f"unknown model {', '.join(unknown)}; use {', '.join(DetectorModel.values)}")
        try:
            algo_args = json.loads(options["algo_args"])
            rois = [path.read_text() for path in options["roi"]]
            calibration = options["calibration"].read_text() if options["calibration"] else None
            engine = RuleEngine(
                algo_type, rois, calibration, algo_args, categories=categories, fps=options["fps"]
            )
        except (OSError, ValueError, ValidationError) as exc:
            raise CommandError(_message(exc)) from exc
        try:
            detectors = detectors_for(categories)
            pipeline = Pipeline(detectors, engine)  # MissingModel too when falls are asked for
        except MissingModel as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"the detector registry cannot be read ({exc}); run `python manage.py migrate` and "
                "`python manage.py fetch_models`"
            ) from exc
        out: Path = options["out"]
        snapshots = out / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        events: list[dict[str, Any]] = []
        started = time.monotonic()
        progress = None if options["no_progress"] else Bar(self.stderr)

        def keep(finding, image) -> None:
            from analysis.pipeline import render_snapshot

            name = f"{len(events):05d}-{finding.rule}-{finding.frame_index}.jpg"
            (snapshots / name).write_bytes(render_snapshot(image, finding))
            events.append({**finding.as_dict(), "snapshot": f"snapshots/{name}"})

        try:
            with VideoSource(options["video"], fps=engine.fps) as video:
                total = video.total_samples
                with Prefetcher(video.frames()) as frames:
                    for frame in frames:
                        for finding in pipeline.process(frame.image, frame.index, frame.offset_s):
                            keep(finding, frame.image)
                        if progress:
                            progress.show(pipeline.frames, total, time.monotonic() - started)
        except SourceError as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if progress:
                progress.done()
        for finding in pipeline.flush():
            keep(finding, None)
        elapsed = time.monotonic() - started
        summary = engine.summary()
        document = {
            "video": str(options["video"]),
            "algo_type": algo_type,
            "categories": categories,
            "detectors": [d.name for d in detectors],
            "fps": engine.fps,
            "frames": pipeline.frames,
            "seconds": round(elapsed, 2),
            "summary": summary,
            "events": events,
        }
        (out / "events.json").write_text(json.dumps(document, indent=2, ensure_ascii=False))
        self.print_summary(document, out)

    def print_summary(self, document: dict[str, Any], out: Path) -> None:
        write = self.stdout.write
        frames, seconds = document["frames"], document["seconds"]
        write(
            f"{frames} frames analysed in {seconds:.1f} s ({frames / seconds if seconds else 0:.1f} fps) "
            f"with {', '.join(document['detectors'])}"
        )
        counts: dict[tuple[str, str], int] = {}
        for event in document["events"]:
            counts[(event["rule"], event["category"])] = counts.get((event["rule"], event["category"]), 0) + 1
        rows = [("rule", "category", "events")] + [(r, c, str(n)) for (r, c), n in sorted(counts.items())]
        for line, directions in sorted(document["summary"]["counts"].items()):
            rows += [(f"line {line}", direction, str(n)) for direction, n in sorted(directions.items())]
        for line, labels in sorted(document["summary"].get("by_class", {}).items()):
            for label, directions in sorted(labels.items()):
                rows += [(f"line {line} {label}", d, str(n)) for d, n in sorted(directions.items())]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for number, row in enumerate(rows):
            write(
                "  ".join(
                    cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)
                )
            )
            if number == 0:
                write("  ".join("-" * w for w in widths))
        write(f"{len(document['events'])} events: {out / 'events.json'}")


class Bar:
    """A plain progress bar on stderr (a management command's OutputWrapper), redrawn at most ten
    times a second."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = 0.0

    def show(self, done: int, total: int, elapsed: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done != total:
            return
        self.last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        if total:
            filled = int(BAR_WIDTH * min(done, total) / total)
            text = f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} frames {rate:5.1f} fps"
        else:
            text = f"\r{done} frames {rate:5.1f} fps"
        self.stream.write(text, ending="")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("")
        self.stream.flush()


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)
