"""A real web server on a fresh embedded default, for tests and benchmarks that need concurrency
across real connections: a new VIAS_DATA_DIR (so a new SQLite file), migrated, with an API
token, served by Django's threaded server (one thread and one database connection per request)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
# Migrate the fresh database, then print an API token (`manage.py create_token`'s output).
SET_UP = (
    "from django.core.management import call_command; "
    "call_command('migrate', verbosity=0); call_command('create_token', 'writer', '--project', 'load')"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def task_body(name: str) -> dict[str, Any]:
    """A small POST /tasks body (one mtask, one scene) with two video channels of its own."""
    return {
        "task_name": name,
        "algo_type": "1",
        "run_dt": "2018-12-03 10:27:30.999",
        "play_url": "rtsp://192.168.9.155:8554/live",
        "vchans": [
            {"vchan_refid": f"{name}-cam-{i}", "name": f"camera {i}", "url": f"rtsp://10.0.0.{i + 1}/live"}
            for i in range(2)
        ],
        "mtasks": [
            {
                "mtask_unid": f"{name}-m",
                "name": "all day",
                "type": 0,
                "time_interval": 5,
                "start_time": "00:00:00",
                "end_time": "23:59:59",
                "scenes": [
                    {
                        "scene_unid": f"{name}-s",
                        "name": "door",
                        "algo_type": 1,
                        "vchan_refid": f"{name}-cam-0",
                    }
                ],
            }
        ],
    }


class LiveServer:
    """`manage.py runserver` (threaded, no reloader) on a fresh data dir; stop() ends it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # Not tmp_path: a bundled Redis socket inside must stay under the unix socket path limit.
        self._dir = tempfile.TemporaryDirectory(prefix="vias-live-")
        self.data_dir = Path(self._dir.name)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "VIAS_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log = self.data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        # One process for both: each Django start-up costs seconds on a loaded machine.
        self.token = self.manage("shell", "-c", SET_UP).strip().splitlines()[-1]
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text(errors='replace')}")
            try:
                self.request("GET", "/tasks?limit=1")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT:.0f} s")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        """(status, decoded JSON body or the raw text) of one request with the token."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def task_ids(self) -> set[str]:
        """Every task the server has stored for the token's project, through the API."""
        ids: set[str] = set()
        offset = 0
        while True:
            status, body = self.request("GET", f"/tasks?offset={offset}&limit=1000")
            assert status == 200, body
            items = body["list_data"]
            ids.update(item["task_id"] for item in items)
            offset += len(items)
            if not items or offset >= body["total_num"]:
                return ids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
