"""The VCS-SPS envelope: {"Code": "0", "Message": "SUCCESS", "Data": ...}; errors carry the HTTP
status as Code. Registered at import, which TasksConfig.ready() does before any request, so the
middleware's 413 and the 401s under /vcs/ have this shape too.

A VCS client reads `Code`, and many throw on a non-200 status before they read the body: an
application error is answered with HTTP 200 and its code in `Code`; only an authentication
failure keeps HTTP 401 (docs/dialects.md)."""

from __future__ import annotations

import re
from typing import Any

from vias.lib.envelopes import register_dialect
from vias.lib.schema import DialectSchema, register_error_schema

VCS = "vcs"
PATH_PREFIX = "/vcs/"
NO_DATA = object()

# Where a core field came from in a VCS request, for error paths (docs/dialects.md, field mapping).
CORE_TO_VCS = {
    "task_id": "taskId",
    "task_name": "name",
    "run_dt": "execStartTime",
    "description": "description",
    "client_name": "clientName",
    "detector_models": "algorithms",
    "algo_type": "algorithms",
    "play_url": "datasources.devices[0].videoId",
    "vchans": "datasources.devices",
}
DEVICE_TO_VCS = {
    "vchan_refid": "deviceId",
    "name": "deviceId",
    "url": "videoId",
    "video_time_length": "videoTimeLength",
    "video_begin_time": "videoBeginTime",
}
_VCHAN_PATH = re.compile(r"^vchans(?!\w)(\[\d+\])?(?:\.(\w+))?(.*)$", re.S)
_HEAD = re.compile(r"^(\w+)(.*)$", re.S)
_LIST_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def vcs_ok(data: Any = NO_DATA) -> dict[str, Any]:
    body: dict[str, Any] = {"Code": "0", "Message": "SUCCESS"}
    if data is not NO_DATA:
        body["Data"] = data
    return body


def vcs_error_body(status: int, message: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    body: dict[str, Any] = {"Code": str(status), "Message": message}
    if errors:
        body["Errors"] = errors
    return body


def vcs_path(path: str) -> str:
    """A core field path ("vchans[2].vchan_refid") as the VCS request names it ("datasources.devices[2].deviceId").

    List positions are written [n] whether they come from the core or from DRF ("devices.0").
    """
    path = _LIST_INDEX.sub(r"[\1]", path)
    if match := _VCHAN_PATH.match(path):
        index, field, rest = match.groups()
        out = "datasources.devices" + (index or "")
        if field:
            out += "." + DEVICE_TO_VCS.get(field, field)
        return out + rest
    if match := _HEAD.match(path):
        head, rest = match.groups()
        return CORE_TO_VCS.get(head, head) + rest
    return path


def vcs_http_status(status: int) -> int:
    return 401 if status == 401 else 200


register_dialect(VCS, PATH_PREFIX, vcs_error_body, vcs_http_status)
register_error_schema(
    VCS,
    "tasks.api.vcs",
    DialectSchema(
        prefix="Vcs",
        error_name="VcsError",
        error={
            "type": "object",
            "properties": {
                "Code": {"type": "string", "description": "the HTTP status, as a string"},
                "Message": {"type": "string"},
                "Errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["Code", "Message"],
        },
        statuses=(401,),
        success_name="VcsOk",
        success={
            "type": "object",
            "properties": {
                "Code": {
                    "type": "string",
                    "description": '"0" on success, else the error\'s HTTP status as a string (answered with HTTP 200)',
                },
                "Message": {"type": "string"},
                "Data": {},
                "Errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["Code", "Message"],
        },
    ),
)
