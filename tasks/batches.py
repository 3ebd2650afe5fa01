"""VIAS v2 batch tasks in the core: a batch and one task per video source, made, changed,
deleted, started and stopped together (docs/dialects.md). The tasks are built by the one task
builder (tasks.services.create_tasks); start and stop are the one start_task / stop_task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from subtasks import services as subtask_services
from subtasks.models import Subtask
from tasks import constants, schedules
from tasks.building import pick
from tasks.choices import SourceType
from tasks.models import BatchTask, Project, Task
from tasks.services import create_tasks
from vias.lib.announce import announce
from vias.lib.errors import Conflict, Invalid, NotFound, ServiceError, clean

# What a batch task's spec may set: the fields it copies onto its tasks, and its own.
BATCH_FIELDS = (*BatchTask.TASK_FIELDS, "name", "is_saved_as_template")


@dataclass
class BatchResult:
    """A batch operation's answer: v2 {total_count, failed_count, succeed_count, id, error_list}."""

    batch: BatchTask
    total: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def succeeded(self) -> int:
        return self.total - len(self.errors)


def get_batch(project: Project, batch_id: str) -> BatchTask:
    batch = BatchTask.objects.for_project(project).filter(batch_id=batch_id).first()
    if batch is None:
        raise NotFound(_("no batch task %(id)s") % {"id": batch_id}, field="batch_id")
    return batch


def _batch_task_specs(
    batch: BatchTask, sources: list[dict[str, Any]], task_defaults: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """One task spec per video source (those listed twice are refused with a reason)."""
    common = {
        **task_defaults,
        **{name: getattr(batch, name) for name in BatchTask.TASK_FIELDS},
        "run_dt": timezone.now(),
        "source_type": SourceType.PULL_VIDEO_STREAM,
        "batch": batch,
        "config_complete": True,
    }
    base = batch.name[: constants.V2_MAX_NAME_LENGTH - 6]
    specs, labels, errors, seen = [], [], [], set()
    for index, source in enumerate(sources):
        label = source.get("label") or str(index)
        if source["vchan_refid"] in seen:
            errors.append(f"{label}: " + _("a video source is listed twice"))
            continue
        seen.add(source["vchan_refid"])
        specs.append(
            {
                **common,
                "task_name": f"{base}_{index + 1}",
                "vchans": [{"vchan_refid": source["vchan_refid"]}],
                "video_group_id": source.get("video_group_id", ""),
                "target_roi": source.get("target_roi", ""),
            }
        )
        labels.append(label)
    return specs, labels, errors


def _add_batch_tasks(
    batch: BatchTask, sources: list[dict[str, Any]], task_defaults: dict[str, Any]
) -> BatchResult:
    specs, labels, errors = _batch_task_specs(batch, sources, task_defaults)
    made = create_tasks(batch.project, specs, validated=("output", "schedule", "config"))
    errors += [f"{labels[index]}: {message}" for index, message in made.errors]
    return BatchResult(batch, total=len(sources), errors=errors)


@transaction.atomic
def create_batch(
    project: Project,
    spec: dict[str, Any],
    sources: list[dict[str, Any]],
    task_defaults: dict[str, Any] | None = None,
) -> BatchResult:
    """A batch task and one task per video source, in one transaction with bulk inserts.

    spec: BATCH_FIELDS; sources: [{vchan_refid, video_group_id?, target_roi?, label?}], where
    `label` names the source in error messages. A source that fails is counted and listed.
    task_defaults: task fields every task of the batch starts from (v2: what its algorithm
    service stands for, tasks/api/v2/algorithms.py).
    """
    batch = BatchTask(project=project, **pick(spec, BATCH_FIELDS))
    clean(batch, "", exclude=["project", "creator"])
    batch.save()
    result = _add_batch_tasks(batch, sources, task_defaults or {})
    announce(project.project_id, "batch.created", {"batch_id": batch.batch_id})
    return result


def _refuse_if_running(batch: BatchTask, message: str) -> None:
    if Subtask.objects.filter(task__batch=batch).active().exists():
        raise Conflict(message)


def _delete_batch_tasks(batch: BatchTask) -> int:
    task_ids = list(Task.objects.filter(batch=batch).values_list("task_id", flat=True))
    Subtask.objects.filter(task_id__in=task_ids).delete()
    Task.objects.filter(task_id__in=task_ids).delete()
    for task_id in task_ids:
        schedules.remove(task_id)
    return len(task_ids)


@transaction.atomic
def update_batch(
    batch: BatchTask,
    spec: dict[str, Any],
    sources: list[dict[str, Any]] | None = None,
    task_defaults: dict[str, Any] | None = None,
) -> BatchResult:
    """Change a batch's settings (copied onto its tasks); `sources` replaces its tasks. Refused
    while one of its tasks runs; service_name cannot change."""
    batch = BatchTask.objects.select_for_update().select_related("project").get(pk=batch.pk)
    if spec.get("service_name", batch.service_name) != batch.service_name:
        raise Invalid(
            _("cannot change (it is %(name)s)") % {"name": batch.service_name}, field="service_name"
        )
    _refuse_if_running(batch, _("stop the batch task before changing it: some of its tasks are running"))
    for name, value in pick(spec, BATCH_FIELDS).items():
        setattr(batch, name, value)
    clean(batch, "", exclude=["project", "creator"])
    batch.save()
    announce(batch.project.project_id, "batch.updated", {"batch_id": batch.batch_id})
    if sources is not None:
        _delete_batch_tasks(batch)
        return _add_batch_tasks(batch, sources, task_defaults or {})
    tasks = Task.objects.filter(batch=batch)
    changes = {name: getattr(batch, name) for name in BatchTask.TASK_FIELDS if name != "creator"}
    total = tasks.update(**changes, update_dt=timezone.now())
    for task in tasks.filter(schedule_active=True):
        schedules.sync(task)
    return BatchResult(batch, total=total)


@transaction.atomic
def delete_batch(batch: BatchTask) -> BatchResult:
    """Delete a batch with its tasks and their subtasks. Refused while one of its tasks runs."""
    batch = BatchTask.objects.select_for_update().select_related("project").get(pk=batch.pk)
    _refuse_if_running(batch, _("stop the batch task before deleting it: some of its tasks are running"))
    total = _delete_batch_tasks(batch)
    project_id, batch_id = batch.project.project_id, batch.batch_id
    batch.delete()
    announce(project_id, "batch.deleted", {"batch_id": batch_id})
    return BatchResult(BatchTask(batch_id=batch_id), total=total)


def run_batch(batch: BatchTask, action: str) -> BatchResult:
    """Start or stop every task of a batch (the core start_task / stop_task); a task that cannot
    is counted and listed, the others go on."""
    act = subtask_services.start_task if action == schedules.START else subtask_services.stop_task
    tasks = list(Task.objects.filter(batch=batch).select_related("project").order_by("task_name", "task_id"))
    result = BatchResult(batch, total=len(tasks))
    for task in tasks:
        try:
            with transaction.atomic():
                act(task)
        except ServiceError as exc:
            result.errors.append(f"{task.task_id}: {exc.message}")
    return result
