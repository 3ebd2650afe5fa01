"""End to end: `manage.py up` on the embedded default serves the admin and stops without leftovers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60
STOP_TIMEOUT = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Output:
    """Collects a process's output in a thread, so that a full pipe never blocks it."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=5)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: the Redis socket inside must stay under the 107-byte unix socket path limit.
    with tempfile.TemporaryDirectory(prefix="vias-up-") as path:
        yield Path(path)


def start_up(data_dir: Path, port: int, *flags: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(VIAS_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", VIAS_WORKERS="1")
    return subprocess.Popen(
        [sys.executable, "manage.py", "up", "--port", str(port), *flags],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own session: the SIGINT below goes to `up` alone, as Ctrl-C goes to its terminal group.
        start_new_session=True,
    )


def wait_until_up(up: subprocess.Popen[str], output: Output, url: str) -> None:
    """Until the admin answers and the cluster runs; stopping mid-start is not what this test is about."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert up.poll() is None, f"up exited with {up.returncode}:\n{output.text}"
        cluster_running = re.search(r"Q Cluster .* running\.", output.text)
        if cluster_running and "Press Ctrl-C" in output.text and http_status(url) == 200:
            return
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer 200 within {START_TIMEOUT} s:\n{output.text}")


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_up_serves_admin_and_stops_cleanly_on_sigint(data_dir: Path) -> None:
    port = free_port()
    up = start_up(data_dir, port)
    output = Output(up.stdout)
    tree: list[psutil.Process] = []
    try:
        wait_until_up(up, output, f"http://127.0.0.1:{port}/admin/login/")
        tree = psutil.Process(up.pid).children(recursive=True)
        commands = [command_line(process) for process in tree]

        password_file = data_dir / "admin-password.txt"
        password = password_file.read_text().strip()
        assert f"http://127.0.0.1:{port}/admin/" in output.text
        assert password and f"admin / {password}" in output.text
        assert password_file.stat().st_mode & 0o777 == 0o600
        assert any("manage.py qcluster" in command for command in commands), commands
        assert any("daphne" in command for command in commands), commands
        assert any("redis-server" in command for command in commands), commands

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=STOP_TIMEOUT) == 0, output.text
        output.join()
        leftovers = [process for process in tree if alive(process)]
        assert not leftovers, f"still running after up stopped: {leftovers}"
        assert "VIAS stopped." in output.text
    finally:
        # Whatever failed above, leave nothing running.
        for process in [*tree, psutil.Process(up.pid)] if up.poll() is None else tree:
            if alive(process):
                process.kill()
        up.wait(timeout=5)
