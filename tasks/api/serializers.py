"""The native (devconf) dialect: request bodies of the seed in, the core's spec out, and back.

These serializers check the shape of a request (types, required fields); the rules about
values live on the models and run in the services, so every dialect enforces the same ones.
Unknown fields are ignored, so a client may send back what it read (task_id, progress, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from subtasks.choices import State
from tasks import constants
from tasks.choices import AlgoType, DetectorModel, MTaskType, SourceType

RUN_DT_FORMATS = ["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "iso-8601"]
TIME_FORMATS = ["%H:%M:%S", "%H:%M"]
# A started subtask outside its mtask's window (the VIAS v2 word).
SCHEDULING = "SCHEDULING"
# A dome camera's ONVIF access (tasks.models.VideoChannel); the password is never answered.
ONVIF_FIELDS = ("onvif_url", "onvif_username", "onvif_password")


def format_dt(value: datetime | None) -> str | None:
    """The seed's "2018-12-03 10:27:30.999", in the server's time zone."""
    if value is None:
        return None
    local = timezone.localtime(value)
    # %Y does not pad years before 1000 ("1-01-01"), which then would not parse back.
    return f"{local.year:04d}-" + local.strftime("%m-%d %H:%M:%S.%f")[:-3]


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "vchan_refid of an existing channel"},
            {
                "type": "object",
                "properties": {
                    "vchan_refid": {"type": "string"},
                    "name": {"type": "string"},
                    "url": {"type": "string"},
                    "ptz": {"type": "boolean"},
                    "onvif_url": {"type": "string"},
                    "onvif_username": {"type": "string"},
                    "onvif_password": {"type": "string", "writeOnly": True},
                },
                "required": ["vchan_refid"],
            },
        ]
    }
)
class VchanField(serializers.Field):
    """A video channel: its refid (an existing channel) or {vchan_refid, name?, url?} (created)."""

    default_error_messages = {
        "invalid": _("a video channel is a vchan_refid string or an object with vchan_refid")
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str) and data:
            return {"vchan_refid": data}
        if isinstance(data, dict) and isinstance(data.get("vchan_refid"), str) and data["vchan_refid"]:
            spec = {"vchan_refid": data["vchan_refid"]}
            for key in ("name", "url", *ONVIF_FIELDS):
                if key in data:
                    if not isinstance(data[key], str):
                        raise serializers.ValidationError(_("%(key)s must be a string") % {"key": key})
                    spec[key] = data[key]
            if "ptz" in data:
                if not isinstance(data["ptz"], bool):
                    raise serializers.ValidationError(_("ptz must be true or false"))
                spec["ptz"] = data["ptz"]
            return spec
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class RunDtField(serializers.DateTimeField):
    """DRF's DateTimeField, but a time that has no UTC equivalent (year 1 east of UTC, year 9999
    west of it) is "out of range" rather than an uncaught OverflowError (a 500)."""

    def enforce_timezone(self, value: datetime) -> datetime:
        try:
            return super().enforce_timezone(value)
        except OverflowError:
            self.fail("overflow")


class XmlHolder(serializers.Serializer):
    xml = serializers.CharField(trim_whitespace=False)


class CalibrationHolder(serializers.Serializer):
    calibration = serializers.CharField(trim_whitespace=False)


class RoiHolder(serializers.Serializer):
    roi = serializers.CharField(trim_whitespace=False)


def either_calibration(data: dict[str, Any]) -> dict[str, Any]:
    """`calibration` is taken as the seed's `callibration` (never silently dropped); both: the same."""
    if "calibration" in data:
        spelled = data.pop("calibration")
        if "callibration" in data and data["callibration"] != spelled:
            raise serializers.ValidationError({"calibration": [_("differs from callibration; send one")]})
        data["callibration"] = spelled
    return data


class SceneIn(serializers.Serializer):
    scene_unid = serializers.CharField(required=False, max_length=64)
    name = serializers.CharField(required=False, allow_blank=True, max_length=constants.MAX_NAME_LENGTH)
    preset = serializers.IntegerField(required=False)
    callibration = CalibrationHolder(required=False)  # sic: the seed's spelling
    calibration = CalibrationHolder(required=False)  # the correct spelling, accepted as well
    rois = RoiHolder(many=True, required=False, max_length=constants.MAX_ROIS_PER_SCENE)
    config = XmlHolder(required=False)
    basicConfig = XmlHolder(required=False)  # noqa: N815 - the seed's name

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        return either_calibration(data)

    link_scenes = serializers.ListField(required=False, max_length=100)
    algo_type = serializers.ChoiceField(choices=AlgoType.choices)
    algo_args = serializers.DictField(required=False)
    is_record = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    vchan_refid = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    play_urls = serializers.DictField(required=False)

    def to_spec(self, data: dict[str, Any]) -> dict[str, Any]:
        spec = {
            k: v
            for k, v in data.items()
            if k not in ("callibration", "calibration", "rois", "config", "basicConfig")
        }
        if "callibration" in data:
            spec["calibration_xml"] = data["callibration"]["calibration"]
        if "config" in data:
            spec["config_xml"] = data["config"]["xml"]
        if "basicConfig" in data:
            spec["basic_config_xml"] = data["basicConfig"]["xml"]
        spec["rois"] = [item["roi"] for item in data.get("rois", [])]
        if spec.get("vchan_refid") is None:
            spec.pop("vchan_refid", None)
        return spec


class MTaskIn(serializers.Serializer):
    mtask_unid = serializers.CharField(required=False, max_length=64)
    name = serializers.CharField(required=False, allow_blank=True, max_length=constants.MAX_NAME_LENGTH)
    type = serializers.ChoiceField(choices=MTaskType.choices, required=False)
    time_interval = serializers.IntegerField(required=False)
    start_time = serializers.TimeField(required=False, allow_null=True, input_formats=TIME_FORMATS)
    end_time = serializers.TimeField(required=False, allow_null=True, input_formats=TIME_FORMATS)
    scenes = SceneIn(many=True, required=False, max_length=constants.MAX_SCENES_PER_MTASK)


class TaskIn(serializers.Serializer):
    task_name = serializers.CharField(max_length=constants.MAX_NAME_LENGTH)
    algo_type = serializers.ChoiceField(choices=AlgoType.choices)
    run_dt = RunDtField(input_formats=RUN_DT_FORMATS)
    play_url = serializers.CharField(max_length=constants.MAX_URL_LENGTH)
    source_type = serializers.ChoiceField(choices=SourceType.choices, required=False)
    node_count = serializers.IntegerField(required=False)
    pull_source_url = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.MAX_URL_LENGTH
    )
    vchans = serializers.ListField(
        child=VchanField(), required=False, max_length=constants.MAX_VCHANS_PER_TASK
    )
    mtasks = MTaskIn(many=True, required=False, max_length=constants.MAX_MTASKS_PER_TASK)
    store_conf_unid = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=64)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.MAX_DESCRIPTION_LENGTH
    )
    # Where results go: {"webhook": {url, headers}, "dis": {stream_name}, "obs": {bucket, path}}
    # (tasks.validators.validate_task_output checks it on the model).
    output = serializers.DictField(required=False)

    def to_spec(self) -> dict[str, Any]:
        """The validated body in the core's shape (tasks.services)."""
        data = dict(self.validated_data)
        scene_in = SceneIn()
        data["mtasks"] = [
            {**m, "scenes": [scene_in.to_spec(s) for s in m.get("scenes", [])]}
            for m in data.get("mtasks", [])
        ]
        if "mtasks" not in self.initial_data:
            data.pop("mtasks")
        return data


class TaskUpdateIn(TaskIn):
    """PUT /tasks/{id}: the same body; what is left out stays as it is."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, partial=True, **kwargs)


class PageIn(serializers.Serializer):
    # Bounded: PostgreSQL refuses an OFFSET beyond bigint with an error (a 500), not an empty page.
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=1000)


class SubtaskConfigIn(serializers.Serializer):
    """PUT /subtasks/{id}: the scene's shapes for ROIs, calibration and config; all optional."""

    rois = RoiHolder(many=True, required=False, max_length=constants.MAX_ROIS_PER_SCENE)
    callibration = CalibrationHolder(required=False)
    calibration = CalibrationHolder(required=False)  # the correct spelling, accepted as well
    config = XmlHolder(required=False)
    algo_args = serializers.DictField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        return either_calibration(data)

    def to_spec(self) -> dict[str, Any]:
        data = self.validated_data
        spec: dict[str, Any] = {}
        if "rois" in data:
            spec["rois"] = [item["roi"] for item in data["rois"]]
        if "callibration" in data:
            spec["calibration_xml"] = data["callibration"]["calibration"]
        if "config" in data:
            spec["config_xml"] = data["config"]["xml"]
        if "algo_args" in data:
            spec["algo_args"] = data["algo_args"]
        return spec


class StoreConfIn(serializers.Serializer):
    unid = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=constants.MAX_NAME_LENGTH)
    file_ext = serializers.CharField(max_length=10)
    file_b64 = serializers.CharField(trim_whitespace=False)


class StoreConfUpdateIn(StoreConfIn):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, partial=True, **kwargs)


class VchanIn(serializers.Serializer):
    vchan_refid = serializers.CharField(max_length=64)
    name = serializers.CharField(required=False, allow_blank=True, max_length=constants.MAX_NAME_LENGTH)
    url = serializers.CharField(max_length=constants.MAX_URL_LENGTH)
    width = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=16384)
    height = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=16384)
    ptz = serializers.BooleanField(required=False)
    onvif_url = serializers.CharField(
        required=False, allow_blank=True, max_length=constants.MAX_URL_LENGTH, trim_whitespace=False
    )
    onvif_username = serializers.CharField(required=False, allow_blank=True, max_length=128)
    onvif_password = serializers.CharField(
        required=False, allow_blank=True, max_length=128, trim_whitespace=False, write_only=True
    )


class VchanUpdateIn(VchanIn):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, partial=True, **kwargs)


# ---- answers ----------------------------------------------------------------------------------------


def scene_out(scene: dict[str, Any]) -> dict[str, Any]:
    return {
        "scene_unid": scene["scene_unid"],
        "name": scene["name"],
        "preset": scene["preset"],
        "callibration": {"calibration": scene["calibration_xml"]},
        "rois": [{"roi": xml} for xml in scene["rois"]],
        "config": {"xml": scene["config_xml"]},
        "basicConfig": {"xml": scene["basic_config_xml"]},
        "link_scenes": scene["link_scenes"],
        "algo_type": int(scene["algo_type"]),
        "algo_args": scene["algo_args"],
        "is_record": int(scene["is_record"]),
        "is_active": int(scene["is_active"]),
        "vchan_refid": scene["vchan_refid"],
        "play_urls": scene["play_urls"],
        "is_running": int(scene["is_running"]),
        "status_reason": scene["status_reason"],
    }


def _time(value: Any) -> str | None:
    return value.strftime("%H:%M:%S") if value is not None else None


def mtask_out(mtask: dict[str, Any]) -> dict[str, Any]:
    return {
        "mtask_unid": mtask["mtask_unid"],
        "name": mtask["name"],
        "type": mtask["type"],
        "time_interval": mtask["time_interval"],
        "start_time": _time(mtask["start_time"]),
        "end_time": _time(mtask["end_time"]),
        "progress": mtask["progress"],
        "scenes": [scene_out(scene) for scene in mtask["scenes"]],
    }


def task_out(row: dict[str, Any]) -> dict[str, Any]:
    """A task as the seed's list_data item, plus its derived state and per-state subtask counts."""
    return {
        "task_id": row["task_id"],
        "task_name": row["task_name"],
        "algo_type": row["algo_type"],
        "run_dt": format_dt(row["run_dt"]),
        "play_url": row["play_url"],
        "source_type": row["source_type"],
        "node_count": row["node_count"],
        "pull_source_url": row["pull_source_url"],
        "description": row["description"],
        "store_conf_unid": row["store_conf_unid"],
        "output": row["output"],
        # What pic_task_config sets, under both its names (empty: the detectors follow algo_type).
        "detector_models": row["detector_models"],
        "algo_comb": row["detector_models"],
        "create_dt": format_dt(row["create_dt"]),
        "update_dt": format_dt(row["update_dt"]),
        "state": row["state"],
        "state_counts": row["state_counts"],
        "subtask_count": row["subtask_count"],
        # Started, with subtasks waiting for their mtask's window (docs/state-machine.md).
        "schedule_state": SCHEDULING if row.get("next_start") else "",
        "next_start_dt": format_dt(row.get("next_start")),
        "mtasks": [mtask_out(m) for m in row.get("mtasks", [])],
    }


def subtask_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "subtask_id": row["id"],
        "task_id": row["task_id"],
        "position": row["position"],
        "vchan_refid": row["video_channel__vchan_refid"] or "",
        "source_url": row["source_url"],
        "state": row["state"],
        "is_running": int(row["state"] == State.RUNNING),
        "config_complete": row["config_complete"],
        "progress": round(row["progress"], 2),
        "status_reason": row["status_reason"],
        "rois": [{"roi": xml} for xml in row["rois"]],
        "callibration": {"calibration": row["calibration_xml"]},
        "config": {"xml": row["config_xml"]},
        "algo_args": row["algo_args"],
        "node": row["node__name"] or "",
        "attempts": row["attempts"],
        "schedule_state": SCHEDULING if row.get("waiting_until") else "",
        "next_start_dt": format_dt(row.get("waiting_until")),
        "heartbeat_at": format_dt(row["heartbeat_at"]),
        "started_at": format_dt(row["started_at"]),
        "finished_at": format_dt(row["finished_at"]),
        "create_dt": format_dt(row["created_at"]),
        "update_dt": format_dt(row["updated_at"]),
    }


def store_conf_out(conf) -> dict[str, Any]:
    import base64

    return {
        "unid": conf.unid,
        "name": conf.name,
        "file_ext": conf.file_ext,
        "file_b64": base64.b64encode(bytes(conf.content)).decode("ascii"),
        "version": conf.version,
        "update_dt": format_dt(conf.updated_at),
    }


def vchan_out(channel) -> dict[str, Any]:
    return {
        "vchan_refid": channel.vchan_refid,
        "name": channel.name,
        "url": channel.url,
        "width": channel.width,
        "height": channel.height,
        "ptz": channel.ptz,
        "onvif_url": channel.onvif_url,
        "onvif_username": channel.onvif_username,
        "create_dt": format_dt(channel.created_at),
    }


class PicTaskConfigIn(serializers.Serializer):
    """The algorithm combination of a picture task: `detector_models` (or the seed's `algo_comb`),
    a list of face / body / motor / no_motor. The names are checked by the model's validator."""

    detector_models = serializers.JSONField(required=False)
    algo_comb = serializers.JSONField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "detector_models" not in data and "algo_comb" not in data:
            raise serializers.ValidationError(
                {
                    "detector_models": [
                        _(
                            "missing: send detector_models (or the seed's algo_comb), a list of 1..4 of "
                            "%(models)s"
                        )
                        % {"models": ", ".join(DetectorModel.values)}
                    ]
                }
            )
        if "detector_models" in data and "algo_comb" in data and data["detector_models"] != data["algo_comb"]:
            raise serializers.ValidationError({"algo_comb": [_("differs from detector_models; send one")]})
        return data

    @property
    def models(self) -> Any:
        return self.validated_data.get("detector_models", self.validated_data.get("algo_comb"))
