"""Native task API (the devconf seed): /tasks, /store_confs, /vchans. Thin: parse, call a
service, shape the answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from subtasks import services as subtask_services
from subtasks.models import Subtask
from tasks import queries, services
from tasks.api import serializers as s
from tasks.models import StoreConf, Task, VideoChannel
from vias.lib.api import NativeAPIView
from vias.lib.errors import NotFound

PAGE_PARAMS = [
    OpenApiParameter("offset", int, description="rows to skip (0..)"),
    OpenApiParameter("limit", int, description="rows to return (1..1000, default 10)"),
]


def page_params(request: Request) -> dict[str, Any]:
    """offset / limit from the query string or, as the seed writes them, from a JSON body (a GET
    with a body); the query string wins where both give one."""
    body = request.data if request.body else {}
    if not isinstance(body, dict):
        raise ValidationError({"": [_("the request body must be a JSON object")]})
    return {**body, **request.query_params.dict()}


def _task_response(
    view: NativeAPIView, task_id: str, status: int = 200, warnings: Sequence[str] = (), **extra: Any
) -> Response:
    rows = queries.task_documents(Task.objects.for_project(view.project).filter(task_id=task_id))
    if not rows:
        raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
    if warnings:
        extra["warnings"] = list(warnings)
    return view.ok(status=status, data=s.task_out(rows[0]), **extra)


class TaskCollection(NativeAPIView):
    @extend_schema(parameters=PAGE_PARAMS, responses=OpenApiTypes.OBJECT, summary="List tasks, newest first")
    def get(self, request: Request) -> Response:
        page = self.parse(s.PageIn, page_params(request))
        offset, limit = page.validated_data["offset"], page.validated_data["limit"]
        tasks = Task.objects.for_project(self.project)
        total = tasks.count()
        rows = queries.task_documents(tasks.order_by("-create_dt", "task_id")[offset : offset + limit])
        return self.page(request, total, offset, [s.task_out(row) for row in rows])

    @extend_schema(
        request=s.TaskIn, responses={200: OpenApiTypes.OBJECT}, summary="Add a task (split into subtasks)"
    )
    def post(self, request: Request) -> Response:
        task = services.create_task(self.project, self.parse(s.TaskIn).to_spec())
        # 200: the seed's clients check it; ecode is the truth
        return _task_response(self, task.task_id, warnings=task.output_warnings())


class TaskDetail(NativeAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Show a task")
    def get(self, request: Request, task_id: str) -> Response:
        return _task_response(self, task_id)

    @extend_schema(request=s.TaskUpdateIn, responses=OpenApiTypes.OBJECT, summary="Change a task")
    def put(self, request: Request, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        # Running subtasks whose scene changed apply it at once: one acknowledgement each.
        _task, acks = services.update_task_live(task, self.parse(s.TaskUpdateIn).to_spec())
        task.refresh_from_db(fields=["output"])
        return _task_response(
            self, task_id, warnings=task.output_warnings(), subtasks=[ack.as_dict() for ack in acks]
        )

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Delete a task that has no subtasks left")
    def delete(self, request: Request, task_id: str) -> Response:
        services.delete_task(services.get_task(self.project, task_id))
        return self.ok()


class TaskStart(NativeAPIView):
    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT, summary="Dispatch the config-complete subtasks"
    )
    def post(self, request: Request, task_id: str) -> Response:
        outcomes = subtask_services.start_task(services.get_task(self.project, task_id))
        return self.ok(subtasks=[o.as_dict() for o in outcomes])


class TaskStop(NativeAPIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Stop the task's subtasks")
    def post(self, request: Request, task_id: str) -> Response:
        outcomes = subtask_services.stop_task(services.get_task(self.project, task_id))
        return self.ok(subtasks=[o.as_dict() for o in outcomes])


class TaskPicConfig(NativeAPIView):
    @extend_schema(
        request=s.PicTaskConfigIn,
        responses=OpenApiTypes.OBJECT,
        summary="Change a picture task's algorithm combination and send it to its devices",
    )
    def post(self, request: Request, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        acks = subtask_services.set_pic_task_models(task, self.parse(s.PicTaskConfigIn).models)
        rows = queries.task_documents(Task.objects.filter(pk=task.pk))
        return self.ok(data=s.task_out(rows[0]), subtasks=[ack.as_dict() for ack in acks])


class TaskSubtasks(NativeAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="A task's subtasks")
    def get(self, request: Request, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        rows = queries.subtask_rows(Subtask.objects.filter(task=task).order_by("position"))
        return self.page(request, len(rows), 0, [s.subtask_out(row) for row in rows])


class StoreConfCollection(NativeAPIView):
    @extend_schema(parameters=PAGE_PARAMS, responses=OpenApiTypes.OBJECT, summary="List storage configs")
    def get(self, request: Request) -> Response:
        page = self.query(s.PageIn)
        confs = StoreConf.objects.for_project(self.project).order_by("unid")
        items = confs[page["offset"] : page["offset"] + page["limit"]]
        return self.page(request, confs.count(), page["offset"], [s.store_conf_out(c) for c in items])

    @extend_schema(
        request=s.StoreConfIn, responses={201: OpenApiTypes.OBJECT}, summary="Add a storage config"
    )
    def post(self, request: Request) -> Response:
        conf = services.create_store_conf(self.project, self.parse(s.StoreConfIn).validated_data)
        return self.ok(status=201, data=s.store_conf_out(conf))


class StoreConfDetail(NativeAPIView):
    def get_conf(self, unid: str) -> StoreConf:
        return services.get_store_conf(self.project, unid, field="unid")

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Show a storage config")
    def get(self, request: Request, unid: str) -> Response:
        return self.ok(data=s.store_conf_out(self.get_conf(unid)))

    @extend_schema(
        request=s.StoreConfUpdateIn, responses=OpenApiTypes.OBJECT, summary="Replace a storage config"
    )
    def put(self, request: Request, unid: str) -> Response:
        conf, acks = services.replace_store_conf_and_push(
            self.get_conf(unid), self.parse(s.StoreConfUpdateIn).validated_data
        )
        # Every subtask using it: running ones acknowledge the new file, the others "applied".
        return self.ok(data=s.store_conf_out(conf), subtasks=[ack.as_dict() for ack in acks])

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Delete an unused storage config")
    def delete(self, request: Request, unid: str) -> Response:
        services.delete_store_conf(self.get_conf(unid))
        return self.ok()


class VchanCollection(NativeAPIView):
    @extend_schema(parameters=PAGE_PARAMS, responses=OpenApiTypes.OBJECT, summary="List video channels")
    def get(self, request: Request) -> Response:
        page = self.query(s.PageIn)
        channels = VideoChannel.objects.for_project(self.project).order_by("vchan_refid")
        items = channels[page["offset"] : page["offset"] + page["limit"]]
        return self.page(request, channels.count(), page["offset"], [s.vchan_out(c) for c in items])

    @extend_schema(request=s.VchanIn, responses={201: OpenApiTypes.OBJECT}, summary="Add a video channel")
    def post(self, request: Request) -> Response:
        channel = services.create_vchan(self.project, self.parse(s.VchanIn).validated_data)
        return self.ok(status=201, data=s.vchan_out(channel))


class VchanDetail(NativeAPIView):
    def get_channel(self, refid: str) -> VideoChannel:
        return services.get_vchan(self.project, refid)

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Show a video channel")
    def get(self, request: Request, vchan_refid: str) -> Response:
        return self.ok(data=s.vchan_out(self.get_channel(vchan_refid)))

    @extend_schema(request=s.VchanUpdateIn, responses=OpenApiTypes.OBJECT, summary="Change a video channel")
    def put(self, request: Request, vchan_refid: str) -> Response:
        channel = services.update_vchan(
            self.get_channel(vchan_refid), self.parse(s.VchanUpdateIn).validated_data
        )
        return self.ok(data=s.vchan_out(channel))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Delete a video channel no subtask uses")
    def delete(self, request: Request, vchan_refid: str) -> Response:
        services.delete_vchan(self.get_channel(vchan_refid))
        return self.ok()
