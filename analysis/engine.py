"""The engine's side of the core's port (subtasks/engine.py), registered at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from analysis import control, dispatch
from subtasks.engine import Ack
from subtasks.models import Node
from tasks.models import StoreConf, Task


class AnalysisEngine:
    """Dispatch, detector categories and the control channel, as the core asks for them."""

    def dispatch(self, subtask_id: int, count_attempt: bool = True) -> Node | None:
        return dispatch.dispatch(subtask_id, count_attempt=count_attempt)

    def dispatch_many(self, subtask_ids: Sequence[int]) -> dict[int, Node | None]:
        return dispatch.dispatch_many(subtask_ids)

    def missing_categories(self, task: Task) -> list[str]:
        return dispatch.missing_categories(task)

    def notify_subtasks(self, subtask_ids: Iterable[int], command: dict[str, Any]) -> None:
        control.notify_subtasks(subtask_ids, command)

    def send_to_subtasks(
        self, subtask_ids: Iterable[int], command: dict[str, Any], timeout: float | None = None
    ) -> list[Ack]:
        return control.send_to_subtasks(subtask_ids, command, timeout)

    def push_store_conf(self, store_conf: StoreConf, timeout: float | None = None) -> list[Ack]:
        return control.push_store_conf(store_conf, timeout)
