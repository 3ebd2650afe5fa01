"""Requests and answers of the websocket command protocol (docs/websocket.md).

A request is `{"command": "<verb> /wsapi/v1/devconf_fx/<resource>[/<sub>]", "src_page": ...,
"params": {...}, "id": ...}`; its answer echoes command, src_page and id beside the native
envelope (`ecode`, `enote` and the fields the HTTP API answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from vias.lib.envelopes import NATIVE, describe_exception, error_body
from vias.lib.errors import ServiceError, summary

PATH = "/wsapi/v1/devconf_fx"
VERBS = ("get", "post", "put", "delete")
# Request keys echoed in the answer, as the client sent them.
ECHOED = ("command", "src_page", "id")


class ProtocolError(ServiceError):
    """A message the protocol cannot read: answered in the envelope, the socket stays open."""


@dataclass
class Request:
    verb: str
    resource: str
    params: dict[str, Any]
    echo: dict[str, Any] = field(default_factory=dict)


def echo_of(message: Any) -> dict[str, Any]:
    """The keys an answer echoes, from whatever the client sent (even a malformed request)."""
    if not isinstance(message, dict):
        return {}
    return {key: message[key] for key in ECHOED if key in message}


def parse_text(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ProtocolError(_("the message is nested too deeply")) from None
    except ValueError as exc:
        raise ProtocolError(_("the message is not valid JSON: %(reason)s") % {"reason": exc}) from None


def parse_request(message: Any) -> Request:
    """A Request, or ProtocolError (400 malformed, 404 unknown path) naming what is wrong."""
    if not isinstance(message, dict):
        raise ProtocolError(_("a request is a JSON object with command, src_page and params"))
    echo = echo_of(message)
    command = message.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ProtocolError(
            _('command is required: "<verb> %(path)s/<resource>"') % {"path": PATH}, field="command"
        )
    parts = command.split()
    if len(parts) != 2:
        raise ProtocolError(
            _('command must be "<verb> %(path)s/<resource>"') % {"path": PATH}, field="command"
        )
    verb, path = parts[0].lower(), parts[1].rstrip("/")
    if verb not in VERBS:
        raise ProtocolError(
            _("unknown verb %(verb)s; use %(verbs)s") % {"verb": parts[0], "verbs": ", ".join(VERBS)},
            field="command",
        )
    if not path.startswith(PATH + "/"):
        raise UnknownCommand(
            _("unknown path %(path)s; commands start with %(prefix)s/") % {"path": path, "prefix": PATH}
        )
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(_("params must be a JSON object"), field="params")
    return Request(verb=verb, resource=path[len(PATH) + 1 :], params=params, echo=echo)


class UnknownCommand(ServiceError):
    status = 404
    kind = "not_found"


class TooManyRequests(ServiceError):
    status = 429
    kind = "busy"


class BrokerUnavailable(ServiceError):
    status = 503
    kind = "unavailable"


def error_answer(exc: Exception, rename=None) -> dict[str, Any]:
    """The native error envelope for any exception (400 / 401 / 404 / 409 / 500 ...)."""
    status, message, errors = describe_exception(exc)
    if errors and rename is not None:
        renamed = {rename(path): messages for path, messages in errors.items()}
        if message == summary(errors):
            message = summary(renamed)
        errors = renamed
    return error_body(NATIVE, status, message, errors)


def dumps(body: dict[str, Any]) -> str:
    # ensure_ascii=False: enote in Chinese stays readable; default=str for stray lazy strings.
    return json.dumps(body, ensure_ascii=False, default=str)
