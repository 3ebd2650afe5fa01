"""End to end: `manage.py up` on the embedded default serves the admin and stops without leftovers."""

from __future__ import annotations

import json
import os
import re
import shutil
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


def start_up(data_dir: Path, port: int, *flags: str, **extra_env: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(VIAS_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", VIAS_WORKERS="1", **extra_env)
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


def api(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Authorization": token, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def create_token(data_dir: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["VIAS_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "manage.py", "create_token", "operator", "--project", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_up_restarts_its_redis_and_a_start_during_the_outage_answers_503_changing_nothing(
    data_dir: Path,
) -> None:
    port = free_port()
    (data_dir / "videos").mkdir()
    shutil.copy(ROOT / "tests" / "data" / "bikes.mp4", data_dir / "videos" / "bikes.mp4")
    # A restart delay long enough that the requests below surely land in the outage.
    up = start_up(data_dir, port, VIAS_REDIS_RESTART_DELAY="4")
    output = Output(up.stdout)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(up, output, f"{base}/admin/login/")
        token = create_token(data_dir)
        device = {
            "deviceId": "cam-1",
            "videoId": "bikes",
            "videoTimeLength": 10,
            "videoBeginTime": 1564675200001,
        }
        status, created = api(
            f"{base}/vcs/console/task/createComputeTask",
            token,
            {
                "name": "outage",
                "execType": "historyVideoFile",
                "execStartTime": 1564675200000,
                "datasources": {"devices": [device]},
                "algorithms": [{"models": ["face"]}],
            },
        )
        assert status == 200, created
        task_id = created["Data"]["taskId"]
        subtasks_url = f"{base}/tasks/{task_id}/subtasks"
        before = api(subtasks_url, token)[1]["list_data"]

        (server,) = [p for p in psutil.Process(up.pid).children() if "redis-server" in command_line(p)]
        server.kill()
        status, refused = api(f"{base}/vcs/console/task/startComputeTask", token, {"taskId": task_id})
        # VCS application errors come in an HTTP 200, the code in Code.
        assert (status, refused["Code"]) == (200, "503"), refused
        assert api(subtasks_url, token)[1]["list_data"] == before  # nothing was written

        deadline = time.monotonic() + 30
        while "Redis restarted" not in output.text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Redis restarted" in output.text, output.text
        assert up.poll() is None
        status, started = api(f"{base}/vcs/console/task/startComputeTask", token, {"taskId": task_id})
        assert status == 200, started
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [row["state"] for row in api(subtasks_url, token)[1]["list_data"]]
            if states and all(state in ("succeeded", "SUCCEEDED") for state in states):
                break
            time.sleep(0.5)
        assert states and all(state in ("succeeded", "SUCCEEDED") for state in states), (
            states,
            output.text[-3000:],
        )
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(timeout=5)
