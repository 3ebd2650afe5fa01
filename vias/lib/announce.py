"""Announcing changes: after the transaction commits, send them to the channel layer.

Service functions write, then call `announce`; websocket subscribers (and later webhooks)
hear about it. An unreachable Redis never undoes or fails the write: it is logged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from asgiref.sync import async_to_sync
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
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # noqa: BLE001 - Redis down must not break the write that already happened
            log.warning("could not announce %s to %s: %s", message.get("kind"), group, _reason())
            return
