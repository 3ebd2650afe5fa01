"""Scenes with their ROI documents (drawing editor over a frame of the scene's video source)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks import frames
from tasks import services as task_services
from tasks.frames import frame_source
from tasks.models import (
    MTask,
    Project,
    Scene,
    SceneRoi,
)
from tasks.widgets import XmlFieldsMixin
from vias.lib.admin import (
    ServiceChangeMixin,
    TenantAdminMixin,
    report_outcomes,
    run_service,
)


class SceneRoiInline(TenantAdminMixin, XmlFieldsMixin, admin.StackedInline):
    model = SceneRoi
    extra = 0
    fields = ("position", "xml")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        self.point_editors(formset.form, f"?scene={obj.pk}" if obj else "?")
        return formset


class MTaskChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: MTask) -> str:
        return f"{obj.task.task_name} / {obj}"


@admin.register(Scene)
class SceneAdmin(TenantAdminMixin, ServiceChangeMixin, XmlFieldsMixin, admin.ModelAdmin):
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(roi_total=Count("rois"))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # saved with its ROI documents in save_related, by the service

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The scene and its ROIs through tasks.services.save_scene: one validation, one announcement."""
        rois = []
        for formset in formsets:
            kept = [
                f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")
            ]
            rois += [data["xml"] for data in sorted(kept, key=lambda data: data.get("position") or 0)]
            # Nothing is saved by the formsets themselves; the admin's history reads these.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        acks = task_services.save_scene(form.instance, rois=rois)
        report_outcomes(request, _("scene change"), acks)  # one line per subtask it reached

    def delete_model(self, request, obj):
        task_services.delete_scene(obj)

    def delete_queryset(self, request, queryset):
        for scene in queryset:
            task_services.delete_scene(scene)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "mtask":
            return MTaskChoiceField(
                queryset=MTask.objects.visible_to(request.user).select_related("task"), label=_("Mtask")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        self.point_editors(form, f"?scene={obj.pk}" if obj else "?")
        return form

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        mtask = MTask.objects.visible_to(request.user).filter(pk=initial.get("mtask") or 0).first()
        if mtask is not None:
            initial.setdefault("algo_type", mtask.task.algo_type)
            initial.setdefault("position", mtask.scenes.count())
        return initial

    @admin.display(description=gettext_lazy("task"), ordering="mtask__task__task_name")
    def task_link(self, obj: Scene) -> Any:
        task = obj.mtask.task
        return format_html('<a href="{}">{}</a>', reverse("admin:tasks_task_change", args=[task.pk]), task)

    @admin.display(description=gettext_lazy("ROIs"), ordering="roi_total")
    def roi_count(self, obj: Any) -> int:
        return obj.roi_total

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
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

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[obj.mtask.task_id]))
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("frame/", wrap(self.frame_view), name="tasks_scene_frame"),
            path("frame/<str:key>.jpg", wrap(self.frame_jpeg_view), name="tasks_scene_frame_jpeg"),
            path("<int:object_id>/apply/", wrap(self.apply_view), name="tasks_scene_apply"),
            *super().get_urls(),
        ]

    def apply_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Copy the scene's configuration to its subtasks through subtasks.services.apply_config."""
        if request.method != "POST":
            raise Http404
        scene = get_object_or_404(self.get_queryset(request).select_related("mtask__task"), pk=object_id)
        if not self.has_change_permission(request, scene):
            raise PermissionDenied
        if not scene.subtasks.exists():
            messages.warning(request, _("No subtask uses this scene."))
        ok, acks = run_service(request, task_services.copy_scene_to_subtasks, scene)
        if ok:
            report_outcomes(request, _("configuration copied"), acks)
        return HttpResponseRedirect(reverse("admin:tasks_scene_change", args=[scene.pk]))

    # -- frames for the drawing editors --

    def frame_view(self, request: HttpRequest) -> HttpResponse:
        """JSON about a recent frame of a scene's, subtask's or channel's source (tasks.frames)."""
        source, size, reason = frame_source(request.GET, Project.objects.visible_to(request.user))
        if reason:
            frame = frames.Frame(
                False, "", size[0] or frames.DEFAULT_SIZE[0], size[1] or frames.DEFAULT_SIZE[1], reason
            )
        else:
            frame = frames.grab(source, size, fresh=request.GET.get("fresh") == "1")
        data = frame.as_dict()
        src = (
            reverse("admin:tasks_scene_frame_jpeg", args=[frame.key]) + f"?t={int(frame.grabbed_at)}"
            if frame.ok
            else ""
        )
        data["src"] = src
        if request.GET.get("view") == "1" and frame.ok:
            return HttpResponseRedirect(src)
        return JsonResponse(data)

    def frame_jpeg_view(self, request: HttpRequest, key: str) -> FileResponse:
        path_ = frames.jpeg_path(key)
        if path_ is None:
            raise Http404
        return FileResponse(path_.open("rb"), content_type="image/jpeg")
