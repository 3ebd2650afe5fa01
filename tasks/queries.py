"""Reading big tasks for display, in a fixed number of queries whatever the page size.

Rows are read with .values() (no model instances) because listing tasks is the hottest read
of every dialect; each dialect shapes these plain dicts into its own answer.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable
from functools import reduce
from typing import Any

from django.db.models import Avg, Count, Exists, Min, OuterRef, Q, QuerySet

from subtasks.choices import TASK_STATE_PRIORITY, State, derive_task_state
from subtasks.models import Subtask
from tasks.models import MTask, Scene, SceneRoi, Task

TASK_COLUMNS = (
    "task_id",
    "task_name",
    "algo_type",
    "run_dt",
    "play_url",
    "source_type",
    "node_count",
    "pull_source_url",
    "description",
    "detector_models",
    "client_name",
    "create_dt",
    "update_dt",
    "store_conf__unid",
    "output",
)
MTASK_COLUMNS = (
    "id",
    "task_id",
    "mtask_unid",
    "name",
    "type",
    "time_interval",
    "start_time",
    "end_time",
    "progress",
)
SCENE_COLUMNS = (
    "id",
    "mtask_id",
    "scene_unid",
    "name",
    "preset",
    "calibration_xml",
    "config_xml",
    "basic_config_xml",
    "link_scenes",
    "algo_type",
    "algo_args",
    "is_record",
    "is_active",
    "vchan_refid",
    "play_urls",
    "is_running",
    "status_reason",
)


def _count_key(state: str) -> str:
    return f"n_{state.lower()}"


STATE_COUNTS = {_count_key(s): Count("subtasks", filter=Q(subtasks__state=s)) for s in State.values}


def task_rows(queryset: QuerySet[Task], extra_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Task rows with `state` (derived) and `state_counts`, in one query."""
    rows = list(
        queryset.values(
            *TASK_COLUMNS, *extra_columns, **STATE_COUNTS, next_start=Min("subtasks__waiting_until")
        )
    )
    for row in rows:
        counts = {state: row.pop(_count_key(state)) for state in State.values}
        row["state_counts"] = counts
        row["state"] = derive_task_state(counts).value
        row["subtask_count"] = sum(counts.values())
        row["store_conf_unid"] = row.pop("store_conf__unid") or ""
    return rows


def attach_trees(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put each task's mtasks (with scenes, with rois) on its row: three queries in all."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    task_ids = [row["task_id"] for row in rows]
    mtasks = list(
        MTask.objects.filter(task_id__in=task_ids).order_by("task_id", "position").values(*MTASK_COLUMNS)
    )
    scenes_by_mtask: dict[int, list[dict[str, Any]]] = defaultdict(list)
    mtask_ids = [m["id"] for m in mtasks]
    scenes = list(
        Scene.objects.filter(mtask_id__in=mtask_ids).order_by("mtask_id", "position").values(*SCENE_COLUMNS)
    )
    rois_by_scene: dict[int, list[str]] = defaultdict(list)
    roi_rows = SceneRoi.objects.filter(scene__mtask_id__in=mtask_ids).order_by("scene_id", "position")
    for scene_id, xml in roi_rows.values_list("scene_id", "xml"):
        rois_by_scene[scene_id].append(xml)
    for scene in scenes:
        scene["rois"] = rois_by_scene.get(scene["id"], [])
        scenes_by_mtask[scene["mtask_id"]].append(scene)
    for mtask in mtasks:
        mtask["scenes"] = scenes_by_mtask.get(mtask["id"], [])
        by_task[mtask["task_id"]].append(mtask)
    for row in rows:
        row["mtasks"] = by_task.get(row["task_id"], [])
    return rows


def task_documents(queryset: QuerySet[Task]) -> list[dict[str, Any]]:
    """Tasks with derived state, counts and the whole mtask tree: five queries in all."""
    return attach_trees(task_rows(queryset))


def task_sources(task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each task's video sources in subtask order, with each subtask's state: one query."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = Subtask.objects.filter(task_id__in=task_ids).order_by("task_id", "position")
    for row in rows.values(
        "task_id",
        "video_channel__vchan_refid",
        "source_url",
        "state",
        "video_time_length",
        "video_begin_time",
        "video_channel__name",
        "status_reason",
        "waiting_until",
    ):
        by_task[row["task_id"]].append(row)
    return by_task


def subtask_rows(queryset: QuerySet[Subtask]) -> list[dict[str, Any]]:
    # The stubs type values() rows as a TypedDict; callers read them as plain dicts.
    return list(
        queryset.values(  # type: ignore[arg-type]
            "id",
            "task_id",
            "position",
            "video_channel__vchan_refid",
            "source_url",
            "state",
            "config_complete",
            "progress",
            "status_reason",
            "rois",
            "calibration_xml",
            "config_xml",
            "algo_args",
            "node__name",
            "attempts",
            "waiting_until",
            "heartbeat_at",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        )
    )


def derived_state_q(states: Iterable[str], link: str = "task") -> Q:
    """A filter on the derived state (docs/state-machine.md): the rows whose subtasks' highest-ranked
    state is one of `states`. `link` leads from a subtask to the filtered row ("task", "task__batch").
    Two EXISTS per state, on the (task, state) index; no row is read into Python."""
    wanted = {State(state) for state in states}
    parts = []
    for state in wanted:
        higher = TASK_STATE_PRIORITY[: TASK_STATE_PRIORITY.index(state)]
        has = Exists(Subtask.objects.filter(**{link: OuterRef("pk")}, state=state))
        above = Exists(Subtask.objects.filter(**{link: OuterRef("pk")}, state__in=higher))
        parts.append(Q(has) & ~Q(above))
    if State.PENDING in wanted:  # no subtask at all shows PENDING
        parts.append(~Q(Exists(Subtask.objects.filter(**{link: OuterRef("pk")}))))
    return reduce(operator.or_, parts, Q(pk__in=[]))


def batch_rows(queryset: QuerySet) -> list[dict[str, Any]]:
    """Batch tasks with the derived state and per-state counts over all their tasks' subtasks: one query."""
    counts = {
        _count_key(s): Count("tasks__subtasks", filter=Q(tasks__subtasks__state=s)) for s in State.values
    }
    rows = list(
        queryset.values(
            "batch_id",
            "name",
            "description",
            "service_name",
            "service_version",
            "resource_order_id",
            "company",
            "is_saved_as_template",
            "schedule",
            "output",
            "config",
            "created_at",
            "updated_at",
            "creator__username",
            **counts,
        )
    )
    for row in rows:
        row["state_counts"] = {state: row.pop(_count_key(state)) for state in State.values}
        row["state"] = derive_task_state(row["state_counts"]).value
    return rows


def batch_sources(batch_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each batch's video sources (its tasks' channels) with group, ROI and task: one query."""
    by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = Subtask.objects.filter(task__batch_id__in=batch_ids).order_by(
        "task__batch_id", "task__create_dt", "task_id", "position"
    )
    for row in rows.values(
        "task__batch_id", "task_id", "task__video_group_id", "task__target_roi", "video_channel__vchan_refid"
    ):
        by_batch[row["task__batch_id"]].append(row)
    return by_batch


def live_snapshot(tasks: QuerySet[Task], with_subtasks: bool) -> list[dict[str, Any]]:
    """What a new websocket subscriber sees first: each task's derived state, per-state counts and
    mean progress, and (for a one-task subscription) each subtask's state and progress; with
    `waiting_until` (a datetime, or None) for what waits for its mtask's window.

    Three queries whatever the number of tasks: the task rows with their counts, the mean
    progress per task, and the subtasks when asked for.
    """
    rows = task_rows(tasks.order_by("-create_dt", "task_id"))
    task_ids = [row["task_id"] for row in rows]
    means = dict(
        Subtask.objects.filter(task_id__in=task_ids)
        .order_by()
        .values("task_id")
        .annotate(mean=Avg("progress"))
        .values_list("task_id", "mean")
    )
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if with_subtasks:
        subtasks = Subtask.objects.filter(task_id__in=task_ids).order_by("task_id", "position")
        for sub in subtasks.values("id", "task_id", "state", "progress", "status_reason", "waiting_until"):
            by_task[sub["task_id"]].append(
                {
                    "subtask_id": sub["id"],
                    "state": sub["state"],
                    "progress": round(sub["progress"] or 0.0, 2),
                    "reason": sub["status_reason"],
                    "waiting_until": sub["waiting_until"],
                }
            )
    snapshot = []
    for row in rows:
        item: dict[str, Any] = {
            "task_id": row["task_id"],
            "state": row["state"],
            "state_counts": row["state_counts"],
            "subtask_count": row["subtask_count"],
            "progress": round(means.get(row["task_id"]) or 0.0, 2),
            "waiting_until": row["next_start"],  # its first waiting subtask's next start
        }
        if with_subtasks:
            item["subtasks"] = by_task[row["task_id"]]
        snapshot.append(item)
    return snapshot
