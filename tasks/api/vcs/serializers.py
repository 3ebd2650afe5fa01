"""VCS-SPS request bodies in, the core's spec out, and back (docs/dialects.md).

These check the shape of a request; the rules about values (channel ids, source paths, detector
models, positive lengths) live on the models and run in the services, as for every dialect.
Unknown fields are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from subtasks.choices import State
from tasks import constants
from tasks.choices import AlgoType, DetectorModel, SourceType
from tasks.models import Task
from tasks.videostore import handle_of, resolve_video_handles, validate_video_id
from vias.lib.errors import Invalid, NotFound

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

HISTORY_VIDEO_FILE = "historyVideoFile"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 9999-12-30 00:00 UTC: a day short of datetime.max, so every time zone can still show it.
MAX_MS = 253402128000000
MAX_TASK_IDS = 100

# The canonical derived state (docs/state-machine.md) in VCS words.
TASK_STATUS = {
    State.PENDING: "WAITING",
    State.CONFIGURED: "WAITING",
    State.STARTING: "ONLINED",
    State.RUNNING: "ONLINED",
    State.RECOVERING: "ONLINED",
    State.STOPPING: "OFFLINING",
    State.STOPPED: "OFFLINED",
    State.SUCCEEDED: "FINISHED",
    State.FAILED: "FAILED",
    State.ABNORMAL: "ABNORMAL",
}
# Started, but waiting for its mtask's window or its execStartTime (docs/state-machine.md): the
# seed names no such status; ours is the VIAS v2 word (docs/dialects.md).
SCHEDULING = "SCHEDULING"
# A task (or device) shows SCHEDULING while it waits and nothing of it is being analysed.
ALIVE_STATUSES = ("ONLINED", "OFFLINING", "ABNORMAL")


def task_status(state: str, waiting_until: datetime | None) -> str:
    """The VCS word for a canonical state; SCHEDULING while it waits for its window."""
    status = TASK_STATUS[State(state)]
    return SCHEDULING if waiting_until is not None and status not in ALIVE_STATUSES else status


def algo_type_for(models: list[str]) -> str:
    """The core's algo_type for a set of detector models: face only -> face, vehicles only -> traffic,
    anything with bodies (or a mix) -> security."""
    names = set(models)
    if names == {DetectorModel.FACE}:
        return AlgoType.FACE
    if names <= {DetectorModel.MOTOR, DetectorModel.NO_MOTOR}:
        return AlgoType.TRAFFIC
    return AlgoType.SECURITY


def to_ms(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // timedelta(milliseconds=1)


class MillisField(serializers.IntegerField):
    """A Unix timestamp in milliseconds, as an aware datetime."""

    def to_internal_value(self, data: Any) -> datetime:  # type: ignore[override]  # ms outside, datetime inside
        ms = super().to_internal_value(data)
        # Checked here, not by validators: those run on the datetime this returns.
        if ms < 0:
            self.fail("min_value", min_value=0)
        if ms > MAX_MS:
            self.fail("max_value", max_value=MAX_MS)
        return EPOCH + timedelta(milliseconds=ms)

    def to_representation(self, value: datetime) -> int | None:  # type: ignore[override]
        return to_ms(value)


class DeviceIn(serializers.Serializer):
    deviceId = serializers.CharField(max_length=64)  # noqa: N815 - the seed's names
    videoId = serializers.CharField(max_length=128, validators=[validate_video_id])  # noqa: N815
    videoTimeLength = serializers.FloatField(required=False, allow_null=True)  # noqa: N815 - > 0: Subtask's rule
    videoBeginTime = MillisField(required=False, allow_null=True)  # noqa: N815


class DatasourcesIn(serializers.Serializer):
    devices = DeviceIn(many=True, allow_empty=False, max_length=constants.MAX_VCHANS_PER_TASK)


class AlgorithmIn(serializers.Serializer):
    models = serializers.ListField(
        child=serializers.ChoiceField(choices=DetectorModel.choices), allow_empty=False, max_length=16
    )


def exec_type_field(required: bool, message: StrOrPromise) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[HISTORY_VIDEO_FILE], required=required, error_messages={"invalid_choice": message}
    )


class ComputeTaskIn(serializers.Serializer):
    """createComputeTask."""

    name = serializers.CharField(max_length=constants.MAX_NAME_LENGTH)
    execType = exec_type_field(True, gettext_lazy("must be historyVideoFile, not {input}"))  # noqa: N815
    execStartTime = MillisField()  # noqa: N815
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.MAX_DESCRIPTION_LENGTH
    )
    datasources = DatasourcesIn()
    algorithms = AlgorithmIn(many=True, allow_empty=False, max_length=16)
    clientName = serializers.CharField(  # noqa: N815
        required=False, allow_blank=True, max_length=constants.MAX_NAME_LENGTH
    )

    def _fields(self) -> dict[str, Any]:
        """The validated body in the core's shape (tasks.services.create_task / update_task)."""
        data = self.validated_data
        spec: dict[str, Any] = {}
        if "name" in data:
            spec["task_name"] = data["name"]
        if "execStartTime" in data:
            spec["run_dt"] = data["execStartTime"]
        if "description" in data:
            spec["description"] = data["description"]
        if "clientName" in data:
            spec["client_name"] = data["clientName"]
        if "algorithms" in data:
            chosen = {name for algorithm in data["algorithms"] for name in algorithm["models"]}
            spec["detector_models"] = [name for name in DetectorModel.values if name in chosen]
            spec["algo_type"] = algo_type_for(spec["detector_models"])
        if "datasources" in data:
            spec["vchans"] = vchans_for(data["datasources"]["devices"])
            spec["play_url"] = spec["vchans"][0]["url"]
        return spec

    def to_spec(self) -> dict[str, Any]:
        # VCS has no configuration step: a compute task's subtasks are ready to dispatch as made.
        return {**self._fields(), "config_complete": True}

    def to_create_spec(self) -> dict[str, Any]:
        return {**self.to_spec(), "source_type": SourceType.PULL_VIDEO_STREAM}


def vchans_for(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each device as a video channel whose url is its video file (core vchans items)."""
    paths = resolve_video_handles(device["videoId"] for device in devices)
    vchans = []
    for index, device in enumerate(devices):
        if device["videoId"] not in paths:
            raise NotFound(
                _("no video file %(id)s in the video store") % {"id": device["videoId"]},
                field=f"datasources.devices[{index}].videoId",
            )
        item = {"vchan_refid": device["deviceId"], "url": paths[device["videoId"]]}
        # Only what the body gives: a modify keeps the stored values of what it leaves out.
        for key, name in (("videoTimeLength", "video_time_length"), ("videoBeginTime", "video_begin_time")):
            if key in device:
                item[name] = device[key]
        vchans.append(item)
    return vchans


class ModifyComputeTaskIn(ComputeTaskIn):
    """modifyComputeTask: the create body plus `taskId`; what is left out stays as it is."""

    taskId = serializers.CharField(max_length=64)  # noqa: N815
    name = serializers.CharField(required=False, max_length=constants.MAX_NAME_LENGTH)
    execType = exec_type_field(False, gettext_lazy("cannot change: it is always historyVideoFile"))  # noqa: N815
    execStartTime = MillisField(required=False)  # noqa: N815
    datasources = DatasourcesIn(required=False)
    algorithms = AlgorithmIn(many=True, required=False, allow_empty=False, max_length=16)

    def to_update_spec(self, task: Task) -> dict[str, Any]:
        if self.validated_data.get("name", task.task_name) != task.task_name:
            raise Invalid(_("cannot change (it is %(name)s)") % {"name": task.task_name}, field="name")
        spec = self.to_spec()
        if "vchans" in spec:
            _keep_stored_file_fields(task, spec["vchans"])
        return spec


FILE_FIELDS = ("video_time_length", "video_begin_time")


def _keep_stored_file_fields(task: Task, vchans: list[dict[str, Any]]) -> None:
    """A device the body names again without videoTimeLength / videoBeginTime keeps the values its
    subtask has (the seed's modify body carries no videoBeginTime)."""
    stored = {
        row["video_channel__vchan_refid"]: row
        for row in task.subtasks.values("video_channel__vchan_refid", *FILE_FIELDS)
    }
    for item in vchans:
        for name in FILE_FIELDS:
            if name not in item and item["vchan_refid"] in stored:
                item[name] = stored[item["vchan_refid"]][name]


class TaskIdIn(serializers.Serializer):
    """startComputeTask, stopComputeTask."""

    taskId = serializers.CharField(max_length=64)  # noqa: N815


class TaskIdsIn(serializers.Serializer):
    """getComputeTasks."""

    taskIds = serializers.ListField(  # noqa: N815
        child=serializers.CharField(max_length=64), allow_empty=False, max_length=MAX_TASK_IDS
    )


def _video_id(source_url: str) -> str | None:
    """The handle of a video-store file ("clip.mp4" -> "clip", or the remote store's URL of it);
    None for a stream URL."""
    if not source_url:
        return None
    if "://" in source_url:
        return handle_of(source_url)
    return source_url.rsplit("/", 1)[-1].partition(".")[0]


def device_out(source: dict[str, Any]) -> dict[str, Any]:
    return {
        "deviceId": source["video_channel__vchan_refid"] or "",
        "videoId": _video_id(source["source_url"]),
        "videoTimeLength": source["video_time_length"],
        "videoBeginTime": to_ms(source["video_begin_time"]),
        "taskStatus": task_status(source["state"], source.get("waiting_until")),
        "nextStartTime": to_ms(source.get("waiting_until")),
    }


def compute_task_out(row: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    """A task (tasks.queries.task_rows) as getComputeTasks answers it; any task of the project,
    whichever API created it."""
    return {
        "taskId": row["task_id"],
        "taskStatus": task_status(row["state"], row.get("next_start")),
        "nextStartTime": to_ms(row.get("next_start")),
        "name": row["task_name"],
        "description": row["description"],
        "clientName": row["client_name"],
        "execStartTime": to_ms(row["run_dt"]),
        "algorithms": [{"models": row["detector_models"]}] if row["detector_models"] else [],
        "datasources": {"devices": [device_out(source) for source in sources]},
        "state": row["state"],
        "stateCounts": row["state_counts"],
    }
