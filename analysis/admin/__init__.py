"""The operator's admin for analysis results (docs/admin.md): the detector registry, events (with
snapshot thumbnails, filters and a chart of events over time) and webhook / output deliveries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analysis.labels import key_label, rule_label
from analysis.models import Delivery, Detector, Event
from vias.lib import artefacts
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
            from tasks.choices import DetectorModel

            labels = dict(DetectorModel.choices)
            return ", ".join(str(labels.get(c, c)) for c in sorted(obj.categories()))
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
        return [(rule, rule_label(rule)) for rule in rules]

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
        "rule_column",
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
        "media_column",
        "what",
        "rule_column",
        "category",
        "zone",
        "score_column",
        "track_id",
        "occurred_at",
        "offset_column",
        "task_link",
        "subtask_link",
        "key",
        "frame_index",
        "box",
        "attributes",
        "snapshot",
        "clip",
        "created_at",
    )
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "media_column",
                    "what",
                    "rule_column",
                    "category",
                    "zone",
                    "score_column",
                    "track_id",
                    "occurred_at",
                    "offset_column",
                    "task_link",
                    "subtask_link",
                ]
            },
        ),
        (
            gettext_lazy("Details"),
            {
                "fields": ["key", "frame_index", "box", "attributes", "snapshot", "clip", "created_at"],
                "classes": ["collapse"],
            },
        ),
    ]
    change_list_template = "admin/analysis/event/change_list.html"
    change_form_template = "admin/analysis/event/change_form.html"
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

    @admin.display(description=gettext_lazy("clip and snapshot"))
    def media_column(self, obj: Event):
        """The clip (WebM, a few seconds around the event) beside the snapshot, both large."""
        clip = (
            format_html(
                '<video class="vias-clip" controls muted autoplay loop preload="auto" src="{}"></video>',
                reverse("admin:analysis_event_clip", args=[obj.pk]),
            )
            if obj.clip
            else format_html(
                '<p class="help">{}</p>', _("No clip: it is written a few seconds after the event.")
            )
        )
        snapshot = (
            format_html('<img class="vias-snapshot" src="{}" alt="">', snapshot_src(obj))
            if obj.snapshot
            else ""
        )
        return format_html('<div class="vias-event-media">{}{}</div>', clip, snapshot)

    @admin.display(description=gettext_lazy("what"))
    def what(self, obj: Event) -> str:
        return key_label(obj.key)

    @admin.display(description=gettext_lazy("rule"), ordering="rule")
    def rule_column(self, obj: Event) -> str:
        return rule_label(obj.rule)

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

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        event = self.get_object(request, object_id)
        if event is not None:
            extra_context = {**(extra_context or {}), **self.neighbours(request, event)}
        return super().change_view(request, object_id, form_url, extra_context)

    def neighbours(self, request: HttpRequest, event: Event) -> dict[str, str]:
        """The task's previous and next events in time (the list's order is newest first)."""
        same_task = self.get_queryset(request).filter(task_id=event.task_id).only("pk")
        earlier = same_task.filter(
            Q(occurred_at__lt=event.occurred_at) | Q(occurred_at=event.occurred_at, pk__lt=event.pk)
        ).order_by("-occurred_at", "-pk")
        later = same_task.filter(
            Q(occurred_at__gt=event.occurred_at) | Q(occurred_at=event.occurred_at, pk__gt=event.pk)
        ).order_by("occurred_at", "pk")
        links = {}
        for name, queryset in (("previous_url", earlier), ("next_url", later)):
            found = queryset.first()
            links[name] = reverse("admin:analysis_event_change", args=[found.pk]) if found else ""
        return links

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/snapshot.jpg", wrap(self.snapshot_view), name="analysis_event_snapshot"),
            path("<int:object_id>/clip.webm", wrap(self.clip_view), name="analysis_event_clip"),
            *super().get_urls(),
        ]

    def snapshot_view(self, request: HttpRequest, object_id: int) -> FileResponse:
        """The event's JPEG from MEDIA_ROOT, for staff; never a path outside it."""
        event = get_object_or_404(self.get_queryset(request).only("snapshot"), pk=object_id)
        return media_file(event.snapshot, "image/jpeg")

    def clip_view(self, request: HttpRequest, object_id: int) -> FileResponse:
        """The event's WebM clip (FileResponse: the browser may ask for ranges, it gets the file)."""
        event = get_object_or_404(self.get_queryset(request).only("clip"), pk=object_id)
        return media_file(event.clip, "video/webm")


def media_file(relative: str, content_type: str) -> FileResponse:
    """An artefact from the artefacts storage (MEDIA_ROOT or the object store); never outside it."""
    handle = artefacts.open_artefact(relative)
    if handle is None:
        raise Http404
    return FileResponse(handle, content_type=content_type)


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
        "task_link",
        "event_link",
        "error",
    )
    # Read-only: what was sent where and how it went (a task-state callback has a task, no event).
    list_select_related = ("event__task", "task")
    list_filter = ("output", "ok", "created_at")
    search_fields = ("target", "error", "=event__id", "=task__task_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "task",
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

    @admin.display(description=gettext_lazy("task"))
    def task_link(self, obj: Delivery) -> Any:
        task = obj.task if obj.event is None else obj.event.task
        if task is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:tasks_task_change", args=[task.pk]),
            task.task_name or task.pk,
        )

    @admin.display(description=gettext_lazy("event"), ordering="event_id")
    def event_link(self, obj: Delivery) -> Any:
        if obj.event is None:  # a task-state callback: no event
            return "-"
        return format_html(
            '<a href="{}">{} #{}</a>',
            reverse("admin:analysis_event_change", args=[obj.event_id]),
            rule_label(obj.event.rule),
            obj.event_id,
        )


CALLBACKS_SHOWN = 10


def callback_panel(request: HttpRequest, task: Any) -> dict[str, Any] | None:
    """The task page's "State callbacks" panel: the task's latest callback deliveries and the link
    to all of them; None when the user may not view deliveries, or the task has neither a callback
    nor a delivery."""
    if not request.user.has_perm("analysis.view_delivery"):
        return None
    rows = list(
        Delivery.objects.visible_to(request.user).filter(task=task, output=Delivery.Output.CALLBACK)[
            :CALLBACKS_SHOWN
        ]
    )
    output = task.output if isinstance(task.output, dict) else {}
    if not rows and not isinstance(output.get("callback"), dict):
        return None
    return {
        "rows": rows,
        "url": reverse("admin:analysis_delivery_changelist") + f"?task__task_id__exact={task.pk}",
    }
