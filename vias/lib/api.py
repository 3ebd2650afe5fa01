"""The base of every API view: tenancy, request parsing and the dialect's envelope, once."""

from __future__ import annotations

import math
import re
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vias.lib.auth import request_project
from vias.lib.envelopes import NATIVE, native_ok

# Deeper JSON than this cannot be a valid body; Python's json would hit its recursion limit storing it.
MAX_JSON_DEPTH = 32


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def unstorable(payload: Any) -> tuple[str, str] | None:
    """(path, problem) for the first value no database column can store, None when all can.

    PostgreSQL refuses NUL characters and lone surrogates in text and jsonb, and NaN/Infinity in
    jsonb; free-form JSON fields (link_scenes, play_urls, ...) would otherwise reach it unchecked.
    """
    stack: list[tuple[str, int, Any]] = [("", 0, payload)]
    while stack:
        path, depth, value = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return path, _("nested deeper than %(n)d levels") % {"n": MAX_JSON_DEPTH}
        if isinstance(value, str):
            if "\x00" in value:
                return path, _("null characters are not allowed")
            if not _encodable(value):
                return path, _("surrogate characters are not allowed")
        elif isinstance(value, float) and not math.isfinite(value):
            return path, _("numbers must be finite")
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((path, depth + 1, key))
                # The path is echoed in the answer: a key it cannot render is shown escaped.
                name = key if _encodable(key) else ascii(key)
                stack.append((f"{path}.{name}" if path else name, depth + 1, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", depth + 1, item) for i, item in enumerate(value))
    return None


class ProjectAPIView(APIView):
    """A view acting in the request's project (from its token or its logged-in user)."""

    dialect = NATIVE

    @property
    def project(self):
        return request_project(self.request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # An id from the path with a NUL names nothing; PostgreSQL would refuse the lookup with a 500.
        if any("\x00" in str(value) for value in kwargs.values()):
            raise exceptions.NotFound()
        # PostgreSQL refuses NUL in any string it is given: a query parameter with one is refused
        # here, once for every filter of every dialect, rather than as a 500 deep in a query.
        for name, values in request.query_params.lists():
            if any("\x00" in value for value in values) or "\x00" in name:
                raise exceptions.ValidationError(
                    {name.replace("\x00", "\\x00"): [_("null characters are not allowed")]}
                )

    def parse(self, serializer_class: type[serializers.Serializer], data: Any | None = None) -> Any:
        """A validated serializer of the request body (or `data`); ValidationError otherwise."""
        try:
            payload = self.request.data if data is None else data
        except RecursionError:
            raise exceptions.ParseError(_("nested too deeply")) from None
        if not isinstance(payload, dict):
            raise serializers.ValidationError({"": ["the request body must be a JSON object"]})
        if problem := unstorable(payload):
            raise serializers.ValidationError({problem[0]: [problem[1]]})
        serializer = serializer_class(data=payload)
        serializer.is_valid(raise_exception=True)
        return serializer

    def query(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# The core's field names -> the seed's request shape, for error paths (docs/native-api.md).
NATIVE_ERROR_PATHS = [
    (re.compile(r"(^|\.)calibration_xml$"), r"\1callibration.calibration"),
    (re.compile(r"(^|\.)basic_config_xml$"), r"\1basicConfig.xml"),
    (re.compile(r"(^|\.)config_xml$"), r"\1config.xml"),
    (re.compile(r"(rois\[\d+\])\.xml$"), r"\1.roi"),
]


class NativeAPIView(ProjectAPIView):
    """The devconf dialect: answers are {"ecode": 200, "enote": "OK", ...}."""

    @staticmethod
    def request_path_of(path: str) -> str:
        for pattern, replacement in NATIVE_ERROR_PATHS:
            path = pattern.sub(replacement, path)
        return path

    def ok(self, status: int = 200, **data: Any) -> Response:
        return Response(native_ok(**data), status=status)

    def page(self, request: Request, total: int, offset: int, items: list[dict[str, Any]]) -> Response:
        return self.ok(total_num=total, offset=offset, list_size=len(items), list_data=items)
