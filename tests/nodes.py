"""Real analysis nodes for the end-to-end tests: `manage.py node` in a subprocess against the
test database and the test Redis, and a longer video made from tests/data/bikes.mp4."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import psutil
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT / "tests" / "data" / "bikes.mp4"


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

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30) -> list[psutil.Process]:
        """SIGTERM, wait; the processes still alive afterwards (killed, and returned for asserts)."""
        tree = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
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
    """bikes.mp4 played `loops` times in one file (40 s for 4 loops at 25 fps)."""
    if path.exists():
        return path
    reader = cv2.VideoCapture(str(BIKES))
    frames = []
    while True:
        ok, frame = reader.read()
        if not ok:
            break
        frames.append(frame)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    for _ in range(loops):
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
