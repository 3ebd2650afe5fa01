"""The analysis engine as the core sees it: a port that the engine fills in at start-up.

The core (start, stop, configure) needs the engine to dispatch subtasks, to say which detector
categories exist and to reach running subtasks, but the engine sits above the core and imports
it, so the core never imports the engine. `analysis.apps.AnalysisConfig.ready()` registers the
engine here; the core calls `engine()` (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:  # models sit below the core: importing them for types is no upward import
    from subtasks.models import Node
    from tasks.models import StoreConf, Task

ACKNOWLEDGED = "acknowledged"
REFUSED = "refused"
TIMEOUT = "timeout"
APPLIED = "applied"


@dataclass(frozen=True)
class Ack:
    """One subtask's answer to one command sent through the engine's control channel."""

    subtask_id: int
    status: str
    reason: str = ""
    command_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (ACKNOWLEDGED, APPLIED)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class Engine(Protocol):
    """What the core asks of the analysis engine."""

    def dispatch(self, subtask_id: int, count_attempt: bool = True) -> Node | None:
        """Put a STARTING / RECOVERING subtask on a node's queue (None: it waits for a node)."""
        ...

    def dispatch_many(self, subtask_ids: Sequence[int]) -> dict[int, Node | None]:
        """The same for many waiting subtasks at once (a task's start): each one's node or None."""
        ...

    def missing_categories(self, task: Task) -> list[str]:
        """The detector categories the task needs that no registered detector provides."""
        ...

    def notify_subtasks(self, subtask_ids: Iterable[int], command: dict[str, Any]) -> None:
        """Tell running subtasks without waiting for their acknowledgement."""
        ...

    def send_to_subtasks(
        self, subtask_ids: Iterable[int], command: dict[str, Any], timeout: float | None = None
    ) -> list[Ack]:
        """Tell running subtasks and wait for each acknowledgement (in the order of the ids)."""
        ...

    def push_store_conf(self, store_conf: StoreConf, timeout: float | None = None) -> list[Ack]:
        """Send a replaced storage config to every running subtask of the tasks using it."""
        ...


_registered: list[Engine] = []


def register(engine: Engine) -> None:
    """Called once by the engine's AppConfig.ready(); a later call replaces the engine (tests)."""
    _registered[:] = [engine]


def engine() -> Engine:
    if not _registered:
        raise ImproperlyConfigured("no analysis engine is registered: is 'analysis' in INSTALLED_APPS?")
    return _registered[0]
