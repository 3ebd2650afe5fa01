"""VCS-SPS compute-task endpoints: parse the VCS body, call the core services, answer in the VCS
envelope. No task logic lives here (docs/dialects.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from subtasks import services as subtask_services
from tasks import queries, services
from tasks.api.vcs import serializers as s
from tasks.api.vcs.envelope import NO_DATA, VCS, vcs_ok, vcs_path
from tasks.models import Task
from vias.lib.api import ProjectAPIView


class VcsAPIView(ProjectAPIView):
    """The VCS-SPS dialect: {"Code": "0", "Message": "SUCCESS", "Data": ...}; errors name VCS fields."""

    dialect = VCS

    def ok(self, data: Any = NO_DATA) -> Response:
        return Response(vcs_ok(data))

    # Error paths in the VCS request's words (the exception handler applies it).
    request_path_of = staticmethod(vcs_path)


class CreateComputeTask(VcsAPIView):
    @extend_schema(
        request=s.ComputeTaskIn, responses=OpenApiTypes.OBJECT, summary="VCS: create a compute task"
    )
    def post(self, request: Request) -> Response:
        task = services.create_task(self.project, self.parse(s.ComputeTaskIn).to_create_spec())
        return self.ok({"taskId": task.task_id})


class ModifyComputeTask(VcsAPIView):
    @extend_schema(
        request=s.ModifyComputeTaskIn, responses=OpenApiTypes.OBJECT, summary="VCS: modify a compute task"
    )
    def post(self, request: Request) -> Response:
        body = self.parse(s.ModifyComputeTaskIn)
        task = services.get_task(self.project, body.validated_data["taskId"])
        spec = body.to_update_spec(task)
        services.update_task(task, spec, vchans=spec.pop("vchans", None))
        return self.ok({"taskId": task.task_id})


class StartComputeTask(VcsAPIView):
    @extend_schema(request=s.TaskIdIn, responses=OpenApiTypes.OBJECT, summary="VCS: start a compute task")
    def post(self, request: Request) -> Response:
        task_id = self.parse(s.TaskIdIn).validated_data["taskId"]
        task = services.get_task(self.project, task_id)
        # execStartTime (run_dt) later: the first run waits for it (subtasks.mtask_runs); passed, at once.
        subtask_services.start_task(task)
        return self.ok()


class StopComputeTask(VcsAPIView):
    @extend_schema(request=s.TaskIdIn, responses=OpenApiTypes.OBJECT, summary="VCS: stop a compute task")
    def post(self, request: Request) -> Response:
        task_id = self.parse(s.TaskIdIn).validated_data["taskId"]
        subtask_services.stop_task(services.get_task(self.project, task_id))
        return self.ok()


class GetComputeTasks(VcsAPIView):
    @extend_schema(request=s.TaskIdsIn, responses=OpenApiTypes.OBJECT, summary="VCS: compute tasks by id")
    def post(self, request: Request) -> Response:
        task_ids = list(dict.fromkeys(self.parse(s.TaskIdsIn).validated_data["taskIds"]))
        rows = {
            row["task_id"]: row
            for row in queries.task_rows(Task.objects.for_project(self.project).filter(task_id__in=task_ids))
        }
        sources = queries.task_sources(list(rows))
        # Ids of no task of this project (unknown, or another project's) are left out.
        return self.ok([s.compute_task_out(rows[i], sources.get(i, [])) for i in task_ids if i in rows])
