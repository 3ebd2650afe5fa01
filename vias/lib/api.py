"""The base of every API view: tenancy, request parsing and the dialect's envelope, once."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vias.lib.auth import request_project
from vias.lib.envelopes import NATIVE, native_ok


class ProjectAPIView(APIView):
    """A view acting in the request's project (from its token or its logged-in user)."""

    dialect = NATIVE

    @property
    def project(self):
        return request_project(self.request)

    def parse(self, serializer_class: type[serializers.Serializer], data: Any | None = None) -> Any:
        """A validated serializer of the request body (or `data`); ValidationError otherwise."""
        payload = self.request.data if data is None else data
        if not isinstance(payload, dict):
            raise serializers.ValidationError({"": ["the request body must be a JSON object"]})
        serializer = serializer_class(data=payload)
        serializer.is_valid(raise_exception=True)
        return serializer

    def query(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class NativeAPIView(ProjectAPIView):
    """The devconf dialect: answers are {"ecode": 200, "enote": "OK", ...}."""

    def ok(self, status: int = 200, **data: Any) -> Response:
        return Response(native_ok(**data), status=status)

    def page(self, request: Request, total: int, offset: int, items: list[dict[str, Any]]) -> Response:
        return self.ok(total_num=total, offset=offset, list_size=len(items), list_data=items)
