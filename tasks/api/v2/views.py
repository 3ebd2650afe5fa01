"""VIAS v2 endpoints: check the project in the path, parse the v2 body, call the core services,
answer the v2 shapes. No task logic lives here (docs/dialects.md)."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from subtasks import services as subtask_services
from tasks import batches, queries, schedules, services
from tasks.api.v2 import serializers as s
from tasks.api.v2.algorithms import service_spec
from tasks.api.v2.envelope import V2, v2_exception_handler
from tasks.models import BatchTask, Task
from vias.lib.api import ProjectAPIView
from vias.lib.errors import Forbidden, NotFound

# Core field paths -> the v2 request's words, for error messages.
_VCHAN = re.compile(r"^vchans(\[\d+\])?(.*)$", re.S)
CORE_TO_V2 = {
    "task_name": "name",
    "play_url": "input.data[0]",
    "vchan_refid": "id",
    "company": "manufacturer",
    "target_roi": "config.common.target_roi",
}


def as_sent(path: str) -> str:
    """Error paths of query parameters: named as the client sent them."""
    return path


def v2_path(path: str) -> str:
    if match := _VCHAN.match(path):
        index, rest = match.groups()
        return "input.data" + (f"{index}.video_source_id" if index else "") + rest
    head, dot, rest = path.partition(".")
    return CORE_TO_V2.get(head, head) + dot + rest


def with_warnings(answer: dict, warnings: list[str]) -> dict:
    """The answer with `warnings` (accepted, but the client should know) when there are any."""
    return {**answer, "warnings": warnings} if warnings else answer


class V2APIView(ProjectAPIView):
    """The v2 dialect: `project_id` in the path must be the token's project; errors are the v2 body."""

    dialect = V2
    request_path_of = staticmethod(v2_path)

    def get_exception_handler(self):
        return v2_exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if kwargs.get("project_id") != self.project.project_id:
            # Said before anything is looked up, so nothing of another project can leak.
            raise Forbidden(_("the token is not valid for the project_id in the path"), field="project_id")

    def page_of(self, queryset: QuerySet, page: int, size: int) -> QuerySet:
        return queryset[(page - 1) * size : page * size]

    def task_answer(self, task_id: str) -> dict[str, Any]:
        tasks = Task.objects.for_project(self.project).filter(task_id=task_id)
        rows = queries.task_rows(tasks, s.V2_COLUMNS)
        if not rows:
            raise NotFound(_("no task %(id)s") % {"id": task_id}, field="task_id")
        sources = queries.task_sources([task_id])
        return s.task_info(rows[0], sources.get(task_id, []), self.project.project_id)


# ---- tasks -------------------------------------------------------------------------------------------


class TaskCollection(V2APIView):
    request_path_of = staticmethod(as_sent)  # query parameters are named as sent

    @extend_schema(parameters=[s.TaskListIn], responses=OpenApiTypes.OBJECT, summary="v2: list tasks")
    def get(self, request: Request, project_id: str) -> Response:
        query = self.query(s.TaskListIn)
        tasks = Task.objects.for_project(self.project).filter(s.task_filter(query))
        order = "create_dt" if query["sort_dir"] == "asc" else "-create_dt"
        total = tasks.count()
        page = self.page_of(tasks.order_by(order, "task_id"), query["page"], query["page_size"])
        rows = queries.task_rows(page, s.V2_COLUMNS)
        sources = queries.task_sources([row["task_id"] for row in rows])
        items = [s.task_info(row, sources.get(row["task_id"], []), project_id) for row in rows]
        return Response(
            {
                "count": len(items),
                "total": total,
                "tasks": items,
                "page": query["page"],
                "page_size": query["page_size"],
            }
        )


class ServiceTasks(V2APIView):
    @extend_schema(request=s.TaskIn, responses=OpenApiTypes.OBJECT, summary="v2: create a task")
    def post(self, request: Request, project_id: str, service_name: str) -> Response:
        spec = self.parse(s.TaskIn).to_create_spec(service_name, request.user)
        task = services.create_task(self.project, spec)
        # The public answer is {"tasks": [{"id"}]}; ours adds the TaskInfoDto of the one task made.
        answer = {**self.task_answer(task.task_id), "tasks": [{"id": task.task_id}]}
        return Response(with_warnings(answer, task.output_warnings()))


class TaskDetail(V2APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: show a task")
    def get(self, request: Request, project_id: str, task_id: str) -> Response:
        return Response(self.task_answer(task_id))

    @extend_schema(request=s.TaskUpdateIn, responses=OpenApiTypes.OBJECT, summary="v2: change a task")
    def put(self, request: Request, project_id: str, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        spec = {**self.parse(s.TaskUpdateIn).to_spec(), "config_complete": True}
        services.update_task(task, spec, vchans=spec.pop("vchans", None))
        return Response(self.task_answer(task_id))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: delete a task and its subtasks")
    def delete(self, request: Request, project_id: str, task_id: str) -> Response:
        services.purge_task(services.get_task(self.project, task_id))
        return Response({})


class TaskAction(V2APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="v2: start or stop a task")
    def put(self, request: Request, project_id: str, task_id: str, action: str) -> Response:
        task = services.get_task(self.project, task_id)
        if action == schedules.START:
            subtask_services.start_task(task)
        else:
            subtask_services.stop_task(task)
        return Response(self.task_answer(task_id))


# ---- batch tasks -------------------------------------------------------------------------------------


def batch_state_filter(v2_state: str) -> Q:
    if v2_state == s.SCHEDULING:
        scheduled = Exists(Task.objects.filter(batch=OuterRef("pk"), schedule_active=True))
        return Q(scheduled) & queries.derived_state_q(s.IDLE_STATES, "task__batch")
    return s.state_filter(v2_state, "task__batch")


class BatchCollection(V2APIView):
    request_path_of = staticmethod(as_sent)

    @extend_schema(parameters=[s.BatchListIn], responses=OpenApiTypes.OBJECT, summary="v2: list batch tasks")
    def get(self, request: Request, project_id: str) -> Response:
        query = self.query(s.BatchListIn)
        batches = BatchTask.objects.for_project(self.project)
        if "name" in query:
            batches = batches.filter(name__icontains=query["name"])
        if "task_state" in query:
            batches = batches.filter(batch_state_filter(query["task_state"]))
        order = ("-" if query["order_by"] == "desc" else "") + query["sort_name"]
        total = batches.count()
        page = self.page_of(batches.order_by(order, "batch_id"), query["page_num"], query["page_size"])
        rows = queries.batch_rows(page)
        sources = queries.batch_sources([row["batch_id"] for row in rows])
        items = [s.batch_info(row, sources.get(row["batch_id"], [])) for row in rows]
        return Response(
            {
                "count": len(items),
                "total": total,
                "batch_tasks": items,
                "page_num": query["page_num"],
                "page_size": query["page_size"],
            }
        )

    @extend_schema(request=s.BatchTaskIn, responses=OpenApiTypes.OBJECT, summary="v2: add a batch task")
    def post(self, request: Request, project_id: str) -> Response:
        body = self.parse(s.BatchTaskIn)
        spec = body.to_spec(request.user)
        result = batches.create_batch(
            self.project, spec, body.sources(), service_spec(body.validated_data["service_name"])
        )
        return Response(with_warnings(s.batch_result(result), result.batch.output_warnings()))


class BatchDetail(V2APIView):
    @extend_schema(
        request=s.BatchTaskUpdateIn, responses=OpenApiTypes.OBJECT, summary="v2: change a batch task"
    )
    def put(self, request: Request, project_id: str, batch_id: str) -> Response:
        batch = batches.get_batch(self.project, batch_id)
        body = self.parse(s.BatchTaskUpdateIn)
        result = batches.update_batch(batch, body.to_spec(), body.sources(), service_spec(batch.service_name))
        return Response(s.batch_result(result))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: delete a batch task and its tasks")
    def delete(self, request: Request, project_id: str, batch_id: str) -> Response:
        return Response(s.batch_result(batches.delete_batch(batches.get_batch(self.project, batch_id))))


class BatchAction(V2APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="v2: start or stop a batch task")
    def put(self, request: Request, project_id: str, batch_id: str, action: str) -> Response:
        batch = batches.get_batch(self.project, batch_id)
        return Response(s.batch_result(batches.run_batch(batch, action)))
