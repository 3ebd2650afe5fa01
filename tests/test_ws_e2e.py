# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""End to end: a real websocket client against the ASGI server (daphne in a subprocess) on
the real channels-redis layer; a fake running subtask answers the control channel.

Also: a client that never reads while 10,000 events are pushed does not make the server grow
without bound, nor slow a client that reads."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import websockets
from channels.layers import get_channel_layer

from tests.nodes import database_url
from tests.ws_helpers import WS_PATH, FakeDevice, cmd, in_sync_thread, private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "vias-ws-test"  # the channel-layer prefix the tests' own layer uses (ws_helpers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, redis_url: str, **env: str) -> None:
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="vws-d-")
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vias.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "VIAS_CHANNEL_PREFIX": PREFIX,
            "VIAS_DATA_DIR": self.data_dir,
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "vias.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.data_dir) / "daphne.log", "wb"),  # noqa: SIM115 - kept for the process's life
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "daphne exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("daphne did not listen within 30 s")

    def log(self) -> str:
        path = Path(self.data_dir) / "daphne.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss


@pytest.fixture
def server(private_redis):
    running = Server(private_redis.url, VIAS_WS_STALL_TIMEOUT="3")
    running.start()
    yield running
    running.stop()


async def open_ws(server: Server, token: str):
    return await websockets.connect(
        server.url, additional_headers={"Authorization": token}, origin="http://127.0.0.1", max_size=2**24
    )


async def request(ws, command: str, params: dict, request_id: str, timeout: float = 15) -> dict:
    await ws.send(json.dumps({"command": command, "src_page": "e2e", "id": request_id, "params": params}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("id") == request_id:
            return message


@in_sync_thread
def running_subtask_using_store_conf(project) -> int:
    from subtasks.models import Subtask
    from tasks.models import StoreConf, Task

    conf = StoreConf.objects.create(project=project, unid="sc-e2e", name="s", file_ext="xml", content=b"<a/>")
    task = Task.objects.create(
        project=project,
        task_name="t",
        algo_type="1",
        run_dt="2020-01-01T00:00:00Z",
        play_url="rtsp://h/x",
        store_conf=conf,
    )
    return Subtask.objects.create(task=task, state="RUNNING", config_complete=True).pk


async def test_replacing_a_store_conf_over_a_real_socket_is_answered_after_the_device_acknowledges(
    server, alice
):
    pk = await running_subtask_using_store_conf(alice.project)
    new_file = base64.b64encode(b"<root><bucket>s3://new</bucket></root>").decode()
    with FakeDevice(pk, delay=0.3) as device:
        async with await open_ws(server, alice.token) as ws:
            started = time.monotonic()
            answer = await request(
                ws, cmd("put", "store_confs"), {"unid": "sc-e2e", "file_b64": new_file}, "r1"
            )
            elapsed = time.monotonic() - started
    assert answer["ecode"] == 200, answer
    assert (answer["command"], answer["src_page"]) == ("put /wsapi/v1/devconf_fx/store_confs", "e2e")
    assert answer["data"]["version"] == 2
    assert answer["subtasks"] == [
        {
            "subtask_id": pk,
            "status": "acknowledged",
            "reason": "",
            "command_id": device.received[0].id,
            "ok": True,
        }
    ]
    assert device.received[0].op == "store_conf" and device.received[0].body["version"] == 2
    assert elapsed >= 0.3  # answered after the device, not before


def raw_subscriber(port: int, token: str) -> socket.socket:
    """A websocket client that subscribes and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n"
            f"Authorization: {token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    payload = json.dumps({"command": cmd("post", "subscriptions"), "params": {}}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


async def test_a_client_that_never_reads_neither_grows_the_server_nor_slows_others(server, alice):
    events, size = 10_000, 4096
    async with await open_ws(server, alice.token) as good:
        assert (await request(good, cmd("post", "subscriptions"), {}, "sub"))["ecode"] == 200
        stalled = await asyncio.to_thread(raw_subscriber, server.port, alice.token)
        await asyncio.sleep(0.5)
        before = server.rss()

        received = 0
        others: list = []
        seen_ns: set = set()
        last_seen = asyncio.Event()

        async def read_all() -> None:
            nonlocal received
            async for text in good:
                message = json.loads(text)
                if message.get("push") != "progress":
                    others.append(message)
                if message.get("push") == "progress":
                    seen_ns.add(message["data"]["n"])
                    received += 1
                    if received == events:  # (concurrent sends arrive in any order)
                        last_seen.set()
                        return

        reader = asyncio.create_task(read_all())
        layer = get_channel_layer()
        blob = "x" * size
        for batch in range(0, events, 50):
            await asyncio.gather(
                *(
                    layer.group_send(
                        "project.proj-alice",
                        {
                            "type": "vias.event",
                            "kind": "progress",
                            "project_id": "proj-alice",
                            "n": n,
                            "blob": blob,
                        },
                    )
                    for n in range(batch, min(batch + 50, events))
                )
            )
            # Closed loop: the next batch when the reader has this one, so what is measured is the
            # server's pace for a reading client next to the stalled one, not Redis's channel capacity.
            while received < min(batch + 50, events) and not reader.done():
                await asyncio.sleep(0.002)
        try:
            await asyncio.wait_for(last_seen.wait(), 60)
        except TimeoutError:
            raise AssertionError(f"got {received} of {events}; server log:\n{server.log()}") from None
        after = server.rss()
        reader.cancel()

    growth = after - before
    # Unbounded, the stalled socket alone would keep ~40 MB (10,000 x 4 KiB) in the server.
    assert growth < 20 * 2**20, f"server grew by {growth / 2**20:.1f} MiB"
    assert received == events, (
        f"the reading client got {received} of {events} {others[:5]} missing {sorted(set(range(events)) - seen_ns)[:40]}"
    )
    # The stalled client is closed once it has left the backlog unread past VIAS_WS_STALL_TIMEOUT.
    stalled.settimeout(15)
    deadline = time.monotonic() + 20
    ended = False
    while time.monotonic() < deadline and not ended:
        try:
            ended = stalled.recv(1 << 20) == b""
        except (ConnectionResetError, TimeoutError, OSError):
            ended = True
    stalled.close()
    assert ended, "the stalled client was never disconnected"
