"""Big tasks with their mtasks and subtasks inline; the same start, stop, config-complete and
dispatch-again services as the APIs, as actions and as buttons on the task's page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analysis.models import Event
from subtasks import services as subtask_services
from subtasks.choices import State, derive_task_state
from subtasks.models import Subtask
from subtasks.widgets import buttons_for, counts_badges, state_badge
from tasks import services as task_services
from tasks.building import MTASK_FIELDS, TASK_FIELDS
from tasks.models import (
    MTask,
    Scene,
    Task,
    VideoChannel,
)
from tasks.queries import STATE_COUNTS, derived_state_q
from vias.lib.admin import (
    LIVE_MEDIA,
    ServiceChangeMixin,
    TenantAdminMixin,
    progress_bar,
    report_outcomes,
    run_service,
)


def counts_of(obj: Any) -> dict[str, int]:
    """Per-state counts from the STATE_COUNTS annotations (n_pending, n_running, ...)."""
    return {state: getattr(obj, f"n_{state.lower()}", 0) or 0 for state in State.values}


class DerivedStateFilter(admin.SimpleListFilter):
    """The big task's derived state (docs/state-machine.md), filtered in SQL (tasks.queries)."""

    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, Any]]:
        return [(s.value, s.label) for s in State]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in State.values:
            return queryset.filter(derived_state_q([str(value)]))
        return queryset


class MTaskInline(TenantAdminMixin, admin.TabularInline):
    model = MTask
    extra = 0
    fields = ("position", "mtask_unid", "name", "type", "time_interval", "start_time", "end_time", "progress")
    readonly_fields = ("progress",)
    show_change_link = False


class SubtaskInline(TenantAdminMixin, admin.TabularInline):
    """The task's subtasks, read-only here: each links to its own page (configuration, buttons)."""

    model = Subtask
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("position", "source", "state_badge", "config_complete", "progress_bar", "node", "status_reason")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("video_channel", "node")
            .defer("rois", "calibration_xml", "config_xml")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("source"))
    def source(self, obj: Subtask) -> str:
        return str(obj.video_channel) if obj.video_channel else obj.source_url

    @admin.display(description=gettext_lazy("state"))
    def state_badge(self, obj: Subtask) -> Any:
        return format_html('<span data-subtask-id="{}">{}</span>', obj.pk, state_badge(obj.state))

    @admin.display(description=gettext_lazy("progress"))
    def progress_bar(self, obj: Subtask) -> Any:
        return format_html('<span data-subtask-progress="{}">{}</span>', obj.pk, progress_bar(obj.progress))


class TaskForm(forms.ModelForm):
    vchans = forms.ModelMultipleChoiceField(
        queryset=VideoChannel.objects.select_related("project"),
        required=False,
        label=gettext_lazy("Video channels"),
        help_text=gettext_lazy(
            "one subtask per channel (pull_video_stream); none: the play URL is the one source. "
            "Fixed once the task is created."
        ),
        widget=FilteredSelectMultiple(gettext_lazy("video channels"), is_stacked=False),
    )

    class Meta:
        model = Task
        # What create_task / update_task take; the batch and creator are set by the v2 API only.
        fields = (
            "project",
            *(name for name in TASK_FIELDS if name not in ("batch", "creator")),
            "store_conf",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        project = data.get("project")
        for channel in data.get("vchans") or []:
            if project and channel.project_id != project.pk:
                self.add_error("vchans", _("%(c)s belongs to another project") % {"c": channel})
        return data


@admin.register(Task)
class TaskAdmin(TenantAdminMixin, ServiceChangeMixin, admin.ModelAdmin):
    form = TaskForm
    list_display = (
        "task_name",
        "state_column",
        "counts_column",
        "progress_column",
        "subtask_total",
        "algo_type",
        "source_type",
        "project",
        "store_conf",
        "create_dt",
    )
    list_display_links = ("task_name",)
    list_select_related = ("project", "store_conf")
    list_filter = (DerivedStateFilter, "project", "algo_type", "source_type", "create_dt")
    search_fields = ("task_name", "task_id", "client_name", "description")
    date_hierarchy = "create_dt"
    inlines = [MTaskInline, SubtaskInline]
    actions = ["config_complete", "start", "stop", "dispatch_again", "delete_through_service"]
    readonly_fields = ("task_id", "schedule_active", "batch", "creator", "create_dt", "update_dt")
    change_form_template = "admin/tasks/task/change_form.html"

    @property
    def media(self) -> forms.Media:
        return super().media + LIVE_MEDIA

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(**STATE_COUNTS, progress_avg=Avg("subtasks__progress"), subtask_n=Count("subtasks"))
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        main = [
            "project",
            "task_name",
            "algo_type",
            "run_dt",
            "play_url",
            "source_type",
            "node_count",
            "pull_source_url",
            "store_conf",
            "description",
            "detector_models",
            "client_name",
        ]
        if obj is None:
            main.append("vchans")
        else:
            main = ["task_id", *main]
        v2 = ["output", "schedule", "schedule_active", "service_name", "service_version", "resource_order_id"]
        v2 += ["alg_id", "config", "company", "video_group_id", "target_roi", "batch", "creator"]
        if obj is None:
            return [
                (None, {"fields": main}),
                (_("Outputs and VIAS v2"), {"fields": v2[:2], "classes": ["collapse"]}),
            ]
        return [
            (None, {"fields": main}),
            (_("Outputs and VIAS v2"), {"fields": v2, "classes": ["collapse"]}),
            (_("Times"), {"fields": ["create_dt", "update_dt"], "classes": ["collapse"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fixed = ("project", "source_type", "node_count", "pull_source_url") if obj else ()
        return (*self.readonly_fields, *fixed)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [MTaskInline] if obj is None else self.inlines

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # -- columns --

    @admin.display(description=gettext_lazy("state"))
    def state_column(self, obj: Task) -> Any:
        return format_html(
            '<span data-task-id="{}" data-role="task-state">{}</span>',
            obj.pk,
            state_badge(derive_task_state(counts_of(obj))),
        )

    @admin.display(description=gettext_lazy("subtasks by state"))
    def counts_column(self, obj: Any) -> Any:
        return format_html('<span data-task-counts="{}">{}</span>', obj.pk, counts_badges(counts_of(obj)))

    @admin.display(description=gettext_lazy("progress"), ordering="progress_avg")
    def progress_column(self, obj: Any) -> Any:
        return progress_bar(obj.progress_avg)

    @admin.display(description=gettext_lazy("subtasks"), ordering="subtask_n")
    def subtask_total(self, obj: Any) -> int:
        return obj.subtask_n

    # -- saving through the services --

    def _spec(self, form, names) -> dict[str, Any]:
        spec = {name: form.cleaned_data[name] for name in names if name in TASK_FIELDS}
        if "store_conf" in names:
            store_conf = form.cleaned_data.get("store_conf")
            spec["store_conf_unid"] = store_conf.unid if store_conf else ""
        return spec

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            task_services.update_task(obj, self._spec(form, form.changed_data))
        # A new task is created in save_related, with its mtasks, by create_task (which splits it).

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            return self._save_mtask_changes(form, formsets)
        spec = self._spec(form, [n for n in form.cleaned_data if n not in ("project", "vchans")])
        spec["vchans"] = [{"vchan_refid": c.vchan_refid} for c in form.cleaned_data.get("vchans") or []]
        items = []
        for formset in formsets:
            items += [
                f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")
            ]
            # Nothing is saved by the formsets themselves; the admin's history reads these.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        items.sort(key=lambda data: data.get("position") or 0)
        spec["mtasks"] = [{k: v for k, v in d.items() if k in MTASK_FIELDS} for d in items]
        task = task_services.create_task(form.cleaned_data["project"], spec)
        form.instance.task_id = task.task_id
        form.instance._state.adding = False
        count = task.subtasks.count()
        messages.info(
            request,
            _("The task was split into %(n)d subtasks; configure them, then mark them config-complete.")
            % {"n": count},
        )

    def _save_mtask_changes(self, form, formsets) -> None:
        """The mtask inline through tasks.services.save_mtasks (the subtask inline is read-only)."""
        changed, deleted = [], []
        for formset in formsets:
            # The admin's change history reads these; nothing is saved by the formsets themselves.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            if formset.model is not MTask:
                continue  # the subtask inline is read-only
            for item in formset.forms:
                if not item.has_changed() and not (item.cleaned_data or {}).get("DELETE"):
                    continue
                if item.cleaned_data.get("DELETE"):
                    if item.instance.pk:
                        deleted.append(item.instance)
                else:
                    changed.append(item.save(commit=False))
        if changed or deleted:
            task_services.save_mtasks(form.instance, changed, deleted)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        task_services.delete_task(obj)

    # -- the change page: state panel, buttons, scenes, events --

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        task = self.get_object(request, object_id)
        if task is not None:
            extra_context = {**(extra_context or {}), **self.panel_context(request, task)}
        return super().change_view(request, object_id, form_url, extra_context)

    def panel_context(self, request: HttpRequest, task: Any) -> dict[str, Any]:
        from analysis.admin import callback_panel
        from analysis.admin.console import live_views, review_timeline

        counts = counts_of(task)
        mtasks = task.mtasks.prefetch_related(
            Prefetch("scenes", queryset=Scene.objects.annotate(roi_total=Count("rois")).order_by("position"))
        )
        events = Event.objects.filter(task=task)
        return {
            "task_state": state_badge(derive_task_state(counts)),
            "task_counts": counts_badges(counts, zeros=True),
            "task_progress": progress_bar(task.progress_avg),
            "subtask_count": task.subtask_n,
            "mtasks": mtasks,
            "timeline": review_timeline(events, task),
            "live_views": live_views(task),
            "events_url": reverse("admin:analysis_event_changelist") + f"?task__task_id__exact={task.pk}",
            "callbacks": callback_panel(request, task),
            "scene_add_url": reverse("admin:tasks_scene_add"),
            "buttons": buttons_for(
                [state for state, n in counts.items() if n],
                [
                    ("config-complete", _("Mark all config complete"), ""),
                    ("start", _("Start"), ""),
                    ("stop", _("Stop"), "vias-danger"),
                    ("dispatch", _("Dispatch again"), ""),
                ],
            ),
        }

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("camera/", wrap(self.camera_view), name="tasks_task_camera"),
            path("<str:object_id>/do/<str:verb>/", wrap(self.command_view), name="tasks_task_command"),
            *super().get_urls(),
        ]

    def camera_view(self, request: HttpRequest) -> HttpResponse:
        """Add a camera in one page (tasks/admin/camera.py)."""
        from tasks.admin.camera import camera_view

        return camera_view(self, request)

    def command_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        if request.method != "POST":
            raise Http404
        task = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        commands = {
            "config-complete": self.config_complete,
            "start": self.start,
            "stop": self.stop,
            "dispatch": self.dispatch_again,
        }
        if verb not in commands:
            raise Http404
        commands[verb](request, Task.objects.filter(pk=task.pk))
        return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[task.pk]))

    # -- actions: the same service functions as the APIs --

    @admin.action(description=gettext_lazy("Mark every subtask config complete"))
    def config_complete(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for subtask in Subtask.objects.filter(task__in=queryset).select_related("task__project"):
            ok, done = run_service(request, subtask_services.mark_config_complete, subtask)
            if ok:
                report_outcomes(
                    request, _("config complete"), [subtask_services.Outcome(done.pk, done.state, True)]
                )

    @admin.action(description=gettext_lazy("Start the selected tasks"))
    def start(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for task in queryset:
            ok, outcomes = run_service(request, subtask_services.start_task, task, prefix=f"{task}: ")
            if ok:
                report_outcomes(request, _("start %(task)s") % {"task": task}, outcomes)

    @admin.action(description=gettext_lazy("Stop the selected tasks"))
    def stop(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for task in queryset:
            ok, outcomes = run_service(request, subtask_services.stop_task, task, prefix=f"{task}: ")
            if ok:
                report_outcomes(request, _("stop %(task)s") % {"task": task}, outcomes)

    @admin.action(description=gettext_lazy("Dispatch again (abnormal, failed or waiting subtasks)"))
    def dispatch_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        subtasks = Subtask.objects.filter(task__in=queryset).select_related("task__project")
        for subtask in subtasks.filter(state__in=DISPATCHABLE):
            ok, outcome = run_service(request, subtask_services.dispatch_again, subtask)
            if ok:
                report_outcomes(request, _("dispatch again"), [outcome])
        if not subtasks.filter(state__in=DISPATCHABLE).exists():
            messages.info(request, _("No subtask is abnormal, failed or waiting for a node."))

    @admin.action(description=gettext_lazy("Delete the selected tasks (refused while they have subtasks)"))
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self.service_delete_queryset(request, queryset, task_services.delete_task)


DISPATCHABLE = (State.STARTING, State.RECOVERING, State.ABNORMAL, State.FAILED)


@admin.register(MTask)
class MTaskAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "mtask_unid",
        "task",
        "type",
        "time_interval",
        "start_time",
        "end_time",
        "progress",
    )
    list_select_related = ("task",)
    list_filter = ("type",)
    search_fields = ("name", "mtask_unid", "task__task_name")
    readonly_fields = ("progress",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return False  # edited inline on its task's page; registered for the scene form's links
