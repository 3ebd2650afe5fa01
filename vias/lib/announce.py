"""Announcing changes: after the transaction commits, send them to the channel layer.

Service functions write, then call `announce`; websocket subscribers (and later webhooks)
hear about it. An unreachable Redis never undoes or fails the write: it is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def project_group(project_id: str) -> str:
    return f"project.{project_id}"


def task_group(task_id: str) -> str:
    return f"task.{task_id}"


def announce(project_id: str, kind: str, payload: dict[str, Any], task_id: str | None = None) -> None:
    """Send `{"type": "vias.event", "kind": kind, ...payload}` once the current transaction commits."""
    message = {"type": "vias.event", "kind": kind, "project_id": project_id, **payload}
    groups = [project_group(project_id)] + ([task_group(task_id)] if task_id else [])
    transaction.on_commit(lambda: _send(groups, message))


def _reason() -> str:
    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}"


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group in groups:
            try:
                await layer.group_send(group, message)
            except Exception:  # noqa: BLE001 - Redis down must not break the write that already happened
                log.warning("could not announce %s to %s: %s", message.get("kind"), group, _reason())
                return

    try:
        if _Sender.usable(layer):
            _Sender.run(send_all)
        else:
            async_to_sync(send_all)()
    except Exception:  # noqa: BLE001 - e.g. the loop could not start: logged, never raised
        log.warning("could not announce %s: %s", message.get("kind"), _reason())


class _Sender:
    """One event loop per process, in a daemon thread, that announcements from plain threads (a
    running job, a worker, a command) run on and wait for. `async_to_sync` from a plain thread
    starts a new loop in a new thread for each call, and channels_redis opens a connection per
    loop: a job announcing once a second paid a thread, a loop and a Redis connection each time
    (bench/bench_announce.py). Inside async code, or in a sync_to_async thread (a view under ASGI,
    whose announcements async_to_sync sends from the server's own loop), or with a channel layer
    other than Redis (in-process state bound to its loops), async_to_sync is used as before. A
    forked child (a django-q2 worker) starts its own loop."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _pid = 0

    @staticmethod
    def usable(layer: Any) -> bool:
        if type(layer).__module__.split(".")[0] != "channels_redis":
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return False
        local = SyncToAsync.threadlocal
        return not (
            getattr(local, "main_event_loop", None) is not None
            and getattr(local, "main_event_loop_pid", None) == os.getpid()
        )

    @classmethod
    def run(cls, send: Callable[[], Coroutine[Any, Any, None]]) -> None:
        asyncio.run_coroutine_threadsafe(send(), cls._running()).result()

    @classmethod
    def _running(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._pid != os.getpid() or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="vias-announce", daemon=True).start()
                cls._loop, cls._pid = loop, os.getpid()
            return cls._loop
