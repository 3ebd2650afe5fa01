"""Native analysis endpoints: push a picture to a push_pic_files task; list a task's events."""

from __future__ import annotations

from django.http import FileResponse
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response

from analysis.models import Event
from analysis.pictures import queue_picture
from tasks import services
from tasks.api.serializers import PageIn
from vias.lib import artefacts
from vias.lib.api import NativeAPIView
from vias.lib.errors import Invalid, NotFound

EVENT_FILTERS = ("subtask_id", "category", "rule", "zone")


class RawBody(BaseParser):
    """Leaves the body alone: the view reads request.body (a picture's bytes)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class TaskPictures(NativeAPIView):
    parser_classes = [RawBody]

    @extend_schema(
        request={"image/jpeg": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        responses=OpenApiTypes.OBJECT,
        summary="Push a picture to a running push_pic_files task (raw image body, or multipart field `picture`)",
    )
    def post(self, request: Request, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        return self.ok(data=queue_picture(task, self._picture_bytes(request)))

    def _picture_bytes(self, request: Request) -> bytes:
        django_request = request._request
        if django_request.content_type == "multipart/form-data":
            upload = django_request.FILES.get("picture")
            if upload is None:
                raise Invalid(_("the multipart body has no file field `picture`"), field="picture")
            return upload.read()
        return django_request.body


class EventSnapshot(NativeAPIView):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY}, summary="An event's snapshot (JPEG)")
    def get(self, request: Request, event_id: str) -> FileResponse:
        event = (
            Event.objects.for_project(self.project)
            .filter(pk=int(event_id) if event_id.isdigit() else 0)
            .first()
        )
        # From the artefacts storage: MEDIA_ROOT, or the object store the node that found it wrote to.
        handle = artefacts.open_artefact(event.snapshot) if event is not None else None
        if handle is None:
            raise NotFound(_("no snapshot of event %(id)s") % {"id": event_id}, field="event_id")
        return FileResponse(handle, content_type="image/jpeg")


class EventClip(NativeAPIView):
    @extend_schema(
        responses={(200, "video/webm"): OpenApiTypes.BINARY},
        summary="An event's clip (WebM, a few seconds around the event; 404 until the node has written it)",
    )
    def get(self, request: Request, event_id: str) -> FileResponse:
        event = (
            Event.objects.for_project(self.project)
            .filter(pk=int(event_id) if event_id.isdigit() else 0)
            .first()
        )
        # From the artefacts storage, like the snapshot: the web host serves what any node wrote.
        handle = artefacts.open_artefact(event.clip) if event is not None and event.clip else None
        if handle is not None:
            return FileResponse(handle, content_type="video/webm")
        if event is not None and event.clip_pending:
            raise NotFound(
                _("the clip of event %(id)s is still being recorded; ask again in a few seconds")
                % {"id": event_id},
                field="event_id",
            )
        raise NotFound(_("no clip of event %(id)s") % {"id": event_id}, field="event_id")


class TaskEvents(NativeAPIView):
    @extend_schema(
        parameters=[
            *(OpenApiParameter(name, str) for name in EVENT_FILTERS),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
            OpenApiParameter("offset", int),
            OpenApiParameter("limit", int, description="rows to return (1..1000, default 10)"),
        ],
        responses=OpenApiTypes.OBJECT,
        summary="A task's events, newest first",
    )
    def get(self, request: Request, task_id: str) -> Response:
        task = services.get_task(self.project, task_id)
        events = Event.objects.filter(task=task)
        for name in EVENT_FILTERS:
            if (value := request.query_params.get(name)) is not None:
                events = events.filter(**{name: self._filter_value(name, value)})
        for name, lookup in (("since", "occurred_at__gte"), ("until", "occurred_at__lt")):
            if (value := request.query_params.get(name)) is not None:
                events = events.filter(**{lookup: self._moment(name, value)})
        page = self.query(PageIn)
        offset, limit = page["offset"], page["limit"]
        total = events.count()
        items = [event.as_message() for event in events[offset : offset + limit]]
        return self.page(request, total, offset, items)

    def _filter_value(self, name: str, value: str):
        if name == "subtask_id" and not value.isdigit():
            raise Invalid(_("must be a whole number"), field=name)
        return value

    def _moment(self, name: str, value: str):
        moment = parse_datetime(value)
        if moment is None:
            raise Invalid(_("not a date and time (ISO 8601 expected)"), field=name)
        return moment
