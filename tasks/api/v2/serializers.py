"""VIAS v2 request bodies in, the core's spec out, and back (docs/dialects.md).

These check the shape of a request (types, required keys, the seeds' lengths and array sizes);
the rules about values (names, regexes, outputs, schedules) live on the models and validators
and run in the services, as for every dialect. Unknown fields are ignored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from subtasks.choices import ACTIVE_STATES, State
from subtasks.models import Subtask
from tasks import batches, constants, queries
from tasks.api.v2.algorithms import service_spec
from tasks.choices import SourceType
from tasks.validators import (
    validate_alg_id,
    validate_batch_id,
    validate_title,
    validate_unid,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# ---- states ------------------------------------------------------------------------------------------

# The canonical derived state (docs/state-machine.md) in v2 words.
V2_STATE = {
    State.PENDING: "PENDING",
    State.CONFIGURED: "PENDING",
    State.STARTING: "STARTING",
    State.RUNNING: "RUNNING",
    State.STOPPING: "STOPPING",
    State.STOPPED: "STOPPED",
    State.SUCCEEDED: "SUCCEEDED",
    State.FAILED: "FAILED",
    State.ABNORMAL: "ABNORMAL",
    State.RECOVERING: "RECOVERING",
}
TASK_STATES = (
    "PENDING",
    "RECOVERING",
    "STARTING",
    "UPGRADING",
    "CREATE_FAILED",
    "START_FAILED",
    "RUNNING",
    "STOPPING",
    "STOPPED",
    "ABNORMAL",
    "SUCCEEDED",
    "FAILED",
    "DELETING",
    "FREEZING",
    "FROZEN",
)
LIST_STATES = (*TASK_STATES, "SCHEDULING", "LACK_OF_RESOURCES")
SCHEDULING = "SCHEDULING"
# A scheduled task between its windows: activated, nothing alive.
IDLE_STATES = [s for s in State if s not in ACTIVE_STATES]


def state_filter(v2_state: str, link: str = "task") -> Q:
    """The rows whose derived state shows as `v2_state`; states the core never reaches match none."""
    if v2_state == SCHEDULING:
        return Q(schedule_active=True) & queries.derived_state_q(IDLE_STATES, link)
    canonical = [state for state, word in V2_STATE.items() if word == v2_state]
    return queries.derived_state_q(canonical, link)


def v2_state(state: str) -> str:
    return V2_STATE[State(state)]


# ---- requests ----------------------------------------------------------------------------------------


class DataCategoryMixin(serializers.Serializer):
    data_category = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=10
    )


class ObsIn(DataCategoryMixin):
    bucket = serializers.CharField(max_length=63, trim_whitespace=False)
    path = serializers.CharField(max_length=1023, allow_blank=True, trim_whitespace=False)


class DisIn(DataCategoryMixin):
    stream_name = serializers.CharField(max_length=64, trim_whitespace=False)


class WebhookIn(DataCategoryMixin):
    url = serializers.CharField(max_length=1000, trim_whitespace=False)
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False))


class OutputIn(serializers.Serializer):
    """TaskOutput: obs, dis, webhook, event_center; at least one (checked on the model)."""

    obs = ObsIn(required=False)
    dis = DisIn(required=False)
    webhook = WebhookIn(required=False)
    event_center = serializers.BooleanField(required=False)
    # Ours: task and subtask state changes POSTed like webhooks (docs/outputs.md).
    callback = serializers.DictField(required=False)


class ConfigIn(serializers.Serializer):
    common = serializers.DictField(required=False)


class WindowIn(serializers.Serializer):
    begin_at = serializers.CharField(max_length=8)
    end_at = serializers.CharField(max_length=8)


class ScheduleIn(serializers.Serializer):
    """TaskSchedule, weekly only; the rules are tasks.validators.validate_task_schedule's."""

    type = serializers.CharField(max_length=16)
    timezone = serializers.CharField(max_length=8)
    days_of_week = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=7)
    days_of_month = serializers.ListField(required=False)
    periods = serializers.ListField(
        child=serializers.ListField(child=WindowIn(), max_length=24), required=False, max_length=7
    )


class InputDataIn(serializers.Serializer):
    video_source_id = serializers.CharField(max_length=64, required=False)
    url = serializers.CharField(max_length=1000, required=False)


INPUT_TYPES = ("video_source", "url")


class InputIn(serializers.Serializer):
    """TaskInput: video sources managed here (video_source) or stream / store URLs (url)."""

    type = serializers.ChoiceField(
        choices=INPUT_TYPES,
        error_messages={"invalid_choice": gettext_lazy("{input} is not supported; use video_source or url")},
    )
    data = InputDataIn(many=True, allow_empty=False, max_length=constants.V2_MAX_INPUTS)  # type: ignore[assignment]  # the v2 body's own `data`

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A partial update (PUT) skips required fields, but an input given there is given whole.
        missing = [name for name in ("type", "data") if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: [_("This field is required.")] for name in missing})
        key = "video_source_id" if attrs["type"] == "video_source" else "url"
        for index, item in enumerate(attrs["data"]):
            if not item.get(key):
                # An int key: the error renders as data[0].<key> (flatten_errors); the stubs only know str keys.
                raise serializers.ValidationError({"data": {index: {key: [_("This field is required.")]}}})  # type: ignore[dict-item]
        return attrs


def config_target_roi(config: dict[str, Any]) -> str:
    roi = (config.get("common") or {}).get("target_roi", "")
    return roi if isinstance(roi, str) else ""


def url_refid(url: str) -> str:
    """The video channel an input URL becomes: one per URL, shared by the tasks that use it."""
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


def vchans_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    if data["type"] == "video_source":
        return [{"vchan_refid": item["video_source_id"]} for item in data["data"]]
    return [{"vchan_refid": url_refid(item["url"]), "url": item["url"]} for item in data["data"]]


class TaskIn(serializers.Serializer):
    """POST /v2/{project_id}/services/{service_name}/tasks."""

    name = serializers.CharField(max_length=constants.V2_MAX_NAME_LENGTH)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.V2_MAX_DESCRIPTION_LENGTH
    )
    service_version = serializers.CharField(max_length=32)
    resource_order_id = serializers.CharField(required=False, allow_blank=True, max_length=36)
    input = InputIn()
    output = OutputIn()
    config = ConfigIn(required=False)
    schedule = ScheduleIn(required=False, allow_null=True)

    def to_spec(self) -> dict[str, Any]:
        data = self.validated_data
        spec: dict[str, Any] = {}
        if "name" in data:
            spec["task_name"] = data["name"]
        for name in ("description", "service_version", "resource_order_id", "output", "config"):
            if name in data:
                spec[name] = data[name]
        if "schedule" in data:
            spec["schedule"] = data["schedule"] or {}
        if "input" in data:
            spec["vchans"] = vchans_of(data["input"])
        if "config" in data:  # the polygons become the task's ROIs (tasks.validators.roi_xml)
            spec["target_roi"] = config_target_roi(data["config"])
        return spec

    def to_create_spec(self, service_name: str, creator: Any) -> dict[str, Any]:
        return {
            **service_spec(service_name),
            **self.to_spec(),
            "run_dt": timezone.now(),
            "source_type": SourceType.PULL_VIDEO_STREAM,
            "creator": creator,
            "config_complete": True,
        }


class TaskUpdateIn(TaskIn):
    """PUT /v2/{project_id}/tasks/{task_id}: the same body, every field optional; one input."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, partial=True, **kwargs)

    def validate_input(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value["data"]) != 1:
            raise serializers.ValidationError(_("an update takes exactly one input"))
        return value


class VideoSourceItemIn(serializers.Serializer):
    video_source_id = serializers.CharField(max_length=64)
    target_roi = serializers.CharField(
        required=False, allow_blank=True, max_length=2048, trim_whitespace=False
    )


class VideoSourceGroupIn(serializers.Serializer):
    video_source_group_id = serializers.CharField(max_length=64, validators=[validate_unid])
    video_source_list = VideoSourceItemIn(many=True, max_length=constants.V2_MAX_SOURCES_PER_GROUP)


class BatchInputIn(serializers.Serializer):
    video_source_group = VideoSourceGroupIn(many=True, allow_empty=False, max_length=constants.V2_MAX_GROUPS)


# The fields of a v2 batch body that are the core's batch fields under the same name.
BATCH_BODY_FIELDS = (
    "name",
    "description",
    "schedule",
    "output",
    "config",
    "service_name",
    "service_version",
    "is_saved_as_template",
    "resource_order_id",
)


class BatchTaskIn(serializers.Serializer):
    """POST /v2/{project_id}/batch-tasks (the seed's body; `manufacturer` is the vendor)."""

    name = serializers.CharField(max_length=constants.V2_MAX_NAME_LENGTH)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.V2_MAX_DESCRIPTION_LENGTH
    )
    schedule = ScheduleIn(required=False, allow_null=True)
    batch_input = BatchInputIn()
    output = OutputIn()
    config = ConfigIn(required=False)
    service_name = serializers.CharField(max_length=100)
    service_version = serializers.CharField(max_length=32)
    is_saved_as_template = serializers.BooleanField(required=False)
    resource_order_id = serializers.CharField(required=False, allow_blank=True, max_length=36)
    manufacturer = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.MAX_NAME_LENGTH
    )

    def to_spec(self, creator: Any = None) -> dict[str, Any]:
        data = self.validated_data
        spec = {name: data[name] for name in BATCH_BODY_FIELDS if name in data}
        if "schedule" in data:
            spec["schedule"] = data["schedule"] or {}
        if "manufacturer" in data:
            spec["company"] = data["manufacturer"]
        if creator is not None:
            spec["creator"] = creator
        return spec

    def sources(self) -> list[dict[str, Any]] | None:
        """The video sources as the core's batch sources, each labelled with where it is in the body."""
        if "batch_input" not in self.validated_data:
            return None
        groups = self.validated_data["batch_input"]["video_source_group"]
        default_roi = config_target_roi(self.validated_data.get("config") or {})
        return [
            {
                "vchan_refid": item["video_source_id"],
                "video_group_id": group["video_source_group_id"],
                "target_roi": item.get("target_roi") or default_roi,
                "label": f"batch_input.video_source_group[{g}].video_source_list[{i}]"
                f" ({item['video_source_id']})",
            }
            for g, group in enumerate(groups)
            for i, item in enumerate(group["video_source_list"])
        ]


class BatchTaskUpdateIn(BatchTaskIn):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, partial=True, **kwargs)


class PageIn(serializers.Serializer):
    page_size = serializers.IntegerField(required=False, default=10, min_value=5, max_value=1000)
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10**6)


class TaskListIn(PageIn):
    """GET /v2/{project_id}/tasks: the seed's filters."""

    source_data_type = serializers.ChoiceField(choices=["async_task", "sync_task"], required=False)
    title = serializers.CharField(required=False, validators=[validate_title])
    camera_name = serializers.CharField(required=False, max_length=255)
    task_state = serializers.ChoiceField(choices=LIST_STATES, required=False)
    task_name = serializers.CharField(required=False, max_length=1024)
    sort_dir = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    batch_id = serializers.CharField(required=False, validators=[validate_batch_id])
    video_group_id = serializers.CharField(required=False, min_length=4, max_length=2048)
    company = serializers.CharField(required=False, max_length=2048)
    alg_id = serializers.CharField(required=False, validators=[validate_alg_id])


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def task_filter(query: dict[str, Any]) -> Q:
    """The list filters as one Q on Task (EXISTS subqueries for states and cameras)."""
    q = Q()
    if "source_data_type" in query:  # sync: a live stream URL; async: a recorded file in the store
        live = Q(play_url__contains="://")
        q &= live if query["source_data_type"] == "sync_task" else ~live
    if "title" in query:
        q &= Q(service_name__icontains=query["title"])
    if "camera_name" in query:
        name = query["camera_name"]
        cameras = Q(video_channel__name__icontains=name) | Q(video_channel__vchan_refid__icontains=name)
        q &= Q(Exists(Subtask.objects.filter(cameras, task=OuterRef("pk"))))
    if "task_name" in query:
        q &= Q(task_name__icontains=query["task_name"])
    if "task_state" in query:
        q &= state_filter(query["task_state"])
    if "batch_id" in query:
        q &= Q(batch_id=query["batch_id"])
    if "video_group_id" in query:  # the batch's group, or a video source group holding a source
        groups = _split_list(query["video_group_id"])
        members = Subtask.objects.filter(task=OuterRef("pk"), video_channel__groups__group_id__in=groups)
        q &= Q(video_group_id__in=groups) | Q(Exists(members))
    if "company" in query:
        q &= Q(company__in=_split_list(query["company"]))
    if "alg_id" in query:
        q &= Q(alg_id=query["alg_id"])
    return q


class BatchListIn(serializers.Serializer):
    """GET /v2/{project_id}/batch-tasks."""

    page_size = serializers.IntegerField(required=False, default=10, min_value=5, max_value=200)
    page_num = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10**6)
    order_by = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    sort_name = serializers.ChoiceField(
        choices=["created_at", "updated_at", "name"], required=False, default="created_at"
    )
    task_state = serializers.ChoiceField(choices=LIST_STATES, required=False)
    name = serializers.CharField(required=False, max_length=constants.V2_MAX_NAME_LENGTH)


# ---- answers -----------------------------------------------------------------------------------------


def ms(value: datetime | None) -> str | None:
    """A time as the seed shows it: milliseconds since the epoch, as a string."""
    return None if value is None else str((value - EPOCH) // timedelta(milliseconds=1))


def _status_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in counts.items() if n)


def _error(sources: list[dict[str, Any]]) -> dict[str, str] | None:
    for source in sources:
        if source["state"] in (State.FAILED, State.ABNORMAL) and source["status_reason"]:
            return {"code": INVALID_TASK_CODE, "message": source["status_reason"][:512]}
    return None


INVALID_TASK_CODE = "VIAS.00010004"


def input_out(row: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    refids = [s["video_channel__vchan_refid"] for s in sources if s["video_channel__vchan_refid"]]
    if refids:
        return {"type": "video_source", "data": [{"video_source_id": refid} for refid in refids]}
    return {"type": "url", "data": [{"url": row["play_url"]}]}


def task_info(row: dict[str, Any], sources: list[dict[str, Any]], project_id: str) -> dict[str, Any]:
    """A task (tasks.queries.task_rows with V2_COLUMNS) as TaskInfoDto; any task of the project,
    whichever API made it. Also `batch_id` and the canonical `state_counts`."""
    first = sources[0] if sources else {}
    return {
        "id": row["task_id"],
        "name": row["task_name"],
        "creator": row["creator__username"] or "",
        "project_id": project_id,
        "description": row["description"],
        "release_id": row["service_version"],
        "service_id": row["alg_id"],
        "created_at": ms(row["create_dt"]),
        "updated_at": ms(row["update_dt"]),
        "state": v2_state(row["state"]),
        "status": _status_text(row["state_counts"]),
        "error": _error(sources),
        "schedule_status": "ACTIVATED" if row["schedule_active"] else "INACTIVATED",
        "schedule": row["schedule"] or None,
        "input": input_out(row, sources),
        "output": row["output"],
        "config": row["config"],
        "video_source_name": first.get("video_channel__name")
        or first.get("video_channel__vchan_refid")
        or "",
        "title": row["service_name"],
        "group_name": row["video_group_id"],
        "company": row["company"],
        "task_config": json.dumps(row["config"], ensure_ascii=False) if row["config"] else "",
        "type": "0",
        "resource_order_id": row["resource_order_id"],
        "package_id": "",
        "device_id": "",
        "access_address": row["play_url"],
        "algorithm_publish_id": row["alg_id"],
        "batch_id": row["batch_id"] or "",
        "state_counts": row["state_counts"],
        # Started and waiting for a window (its mtask's, or its weekly schedule's), nothing active
        # (docs/state-machine.md): the list filter's word.
        "schedule_state": SCHEDULING
        if row["schedule_active"]
        and row["state"] in IDLE_STATES
        and (row.get("next_start") or row["schedule"])
        else "",
        "next_start_at": ms(row.get("next_start")),
    }


V2_COLUMNS = (
    "schedule",
    "schedule_active",
    "service_name",
    "service_version",
    "resource_order_id",
    "alg_id",
    "config",
    "company",
    "video_group_id",
    "target_roi",
    "batch_id",
    "creator__username",
)


def batch_input_out(sources: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        item = {"video_source_id": source["video_channel__vchan_refid"] or "", "task_id": source["task_id"]}
        if source["task__target_roi"]:
            item["target_roi"] = source["task__target_roi"]
        groups.setdefault(source["task__video_group_id"], []).append(item)
    return {
        "video_source_group": [
            {"video_source_group_id": group, "video_source_list": items} for group, items in groups.items()
        ]
    }


def batch_info(row: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row["batch_id"],
        "name": row["name"],
        "description": row["description"],
        "service_name": row["service_name"],
        "service_version": row["service_version"],
        "resource_order_id": row["resource_order_id"],
        "manufacturer": row["company"],
        "is_saved_as_template": row["is_saved_as_template"],
        "creator": row["creator__username"] or "",
        "schedule": row["schedule"] or None,
        "output": row["output"],
        "config": row["config"],
        "batch_input": batch_input_out(sources),
        "task_count": len({s["task_id"] for s in sources}),
        "state": v2_state(row["state"]),
        "state_counts": row["state_counts"],
        "created_at": ms(row["created_at"]),
        "updated_at": ms(row["updated_at"]),
    }


def batch_result(result: batches.BatchResult) -> dict[str, Any]:
    return {
        "total_count": result.total,
        "failed_count": result.failed,
        "succeed_count": result.succeeded,
        "id": result.batch.batch_id,
        "error_list": result.errors,
    }
