"""Task-state callbacks (the seed's 任务回调): a task whose output names a `callback` URL hears of
every state change of its subtasks, and of its own derived state when that changes.

Called by `transition` inside its transaction; the message is queued on django-q2 after commit
by dotted path (the core never imports the engine), and `analysis.outputs.deliver_callback`
POSTs it with the webhook's delivery, retry and SSRF rules (docs/outputs.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from subtasks.choices import State, derive_task_state
from subtasks.models import Subtask

log = logging.getLogger(__name__)

CALLBACK_TASK = "analysis.outputs.deliver_callback"


def wants_callbacks(output: Any) -> bool:
    return isinstance(output, dict) and isinstance(output.get("callback"), dict)


def state_changed(subtask: Subtask, previous: State) -> None:
    """Queue the subtask's change and, when it changes the task's derived state, the task's."""
    task = subtask.task
    if not wants_callbacks(task.output):
        return
    states = Counter(Subtask.objects.filter(task=task).values_list("state", flat=True))
    now_state = derive_task_state(states)
    states[subtask.state] -= 1
    states[previous] += 1
    before = derive_task_state(states)
    at = timezone.now().isoformat()
    messages = [
        {
            "kind": "subtask.state",
            "task_id": task.task_id,
            "subtask_id": subtask.pk,
            "state": subtask.state,
            "previous": str(previous),
            "reason": subtask.status_reason,
            "task_state": now_state,
            "at": at,
        }
    ]
    if now_state != before:
        messages.append(
            {"kind": "task.state", "task_id": task.task_id, "state": now_state, "previous": before, "at": at}
        )
    for message in messages:
        transaction.on_commit(partial(enqueue, task.task_id, message), robust=True)


def enqueue(task_id: str, message: dict[str, Any], attempt: int = 1) -> None:
    from django_q.tasks import async_task

    try:
        async_task(CALLBACK_TASK, task_id, message, attempt, group="callback")
    except Exception as exc:  # noqa: BLE001 - Redis down must not break a state change
        log.warning("could not queue the state callback of task %s: %s", task_id, exc)
