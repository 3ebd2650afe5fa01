"""`manage.py node`: run this machine as an analysis node.

It registers a Node row (capabilities, capacity), runs a django-q2 cluster on the node's own
queue, and heartbeats and reaps in a thread. SIGTERM or Ctrl-C drains it: running subtasks hand
themselves back (re-queued for another node, or for this one when it returns) and then the
cluster and its workers stop, leaving no process behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import node
from analysis.dispatch import BUSY_STATES
from analysis.orphans import NODE_PID_ENV
from subtasks.models import Subtask
from vias.management.commands.up import Signals, StopRequested, Supervisor

# Below `up`'s grace period, so a drained node still stops before `up` kills it.
DRAIN_TIMEOUT = 8.0


class Command(BaseCommand):
    help = "Run an analysis node: register it, run its django-q2 cluster on its own queue, heartbeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=settings.VIAS_NODE_NAME, help="node name = its queue name")
        parser.add_argument("--capacity", type=int, default=2, help="subtasks it runs at once (default 2)")

    def handle(self, *args: Any, name: str, capacity: int, **options: Any) -> None:
        if capacity < 1:
            raise CommandError("--capacity must be at least 1")
        signals = Signals()
        signals.install()
        try:
            registered = node.register(name, capacity)
        except node.NodeNameTaken as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Node {name}: capacity {capacity}, {registered.capabilities or 'no detectors'}")
        loop = node.NodeLoop(name)
        loop.start()
        supervisor = Supervisor(self._cluster_env(name, capacity), Path(settings.BASE_DIR))
        try:
            supervisor.start(
                "qcluster", [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"]
            )
            child = supervisor.watch(lambda: self._check_name(loop))
            raise CommandError(f"the cluster exited with code {child.process.returncode}")
        except StopRequested:
            self.stdout.write(f"Node {name}: draining ...")
            self._drain(name, signals)
        finally:
            signals.stopping = True
            loop.stop()
            supervisor.stop(signals)
        node.release(name)
        self.stdout.write(f"Node {name} stopped.")

    def _check_name(self, loop: node.NodeLoop) -> None:
        if loop.name_lost:
            raise CommandError(f"another process took over the node name {loop.node_name!r}; stopped")

    def _cluster_env(self, name: str, capacity: int) -> dict[str, str]:
        # One spare worker for short jobs (webhook deliveries, schedules) beside the analysis jobs.
        # VIAS_NODE_PID: the workers watch this process and take the cluster down with it.
        return {
            **os.environ,
            "Q_CLUSTER_NAME": name,
            "VIAS_WORKERS": str(capacity + 1),
            # hosting.per_worker(): on a GPU one worker hosts the whole capacity
            "VIAS_NODE_CAPACITY": str(capacity),
            NODE_PID_ENV: str(os.getpid()),
        }

    def _drain(self, name: str, signals: Signals) -> None:
        node.start_draining(name)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        busy = Subtask.objects.filter(node__name=name, state__in=BUSY_STATES)
        while busy.exists() and time.monotonic() < deadline and not signals.hurry:
            time.sleep(0.2)
