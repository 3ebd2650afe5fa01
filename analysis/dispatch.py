"""Dispatching subtasks to analysis nodes, and the reaper that notices dead ones.

A node is a django-q2 cluster with its own queue (`manage.py node`). Dispatch picks the live
node with the most free capacity and puts one `analysis.jobs.run_subtask` job on that node's
queue. A Redis queue forgets a job whose worker dies, so liveness comes from heartbeats: the
job refreshes `Subtask.heartbeat_at` every second, and the reaper (run by every node's loop)
marks a subtask whose heartbeat stopped ABNORMAL and dispatches it again, a bounded number of
times (docs/analysis-engine.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from analysis.hosting import enqueue_to_queue, try_adopt
from analysis.models import Detector
from subtasks.choices import State
from subtasks.models import Node, Subtask
from subtasks.services import IllegalTransition, transition
from tasks.choices import AlgoType, DetectorModel
from tasks.models import Task

log = logging.getLogger(__name__)

# What a task analyses when it names no detector models (VCS `algorithms[].models` does).
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    AlgoType.TRAFFIC: (DetectorModel.MOTOR, DetectorModel.NO_MOTOR),
    AlgoType.PASSENGER_FLOW: (DetectorModel.BODY,),
    AlgoType.SECURITY: (DetectorModel.BODY,),
    AlgoType.ILLEGAL_PARKING: (DetectorModel.MOTOR,),
    AlgoType.FACE: (DetectorModel.FACE,),
}
# Subtasks a node is busy with (counted against its capacity).
BUSY_STATES = (State.STARTING, State.RUNNING, State.RECOVERING, State.ABNORMAL, State.STOPPING)
WAITING_REASON = gettext_noop("waiting for a free analysis node")


def required_categories(task: Task) -> list[str]:
    return list(task.detector_models or DEFAULT_CATEGORIES[task.algo_type])


def missing_categories(task: Task) -> list[str]:
    """Categories the task asks for that no enabled registered detector provides."""
    provided = set(built_in_categories())
    for classes in Detector.objects.filter(enabled=True).values_list("classes", flat=True):
        provided.update(spec.get("category") for spec in classes.values())
    return [category for category in required_categories(task) if category not in provided]


def built_in_categories() -> set[str]:
    """OpenCV's Haar cascade finds faces without a registered model, where this OpenCV build has
    it (the pinned opencv-python-headless 4.14 does; OpenCV 5 wheels do not)."""
    # Imported here: OpenCV is loaded by the processes that analyse, not by every web process
    # that registers the engine at start-up.
    from analysis.detect.face import available

    return {DetectorModel.FACE} if available() else set()


def node_is_live(last_heartbeat: datetime | None, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return last_heartbeat is not None and now - last_heartbeat < timedelta(seconds=settings.VIAS_NODE_TIMEOUT)


def live_nodes(now: datetime | None = None):
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.VIAS_NODE_TIMEOUT)
    return Node.objects.filter(last_heartbeat__gte=cutoff, draining=False).annotate(
        busy=Count("subtasks", filter=Q(subtasks__state__in=BUSY_STATES))
    )


def pick_node(now: datetime | None = None) -> Node | None:
    """The live node with the most free capacity, or None when all are full."""
    candidates = [node for node in live_nodes(now) if node.busy < node.capacity]
    return max(candidates, key=lambda node: (node.capacity - node.busy, -node.pk), default=None)


def dispatch(subtask_id: int, count_attempt: bool = True) -> Node | None:
    """Put a STARTING / RECOVERING subtask on a node's queue; without a free node it waits
    (status_reason says so) and the node loops dispatch it when capacity frees up."""
    with transaction.atomic():
        subtask = Subtask.objects.select_for_update().filter(pk=subtask_id).first()
        if subtask is None or subtask.state not in (State.STARTING, State.RECOVERING):
            return None
        # One dispatcher at a time, so two cannot both fill a node's last free slot.
        list(Node.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        node = pick_node()
        now = timezone.now()
        if node is None:
            Subtask.objects.filter(pk=subtask_id).update(node=None, status_reason=_(WAITING_REASON))
            return None
        attempts = subtask.attempts + (1 if count_attempt else 0)
        # heartbeat_at doubles as "queued at": a job that never starts is reaped like a dead one.
        reason = "" if subtask.status_reason == _(WAITING_REASON) else subtask.status_reason
        Subtask.objects.filter(pk=subtask_id).update(
            node=node, heartbeat_at=now, attempts=attempts, status_reason=reason
        )
        transaction.on_commit(lambda: enqueue(subtask_id, node.name))
    return node


def enqueue(subtask_id: int, node_name: str, resume_frame: int = 0) -> None:
    """To a worker of that node already hosting subtasks, if one has room (analysis/hosting.py);
    otherwise onto the node's django-q2 queue."""
    if not try_adopt(subtask_id, node_name, resume_frame):
        enqueue_to_queue(subtask_id, node_name, resume_frame)


def dispatch_waiting() -> int:
    """Dispatch every subtask waiting for a node; the number that found one."""
    waiting = Subtask.objects.filter(state__in=(State.STARTING, State.RECOVERING), node__isnull=True)
    return sum(1 for pk in waiting.values_list("pk", flat=True) if dispatch(pk) is not None)


def reap(now: datetime | None = None) -> list[int]:
    """Subtasks whose job stopped heartbeating: ABNORMAL with the reason, then dispatched again
    until VIAS_MAX_DISPATCH_ATTEMPTS, then FAILED. Returns the ids reaped."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.VIAS_HEARTBEAT_TIMEOUT)
    stale = Subtask.objects.select_related("task__project", "node").filter(
        state__in=(State.STARTING, State.RUNNING, State.RECOVERING, State.STOPPING),
        node__isnull=False,
        heartbeat_at__lt=cutoff,
    )
    reaped = []
    for subtask in stale:
        reason = _("no heartbeat from node %(node)s since %(at)s") % {
            "node": subtask.node.name,
            "at": subtask.heartbeat_at.isoformat(timespec="seconds"),
        }
        try:
            _recover(subtask, reason)
        except IllegalTransition:
            continue  # it moved meanwhile (the job came back to life, or a stop won)
        reaped.append(subtask.pk)
    return reaped


def _recover(subtask: Subtask, reason: str) -> None:
    with transaction.atomic():
        if subtask.state == State.STOPPING:
            transition(subtask, State.STOPPED, reason, node=None)
            return
        if subtask.state != State.ABNORMAL:
            transition(subtask, State.ABNORMAL, reason)
        if subtask.attempts >= settings.VIAS_MAX_DISPATCH_ATTEMPTS:
            message = _("%(reason)s; gave up after %(n)d attempts") % {
                "reason": reason,
                "n": subtask.attempts,
            }
            transition(subtask, State.FAILED, message, node=None)
            return
        transition(subtask, State.STARTING, reason, node=None)
    log.warning("subtask %s: %s; dispatching again", subtask.pk, reason)
    dispatch(subtask.pk)
