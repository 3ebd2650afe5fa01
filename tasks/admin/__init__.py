"""The operator's admin for the task core (docs/admin.md): projects and tokens, big tasks with their
mtasks, scenes (with their ROIs) and subtasks, storage configs, video channels, v2 batches.

Every write that has a service function goes through it (tasks.services, subtasks.services): the
admin validates a form, hands the service the same plain spec an API would, and reports what the
service answered (each subtask's Outcome) in the admin's messages. A refusal (ServiceError) is an
error message, never a 500. Lists are read with annotations and select_related: no query per row.
"""

from __future__ import annotations

import base64
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Avg, Count, Prefetch, Q
from django.db.models.functions import Length
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subtasks import services as subtask_services
from subtasks.choices import ACTIVE_STATES, State, derive_task_state
from subtasks.models import Subtask
from tasks import frames
from tasks import services as task_services
from tasks.models import (
    ApiToken,
    BatchTask,
    MTask,
    Project,
    Scene,
    SceneRoi,
    StoreConf,
    Task,
    VideoChannel,
)
from tasks.queries import STATE_COUNTS, derived_state_q
from tasks.validators import validate_xml
from vias.admin_ui import (
    LIVE_MEDIA,
    XmlFormField,
    counts_badges,
    error_text,
    events_chart,
    progress_bar,
    report_outcomes,
    run_service,
    state_badge,
    xml_formfield,
)
from vias.lib.errors import ServiceError

XML_KINDS = {"calibration_xml": "calibration", "config_xml": "xml", "basic_config_xml": "xml", "xml": "roi"}


def counts_of(obj: Any) -> dict[str, int]:
    """Per-state counts from the STATE_COUNTS annotations (n_pending, n_running, ...)."""
    return {state: getattr(obj, f"n_{state.lower()}", 0) or 0 for state in State.values}


class ServiceChangeMixin:
    """Save and delete views whose service refused: the transaction is rolled back (the admin's views
    are atomic) and the refusal is shown as an error message instead of a 500."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ServiceError, ValidationError) as exc:
            messages.error(request, error_text(exc))
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except (ServiceError, ValidationError) as exc:
            messages.error(request, error_text(exc))
            return HttpResponseRedirect(request.get_full_path())

    def service_delete_queryset(self, request, queryset, delete_one) -> None:
        for obj in queryset:
            run_service(request, delete_one, obj, prefix=f"{obj}: ")


# ---- projects and tokens ------------------------------------------------------------------------


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("project_id", "name", "task_count", "member_count", "created_at")
    search_fields = ("project_id", "name")
    filter_horizontal = ("members",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                task_total=Count("tasks", distinct=True),
                member_total=Count("members", distinct=True),
            )
        )

    @admin.display(description=gettext_lazy("tasks"), ordering="task_total")
    def task_count(self, obj: Project) -> int:
        return obj.task_total

    @admin.display(description=gettext_lazy("members"), ordering="member_total")
    def member_count(self, obj: Project) -> int:
        return obj.member_total


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "project", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "project", "created_at", "last_used_at")
    list_select_related = ("user", "project")
    list_filter = ("project",)
    search_fields = ("prefix", "name", "user__username", "project__project_id")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    form = ApiTokenForm

    def get_fields(self, request, obj=None):
        return (
            ("user", "project", "name") if obj is None else ("user", "project", "name", *self.readonly_fields)
        )

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        # ApiToken.issue is what `manage.py create_token` calls: the raw key is shown once, never stored.
        token, raw = ApiToken.issue(obj.user, obj.project, obj.name)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = (
            token.pk,
            token.prefix,
            token.key_hash,
            token.created_at,
        )
        obj._state.adding = False
        messages.warning(request, _("The new token (shown only now, copy it): %(raw)s") % {"raw": raw})


# ---- storage configs and video channels ---------------------------------------------------------


class StoreConfForm(forms.ModelForm):
    """The file is edited as text (XML in the code editor) or uploaded; the service decodes it."""

    text = forms.CharField(
        label=gettext_lazy("File content"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90, "spellcheck": "false"}),
        help_text=gettext_lazy("UTF-8 text; XML files are checked by the hardened parser when saved"),
    )
    upload = forms.FileField(
        label=gettext_lazy("or upload a file"),
        required=False,
        help_text=gettext_lazy("replaces the content above"),
    )

    class Meta:
        model = StoreConf
        fields = ("project", "unid", "name", "file_ext")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        content = bytes(self.instance.content or b"") if self.instance.pk else b""
        is_xml = (self.instance.file_ext or "xml").lower() == "xml"
        if is_xml:
            self.fields["text"] = XmlFormField(
                kind="xml",
                required=False,
                label=_("File content"),
                help_text=self.base_fields["text"].help_text,
            )
        try:
            self.fields["text"].initial = content.decode("utf-8")
        except UnicodeDecodeError:
            self.fields["text"].disabled = True
            self.fields["text"].initial = _(
                "(binary file of %(n)d bytes: upload a new one to replace it)"
            ) % {"n": len(content)}

    def file_bytes(self) -> bytes | None:
        upload = self.cleaned_data.get("upload")
        if upload is not None:
            return upload.read()
        if "text" in self.changed_data or not self.instance.pk:
            return (self.cleaned_data.get("text") or "").encode("utf-8")
        return None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.instance.pk and not data.get("upload") and not (data.get("text") or "").strip():
            self.add_error("text", _("give the file's content or upload it"))
        upload = data.get("upload")
        if upload is not None and (data.get("file_ext") or "").lower() == "xml":
            try:
                validate_xml(upload.read().decode("utf-8"))
            except (UnicodeDecodeError, ValidationError) as exc:
                self.add_error("upload", exc.messages[0] if isinstance(exc, ValidationError) else str(exc))
            upload.seek(0)
        return data


@admin.register(StoreConf)
class StoreConfAdmin(ServiceChangeMixin, admin.ModelAdmin):
    form = StoreConfForm
    list_display = ("unid", "name", "file_ext", "version", "size", "task_count", "project", "updated_at")
    list_select_related = ("project",)
    list_filter = ("project", "file_ext")
    search_fields = ("unid", "name")
    readonly_fields = ("version", "updated_at")
    actions = ["delete_through_service"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .defer("content")
            .annotate(task_total=Count("tasks"), size_bytes=Length("content"))
        )

    def get_readonly_fields(self, request, obj=None):
        return ("project", "unid", *self.readonly_fields) if obj else self.readonly_fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=gettext_lazy("bytes"), ordering="size_bytes")
    def size(self, obj: StoreConf) -> int:
        return obj.size_bytes

    @admin.display(description=gettext_lazy("tasks"), ordering="task_total")
    def task_count(self, obj: StoreConf) -> int:
        return obj.task_total

    def save_model(self, request, obj, form, change):
        spec: dict[str, Any] = {"name": form.cleaned_data["name"], "file_ext": form.cleaned_data["file_ext"]}
        content = form.file_bytes()
        if content is not None:
            spec["file_b64"] = base64.b64encode(content).decode("ascii")
        if not change:
            spec["unid"] = form.cleaned_data["unid"]
            conf = task_services.create_store_conf(form.cleaned_data["project"], spec)
        else:
            # Replacing reaches every running subtask of every task using it (control channel).
            conf, acks = task_services.replace_store_conf_and_push(obj, spec)
            report_outcomes(request, _("storage config replaced"), acks)
        obj.pk, obj.version, obj.content = conf.pk, conf.version, conf.content
        obj._state.adding = False

    def delete_model(self, request, obj):
        task_services.delete_store_conf(obj)

    @admin.action(
        description=gettext_lazy("Delete the selected storage configs (refused while a task uses one)")
    )
    def delete_through_service(self, request, queryset):
        self.service_delete_queryset(request, queryset, task_services.delete_store_conf)


@admin.register(VideoChannel)
class VideoChannelAdmin(ServiceChangeMixin, admin.ModelAdmin):
    list_display = (
        "vchan_refid",
        "name",
        "url",
        "size",
        "subtask_count",
        "active_count",
        "project",
        "frame_link",
    )
    list_select_related = ("project",)
    list_filter = ("project",)
    search_fields = ("vchan_refid", "name", "url")
    actions = ["delete_through_service"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                subtask_total=Count("subtasks"),
                active_total=Count("subtasks", filter=Q(subtasks__state__in=ACTIVE_STATES)),
            )
        )

    def get_readonly_fields(self, request, obj=None):
        return ("project", "vchan_refid") if obj else ()

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=gettext_lazy("size"))
    def size(self, obj: VideoChannel) -> str:
        return f"{obj.width}×{obj.height}" if obj.width and obj.height else "—"

    @admin.display(description=gettext_lazy("subtasks"), ordering="subtask_total")
    def subtask_count(self, obj: VideoChannel) -> int:
        return obj.subtask_total

    @admin.display(description=gettext_lazy("active"), ordering="active_total")
    def active_count(self, obj: VideoChannel) -> int:
        return obj.active_total

    @admin.display(description=gettext_lazy("frame"))
    def frame_link(self, obj: VideoChannel) -> str:
        url = reverse("admin:tasks_scene_frame") + f"?vchan={obj.pk}&view=1"
        return format_html('<a href="{}" target="_blank">{}</a>', url, _("grab a frame"))

    def save_model(self, request, obj, form, change):
        spec = {name: form.cleaned_data.get(name) for name in ("name", "url", "width", "height")}
        if change:
            task_services.update_vchan(obj, spec)
        else:
            spec["vchan_refid"] = form.cleaned_data["vchan_refid"]
            channel = task_services.create_vchan(form.cleaned_data["project"], spec)
            obj.pk = channel.pk
            obj._state.adding = False

    def delete_model(self, request, obj):
        task_services.delete_vchan(obj)

    @admin.action(description=gettext_lazy("Delete the selected channels (refused while a subtask uses one)"))
    def delete_through_service(self, request, queryset):
        self.service_delete_queryset(request, queryset, task_services.delete_vchan)


# ---- big tasks ----------------------------------------------------------------------------------


class DerivedStateFilter(admin.SimpleListFilter):
    """The big task's derived state (docs/state-machine.md), filtered in SQL (tasks.queries)."""

    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(s.value, s.label) for s in State]

    def queryset(self, request, queryset):
        if self.value() in State.values:
            return queryset.filter(derived_state_q([self.value()]))
        return queryset


class MTaskInline(admin.TabularInline):
    model = MTask
    extra = 0
    fields = ("position", "mtask_unid", "name", "type", "time_interval", "start_time", "end_time", "progress")
    readonly_fields = ("progress",)
    show_change_link = False


class SubtaskInline(admin.TabularInline):
    """The task's subtasks, read-only here: each links to its own page (configuration, buttons)."""

    model = Subtask
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("position", "source", "state_badge", "config_complete", "progress_bar", "node", "status_reason")
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("video_channel", "node")
            .defer("rois", "calibration_xml", "config_xml")
        )

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("source"))
    def source(self, obj: Subtask) -> str:
        return str(obj.video_channel) if obj.video_channel else obj.source_url

    @admin.display(description=gettext_lazy("state"))
    def state_badge(self, obj: Subtask):
        return format_html('<span data-subtask-id="{}">{}</span>', obj.pk, state_badge(obj.state))

    @admin.display(description=gettext_lazy("progress"))
    def progress_bar(self, obj: Subtask):
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
        widget=admin.widgets.FilteredSelectMultiple(gettext_lazy("video channels"), is_stacked=False),
    )

    class Meta:
        model = Task
        # What create_task / update_task take; the batch and creator are set by the v2 API only.
        fields = (
            "project",
            *(name for name in task_services.TASK_FIELDS if name not in ("batch", "creator")),
            "store_conf",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        project = data.get("project")
        for channel in data.get("vchans") or []:
            if project and channel.project_id != project.pk:
                self.add_error("vchans", _("%(c)s belongs to another project") % {"c": channel})
        return data


@admin.register(Task)
class TaskAdmin(ServiceChangeMixin, admin.ModelAdmin):
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
    def media(self):
        return super().media + LIVE_MEDIA

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(**STATE_COUNTS, progress_avg=Avg("subtasks__progress"), subtask_n=Count("subtasks"))
        )

    def get_fieldsets(self, request, obj=None):
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

    def get_readonly_fields(self, request, obj=None):
        fixed = ("project", "source_type", "node_count", "pull_source_url") if obj else ()
        return (*self.readonly_fields, *fixed)

    def get_inlines(self, request, obj):
        return [MTaskInline] if obj is None else self.inlines

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # -- columns --

    @admin.display(description=gettext_lazy("state"))
    def state_column(self, obj: Task):
        return format_html(
            '<span data-task-id="{}" data-role="task-state">{}</span>',
            obj.pk,
            state_badge(derive_task_state(counts_of(obj))),
        )

    @admin.display(description=gettext_lazy("subtasks by state"))
    def counts_column(self, obj: Task):
        return format_html('<span data-task-counts="{}">{}</span>', obj.pk, counts_badges(counts_of(obj)))

    @admin.display(description=gettext_lazy("progress"), ordering="progress_avg")
    def progress_column(self, obj: Task):
        return progress_bar(obj.progress_avg)

    @admin.display(description=gettext_lazy("subtasks"), ordering="subtask_n")
    def subtask_total(self, obj: Task) -> int:
        return obj.subtask_n

    # -- saving through the services --

    def _spec(self, form, names) -> dict[str, Any]:
        spec = {name: form.cleaned_data[name] for name in names if name in task_services.TASK_FIELDS}
        if "store_conf" in names:
            store_conf = form.cleaned_data.get("store_conf")
            spec["store_conf_unid"] = store_conf.unid if store_conf else ""
        return spec

    def save_model(self, request, obj, form, change):
        if change:
            task_services.update_task(obj, self._spec(form, form.changed_data))
        # A new task is created in save_related, with its mtasks, by create_task (which splits it).

    def save_related(self, request, form, formsets, change):
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
        spec["mtasks"] = [{k: v for k, v in d.items() if k in task_services.MTASK_FIELDS} for d in items]
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

    def delete_model(self, request, obj):
        task_services.delete_task(obj)

    # -- the change page: state panel, buttons, scenes, events --

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self.get_object(request, object_id)
        if task is not None:
            extra_context = {**(extra_context or {}), **self.panel_context(request, task)}
        return super().change_view(request, object_id, form_url, extra_context)

    def panel_context(self, request, task: Task) -> dict[str, Any]:
        from analysis.models import Event

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
            "events_chart": events_chart(events, title=_("Events over time")),
            "events_url": reverse("admin:analysis_event_changelist") + f"?task__task_id__exact={task.pk}",
            "scene_add_url": reverse("admin:tasks_scene_add"),
            "buttons": [
                ("config-complete", _("Mark all config complete"), ""),
                ("start", _("Start"), ""),
                ("stop", _("Stop"), "vias-danger"),
                ("dispatch", _("Dispatch again"), ""),
            ],
        }

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<str:object_id>/do/<str:verb>/", wrap(self.command_view), name="tasks_task_command"),
            *super().get_urls(),
        ]

    def command_view(self, request, object_id: str, verb: str):
        if request.method != "POST":
            raise Http404
        task = get_object_or_404(Task, pk=object_id)
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
    def config_complete(self, request, queryset):
        for subtask in Subtask.objects.filter(task__in=queryset).select_related("task__project"):
            ok, done = run_service(request, subtask_services.mark_config_complete, subtask)
            if ok:
                report_outcomes(
                    request, _("config complete"), [subtask_services.Outcome(done.pk, done.state, True)]
                )

    @admin.action(description=gettext_lazy("Start the selected tasks"))
    def start(self, request, queryset):
        for task in queryset:
            ok, outcomes = run_service(request, subtask_services.start_task, task, prefix=f"{task}: ")
            if ok:
                report_outcomes(request, _("start %(task)s") % {"task": task}, outcomes)

    @admin.action(description=gettext_lazy("Stop the selected tasks"))
    def stop(self, request, queryset):
        for task in queryset:
            ok, outcomes = run_service(request, subtask_services.stop_task, task, prefix=f"{task}: ")
            if ok:
                report_outcomes(request, _("stop %(task)s") % {"task": task}, outcomes)

    @admin.action(description=gettext_lazy("Dispatch again (abnormal, failed or waiting subtasks)"))
    def dispatch_again(self, request, queryset):
        from subtasks.admin import dispatch_again

        subtasks = Subtask.objects.filter(task__in=queryset).select_related("task__project")
        for subtask in subtasks.filter(state__in=DISPATCHABLE):
            ok, outcome = run_service(request, dispatch_again, subtask)
            if ok:
                report_outcomes(request, _("dispatch again"), [outcome])
        if not subtasks.filter(state__in=DISPATCHABLE).exists():
            messages.info(request, _("No subtask is abnormal, failed or waiting for a node."))

    @admin.action(description=gettext_lazy("Delete the selected tasks (refused while they have subtasks)"))
    def delete_through_service(self, request, queryset):
        self.service_delete_queryset(request, queryset, task_services.delete_task)


DISPATCHABLE = (State.STARTING, State.RECOVERING, State.ABNORMAL, State.FAILED)


# ---- scenes and their ROIs ----------------------------------------------------------------------


def frame_url() -> str:
    return reverse("admin:tasks_scene_frame")


class XmlFieldsMixin:
    """XML fields get the code editor (ROI and calibration also the drawing editor), pretty-printed
    when the page opens and validated with the model's own validators on save."""

    frame_inputs = "mtask=id_mtask,vchan_refid=id_vchan_refid"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.TextField) and db_field.name in XML_KINDS:
            return xml_formfield(db_field, XML_KINDS[db_field.name])
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def point_editors(self, form_class, query: str) -> None:
        for field in form_class.base_fields.values():
            widget = getattr(field, "widget", None)
            if widget is not None and hasattr(widget, "frame_url"):
                widget.frame_url = frame_url() + query
                widget.attrs["data-frame-inputs"] = self.frame_inputs


class SceneRoiInline(XmlFieldsMixin, admin.StackedInline):
    model = SceneRoi
    extra = 0
    fields = ("position", "xml")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        self.point_editors(formset.form, f"?scene={obj.pk}" if obj else "?")
        return formset


class MTaskChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: MTask) -> str:
        return f"{obj.task.task_name} / {obj}"


@admin.register(Scene)
class SceneAdmin(ServiceChangeMixin, XmlFieldsMixin, admin.ModelAdmin):
    """A scene's page holds its ROI documents (Django has no nested inlines; the task page links here)."""

    list_display = (
        "__str__",
        "scene_unid",
        "task_link",
        "mtask",
        "algo_type",
        "vchan_refid",
        "roi_count",
        "is_active",
    )
    list_select_related = ("mtask__task",)
    list_filter = ("algo_type", "is_active", "mtask__task__project")
    search_fields = ("name", "scene_unid", "vchan_refid", "mtask__task__task_name")
    inlines = [SceneRoiInline]
    fieldsets = [
        (None, {"fields": ["mtask", "position", "scene_unid", "name", "algo_type", "vchan_refid", "preset"]}),
        (gettext_lazy("Calibration"), {"fields": ["calibration_xml"]}),
        (
            gettext_lazy("Algorithm configuration"),
            {"fields": ["config_xml", "basic_config_xml", "algo_args"]},
        ),
        (
            gettext_lazy("More"),
            {
                "fields": [
                    "link_scenes",
                    "play_urls",
                    "is_record",
                    "is_active",
                    "is_running",
                    "status_reason",
                ],
                "classes": ["collapse"],
            },
        ),
    ]
    change_form_template = "admin/tasks/scene/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(roi_total=Count("rois"))

    def save_model(self, request, obj, form, change):
        pass  # saved with its ROI documents in save_related, by the service

    def save_related(self, request, form, formsets, change):
        """The scene and its ROIs through tasks.services.save_scene: one validation, one announcement."""
        rois = []
        for formset in formsets:
            kept = [
                f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")
            ]
            rois += [data["xml"] for data in sorted(kept, key=lambda data: data.get("position") or 0)]
            # Nothing is saved by the formsets themselves; the admin's history reads these.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        task_services.save_scene(form.instance, rois=rois)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "mtask":
            return MTaskChoiceField(queryset=MTask.objects.select_related("task"), label=_("Mtask"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        self.point_editors(form, f"?scene={obj.pk}" if obj else "?")
        return form

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        mtask = MTask.objects.select_related("task").filter(pk=initial.get("mtask") or 0).first()
        if mtask is not None:
            initial.setdefault("algo_type", mtask.task.algo_type)
            initial.setdefault("position", mtask.scenes.count())
        return initial

    @admin.display(description=gettext_lazy("task"), ordering="mtask__task__task_name")
    def task_link(self, obj: Scene):
        task = obj.mtask.task
        return format_html('<a href="{}">{}</a>', reverse("admin:tasks_task_change", args=[task.pk]), task)

    @admin.display(description=gettext_lazy("ROIs"), ordering="roi_total")
    def roi_count(self, obj: Scene) -> int:
        return obj.roi_total

    def change_view(self, request, object_id, form_url="", extra_context=None):
        scene = self.get_object(request, object_id)
        if scene is not None:
            task = scene.mtask.task
            subtasks = list(scene.subtasks.all())
            extra_context = {
                **(extra_context or {}),
                "task": task,
                "task_url": reverse("admin:tasks_task_change", args=[task.pk]),
                "scene_subtasks": format_html_join(
                    ", ",
                    '<a href="{}">#{}</a>',
                    ((reverse("admin:subtasks_subtask_change", args=[s.pk]), s.pk) for s in subtasks),
                ),
                "apply_url": reverse("admin:tasks_scene_apply", args=[scene.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def response_add(self, request, obj, post_url_continue=None):
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[obj.mtask.task_id]))
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("frame/", wrap(self.frame_view), name="tasks_scene_frame"),
            path("frame/<str:key>.jpg", wrap(self.frame_jpeg_view), name="tasks_scene_frame_jpeg"),
            path("<int:object_id>/apply/", wrap(self.apply_view), name="tasks_scene_apply"),
            *super().get_urls(),
        ]

    def apply_view(self, request, object_id: int):
        """Copy the scene's configuration to its subtasks through subtasks.services.apply_config."""
        if request.method != "POST":
            raise Http404
        scene = get_object_or_404(Scene.objects.select_related("mtask__task"), pk=object_id)
        if not self.has_change_permission(request, scene):
            raise PermissionDenied
        spec = {
            "rois": list(scene.rois.order_by("position").values_list("xml", flat=True)),
            "calibration_xml": scene.calibration_xml,
            "config_xml": scene.config_xml,
            "algo_args": scene.algo_args,
        }
        subtasks = list(scene.subtasks.select_related("task__project"))
        if not subtasks:
            messages.warning(request, _("No subtask uses this scene."))
        for subtask in subtasks:
            ok, answer = run_service(request, subtask_services.apply_config, subtask, spec)
            if ok:
                report_outcomes(request, _("configuration copied"), [answer[1]])
        return HttpResponseRedirect(reverse("admin:tasks_scene_change", args=[scene.pk]))

    # -- frames for the drawing editors --

    def frame_view(self, request):
        """JSON about a recent frame of a scene's, subtask's or channel's source (tasks.frames)."""
        source, size, reason = frame_source(request)
        if reason:
            frame = frames.Frame(
                False, "", size[0] or frames.DEFAULT_SIZE[0], size[1] or frames.DEFAULT_SIZE[1], reason
            )
        else:
            frame = frames.grab(source, size, fresh=request.GET.get("fresh") == "1")
        data = frame.as_dict()
        data["src"] = (
            reverse("admin:tasks_scene_frame_jpeg", args=[frame.key]) + f"?t={int(frame.grabbed_at)}"
            if frame.ok
            else ""
        )
        if request.GET.get("view") == "1" and frame.ok:
            return HttpResponseRedirect(data["src"])
        return JsonResponse(data)

    def frame_jpeg_view(self, request, key: str):
        path_ = frames.jpeg_path(key)
        if path_ is None:
            raise Http404
        return FileResponse(path_.open("rb"), content_type="image/jpeg")


def frame_source(request) -> tuple[str, tuple[int | None, int | None], str]:
    """(source, (width, height), reason-why-not) for the frame endpoint's query."""
    params = request.GET
    channel = None
    if params.get("subtask"):
        subtask = Subtask.objects.select_related("video_channel").filter(pk=_int(params["subtask"])).first()
        if subtask is None:
            return "", (None, None), _("no subtask %(id)s") % {"id": params["subtask"]}
        channel = subtask.video_channel
        if channel is None:
            return subtask.source_url, (None, None), "" if subtask.source_url else _("no video source")
    elif params.get("vchan"):
        channel = VideoChannel.objects.filter(pk=_int(params["vchan"])).first()
    else:
        mtask = MTask.objects.select_related("task").filter(pk=_int(params.get("mtask"))).first()
        if mtask is None and params.get("scene"):
            scene = Scene.objects.select_related("mtask__task").filter(pk=_int(params["scene"])).first()
            mtask = scene.mtask if scene else None
            refid = params.get("vchan_refid", scene.vchan_refid if scene else "")
        else:
            refid = params.get("vchan_refid", "")
        if mtask is None:
            return "", (None, None), _("choose the scene's mtask first")
        task = mtask.task
        if not refid:
            if task.source_type != "pull_video_stream":
                return "", (None, None), _("a picture task has no video stream")
            return task.play_url, (None, None), ""
        channel = VideoChannel.objects.filter(project_id=task.project_id, vchan_refid=refid).first()
        if channel is None:
            return "", (None, None), _("no video channel %(r)s") % {"r": refid}
    if channel is None:
        return "", (None, None), _("no video source")
    return channel.url, (channel.width, channel.height), ""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@admin.register(MTask)
class MTaskAdmin(admin.ModelAdmin):
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

    def has_module_permission(self, request):
        return False  # edited inline on its task's page; registered for the scene form's links


@admin.register(BatchTask)
class BatchTaskAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "batch_id",
        "service_name",
        "service_version",
        "task_total",
        "project",
        "created_at",
    )
    list_select_related = ("project",)
    list_filter = ("project", "service_name")
    search_fields = ("name", "batch_id", "service_name")
    readonly_fields = ("batch_id", "creator", "created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(task_n=Count("tasks"))

    @admin.display(description=gettext_lazy("tasks"), ordering="task_n")
    def task_total(self, obj: BatchTask) -> int:
        return obj.task_n

    def has_add_permission(self, request):
        return False  # batches are made through the VIAS v2 API (tasks.services.create_batch)

    def has_change_permission(self, request, obj=None):
        return False
