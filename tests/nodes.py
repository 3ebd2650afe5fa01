"""Real analysis nodes for the end-to-end tests: `manage.py node` in a subprocess against the
test database and the test Redis, and a longer video made from tests/data/bikes.mp4."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import av
import cv2
import psutil
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT / "tests" / "data" / "bikes.mp4"
_LOOP_DIR = tempfile.TemporaryDirectory(prefix="vias-loop-")


def database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or "localhost"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


class NodeProcess:
    """`manage.py node` for one test; stop() sends SIGTERM and reports what was left running."""

    def __init__(
        self,
        capacity: int = 1,
        heartbeat_timeout: int = 3,
        heartbeat_grace: int = 3,
        name: str = "",
        **env: str,
    ) -> None:
        self.name = name or f"test-node-{uuid.uuid4().hex[:6]}"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "VIAS_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
            "VIAS_HEARTBEAT_GRACE": str(heartbeat_grace),
            "VIAS_NODE_TIMEOUT": "10",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.log = Path(settings.DATA_DIR) / f"{self.name}.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "node",
                "--name",
                self.name,
                "--capacity",
                str(capacity),
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._tree: list[psutil.Process] | None = None  # its processes when it was sent SIGTERM

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self) -> None:
        """SIGTERM (once) without waiting: nodes stopped together drain at the same time."""
        if self._tree is None:
            self._tree = self.descendants()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> list[psutil.Process]:
        """SIGTERM, wait; the processes still alive afterwards (killed, and returned for asserts)."""
        self.terminate()
        tree = self._tree or []
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.3)
        leftovers = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for process in leftovers:
            process.kill()
        return leftovers


def long_video(path: Path, loops: int = 6) -> Path:
    """bikes.mp4 played `loops` times in one file (40 s for 4 loops at 25 fps), MPEG-4 as cv2's
    mp4v writer makes it. The loop is encoded once per session and its packets are written
    `loops` times with shifted timestamps (no encoding again): encoding every loop took most of a
    long test's set-up (48 loops: 43 s, against 2.4 s, on the shared machine). The file is the same
    as encoding all loops in one go: same codec, a keyframe every 12 frames, no B-frames."""
    if path.exists():
        return path
    with av.open(str(_encoded_loop())) as source, av.open(str(path), "w") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream)
        packets = [packet for packet in source.demux(stream) if packet.size]
        span = packets[-1].pts + packets[-1].duration - packets[0].pts
        for loop in range(loops):
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + loop * span, packet.dts + loop * span
                copy.duration, copy.is_keyframe, copy.stream = packet.duration, packet.is_keyframe, out
                target.mux(copy)
    return path


@functools.cache
def _encoded_loop() -> Path:
    """bikes.mp4 once, encoded as cv2's mp4v writer does (kept until the process ends)."""
    path = Path(_LOOP_DIR.name) / "bikes-mp4v.mp4"
    reader = cv2.VideoCapture(str(BIKES))
    frames = []
    while True:
        ok, frame = reader.read()
        if not ok:
            break
        frames.append(frame)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def wait_for(condition, timeout: float = 60, interval: float = 0.2, what="the condition"):
    """Poll `condition` until truthy; `what` (text, or a callable giving it late) names it on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
