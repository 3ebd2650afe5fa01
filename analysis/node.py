"""An analysis node's own bookkeeping: register, heartbeat, drain, and the housekeeping loop
(heartbeat, reaper, dispatch of waiting subtasks) that `manage.py node` runs in a thread."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from analysis import control
from analysis.dispatch import dispatch_waiting, reap
from subtasks.models import Node

log = logging.getLogger(__name__)

LOOP_INTERVAL = 5.0


def _stopping_key(name: str) -> str:
    return f"{control.settings.VIAS_CONTROL_PREFIX}:node-stopping:{name}"


def node_capabilities() -> dict[str, Any]:
    """What this machine can run: onnxruntime providers that really load, GPU name, models."""
    try:
        from analysis.detect.providers import capabilities
    except ImportError:  # the detection package is optional for a node that only delivers outputs
        return {}
    return capabilities()


def register(name: str, capacity: int, capabilities: dict[str, Any] | None = None) -> Node:
    node, _ = Node.objects.update_or_create(
        name=name,
        defaults={
            "hostname": socket.gethostname(),
            "capacity": capacity,
            "capabilities": capabilities if capabilities is not None else node_capabilities(),
            "last_heartbeat": timezone.now(),
            "draining": False,
        },
    )
    control.client().delete(_stopping_key(name))
    return node


def heartbeat(name: str) -> None:
    Node.objects.filter(name=name).update(last_heartbeat=timezone.now())


def start_draining(name: str) -> None:
    """The node is going away: no new subtasks, and its running jobs hand their subtasks back."""
    Node.objects.filter(name=name).update(draining=True)
    control.client().set(_stopping_key(name), "1", ex=3600)


def is_draining(name: str) -> bool:
    return bool(control.client().exists(_stopping_key(name)))


def housekeeping() -> None:
    reap()
    dispatch_waiting()


class NodeLoop(threading.Thread):
    """Heartbeat the node and run the reaper every LOOP_INTERVAL seconds until stopped."""

    def __init__(self, name: str, interval: float = LOOP_INTERVAL) -> None:
        super().__init__(name=f"vias-node-{name}", daemon=True)
        self.node_name = name
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                close_old_connections()
                heartbeat(self.node_name)
                housekeeping()
            except Exception:  # noqa: BLE001 - a database or Redis hiccup must not end the loop
                log.exception("node %s housekeeping failed", self.node_name)
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
