"""A node's machine load for the System page: CPU, memory and, where nvidia-smi answers, each GPU's
utilisation and memory. The node loop publishes a sample with each heartbeat (every 5 s) under a
Redis key that expires, so a node that stopped shows no stale figures.

Redis key (prefix settings.VIAS_CONTROL_PREFIX): <p>:nodestats:<node name>, JSON, expires after TTL.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from typing import Any

from django.conf import settings

from analysis import control

log = logging.getLogger(__name__)

TTL = 30
NVIDIA_QUERY = "name,utilization.gpu,memory.used,memory.total"


def _key(node_name: str) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:nodestats:{node_name}"


def gpus() -> list[dict[str, Any]]:
    """One entry per GPU from nvidia-smi; [] without one (or without the tool)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        done = subprocess.run(
            [tool, f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for row in done.stdout.strip().splitlines():
        name, util, used, total = (part.strip() for part in row.split(","))
        found.append(
            {
                "name": name,
                "util_percent": _number(util),
                "memory_used_mb": _number(used),
                "memory_total_mb": _number(total),
            }
        )
    return found


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]" on some boards


def sample() -> dict[str, Any]:
    import psutil

    memory = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),  # since the previous sample
        "cpu_count": psutil.cpu_count(),
        "memory_percent": memory.percent,
        "memory_used_mb": round((memory.total - memory.available) / 2**20),
        "memory_total_mb": round(memory.total / 2**20),
        "gpus": gpus(),
    }


def publish(node_name: str) -> None:
    control.client().set(_key(node_name), json.dumps(sample()), ex=TTL)


def read(node_names: list[str]) -> dict[str, dict[str, Any]]:
    """The latest sample of each node that published one lately."""
    if not node_names:
        return {}
    try:
        values = control.client().mget([_key(name) for name in node_names])
    except Exception:  # noqa: BLE001 - Redis down: the page still shows the database's view
        log.warning("node samples unavailable", exc_info=True)
        return {}
    return {name: json.loads(value) for name, value in zip(node_names, values, strict=True) if value}


def queue_depths(node_names: list[str]) -> dict[str, int]:
    """Jobs waiting per node queue (django-q2 keeps one Redis list per cluster name)."""
    from django_q.brokers import get_broker

    depths = {}
    for name in node_names:
        try:
            depths[name] = int(get_broker(name).queue_size() or 0)
        except Exception:  # noqa: BLE001 - Redis down: that depth is unknown, the rest still answers
            continue
    return depths
