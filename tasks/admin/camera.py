"""Add a camera in one page (docs/admin.md, "Add a camera"): a video from the store, an uploaded
one or a stream URL (with "Test connection", which grabs a frame), the algorithm type, zones and
lines drawn on the frame, and one "Save and start" button. The schedule (mtask), `run_dt`, the
calibration and the algorithm's XML stay under "Advanced", with defaults that need no change.

The page builds the same spec as the native API and calls the same service functions:
tasks.services.create_task (one task, one mtask, one scene, one subtask, config-complete) and,
for "Save and start", subtasks.services.start_task.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subtasks import services as subtask_services
from tasks import constants
from tasks import services as task_services
from tasks.choices import AlgoType
from tasks.models import Project, Task
from tasks.validators import validate_source_url, videos_dir
from tasks.widgets import RoiEditor, XmlEditor, frame_url
from tasks.xmlformats import parse_roi
from vias.lib.admin import run_service

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".ts", ".flv", ".m4v")
UPLOAD_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def store_videos() -> list[str]:
    """The video files directly in the store, by name (what a file source's URL is)."""
    try:
        entries = sorted(os.scandir(videos_dir()), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e.name for e in entries if e.is_file() and e.name.lower().endswith(VIDEO_EXTENSIONS)]


class CameraForm(forms.Form):
    """One camera: its source, what to analyse, where; the rest has defaults (Advanced)."""

    name = forms.CharField(
        label=gettext_lazy("Camera name"),
        max_length=constants.MAX_NAME_LENGTH,
        help_text=gettext_lazy("What you will see in the lists, e.g. “front door”."),
    )
    project = forms.ModelChoiceField(
        label=gettext_lazy("Project"), queryset=Project.objects.none(), empty_label=None
    )
    video = forms.ChoiceField(
        label=gettext_lazy("Video from the store"),
        required=False,
        help_text=gettext_lazy("A recorded file in the video store (VIAS_DATA_DIR/videos)."),
    )
    upload = forms.FileField(
        label=gettext_lazy("…or upload a video"),
        required=False,
        help_text=gettext_lazy("It is saved into the video store and analysed from there."),
    )
    stream_url = forms.CharField(
        label=gettext_lazy("…or a stream URL"),
        required=False,
        max_length=constants.MAX_URL_LENGTH,
        help_text=gettext_lazy("rtsp://, rtsps://, http:// or https://. “Test connection” grabs one frame."),
        widget=forms.TextInput(attrs={"placeholder": "rtsp://192.168.1.10:554/live", "size": 60}),
    )
    algo_type = forms.ChoiceField(
        label=gettext_lazy("What to analyse"),
        choices=AlgoType.choices,
        initial=AlgoType.SECURITY,
        help_text=gettext_lazy(
            "Security: intrusion, loitering, falls. Passenger flow: people crossing lines. "
            "Traffic: vehicles, speed. Illegal parking. Face capture."
        ),
    )
    roi = forms.CharField(
        label=gettext_lazy("Zones and lines"),
        required=False,
        widget=RoiEditor(),
        help_text=gettext_lazy(
            "Click “polygon” or “line”, click the points on the frame, then “finish”; name each shape in "
            "the list below the frame. Without a zone the whole frame is analysed."
        ),
    )
    # -- Advanced --
    mtask_name = forms.CharField(
        label=gettext_lazy("Schedule name"), required=False, initial=gettext_lazy("all day"), max_length=64
    )
    run_dt = forms.DateTimeField(
        label=gettext_lazy("Run from"),
        required=False,
        help_text=gettext_lazy("When the task may run; empty: now."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    play_url = forms.CharField(
        label=gettext_lazy("Play URL"),
        required=False,
        max_length=constants.MAX_URL_LENGTH,
        help_text=gettext_lazy("Where a player watches the camera; empty: the source itself."),
    )
    calibration_xml = forms.CharField(
        label=gettext_lazy("Calibration (XML)"),
        required=False,
        initial=constants.EMPTY_XML,
        widget=XmlEditor(),
    )
    config_xml = forms.CharField(
        label=gettext_lazy("Algorithm configuration (XML)"),
        required=False,
        initial=constants.EMPTY_XML,
        widget=XmlEditor(),
    )
    frame_source = forms.CharField(required=False, widget=forms.HiddenInput())

    ADVANCED = ("mtask_name", "run_dt", "play_url", "calibration_xml", "config_xml")

    def __init__(self, *args: Any, projects: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["project"]).queryset = projects
        if projects is not None and projects.count() == 1:
            self.fields["project"].initial = projects.first()
            self.fields["project"].widget = forms.HiddenInput()
        videos = store_videos()
        cast(forms.ChoiceField, self.fields["video"]).choices = [
            ("", _("— choose a video —")),
            *[(v, v) for v in videos],
        ]
        editor = self.fields["roi"].widget
        editor.frame_url = frame_url()
        editor.attrs["data-frame-inputs"] = "source=id_frame_source"

    def clean_stream_url(self) -> str:
        url = self.cleaned_data["stream_url"].strip()
        if url:
            if "://" not in url:
                raise ValidationError(_("a stream URL starts with rtsp://, rtsps://, http:// or https://"))
            validate_source_url(url)
        return url

    def clean_roi(self) -> str:
        text = (self.cleaned_data["roi"] or "").strip() or constants.EMPTY_XML
        parse_roi(text)  # the same rules as every other way in, with the message at the shape
        return text

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = [name for name in ("video", "upload", "stream_url") if data.get(name)]
        if not given:
            raise ValidationError(_("Choose a video from the store, upload one or give a stream URL."))
        if len(given) > 1:
            raise ValidationError(_("Give one source only: a stored video, an upload or a stream URL."))
        return data

    def source(self) -> str:
        """The subtask's source: a store path or the stream URL (an upload is saved first)."""
        data = self.cleaned_data
        if data.get("upload"):
            return save_upload(data["upload"])
        return data.get("video") or data["stream_url"]

    def spec(self, source: str) -> dict[str, Any]:
        """The native API's task spec for this camera (tasks.services.create_task)."""
        data = self.cleaned_data
        roi = data["roi"]
        has_shapes = bool(parse_roi(roi).zones or parse_roi(roi).lines)
        slug = slugify(data["name"])[:48] or "camera"
        scene = {
            "scene_unid": slug,
            "name": data["name"],
            "algo_type": data["algo_type"],
            "calibration_xml": data.get("calibration_xml") or constants.EMPTY_XML,
            "config_xml": data.get("config_xml") or constants.EMPTY_XML,
            "rois": [roi] if has_shapes else [],
        }
        return {
            "task_name": data["name"],
            "algo_type": data["algo_type"],
            "run_dt": data.get("run_dt") or timezone.now(),
            "play_url": data.get("play_url") or source,
            "config_complete": True,
            "mtasks": [
                {"mtask_unid": slug, "name": str(data.get("mtask_name") or _("all day")), "scenes": [scene]}
            ],
        }


def save_upload(upload) -> str:
    """The uploaded file under the store, with a safe name that does not overwrite another."""
    stem, ext = os.path.splitext(Path(upload.name).name)
    if ext.lower() not in VIDEO_EXTENSIONS:
        raise ValidationError(
            _("%(name)s is not a video file (%(ext)s)")
            % {"name": upload.name, "ext": ", ".join(VIDEO_EXTENSIONS)}
        )
    store = videos_dir()
    store.mkdir(parents=True, exist_ok=True)
    base = UPLOAD_NAME.sub("-", stem).strip("-.") or "upload"
    name, counter = f"{base}{ext.lower()}", 1
    while (store / name).exists():
        counter += 1
        name = f"{base}-{counter}{ext.lower()}"
    with (store / name).open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return name


def camera_view(model_admin, request: HttpRequest) -> TemplateResponse | HttpResponseRedirect:
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    projects = Project.objects.visible_to(request.user).order_by("name")
    form = CameraForm(request.POST or None, request.FILES or None, projects=projects)
    if request.method == "POST" and form.is_valid():
        done = _create(request, form)
        if done is not None:
            return done
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Add a camera"),
        "form": form,
        "media": model_admin.media + form.media,
        "main_fields": [
            form[name] for name in form.fields if name not in (*CameraForm.ADVANCED, "frame_source")
        ],
        "advanced_fields": [form[name] for name in CameraForm.ADVANCED],
        "frame_url": frame_url(),
        "opts": Task._meta,
        "has_projects": projects.exists(),
    }
    return TemplateResponse(request, "admin/tasks/task/camera.html", context)


def _create(request: HttpRequest, form: CameraForm) -> HttpResponseRedirect | None:
    """Create (and with "Save and start", start) the camera's task; None when a service refused
    (its message is on the page, nothing was saved)."""
    try:
        source = form.source()
    except ValidationError as exc:
        form.add_error("upload", exc)
        return None
    ok, task = run_service(
        request, task_services.create_task, form.cleaned_data["project"], form.spec(source)
    )
    if not ok:
        return None
    subtask = task.subtasks.get()
    messages.success(request, _("Camera “%(name)s” saved.") % {"name": task.task_name})
    if "_start" in request.POST:
        started, _outcomes = run_service(request, subtask_services.start_task, task)
        if started:
            messages.success(request, _("Started: the live view appears as soon as a node analyses it."))
        return HttpResponseRedirect(reverse("admin:subtasks_subtask_change", args=[subtask.pk]))
    return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[task.pk]))
