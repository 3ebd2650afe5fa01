"""No orphans: a node's django-q2 workers die with the node, however it dies.

`manage.py node` runs `qcluster` in its own process group and tells it its pid (VIAS_NODE_PID).
Every worker, as django-q2 spawns it (the `post_spawn` signal), then
  * asks Linux for SIGKILL when its parent (the cluster's sentinel) dies (PR_SET_PDEATHSIG), and
  * watches the node process (a pidfd, or polling where there is none): when the node is gone,
    even by `kill -9`, it kills the cluster's whole process group, sentinel, pusher and monitor
    included. A headless worker would otherwise go on analysing and heartbeating, so the reaper
    would never hand its subtask to another node.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from typing import Any

from vias.lib.bundled_redis import set_parent_death_signal

log = logging.getLogger(__name__)

NODE_PID_ENV = "VIAS_NODE_PID"
POLL_INTERVAL = 0.5


def node_pid() -> int | None:
    value = os.environ.get(NODE_PID_ENV, "")
    return int(value) if value.isdigit() else None


def guard_worker(**_signal_kwargs: Any) -> None:
    """The post_spawn receiver: only in a node's cluster (VIAS_NODE_PID set)."""
    pid = node_pid()
    if pid is None:
        return
    set_parent_death_signal(signal.SIGKILL)
    try:
        node_group = os.getpgid(pid)
    except ProcessLookupError:  # the node died before this worker even started
        _kill_cluster(None)
        return
    threading.Thread(target=_watch, args=(pid, node_group), name="vias-node-watch", daemon=True).start()


def _watch(pid: int, node_group: int) -> None:
    _wait_for_exit(pid)
    log.warning("node process %s is gone: stopping its cluster", pid)
    _kill_cluster(node_group)


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
        while _alive(pid):
            time.sleep(POLL_INTERVAL)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(None):  # readable once the process has exited
            pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_cluster(node_group: int | None) -> None:
    group = os.getpgrp()
    if group != node_group and group != 1:
        # qcluster leads its own group (the node starts it so): the sentinel, pusher, monitor and
        # every worker, this one included. Never the node's group, which may hold other things.
        os.killpg(group, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
