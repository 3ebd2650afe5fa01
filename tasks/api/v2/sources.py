"""VIAS v2 video sources and video source groups with the public API's bodies (docs/dialects.md).

Bodies in, `tasks.video_sources` specs out; answers built from `.values()` rows with a fixed
number of queries whatever the page size (one for the rows, one for their groups).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from subtasks.choices import State
from subtasks.models import Subtask
from tasks import video_sources
from tasks.api.v2.serializers import EPOCH
from tasks.api.v2.views import V2APIView, as_sent
from tasks.choices import AccessType, SourceKind
from tasks.models import Task, VideoChannel, VideoGroup
from tasks.validators import type_config_for_url, validate_source_id

# ---- vocabulary --------------------------------------------------------------------------------------

ONLINE, OFFLINE, ABNORMAL = "1", "2", "9"
STATUS_NAMES = {
    ONLINE: gettext_lazy("online"),
    OFFLINE: gettext_lazy("offline"),
    ABNORMAL: gettext_lazy("abnormal"),
}
# A source is "online" while a subtask analyses it, "abnormal" when its last analysis broke.
ONLINE_STATES = (State.RUNNING, State.RECOVERING)
ABNORMAL_STATES = (State.ABNORMAL, State.FAILED)

# Core names -> the v2 request's words, for error paths.
SOURCE_PATHS = {
    "name": "video_source_name",
    "url": "type_config",
    "kind": "type",
    "tags": "tag",
    "vchan_refid": "video_source_id",
    "group_ids": "video_group_ids",
}
GROUP_PATHS = {"name": "video_group_name", "source_ids": "video_source_ids"}


def _renamer(names: dict[str, str]):
    def rename(path: str) -> str:
        head, dot, rest = path.partition(".")
        bracket = head.find("[")
        if bracket > 0:
            head, rest, dot = head[:bracket], head[bracket:] + dot + rest, ""
        return names.get(head, head) + dot + rest

    return rename


ONE_MS = timedelta(milliseconds=1)


def ms(value: datetime | None) -> int | None:
    """A time as the public API shows video sources' and groups': milliseconds, a number."""
    return None if value is None else (value - EPOCH) // ONE_MS


def _split(values: list[str]) -> list[str]:
    """Array query parameters: repeated (`type=url&type=obs`) or comma-separated (`type=url,obs`)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


# ---- requests ----------------------------------------------------------------------------------------


class SourceFieldsIn(serializers.Serializer):
    """What CreateVideoSource and UpdateVideoSource share."""

    video_source_name = serializers.CharField(max_length=100, trim_whitespace=False)
    type_config = serializers.CharField(max_length=1024, trim_whitespace=False)
    latitude = serializers.CharField(required=False, allow_blank=True, max_length=16)
    longitude = serializers.CharField(required=False, allow_blank=True, max_length=16)
    video_group_ids = serializers.ListField(
        child=serializers.CharField(validators=[validate_source_id]), required=False, max_length=100
    )
    tag = serializers.ListField(child=serializers.CharField(max_length=10), required=False, max_length=4)

    def to_spec(self) -> dict[str, Any]:
        data = self.validated_data
        return {
            name: data[key]
            for key, name in (
                ("video_source_name", "name"),
                ("access_type", "access_type"),
                ("type", "kind"),
                ("type_config", "type_config"),
                ("latitude", "latitude"),
                ("longitude", "longitude"),
                ("tag", "tags"),
                ("video_source_id", "vchan_refid"),
                ("video_group_ids", "group_ids"),
            )
            if key in data
        }


class SourceIn(SourceFieldsIn):
    """POST /v2/{project_id}/source (CreateVideoSource)."""

    access_type = serializers.ChoiceField(choices=AccessType.choices)
    type = serializers.ChoiceField(choices=SourceKind.choices)
    # Ours: a client may choose the id (else a UUID is made).
    video_source_id = serializers.CharField(required=False, validators=[validate_source_id])


class SourceUpdateIn(SourceFieldsIn):
    """PUT /v2/{project_id}/source/{id} (UpdateVideoSource): name and type_config required;
    access_type and type cannot change (ignored when sent)."""


class SourceListIn(serializers.Serializer):
    """GET /v2/{project_id}/source/sources (ListVideoSources)."""

    scope = serializers.CharField(required=False, allow_blank=True, max_length=255)
    scope_name = serializers.ChoiceField(
        choices=["source_name", "group_name"], required=False, default="source_name"
    )
    status = serializers.ListField(child=serializers.CharField(), required=False)
    type = serializers.ListField(child=serializers.CharField(), required=False)
    video_group_id = serializers.ListField(child=serializers.CharField(), required=False)
    access_type = serializers.ListField(child=serializers.CharField(), required=False)
    sort_name = serializers.ChoiceField(
        choices=["create_at", "num_task", "num_template"], required=False, default="create_at"
    )
    order_by = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    is_paged = serializers.BooleanField(required=False, default=False)
    page_size = serializers.IntegerField(required=False, default=10, min_value=5, max_value=200)
    page_num = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10000)
    platform_name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    tag = serializers.CharField(required=False, max_length=10)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        allowed = {
            "status": (ONLINE, OFFLINE, ABNORMAL),
            "type": tuple(SourceKind.values),
            "access_type": tuple(AccessType.values),
        }
        for name in ("status", "type", "video_group_id", "access_type"):
            if name not in attrs:
                continue
            attrs[name] = _split(attrs[name])
            for value in attrs[name]:
                if name in allowed and value not in allowed[name]:
                    raise serializers.ValidationError(
                        {name: [_("%(v)r is not one of %(a)s") % {"v": value, "a": ", ".join(allowed[name])}]}
                    )
                if name == "video_group_id" and not _GROUP_ID_FILTER(value):
                    raise serializers.ValidationError({name: [_("use 1..36 letters, digits, '_' or '-'")]})
        return attrs


def _GROUP_ID_FILTER(value: str) -> bool:  # noqa: N802 - the public rule, ^[0-9a-zA-Z-_]{1,36}$
    return 1 <= len(value) <= 36 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


class GroupFieldsIn(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=100)

    def to_spec(self) -> dict[str, Any]:
        data = self.validated_data
        names = {"video_group_name": "name", "video_source_ids": "source_ids"}
        return {names.get(key, key): value for key, value in data.items()}


class GroupIn(GroupFieldsIn):
    """POST /v2/{project_id}/video-group (CreateVideoGroup)."""

    video_group_name = serializers.CharField(max_length=20, trim_whitespace=False)
    access_type = serializers.ChoiceField(choices=AccessType.choices)
    video_source_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=1000
    )


class GroupUpdateIn(GroupFieldsIn):
    """PUT /v2/{project_id}/video-group/{id} (UpdateVideoGroup): 1..50 sources replace the members;
    the access type cannot change (ignored when sent)."""

    video_group_name = serializers.CharField(required=False, max_length=20, trim_whitespace=False)
    video_source_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), min_length=1, max_length=50
    )


class GroupListIn(serializers.Serializer):
    """GET /v2/{project_id}/video-group/groups (ListVideoGroups)."""

    sort_name = serializers.ChoiceField(
        choices=["create_at", "modify_at", "num_video_source", "num_task"],
        required=False,
        default="create_at",
    )
    order_by = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    is_paged = serializers.BooleanField(required=False, default=False)
    page_size = serializers.IntegerField(required=False, default=10, min_value=5, max_value=200)
    page_num = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10000)
    name = serializers.CharField(required=False, allow_blank=True, max_length=20)
    status = serializers.ChoiceField(choices=[ONLINE, OFFLINE, ABNORMAL], required=False)
    access_type = serializers.ListField(
        child=serializers.ChoiceField(choices=AccessType.choices), required=False
    )
    # Not a BooleanField: from a query string DRF reads an absent boolean as false.
    has_task = serializers.ChoiceField(choices=["true", "false"], required=False)
    type = serializers.ListField(child=serializers.ChoiceField(choices=SourceKind.choices), required=False)


# ---- queries -----------------------------------------------------------------------------------------


def _channel_has(states: tuple[str, ...], link: str = "pk") -> Exists:
    return Exists(Subtask.objects.filter(video_channel=OuterRef(link), state__in=states))


def source_rows(channels: QuerySet) -> QuerySet:
    """Channels with `status` and `num_task`, in SQL (one query, however many rows)."""
    return channels.annotate(
        online=_channel_has(ONLINE_STATES),
        broken=_channel_has(ABNORMAL_STATES),
        num_task=_count(Subtask.objects.filter(video_channel=OuterRef("pk")), "video_channel", "task"),
    )


def status_q(statuses: list[str]) -> Q:
    q = Q(pk__in=[])
    if ONLINE in statuses:
        q |= Q(online=True)
    if ABNORMAL in statuses:
        q |= Q(online=False, broken=True)
    if OFFLINE in statuses:
        q |= Q(online=False, broken=False)
    return q


def source_filter(query: dict[str, Any]) -> Q:
    q = Q()
    if query.get("scope"):
        if query["scope_name"] == "group_name":
            q &= Q(Exists(VideoGroup.objects.filter(channels=OuterRef("pk"), name__icontains=query["scope"])))
        else:
            q &= Q(name__icontains=query["scope"])
    if query.get("type"):
        q &= Q(kind__in=query["type"])
    if query.get("access_type"):
        q &= Q(access_type__in=query["access_type"])
    if query.get("video_group_id"):
        q &= Q(
            Exists(VideoGroup.objects.filter(channels=OuterRef("pk"), group_id__in=query["video_group_id"]))
        )
    if "tag" in query:
        # A JSON list stored as text: the quoted tag, as either backend writes it.
        tag = query["tag"]
        q &= Q(tags__icontains=json.dumps(tag)) | Q(tags__icontains=json.dumps(tag, ensure_ascii=False))
    return q


class EpochMs(Func):
    """A time column as milliseconds since 1970 (floored, as `ms` computes it), in SQL: no
    timestamp is parsed into a Python datetime per row (psycopg's time-zone loader and Django's
    SQLite converter cost more than the rest of a row together)."""

    output_field = BigIntegerField()

    def __init__(self, column: str) -> None:
        super().__init__(F(column))

    def get_db_converters(self, connection: Any) -> list[Any]:
        # Both backends answer an int already, and a BIGINT needs no converter: none per row.
        return []

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Whole seconds and the milliseconds within them, both exact (no floating epoch).
        return self._twice(
            compiler,
            connection,
            "(CAST(EXTRACT(EPOCH FROM DATE_TRUNC('second', %(expressions)s)) AS BIGINT) * 1000"
            " + MOD(CAST(FLOOR(EXTRACT(MICROSECONDS FROM %(expressions)s) / 1000) AS BIGINT), 1000))",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC: the seconds, then the first three
        # digits of the fraction ('.000' appended for a time without one). '%%%%s' is '%s' in SQL.
        return self._twice(
            compiler,
            connection,
            "(CAST(STRFTIME('%%%%s', SUBSTR(%(expressions)s, 1, 19)) AS INTEGER) * 1000"
            " + CAST(SUBSTR(%(expressions)s || '.000', 21, 3) AS INTEGER))",
            **extra,
        )

    def _twice(self, compiler: Any, connection: Any, template: str, **extra: Any) -> tuple[str, list[Any]]:
        """The column appears twice in each template: its parameters (if any) twice as well."""
        sql, params = super().as_sql(compiler, connection, template=template, **extra)
        return sql, [*params, *params]


# What a list item shows, in this order (tuples, not dicts: `source_items` unpacks them).
LIST_COLUMNS = (
    "pk",
    "vchan_refid",
    "name",
    "access_type",
    "kind",
    "url",
    "latitude",
    "longitude",
    "create_ms",
    "tags_text",
)


def source_columns(channels: QuerySet, *extra: str) -> QuerySet:
    """The list's columns as tuples (and `extra` ones after them): the creation time as
    milliseconds and the tags as their JSON text, both in SQL."""
    return channels.annotate(
        create_ms=EpochMs("created_at"), tags_text=Cast("tags", TextField())
    ).values_list(*LIST_COLUMNS, *extra)


def source_stats(channels: QuerySet) -> dict[int, dict[str, Any]]:
    """Each channel's task count and whether a subtask analyses it or broke, in one grouped query
    over the subtasks (cheaper than correlated subqueries per row when nothing filters on them)."""
    rows = (
        Subtask.objects.filter(video_channel__in=channels.values("pk"))
        .order_by()
        .values("video_channel")
        .annotate(
            num_task=Count("task", distinct=True),
            online=Count("pk", filter=Q(state__in=ONLINE_STATES)),
            broken=Count("pk", filter=Q(state__in=ABNORMAL_STATES)),
        )
    )
    return {row["video_channel"]: row for row in rows}


NO_STATS = {"num_task": 0, "online": 0, "broken": 0}


def groups_by_channel(channels: QuerySet) -> dict[int, list[dict[str, Any]]]:
    """Each channel's groups: the memberships, then the few groups they name (two queries)."""
    pairs = list(
        VideoGroup.channels.through.objects.filter(videochannel__in=channels.values("pk")).values_list(
            "videochannel_id", "videogroup_id"
        )
    )
    if not pairs:
        return {}
    groups = {
        row["group_id"]: {
            "video_group_id": row["group_id"],
            "video_group_name": row["name"],
            "description": row["description"],
            "access_type": row["access_type"],
            "create_at": ms(row["created_at"]),
            "modify_at": ms(row["updated_at"]),
        }
        for row in VideoGroup.objects.filter(pk__in={g for _, g in pairs}).values(
            "group_id", "name", "description", "access_type", "created_at", "updated_at"
        )
    }
    by_channel: dict[int, list[dict[str, Any]]] = {}
    for channel_id, group_id in pairs:
        by_channel.setdefault(channel_id, []).append(groups[group_id])
    return by_channel


def status_out(code: str) -> dict[str, str]:
    return {"status": code, "name": str(STATUS_NAMES[code]), "level": code}


def status_outs() -> dict[str, dict[str, str]]:
    """The three statuses in the request's language, translated once rather than per row."""
    return {code: status_out(code) for code in STATUS_NAMES}


def source_items(
    rows: Any, stats: dict[int, dict[str, Any]], groups: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """ListVideoSourceInfoDto for each row of `source_columns`: a video source as the list shows
    it. The status names are translated once, and each distinct tags text is decoded once."""
    statuses = status_outs()
    decoded: dict[str, Any] = {}
    items = []
    for row in rows:
        pk, refid, name, access_type, kind, url, latitude, longitude, create_ms, tags_text = row[:10]
        stat = stats.get(pk, NO_STATS)
        tags = decoded.get(tags_text, decoded)
        if tags is decoded:
            tags = decoded[tags_text] = json.loads(tags_text)
        items.append(
            {
                "video_source_id": refid,
                "video_source_name": name,
                "status": statuses[ONLINE if stat["online"] else ABNORMAL if stat["broken"] else OFFLINE],
                "access_type": access_type,
                "type": kind,
                "latitude": latitude,
                "longitude": longitude,
                "create_at": create_ms,
                "stream_path": url,
                "video_packages": groups.get(pk, []),
                "tag": tags,
                "num_task": stat["num_task"],
                "num_template": 0,
            }
        )
    return items


def source_detail(channel: VideoChannel) -> dict[str, Any]:
    """ShowVideoSourceDetail: the list's fields and the configuration (empty where this
    installation has nothing: templates, screenshot, recommendations, quality)."""
    channels = VideoChannel.objects.filter(pk=channel.pk)
    row = source_columns(channels, "type_config").get()
    (item,) = source_items([row], source_stats(channels), groups_by_channel(channels))
    return {
        **item,
        "type_config": row[-1] or type_config_for_url(item["stream_path"]),
        "service_config_templates": [],
        "image": "",
        "scene_recommend": [],
        "video_source_quality": [],
    }


def _count(rows: QuerySet, key: str, counted: str) -> Coalesce:
    """COUNT(DISTINCT counted) of `rows` per `key`, as a correlated subquery: the outer query has
    no GROUP BY (SQLite drops rows grouped by a subquery column)."""
    counts = rows.order_by().values(key).annotate(n=Count(counted, distinct=True)).values("n")
    return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))


def group_rows(groups: QuerySet) -> QuerySet:
    """Groups with their member counts by status and their batch tasks, in SQL."""
    members = VideoGroup.channels.through.objects.filter(videogroup=OuterRef("pk"))
    online = Q(
        Exists(Subtask.objects.filter(video_channel=OuterRef("videochannel"), state__in=ONLINE_STATES))
    )
    broken = Q(
        Exists(Subtask.objects.filter(video_channel=OuterRef("videochannel"), state__in=ABNORMAL_STATES))
    )
    batches = Task.objects.filter(
        project=OuterRef("project"), video_group_id=OuterRef("group_id"), batch__isnull=False
    )
    return groups.annotate(
        num_video_source=_count(members, "videogroup", "videochannel"),
        num_online=_count(members.filter(online), "videogroup", "videochannel"),
        num_broken=_count(members.filter(broken & ~online), "videogroup", "videochannel"),
        num_batch_task=_count(batches, "project", "batch"),
    )


def group_kinds(groups: QuerySet) -> dict[str, list[str]]:
    through = VideoGroup.channels.through
    rows = (
        through.objects.filter(videogroup__in=groups.values("pk"))
        .values_list("videogroup_id", "videochannel__kind")
        .distinct()
    )
    kinds: dict[str, list[str]] = {}
    for group_id, kind in rows:
        kinds.setdefault(group_id, []).append(kind)
    return kinds


GROUP_COLUMNS = (
    "group_id",
    "name",
    "description",
    "access_type",
    "created_at",
    "updated_at",
    "num_video_source",
    "num_online",
    "num_broken",
    "num_batch_task",
)


def group_item(row: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    online, broken = row["num_online"], row["num_broken"]
    return {
        "video_group_id": row["group_id"],
        "video_group_name": row["name"],
        "description": row["description"],
        "num_video_source": row["num_video_source"],
        "group_status": {
            "num_online": online,
            "num_exception": broken,
            "num_offline": row["num_video_source"] - online - broken,
        },
        "access_type": row["access_type"],
        "create_at": ms(row["created_at"]),
        "modify_at": ms(row["updated_at"]),
        "num_batch_task": row["num_batch_task"],
        "type": ",".join(sorted(kinds)),
    }


def group_status_q(status: str) -> Q:
    """A group's level: abnormal when a member is, online when one is analysed, else offline."""
    if status == ABNORMAL:
        return Q(num_broken__gt=0)
    if status == ONLINE:
        return Q(num_broken=0, num_online__gt=0)
    return Q(num_broken=0, num_online=0)


# ---- views -------------------------------------------------------------------------------------------


def _page(queryset: QuerySet, query: dict[str, Any]) -> QuerySet:
    if not query["is_paged"]:
        return queryset
    start = (query["page_num"] - 1) * query["page_size"]
    return queryset[start : start + query["page_size"]]


class SourceView(V2APIView):
    request_path_of = staticmethod(_renamer(SOURCE_PATHS))

    def detail(self, channel: VideoChannel) -> dict[str, Any]:
        return source_detail(channel)


class SourceCreate(SourceView):
    @extend_schema(request=SourceIn, responses=OpenApiTypes.OBJECT, summary="v2: create a video source")
    def post(self, request: Request, project_id: str) -> Response:
        spec = self.parse(SourceIn).to_spec()
        channel = video_sources.create_source(self.project, spec, quota=settings.VIAS_V2_SOURCE_QUOTA)
        return Response({"video_source_id": channel.vchan_refid})


class SourceDetail(SourceView):
    @extend_schema(request=SourceUpdateIn, responses=OpenApiTypes.OBJECT, summary="v2: change a video source")
    def put(self, request: Request, project_id: str, source_id: str) -> Response:
        channel = video_sources.get_source(self.project, source_id)
        channel = video_sources.update_source(channel, self.parse(SourceUpdateIn).to_spec())
        return Response(self.detail(channel))

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: delete a video source no task uses")
    def delete(self, request: Request, project_id: str, source_id: str) -> Response:
        video_sources.delete_source(video_sources.get_source(self.project, source_id))
        return Response({})


class SourceShow(SourceView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: show a video source")
    def get(self, request: Request, project_id: str, source_id: str) -> Response:
        return Response(self.detail(video_sources.get_source(self.project, source_id)))


class SourceCollection(SourceView):
    request_path_of = staticmethod(as_sent)

    @extend_schema(parameters=[SourceListIn], responses=OpenApiTypes.OBJECT, summary="v2: list video sources")
    def get(self, request: Request, project_id: str) -> Response:
        query = self.query(SourceListIn)
        channels: QuerySet = VideoChannel.objects.for_project(self.project).filter(source_filter(query))
        if query.get("status") or query["sort_name"] == "num_task":  # only then in SQL, per row
            channels = source_rows(channels)
        if query.get("status"):
            channels = channels.filter(status_q(query["status"]))
        total = channels.count()
        key = "num_task" if query["sort_name"] == "num_task" else "created_at"
        order = ("-" if query["order_by"] == "desc" else "") + key
        page = _page(channels.order_by(order, "vchan_refid"), query)
        rows = list(source_columns(page))
        # Paged: the page's ids; unpaged: the same filter as a subquery (no list of 10,000 ids).
        shown = VideoChannel.objects.filter(pk__in=[r[0] for r in rows]) if query["is_paged"] else channels
        stats = source_stats(shown) if rows else {}
        groups = groups_by_channel(shown) if rows else {}
        items = source_items(rows, stats, groups)
        return Response(
            {
                "video_source_number": len(items),
                "total_number": total,
                "quota_number": settings.VIAS_V2_SOURCE_QUOTA,
                "video_source_list": items,
            }
        )


class GroupView(V2APIView):
    request_path_of = staticmethod(_renamer(GROUP_PATHS))

    def detail(self, group: VideoGroup) -> dict[str, Any]:
        groups = VideoGroup.objects.filter(pk=group.pk)
        row = group_rows(groups).values(*GROUP_COLUMNS).get()
        item = group_item(row, group_kinds(groups).get(group.pk, []))
        item["video_source_ids"] = list(
            group.channels.order_by("vchan_refid").values_list("vchan_refid", flat=True)
        )
        return item


class GroupCreate(GroupView):
    @extend_schema(request=GroupIn, responses=OpenApiTypes.OBJECT, summary="v2: create a video source group")
    def post(self, request: Request, project_id: str) -> Response:
        spec = self.parse(GroupIn).to_spec()
        group = video_sources.create_group(self.project, spec, quota=settings.VIAS_V2_GROUP_QUOTA)
        return Response({"video_group_id": group.group_id})


class GroupDetail(GroupView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: show a video source group")
    def get(self, request: Request, project_id: str, group_id: str) -> Response:
        return Response(self.detail(video_sources.get_group(self.project, group_id)))

    @extend_schema(
        request=GroupUpdateIn, responses=OpenApiTypes.OBJECT, summary="v2: change a video source group"
    )
    def put(self, request: Request, project_id: str, group_id: str) -> Response:
        group = video_sources.get_group(self.project, group_id)
        video_sources.update_group(group, self.parse(GroupUpdateIn).to_spec())
        return Response({})

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: delete a video source group")
    def delete(self, request: Request, project_id: str, group_id: str) -> Response:
        video_sources.delete_group(video_sources.get_group(self.project, group_id))
        return Response({})


class GroupCollection(GroupView):
    request_path_of = staticmethod(as_sent)

    @extend_schema(
        parameters=[GroupListIn], responses=OpenApiTypes.OBJECT, summary="v2: list video source groups"
    )
    def get(self, request: Request, project_id: str) -> Response:
        query = self.query(GroupListIn)
        groups: QuerySet = VideoGroup.objects.for_project(self.project)
        if query.get("name"):
            groups = groups.filter(name__icontains=query["name"])
        if query.get("access_type"):
            groups = groups.filter(access_type__in=query["access_type"])
        if query.get("type"):
            groups = groups.filter(
                Exists(
                    VideoGroup.channels.through.objects.filter(
                        videogroup=OuterRef("pk"), videochannel__kind__in=query["type"]
                    )
                )
            )
        groups = group_rows(groups)
        if "status" in query:
            groups = groups.filter(group_status_q(query["status"]))
        if "has_task" in query:
            with_task = query["has_task"] == "true"
            groups = groups.filter(num_batch_task__gt=0) if with_task else groups.filter(num_batch_task=0)
        total = groups.count()
        key = {"create_at": "created_at", "modify_at": "updated_at", "num_task": "num_batch_task"}.get(
            query["sort_name"], query["sort_name"]
        )
        order = ("-" if query["order_by"] == "desc" else "") + key
        rows = list(_page(groups.order_by(order, "group_id"), query).values(*GROUP_COLUMNS))
        shown = (
            VideoGroup.objects.filter(pk__in=[r["group_id"] for r in rows]) if query["is_paged"] else groups
        )
        kinds = group_kinds(shown) if rows else {}
        items = [group_item(row, kinds.get(row["group_id"], [])) for row in rows]
        return Response(
            {
                "video_group_number": len(items),
                "total_number": total,
                "quota_number": settings.VIAS_V2_GROUP_QUOTA,
                "video_group_list": items,
            }
        )
