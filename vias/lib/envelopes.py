"""Response envelopes, one per dialect, and the DRF exception handler that uses them.

Every error any API answers goes through `error_response`, so malformed, hostile or
out-of-range input always gets the dialect's own shape and a message, never a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, ValidationError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf
from rest_framework.response import Response

from vias.lib.broker import UNREACHABLE_ERRORS, unreachable_message
from vias.lib.errors import ServiceError, flatten_errors, summary

log = logging.getLogger(__name__)

NATIVE = "native"

# path prefix -> dialect, for errors raised before a view knows its dialect (body too large).
_PATH_DIALECTS: list[tuple[str, str]] = []
# dialect -> function(status, message, errors) -> body
_ERROR_BODIES: dict[str, Callable[[int, str, dict[str, list[str]]], dict[str, Any]]] = {}
# dialect -> function(status) -> the HTTP status its clients expect for an error of that status
_HTTP_STATUSES: dict[str, Callable[[int], int]] = {}


def register_dialect(
    name: str,
    path_prefix: str | None,
    error_body: Callable[[int, str, dict[str, list[str]]], dict[str, Any]],
    http_status: Callable[[int], int] | None = None,
) -> None:
    """Dialects (VCS, v2) register their error shape here from their AppConfig.ready(); and, when
    their clients read errors from the body only, the HTTP status errors are answered with."""
    _ERROR_BODIES[name] = error_body
    if http_status is not None:
        _HTTP_STATUSES[name] = http_status
    if path_prefix:
        _PATH_DIALECTS.append((path_prefix, name))


def http_status_for(dialect: str, status: int) -> int:
    return _HTTP_STATUSES.get(dialect, lambda status: status)(status)


def dialect_for_path(path: str) -> str:
    for prefix, name in _PATH_DIALECTS:
        if path.startswith(prefix):
            return name
    return NATIVE


def native_ok(**data: Any) -> dict[str, Any]:
    """The seed's standard envelope with the answer's fields beside ecode and enote."""
    return {"ecode": 200, "enote": "OK", **data}


def _native_error_body(status: int, message: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    body: dict[str, Any] = {"ecode": status, "enote": message}
    if errors:
        body["errors"] = errors
    return body


register_dialect(NATIVE, None, _native_error_body)


def error_body(dialect: str, status: int, message: str, errors: dict[str, list[str]] | None = None) -> dict:
    return _ERROR_BODIES.get(dialect, _native_error_body)(status, message, errors or {})


def error_response(dialect: str, status: int, message: str, errors: dict[str, list[str]] | None = None):
    return JsonResponse(error_body(dialect, status, message, errors), status=http_status_for(dialect, status))


def describe_exception(exc: Exception) -> tuple[int, str, dict[str, list[str]]]:
    """(HTTP status, message for people, {field path: [messages]}) for any exception."""
    if isinstance(exc, ServiceError):
        errors = {exc.field: [exc.message]} if exc.field else {}
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return exc.status, message, errors
    if isinstance(exc, ValidationError | drf.ValidationError):
        flat = flatten_errors(exc.detail if isinstance(exc, drf.ValidationError) else exc)
        return 400, summary(flat) or _("invalid input"), flat
    if isinstance(exc, RequestDataTooBig):
        return 413, _("the request body is too large"), {}
    if isinstance(exc, drf.NotAuthenticated):
        return 401, _("an API token is required (Authorization or X-Auth-Token header)"), {}
    if isinstance(exc, drf.AuthenticationFailed):
        return 401, str(exc.detail), {}
    if isinstance(exc, drf.PermissionDenied | PermissionDenied):
        return 403, str(getattr(exc, "detail", "") or _("permission denied")), {}
    if isinstance(exc, drf.NotFound | Http404):
        return 404, _("not found"), {}
    if isinstance(exc, drf.ParseError):
        return 400, _("the request body is not valid JSON: %(reason)s") % {"reason": exc.detail}, {}
    if isinstance(exc, drf.UnsupportedMediaType):
        return 415, _("unsupported content type; send application/json"), {}
    if isinstance(exc, drf.MethodNotAllowed):
        return (
            405,
            _("method %(method)s is not allowed here") % {"method": exc.args[0] if exc.args else ""},
            {},
        )
    if isinstance(exc, drf.Throttled):
        return 429, _("too many requests"), {}
    if isinstance(exc, drf.APIException):
        return exc.status_code, str(exc.detail), {}
    if isinstance(exc, SuspiciousOperation):
        return 400, _("the request was refused as malformed"), {}
    if isinstance(exc, UNREACHABLE_ERRORS):
        # Redis went away in the middle of a request: the client may try again, it is not a bug.
        log.warning("message broker unreachable: %s", exc)
        return 503, unreachable_message(), {}
    log.exception("unexpected error", exc_info=exc)
    return 500, _("internal error"), {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error in the envelope of the view's dialect."""
    view = context.get("view")
    dialect = getattr(view, "dialect", NATIVE)
    status, message, errors = describe_exception(exc)
    rename = getattr(view, "request_path_of", None)
    if errors and rename is not None:
        # Name each problem the way the client wrote it, not by the core's field names.
        renamed = {rename(path): messages for path, messages in errors.items()}
        if message == summary(errors):
            message = summary(renamed)
        errors = renamed
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Token"
    return Response(
        error_body(dialect, status, message, errors), status=http_status_for(dialect, status), headers=headers
    )
