"""Native subtask API: show, configure, mark config-complete, start, stop, delete."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from subtasks import services
from subtasks.models import Subtask
from tasks import queries
from tasks.api import serializers as s
from vias.lib.api import NativeAPIView


def _subtask_response(view: NativeAPIView, subtask_id: int, **extra: Any) -> Response:
    rows = queries.subtask_rows(Subtask.objects.filter(pk=subtask_id))
    return view.ok(data=s.subtask_out(rows[0]), **extra)


class SubtaskDetail(NativeAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Show a subtask")
    def get(self, request: Request, subtask_id: str) -> Response:
        subtask = services.get_subtask(self.project, subtask_id)
        return _subtask_response(self, subtask.pk)

    @extend_schema(request=s.SubtaskConfigIn, responses=OpenApiTypes.OBJECT, summary="Configure a subtask")
    def put(self, request: Request, subtask_id: str) -> Response:
        subtask = services.get_subtask(self.project, subtask_id)
        # A running subtask applies the change at once; `delivery` is its acknowledgement.
        subtask, ack = services.apply_config(subtask, self.parse(s.SubtaskConfigIn).to_spec())
        return _subtask_response(self, subtask.pk, delivery=ack.as_dict())

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Delete a subtask that is not running")
    def delete(self, request: Request, subtask_id: str) -> Response:
        services.delete_subtask(services.get_subtask(self.project, subtask_id))
        return self.ok()


class SubtaskConfigComplete(NativeAPIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Mark a subtask config-complete")
    def post(self, request: Request, subtask_id: str) -> Response:
        subtask = services.mark_config_complete(services.get_subtask(self.project, subtask_id))
        return _subtask_response(self, subtask.pk)


class SubtaskStart(NativeAPIView):
    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT, summary="Dispatch one config-complete subtask"
    )
    def post(self, request: Request, subtask_id: str) -> Response:
        outcome = services.start_subtask(services.get_subtask(self.project, subtask_id))
        return self.ok(subtasks=[outcome.as_dict()])


class SubtaskStop(NativeAPIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Stop one subtask")
    def post(self, request: Request, subtask_id: str) -> Response:
        outcome = services.stop_subtask(services.get_subtask(self.project, subtask_id))
        return self.ok(subtasks=[outcome.as_dict()])
