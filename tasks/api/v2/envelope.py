"""The VIAS v2 error body: {"error_code": "VIAS.000100xx", "error_msg", "detail", "params",
"reason", "advice"}. Registered at import, which TasksConfig.ready() does before any request, so
the middleware's 413 and the 401/403/404 under /v2/ have this shape too (docs/dialects.md)."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _
from rest_framework.response import Response

from vias.lib.envelopes import describe_exception, register_dialect
from vias.lib.errors import Conflict, NotFound, summary
from vias.lib.schema import DialectSchema, register_error_schema

V2 = "v2"
PATH_PREFIX = "/v2/"

INVALID_PARAMS = "VIAS.00010001"
NOT_FOUND = "VIAS.00010002"
ALREADY_EXISTS = "VIAS.00010003"
INVALID_OBJECT = "VIAS.00010004"
AUTH_FAILED = "VIAS.00010005"
INTERNAL = "VIAS.00010006"
NO_TASK = "VIAS.00010007"

# HTTP status -> error code; 409 (the object's state forbids it) is answered 400, as v2 does.
CODE_OF_STATUS = {401: AUTH_FAILED, 403: AUTH_FAILED, 404: NOT_FOUND, 409: INVALID_OBJECT}
V2_STATUS = {409: 400}


def advice(code: str) -> str:
    return {
        INVALID_PARAMS: _("check the request against the API reference and send it again"),
        NOT_FOUND: _("check the ID in the path; it must belong to your project"),
        ALREADY_EXISTS: _("use another ID, or change the existing object"),
        INVALID_OBJECT: _("stop the task first, or remove what still uses the object"),
        AUTH_FAILED: _("send a valid token of this project in X-Auth-Token"),
        INTERNAL: _("try again later; if it persists, contact the administrator"),
        NO_TASK: _("check the task ID; it must belong to your project"),
    }.get(code, "")


def code_for(status: int) -> str:
    if status >= 500:
        return INTERNAL
    return CODE_OF_STATUS.get(status, INVALID_PARAMS)


def v2_error_body(
    status: int, message: str, errors: dict[str, list[str]], code: str | None = None
) -> dict[str, Any]:
    code = code or code_for(status)
    first_path = next((path for path, messages in errors.items() if messages), None)
    return {
        "error_code": code,
        "error_msg": message,
        "detail": "; ".join(f"{p}: {m}" if p else m for p, ms in errors.items() for m in ms) or message,
        "params": [first_path] if first_path else [],
        "reason": errors[first_path][0] if first_path else message,
        "advice": advice(code),
    }


def _code_for_exception(exc: Exception, status: int) -> str:
    if isinstance(exc, NotFound) and exc.field == "task_id":
        return NO_TASK
    if isinstance(exc, Conflict) and exc.field in ("vchan_refid", "id"):
        return ALREADY_EXISTS
    return code_for(status)


_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def v2_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's exception handler for v2 views: the v2 body, paths in the request's words."""
    view = context.get("view")
    status, message, errors = describe_exception(exc)
    rename = getattr(view, "request_path_of", None) or (lambda path: path)
    renamed = {rename(_INDEX.sub(r"[\1]", path)): messages for path, messages in errors.items()}
    if errors and message == summary(errors):
        message = summary(renamed)
    code = _code_for_exception(exc, status)
    headers = {"WWW-Authenticate": "Token"} if status == 401 else {}
    return Response(
        v2_error_body(status, message, renamed, code), status=V2_STATUS.get(status, status), headers=headers
    )


register_dialect(V2, PATH_PREFIX, v2_error_body)
register_error_schema(
    V2,
    "tasks.api.v2",
    DialectSchema(
        prefix="V2",
        error_name="V2Error",
        error={
            "type": "object",
            "properties": {
                "error_code": {"type": "string", "pattern": r"^VIAS\.000100\d\d$"},
                "error_msg": {"type": "string"},
                "detail": {"type": "string"},
                "params": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
                "reason": {"type": "string"},
                "advice": {"type": "string"},
            },
            "required": ["error_code", "error_msg", "detail", "params", "reason", "advice"],
        },
        # 409 (state conflicts) is answered 400, as v2 does; 500 is part of the public API.
        statuses=(400, 401, 403, 404, 405, 406, 413, 415, 429, 500),
        success_name="V2Ok",
        success={"type": "object", "description": "the operation's documented body (no envelope)"},
    ),
)
