"""The operator's admin for analysis results (docs/admin.md): the detector registry, events (with
snapshot thumbnails, filters and a chart of events over time) and webhook / output deliveries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analysis.models import Delivery, Detector, Event
from vias.lib.admin import LIVE_MEDIA, TenantAdminMixin, events_chart


@admin.register(Detector)
class DetectorAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "priority",
        "role",
        "head",
        "input_size",
        "category_list",
        "score_threshold",
        "fp16",
        "file_present",
    )
    list_editable = ("enabled", "priority")
    list_filter = ("enabled", "role", "head", "fp16")
    search_fields = ("name", "onnx_file", "licence")
    readonly_fields = ("created_at",)

    @admin.display(description=gettext_lazy("input"))
    def input_size(self, obj: Detector) -> str:
        return f"{obj.input_width}×{obj.input_height}"

    @admin.display(description=gettext_lazy("categories"))
    def category_list(self, obj: Detector) -> str:
        try:
            return ", ".join(sorted(obj.categories()))
        except (AttributeError, KeyError, TypeError):
            return "?"

    @admin.display(description=gettext_lazy("file present"), boolean=True)
    def file_present(self, obj: Detector) -> bool:
        return obj.path.is_file()


class TimeFilter(admin.SimpleListFilter):
    title = gettext_lazy("time")
    parameter_name = "since"
    SPANS = {
        "1h": timedelta(hours=1),
        "24h": timedelta(hours=24),
        "7d": timedelta(days=7),
        "30d": timedelta(days=30),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        return [
            ("1h", _("last hour")),
            ("24h", _("last 24 hours")),
            ("7d", _("last 7 days")),
            ("30d", _("last 30 days")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        span = self.SPANS.get(self.value() or "")
        return queryset.filter(occurred_at__gte=timezone.now() - span) if span else queryset


class RuleFilter(admin.SimpleListFilter):
    """The rules that produced events (one DISTINCT query)."""

    title = gettext_lazy("rule")
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        rules = (
            Event.objects.visible_to(request.user).order_by("rule").values_list("rule", flat=True).distinct()
        )
        return [(rule, rule) for rule in rules]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(rule=self.value()) if self.value() else queryset


def snapshot_src(event: Event) -> str:
    return reverse("admin:analysis_event_snapshot", args=[event.pk]) if event.snapshot else ""


@admin.register(Event)
class EventAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "occurred_at",
        "category",
        "rule",
        "zone",
        "score_column",
        "track_id",
        "task_link",
        "subtask_link",
        "offset_column",
    )
    list_display_links = ("occurred_at",)
    list_select_related = ("task",)
    list_filter = (
        TimeFilter,
        "category",
        RuleFilter,
        ("task", admin.RelatedOnlyFieldListFilter),
        ("subtask", admin.RelatedOnlyFieldListFilter),
        "occurred_at",
    )
    search_fields = ("=task__task_id", "task__task_name", "rule", "zone", "=subtask__id")
    date_hierarchy = "occurred_at"
    readonly_fields = (
        "big_snapshot",
        "task",
        "subtask",
        "key",
        "occurred_at",
        "offset_s",
        "frame_index",
        "category",
        "rule",
        "zone",
        "box",
        "score",
        "track_id",
        "attributes",
        "snapshot",
        "created_at",
    )
    fields = readonly_fields
    change_list_template = "admin/analysis/event/change_list.html"
    list_per_page = 50

    @property
    def media(self) -> forms.Media:
        return super().media + LIVE_MEDIA

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # analysis writes events

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).defer("attributes", "task__config", "task__output")

    @admin.display(description=gettext_lazy("snapshot"))
    def thumbnail(self, obj: Event) -> Any:
        if not obj.snapshot:
            return "—"
        src = snapshot_src(obj)
        return format_html(
            '<a href="{}"><img class="vias-thumb" src="{}" alt="" loading="lazy"></a>', src, src
        )

    @admin.display(description=gettext_lazy("snapshot"))
    def big_snapshot(self, obj: Event) -> Any:
        if not obj.snapshot:
            return "—"
        return format_html('<img src="{}" alt="" style="max-width:100%;max-height:540px">', snapshot_src(obj))

    @admin.display(description=gettext_lazy("score"), ordering="score")
    def score_column(self, obj: Event) -> str:
        return f"{obj.score:.2f}"

    @admin.display(description=gettext_lazy("offset (s)"), ordering="offset_s")
    def offset_column(self, obj: Event) -> str:
        return f"{obj.offset_s:.1f}"

    @admin.display(description=gettext_lazy("task"), ordering="task__task_name")
    def task_link(self, obj: Event) -> Any:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tasks_task_change", args=[obj.task_id]), obj.task
        )

    @admin.display(description=gettext_lazy("subtask"), ordering="subtask_id")
    def subtask_link(self, obj: Event) -> Any:
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:subtasks_subtask_change", args=[obj.subtask_id]),
            obj.subtask_id,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            queryset = context["cl"].queryset
            context["events_chart"] = events_chart(queryset)
            context["events_per_task"] = list(
                queryset.order_by()
                .values("task_id", "task__task_name")
                .annotate(n=Count("pk"))
                .order_by("-n")[:10]
            )
        return response

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/snapshot.jpg", wrap(self.snapshot_view), name="analysis_event_snapshot"),
            *super().get_urls(),
        ]

    def snapshot_view(self, request: HttpRequest, object_id: int) -> FileResponse:
        """The event's JPEG from MEDIA_ROOT, for staff; never a path outside it."""
        event = get_object_or_404(self.get_queryset(request).only("snapshot"), pk=object_id)
        root = Path(settings.MEDIA_ROOT).resolve()
        path_ = (root / event.snapshot).resolve() if event.snapshot else None
        if path_ is None or root not in path_.parents or not path_.is_file():
            raise Http404
        return FileResponse(path_.open("rb"), content_type="image/jpeg")


@admin.register(Delivery)
class DeliveryAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "output",
        "target",
        "attempt",
        "ok",
        "status_code",
        "duration",
        "event_link",
        "error",
    )
    list_select_related = ("event",)
    list_filter = ("output", "ok", "created_at")
    search_fields = ("target", "error", "=event__id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "event",
        "output",
        "target",
        "attempt",
        "ok",
        "status_code",
        "error",
        "duration_ms",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("duration (ms)"), ordering="duration_ms")
    def duration(self, obj: Delivery) -> str:
        return f"{obj.duration_ms:.0f}"

    @admin.display(description=gettext_lazy("event"), ordering="event_id")
    def event_link(self, obj: Delivery) -> Any:
        if obj.event is None:  # a task-state callback: no event
            return "-"
        return format_html(
            '<a href="{}">{} #{}</a>',
            reverse("admin:analysis_event_change", args=[obj.event_id]),
            obj.event.rule,
            obj.event_id,
        )
