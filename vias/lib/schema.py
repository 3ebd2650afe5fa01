"""The OpenAPI schema every dialect gets without per-view code (docs/native-api.md, "Schema").

DialectAutoSchema (settings REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) adds to what drf-spectacular
derives from each view:

- **Component names per dialect.** A serializer defined in a dialect's package is named with the
  dialect's prefix (`V2TaskInRequest`, `VcsTaskIn...`), so the v2 and VCS request bodies no longer
  collide with the native `TaskInRequest` (drf-spectacular kept one of them for all three).
- **The error envelope and status codes of the view's dialect** on every operation: each status
  the dialect can answer (400, 401, 403, 404, ...) with its error body component (`NativeError`,
  `V2Error`, `VcsError`). A dialect registers them once with `register_error_schema`; a new view
  of that dialect gets them automatically.
- **The success envelope** where a view declares only "an object": the dialect's `success`
  schema (native `{ecode, enote, ...}`); and DELETE answers 200 with the envelope, as every
  dialect does, not drf-spectacular's guess of 204.
- **Unique operation ids**: `<dialect>_<view class>_<method>` (the defaults collided for list and
  detail views of the same path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

from vias.lib.envelopes import NATIVE

Direction = Literal["request", "response"]
JSON = "application/json"
NO_NUL = "^[^\\x00]*$"
STATUS_DESCRIPTIONS = {
    "400": "invalid input",
    "401": "no, malformed or unknown API token",
    "403": "not allowed in this project",
    "404": "no such object (or path)",
    "405": "method not allowed",
    "406": "cannot answer in the accepted media type",
    "409": "conflicts with the object's current state",
    "413": "body over the size limit",
    "415": "unsupported content type (send application/json)",
    "429": "too many requests",
    "500": "internal error",
}


@dataclass
class DialectSchema:
    """A dialect's error body (one component), the statuses it answers errors with, and
    optionally its success envelope (used where a view only says "an object")."""

    prefix: str
    error_name: str
    error: dict[str, Any]
    statuses: tuple[int, ...]
    success_name: str = ""
    success: dict[str, Any] = field(default_factory=dict)


_DIALECTS: dict[str, DialectSchema] = {}
# Serializer module prefix -> dialect, for component names.
_MODULES: list[tuple[str, str]] = []


def register_error_schema(dialect: str, module_prefix: str | None, schema: DialectSchema) -> None:
    """Called once by each dialect (next to its register_dialect in vias.lib.envelopes)."""
    _DIALECTS[dialect] = schema
    if module_prefix:
        _MODULES.append((module_prefix, dialect))


STRING_LISTS = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}

register_error_schema(
    NATIVE,
    None,
    DialectSchema(
        prefix="",
        error_name="NativeError",
        error={
            "type": "object",
            "properties": {
                "ecode": {"type": "integer", "description": "the HTTP status"},
                "enote": {"type": "string", "description": "why, for people"},
                "errors": {**STRING_LISTS, "description": "place in the request -> messages"},
            },
            "required": ["ecode", "enote"],
        },
        statuses=(400, 401, 403, 404, 405, 406, 409, 413, 415, 429),
        success_name="NativeOk",
        success={
            "type": "object",
            "properties": {"ecode": {"type": "integer", "enum": [200]}, "enote": {"type": "string"}},
            "required": ["ecode", "enote"],
            "additionalProperties": True,
        },
    ),
)


def dialect_of_serializer(serializer: Any) -> str:
    module = type(serializer).__module__ if not isinstance(serializer, type) else serializer.__module__
    for prefix, dialect in _MODULES:
        if module == prefix or module.startswith(prefix + "."):
            return dialect
    return NATIVE


def _json_response(description: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref}}}


def _is_bare_object(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get(JSON, {}).get("schema")
    return (
        isinstance(schema, dict)
        and set(schema) <= {"type", "description", "additionalProperties"}
        and (schema.get("type") == "object")
    )


class DialectAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with each dialect's names, envelopes and statuses."""

    def dialect(self) -> DialectSchema:
        return _DIALECTS.get(getattr(self.view, "dialect", NATIVE), _DIALECTS[NATIVE])

    def get_serializer_name(self, serializer: Any, direction: Direction) -> str:
        name = super().get_serializer_name(serializer, direction)
        prefix = _DIALECTS[dialect_of_serializer(serializer)].prefix
        return name if not prefix or name.startswith(prefix) else prefix + name

    def get_operation_id(self) -> str:
        dialect = getattr(self.view, "dialect", NATIVE)
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(self.view).__name__).lower()
        return f"{dialect}_{name}_{self.method.lower()}"

    def _map_serializer_field(self, field: Any, direction: Direction, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(schema, dict):
            # What the validators refuse, said in the schema (else fuzzers call them valid):
            # an empty list where allow_empty=False, and NUL characters in any string
            # (ProjectAPIView.parse refuses them: PostgreSQL cannot store them).
            if (
                isinstance(field, serializers.ListSerializer | serializers.ListField)
                and not field.allow_empty
            ):
                schema.setdefault("minItems", 1)
            if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
                schema.setdefault("pattern", NO_NUL)
        return schema

    def _component(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
        self.registry.register_on_missing(component)
        return component.ref

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        dialect = self.dialect()
        if self.method == "DELETE" and set(responses) == {"204"}:
            responses = {"200": {"description": "deleted"}}
        success_ref = self._component(dialect.success_name, dialect.success) if dialect.success_name else None
        for code, response in list(responses.items()):
            if not code.startswith("2") or success_ref is None:
                continue
            if "content" not in response or _is_bare_object(response):
                responses[code] = _json_response(response.get("description") or "OK", success_ref)
        error_ref = self._component(dialect.error_name, dialect.error)
        for status in dialect.statuses:
            code = str(status)
            responses.setdefault(code, _json_response(STATUS_DESCRIPTIONS.get(code, "error"), error_ref))
        return responses
