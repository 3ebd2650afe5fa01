"""The canonical subtask state machine and the big task's derived state (docs/state-machine.md).

Every API maps these states to its own words; nothing else defines states or transitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.db import models
from django.utils.translation import gettext_lazy as _


class State(models.TextChoices):
    PENDING = "PENDING", _("pending configuration")
    CONFIGURED = "CONFIGURED", _("configured")
    STARTING = "STARTING", _("starting")
    RUNNING = "RUNNING", _("running")
    STOPPING = "STOPPING", _("stopping")
    STOPPED = "STOPPED", _("stopped")
    SUCCEEDED = "SUCCEEDED", _("succeeded")
    FAILED = "FAILED", _("failed")
    ABNORMAL = "ABNORMAL", _("abnormal")
    RECOVERING = "RECOVERING", _("recovering")


S = State

# from-state -> the states it may move to. Anything else is an illegal transition.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.CONFIGURED}),
    S.CONFIGURED: frozenset({S.PENDING, S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED, S.ABNORMAL}),
    S.RUNNING: frozenset({S.STOPPING, S.SUCCEEDED, S.FAILED, S.ABNORMAL}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED}),
    S.STOPPED: frozenset({S.STARTING, S.PENDING, S.CONFIGURED}),
    S.SUCCEEDED: frozenset({S.STARTING, S.PENDING, S.CONFIGURED}),
    S.FAILED: frozenset({S.STARTING, S.PENDING, S.CONFIGURED}),
    S.ABNORMAL: frozenset({S.RECOVERING, S.STARTING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.RECOVERING: frozenset({S.RUNNING, S.ABNORMAL, S.STOPPING, S.FAILED}),
}

# A subtask in one of these has (or may have) something running on a node.
ACTIVE_STATES = frozenset({S.STARTING, S.RUNNING, S.STOPPING, S.ABNORMAL, S.RECOVERING})
# Starting a big task dispatches its config-complete subtasks that are in one of these.
STARTABLE_STATES = frozenset({S.CONFIGURED, S.STOPPED, S.SUCCEEDED, S.FAILED})
# Stopping a big task moves these: not yet picked up -> STOPPED, running -> STOPPING.
STOP_DIRECTLY = frozenset({S.STARTING})
STOP_VIA_NODE = frozenset({S.RUNNING, S.ABNORMAL, S.RECOVERING})
FINISHED_STATES = frozenset({S.STOPPED, S.SUCCEEDED, S.FAILED})

# The big task shows the highest-ranked state among its subtasks (docs/state-machine.md):
# what needs attention first, then what is alive, then how things ended, then setup.
TASK_STATE_PRIORITY: tuple[State, ...] = (
    S.ABNORMAL,
    S.RECOVERING,
    S.RUNNING,
    S.STARTING,
    S.STOPPING,
    S.FAILED,
    S.STOPPED,
    S.PENDING,
    S.CONFIGURED,
    S.SUCCEEDED,
)


def can_transition(current: str, target: str) -> bool:
    return State(target) in TRANSITIONS[State(current)]


def derive_task_state(counts: Mapping[str, int]) -> State:
    """The big task's state from its per-state subtask counts. No subtasks: PENDING."""
    for state in TASK_STATE_PRIORITY:
        if counts.get(state, 0) > 0:
            return state
    return S.PENDING


def count_states(states: Iterable[str]) -> dict[str, int]:
    """Per-state counts with every state present (0 where none), in the canonical order."""
    counts = {state.value: 0 for state in State}
    for state in states:
        counts[State(state).value] += 1
    return counts
