"""Every subtask state change goes through `transition`; the big-task start/stop and the
configuration steps are built on it. Views, admin actions, consumers and queue jobs call these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subtasks.choices import (
    ACTIVE_STATES,
    STARTABLE_STATES,
    STOP_DIRECTLY,
    STOP_VIA_NODE,
    State,
    can_transition,
)
from subtasks.models import Subtask
from tasks.models import Project, Task
from tasks.services import clean
from vias.lib.announce import announce
from vias.lib.errors import Conflict, NotFound

CONFIG_FIELDS = ("rois", "calibration_xml", "config_xml", "algo_args")


class IllegalTransition(Conflict):
    """A state change the state machine does not allow."""


@dataclass(frozen=True)
class Outcome:
    """What one subtask did in answer to a command on its big task."""

    subtask_id: int
    state: str
    ok: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"subtask_id": self.subtask_id, "state": self.state, "ok": self.ok, "reason": self.reason}


def get_subtask(project: Project, subtask_id: int | str) -> Subtask:
    try:
        pk = int(subtask_id)
    except (TypeError, ValueError):
        raise NotFound(_("no subtask %(id)s") % {"id": subtask_id}, field="subtask_id") from None
    subtask = (
        Subtask.objects.select_related("task", "task__project").filter(pk=pk, task__project=project).first()
    )
    if subtask is None:
        raise NotFound(_("no subtask %(id)s") % {"id": subtask_id}, field="subtask_id")
    return subtask


def transition(subtask: Subtask, target: State, reason: str = "", **fields: Any) -> Subtask:
    """Move one subtask to `target` if the state machine allows it, then announce.

    The UPDATE is conditional on the state read, so two concurrent changes cannot both win.
    """
    current = State(subtask.state)
    if not can_transition(current, target):
        raise IllegalTransition(
            _("subtask %(id)s cannot go from %(from)s to %(to)s")
            % {"id": subtask.pk, "from": current, "to": target}
        )
    now = timezone.now()
    changes: dict[str, Any] = {"state": target, "status_reason": reason, "updated_at": now, **fields}
    if target == State.RUNNING and current == State.STARTING:
        changes.setdefault("started_at", now)
    if target in (State.STOPPED, State.SUCCEEDED, State.FAILED):
        changes.setdefault("finished_at", now)
    updated = Subtask.objects.filter(pk=subtask.pk, state=current).update(**changes)
    if not updated:
        state_now = Subtask.objects.filter(pk=subtask.pk).values_list("state", flat=True).first()
        if state_now is None:  # deleted meanwhile: a 404, not an unhandled DoesNotExist
            raise NotFound(_("no subtask %(id)s") % {"id": subtask.pk}, field="subtask_id")
        subtask.state = state_now
        raise IllegalTransition(
            _("subtask %(id)s changed state meanwhile (now %(state)s)")
            % {"id": subtask.pk, "state": subtask.state}
        )
    for name, value in changes.items():
        setattr(subtask, name, value)
    _announce_state(subtask, current)
    return subtask


def _announce_state(subtask: Subtask, previous: State) -> None:
    task = subtask.task
    announce(
        task.project.project_id,
        "subtask.state",
        {
            "task_id": task.task_id,
            "subtask_id": subtask.pk,
            "state": subtask.state,
            "previous": previous,
            "reason": subtask.status_reason,
        },
        task_id=task.task_id,
    )


@transaction.atomic
def configure_subtask(subtask: Subtask, spec: dict[str, Any]) -> Subtask:
    """Set a subtask's ROIs, calibration, config and algo_args (validated by the model)."""
    subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
    for name in CONFIG_FIELDS:
        if name in spec:
            setattr(subtask, name, spec[name])
    clean(subtask, "", exclude=["task", "video_channel", "scene", "node"])
    subtask.save(update_fields=[*CONFIG_FIELDS, "updated_at"])
    announce(
        subtask.task.project.project_id,
        "subtask.configured",
        {"task_id": subtask.task_id, "subtask_id": subtask.pk},
        task_id=subtask.task_id,
    )
    return subtask


@transaction.atomic
def mark_config_complete(subtask: Subtask) -> Subtask:
    """The operator's "config complete": the subtask may now be dispatched."""
    subtask = Subtask.objects.select_for_update().select_related("task__project").get(pk=subtask.pk)
    Subtask.objects.filter(pk=subtask.pk).update(config_complete=True)
    subtask.config_complete = True
    if subtask.state == State.PENDING:
        transition(subtask, State.CONFIGURED)
    return subtask


@transaction.atomic
def delete_subtask(subtask: Subtask) -> None:
    if subtask.state in ACTIVE_STATES:
        raise Conflict(
            _("subtask %(id)s is %(state)s; stop it first") % {"id": subtask.pk, "state": subtask.state}
        )
    task, pk = subtask.task, subtask.pk
    subtask.delete()
    announce(
        task.project.project_id,
        "subtask.deleted",
        {"task_id": task.task_id, "subtask_id": pk},
        task_id=task.task_id,
    )


@transaction.atomic
def start_task(task: Task) -> list[Outcome]:
    """Dispatch every config-complete subtask that is not running; report each subtask."""
    subtasks = list(Subtask.objects.select_for_update().select_related("task__project").filter(task=task))
    if not subtasks:
        raise Conflict(_("the task has no subtasks to start"))
    outcomes = [_start_one(subtask) for subtask in subtasks]
    if not any(o.ok for o in outcomes) and not any(s.state in ACTIVE_STATES for s in subtasks):
        raise Conflict(
            _("no subtask is config-complete; configure the subtasks and mark them config-complete first")
        )
    return outcomes


def _start_one(subtask: Subtask) -> Outcome:
    if subtask.state in ACTIVE_STATES:
        return Outcome(subtask.pk, subtask.state, True, _("already %(state)s") % {"state": subtask.state})
    if not subtask.config_complete:
        return Outcome(subtask.pk, subtask.state, False, _("not config-complete"))
    if subtask.state not in STARTABLE_STATES:
        return Outcome(
            subtask.pk, subtask.state, False, _("cannot start from %(state)s") % {"state": subtask.state}
        )
    transition(subtask, State.STARTING, attempts=0, progress=0.0, heartbeat_at=None, finished_at=None)
    return Outcome(subtask.pk, subtask.state, True)


@transaction.atomic
def stop_task(task: Task) -> list[Outcome]:
    """Stop every active subtask: not yet picked up -> STOPPED; on a node -> STOPPING (the node confirms)."""
    subtasks = list(Subtask.objects.select_for_update().select_related("task__project").filter(task=task))
    return [_stop_one(subtask) for subtask in subtasks]


def _stop_one(subtask: Subtask) -> Outcome:
    if subtask.state in STOP_DIRECTLY:
        transition(subtask, State.STOPPED, _("stopped before it started"))
    elif subtask.state in STOP_VIA_NODE:
        transition(subtask, State.STOPPING, _("stop requested"))
    else:
        return Outcome(subtask.pk, subtask.state, True, _("not running"))
    return Outcome(subtask.pk, subtask.state, True)
