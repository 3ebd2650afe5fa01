"""The operator's admin for subtasks and analysis nodes (docs/admin.md).

A subtask's configuration (ROIs, calibration, config, algo_args) is saved by
subtasks.services.apply_config (a running subtask applies it at once); its state changes only by
the service functions (mark_config_complete, start_subtask, stop_subtask, dispatch), each
answer reported in the admin's messages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subtasks import services
from subtasks.choices import ACTIVE_STATES, State
from subtasks.models import Node, Subtask
from subtasks.widgets import buttons_for, state_badge
from tasks.widgets import RoiListField, XmlFieldsMixin
from vias.lib.admin import (
    LIVE_MEDIA,
    OUTCOME_WORDS,
    ServiceChangeMixin,
    TenantAdminMixin,
    progress_bar,
    report_outcomes,
    run_service,
)

# The admin's messages name states and acknowledgements in words (vias.lib.admin.report_outcomes).
OUTCOME_WORDS.update({state.value: state.label for state in State})
OUTCOME_WORDS.update(
    {
        "acknowledged": gettext_lazy("acknowledged"),
        "refused": gettext_lazy("refused"),
        "timeout": gettext_lazy("no answer in time"),
        "applied": gettext_lazy("applied"),
    }
)


class SubtaskForm(forms.ModelForm):
    rois = RoiListField(required=False, label=gettext_lazy("ROIs"))

    class Meta:
        model = Subtask
        fields = ("rois", "calibration_xml", "config_xml", "algo_args")


@admin.register(Subtask)
class SubtaskAdmin(TenantAdminMixin, ServiceChangeMixin, XmlFieldsMixin, admin.ModelAdmin):
    form = SubtaskForm
    list_display = (
        "id",
        "task_link",
        "position",
        "source",
        "state_column",
        "config_complete",
        "progress_column",
        "node",
        "attempts",
        "heartbeat_at",
        "updated_at",
    )
    list_display_links = ("id",)
    list_select_related = ("task", "node", "video_channel")
    list_filter = ("state", "config_complete", "node", "task__project", "task__algo_type")
    search_fields = ("=id", "task__task_name", "task__task_id", "source_url", "video_channel__vchan_refid")
    actions = ["config_complete", "start", "stop", "dispatch", "delete_through_service"]
    readonly_fields = (
        "task_link",
        "position",
        "source",
        "scene_link",
        "follows_scene",
        "state_column",
        "config_complete",
        "progress_column",
        "status_reason",
        "node",
        "attempts",
        "video_time_length",
        "video_begin_time",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "created_at",
        "updated_at",
    )
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "task_link",
                    "position",
                    "source",
                    "scene_link",
                    "follows_scene",
                    "state_column",
                    "config_complete",
                    "progress_column",
                    "status_reason",
                    "node",
                    "attempts",
                ]
            },
        ),
        (gettext_lazy("ROIs"), {"fields": ["rois"]}),
        (gettext_lazy("Calibration"), {"fields": ["calibration_xml"]}),
        (gettext_lazy("Algorithm configuration"), {"fields": ["config_xml", "algo_args"]}),
        (
            gettext_lazy("Times"),
            {
                "fields": [
                    "video_time_length",
                    "video_begin_time",
                    "heartbeat_at",
                    "started_at",
                    "finished_at",
                    "created_at",
                    "updated_at",
                ],
                "classes": ["collapse"],
            },
        ),
    ]
    change_form_template = "admin/subtasks/subtask/change_form.html"
    frame_inputs = ""

    @property
    def media(self) -> forms.Media:
        return super().media + LIVE_MEDIA

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "subtasks_subtask_changelist":
            # The list shows none of the configuration documents: do not read them.
            queryset = queryset.defer("rois", "calibration_xml", "config_xml", "task__config", "task__output")
        return queryset

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            self.point_editors(form, f"?subtask={obj.pk}")
            form.base_fields["rois"].widget.frame_url = (
                reverse("admin:tasks_scene_frame") + f"?subtask={obj.pk}"
            )
        return form

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subtasks are made by splitting a task (tasks.services.create_task)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # -- columns --

    @admin.display(description=gettext_lazy("task"), ordering="task__task_name")
    def task_link(self, obj: Subtask) -> Any:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tasks_task_change", args=[obj.task_id]), obj.task.task_name
        )

    @admin.display(description=gettext_lazy("scene"))
    def scene_link(self, obj: Subtask) -> Any:
        if not obj.scene_id:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:tasks_scene_change", args=[obj.scene_id]), _("its scene")
        )

    @admin.display(description=gettext_lazy("source"))
    def source(self, obj: Subtask) -> str:
        return str(obj.video_channel) if obj.video_channel_id else obj.source_url

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_column(self, obj: Subtask) -> Any:
        return format_html(
            '<span data-subtask-id="{}" data-role="subtask-state">{}</span>', obj.pk, state_badge(obj.state)
        )

    @admin.display(description=gettext_lazy("progress"), ordering="progress")
    def progress_column(self, obj: Subtask) -> Any:
        return format_html('<span data-subtask-progress="{}">{}</span>', obj.pk, progress_bar(obj.progress))

    # -- saving through the services --

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        spec = {name: form.cleaned_data[name] for name in form.changed_data if name in services.CONFIG_FIELDS}
        if not spec:
            return
        _subtask, ack = services.apply_config(obj, spec)
        report_outcomes(request, _("configuration saved"), [ack])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # no inlines; the configuration was saved by apply_config

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.delete_subtask(obj)

    # -- the change page's buttons --

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        from analysis.admin import console

        subtask = self.get_object(request, object_id)
        buttons = [
            ("config-complete", _("Config complete"), ""),
            ("start", _("Start"), ""),
            ("stop", _("Stop"), "vias-danger"),
            ("dispatch", _("Dispatch again"), ""),
        ]
        extra_context = {
            **(extra_context or {}),
            "buttons": buttons_for([subtask.state] if subtask else [], buttons),
        }
        if subtask is not None:
            extra_context.update(console.camera_context(subtask))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/do/<str:verb>/", wrap(self.command_view), name="subtasks_subtask_command"),
            *super().get_urls(),
        ]

    def command_view(self, request: HttpRequest, object_id: int, verb: str) -> HttpResponse:
        if request.method != "POST":
            raise Http404
        subtask = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, subtask):
            raise PermissionDenied
        commands = {
            "config-complete": self.config_complete,
            "start": self.start,
            "stop": self.stop,
            "dispatch": self.dispatch,
        }
        if verb not in commands:
            raise Http404
        commands[verb](request, Subtask.objects.filter(pk=subtask.pk))
        return HttpResponseRedirect(reverse("admin:subtasks_subtask_change", args=[subtask.pk]))

    # -- actions --

    def _each(self, request, queryset, label: str, fn) -> None:
        for subtask in queryset.select_related("task__project"):
            ok, outcome = run_service(request, fn, subtask, prefix=_("subtask %(id)s: ") % {"id": subtask.pk})
            if ok:
                report_outcomes(request, label, [outcome])

    @admin.action(description=gettext_lazy("Mark config complete"))
    def config_complete(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        def mark(subtask: Subtask) -> services.Outcome:
            done = services.mark_config_complete(subtask)
            return services.Outcome(done.pk, done.state, True)

        self._each(request, queryset, _("config complete"), mark)

    @admin.action(description=gettext_lazy("Start the selected subtasks"))
    def start(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._each(request, queryset, _("start"), services.start_subtask)

    @admin.action(description=gettext_lazy("Stop the selected subtasks"))
    def stop(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._each(request, queryset, _("stop"), services.stop_subtask)

    @admin.action(description=gettext_lazy("Dispatch again"))
    def dispatch(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._each(request, queryset, _("dispatch again"), services.dispatch_again)

    @admin.action(description=gettext_lazy("Delete the selected subtasks (refused while one runs)"))
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self.service_delete_queryset(request, queryset, services.delete_subtask)


@admin.register(Node)
class NodeAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "hostname",
        "alive",
        "load",
        "capacity",
        "draining",
        "providers",
        "last_heartbeat",
        "created_at",
    )
    list_filter = ("draining",)
    search_fields = ("name", "hostname")
    readonly_fields = ("last_heartbeat", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(busy=Count("subtasks", filter=Q(subtasks__state__in=ACTIVE_STATES)))
        )

    @admin.display(description=gettext_lazy("alive"), boolean=True)
    def alive(self, obj: Node) -> bool:
        timeout = getattr(settings, "VIAS_NODE_TIMEOUT", 30)
        return bool(obj.last_heartbeat and timezone.now() - obj.last_heartbeat < timedelta(seconds=timeout))

    @admin.display(description=gettext_lazy("active subtasks"), ordering="busy")
    def load(self, obj: Any) -> str:
        return f"{obj.busy} / {obj.capacity}"

    @admin.display(description=gettext_lazy("providers"))
    def providers(self, obj: Node) -> str:
        caps: dict[str, Any] = obj.capabilities if isinstance(obj.capabilities, dict) else {}
        parts = [str(p) for p in caps.get("providers", [])]
        if caps.get("gpu"):
            parts.append(str(caps["gpu"]))
        return ", ".join(parts) or "—"
