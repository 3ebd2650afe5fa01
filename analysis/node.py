"""An analysis node's own bookkeeping: register, heartbeat, drain, and the housekeeping loop
(heartbeat, reaper, dispatch of waiting subtasks) that `manage.py node` runs in a thread."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from analysis import control
from analysis.dispatch import dispatch_waiting, reap, refresh_mtask_progress
from subtasks.models import Node

log = logging.getLogger(__name__)

LOOP_INTERVAL = 5.0
# This process's claim on its node name (Node.instance): its pid, and a random part.
INSTANCE = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class NodeNameTaken(Exception):
    """Another live process already runs a node of this name."""


def _stopping_key(name: str) -> str:
    return f"{control.settings.VIAS_CONTROL_PREFIX}:node-stopping:{name}"


def node_capabilities() -> dict[str, Any]:
    """What this machine can run: onnxruntime providers that really load, GPU name, models."""
    try:
        from analysis.detect.providers import capabilities
    except ImportError:  # the detection package is optional for a node that only delivers outputs
        return {}
    found = capabilities()
    found["models"] = models_on_disk()
    return found


def models_on_disk() -> list[str]:
    """The enabled registered detectors whose ONNX file is on this machine's disk: the registry
    is shared, the files are not (each node runs `fetch_models` or gets them copied)."""
    from analysis.models import Detector

    return [d.name for d in Detector.objects.filter(enabled=True).order_by("name") if Path(d.path).is_file()]


def register(name: str, capacity: int, capabilities: dict[str, Any] | None = None) -> Node:
    """Claim the name for this process. Refused (NodeNameTaken) while another process holds it
    and heartbeats: two hosts started with the same --name must not share one Node row."""
    values = {
        "hostname": socket.gethostname(),
        "capacity": capacity,
        "capabilities": capabilities if capabilities is not None else node_capabilities(),
        "last_heartbeat": timezone.now(),
        "draining": False,
        "instance": INSTANCE,
    }
    try:
        with transaction.atomic():
            node = Node.objects.select_for_update().filter(name=name).first()
            if node is None:
                node = Node.objects.create(name=name, **values)
            else:
                _refuse_if_taken(node)
                Node.objects.filter(pk=node.pk).update(**values)
    except IntegrityError:  # another process created the row at the same moment
        raise NodeNameTaken(
            f"a node named {name!r} is registering right now; choose another --name"
        ) from None
    control.client().delete(_stopping_key(name))
    return Node.objects.get(name=name)


def _refuse_if_taken(node: Node) -> None:
    timeout = settings.VIAS_NODE_TIMEOUT
    if node.last_heartbeat is None:
        return
    age = (timezone.now() - node.last_heartbeat).total_seconds()
    if node.instance and node.instance != INSTANCE and age < timeout and not _dead_here(node):
        raise NodeNameTaken(
            f"a node named {node.name!r} is already running on {node.hostname or 'another host'} "
            f"(last heartbeat {age:.0f} s ago); choose another --name, or stop that node "
            f"(after a crash its name is free {timeout} s after its last heartbeat)"
        )


def _dead_here(node: Node) -> bool:
    """The holder ran on this host and its process is gone (a crash just now, then a restart)."""
    pid = node.instance.split("-", 1)[0]
    if node.hostname != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def heartbeat(name: str) -> bool:
    """False when the name is no longer this process's (another node took it over)."""
    alive = bool(Node.objects.filter(name=name, instance=INSTANCE).update(last_heartbeat=timezone.now()))
    if alive:
        try:
            from analysis import sysstats

            sysstats.publish(name)  # CPU, memory, GPU for the System page
        except Exception:  # noqa: BLE001 - the load figures are extras; the heartbeat is what counts
            log.warning("node %s: load sample not published", name, exc_info=True)
    return alive


def release(name: str) -> None:
    """A node that stopped cleanly frees its name at once."""
    Node.objects.filter(name=name, instance=INSTANCE).update(instance="", last_heartbeat=None)


def start_draining(name: str) -> None:
    """The node is going away: no new subtasks, and its running jobs hand their subtasks back."""
    Node.objects.filter(name=name).update(draining=True)
    control.client().set(_stopping_key(name), "1", ex=3600)


def is_draining(name: str) -> bool:
    return bool(control.client().exists(_stopping_key(name)))


# pg_advisory_lock key of the reaper's turn (any fixed bigint; "VIASREAP" in ASCII).
REAPER_LOCK_KEY = 0x5649415352454150


@contextmanager
def reaper_turn() -> Iterator[bool]:
    """Whether this node reaps this round: one reaper at a time, not one per node racing.

    PostgreSQL: a session advisory lock, tried without waiting (released at the end, or by the
    server if the node's connection dies). SQLite: the reaper runs in one IMMEDIATE transaction,
    whose write lock is the turn (another node's reaper waits, then finds nothing left to do)."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [REAPER_LOCK_KEY])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [REAPER_LOCK_KEY])


def housekeeping() -> None:
    with reaper_turn() as mine:
        if mine:
            reap()
            refresh_mtask_progress()
    dispatch_waiting()


class NodeLoop(threading.Thread):
    """Heartbeat the node and run the reaper every LOOP_INTERVAL seconds until stopped."""

    def __init__(self, name: str, interval: float = LOOP_INTERVAL) -> None:
        super().__init__(name=f"vias-node-{name}", daemon=True)
        self.node_name = name
        self.interval = interval
        self.stopped = threading.Event()
        self.name_lost = False

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                close_old_connections()
                if not heartbeat(self.node_name):
                    log.error("node %s: the name was taken over by another process; stopping", self.node_name)
                    self.name_lost = True
                    return
                housekeeping()
            except Exception:  # noqa: BLE001 - a database or Redis hiccup must not end the loop
                log.exception("node %s housekeeping failed", self.node_name)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
