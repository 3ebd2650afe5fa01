"""Task-state callbacks (the seed's 任务回调): a task whose output names a `callback` URL hears of
every state change of its subtasks, and of its own derived state when that changes.

`state_changed` is called by `transition` inside its transaction; `subtasks_changed` by the two
writes that change a task's subtasks without a transition (the re-split of `tasks.services`, and
`delete_subtask`); the message is queued on django-q2 after commit
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


def _derived(task: Any) -> State:
    return derive_task_state(Counter(Subtask.objects.filter(task=task).values_list("state", flat=True)))


def task_state_before(task: Any) -> State | None:
    """The task's derived state before its subtasks are replaced or removed without a transition
    (a re-split over other channels, a deleted subtask); None when it has no callback (nothing read)."""
    return _derived(task) if wants_callbacks(task.output) else None


def subtasks_changed(task: Any, before: State | None, reason: str) -> None:
    """After such a change: queue a `task.state` message when the derived state moved. The
    subtasks that went or came have no message of their own (they made no transition)."""
    if before is None or not wants_callbacks(task.output):
        return
    now_state = _derived(task)
    if now_state != before:
        message = {
            "kind": "task.state",
            "task_id": task.task_id,
            "state": now_state,
            "previous": str(before),
            "reason": reason,
            "at": timezone.now().isoformat(),
        }
        transaction.on_commit(partial(enqueue, task.task_id, message), robust=True)


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
