"""Storage configs and video channels, written through tasks.services."""

from __future__ import annotations

import base64
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from subtasks.choices import ACTIVE_STATES
from tasks import services as task_services
from tasks.models import (
    StoreConf,
    VideoChannel,
)
from tasks.validators import validate_xml
from tasks.widgets import XmlFormField
from vias.lib.admin import (
    ServiceChangeMixin,
    TenantAdminMixin,
    report_outcomes,
)


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
        data = super().clean() or {}
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
class StoreConfAdmin(TenantAdminMixin, ServiceChangeMixin, admin.ModelAdmin):
    form = StoreConfForm
    list_display = ("unid", "name", "file_ext", "version", "size", "task_count", "project", "updated_at")
    list_select_related = ("project",)
    list_filter = ("project", "file_ext")
    search_fields = ("unid", "name")
    readonly_fields = ("version", "updated_at")
    actions = ["delete_through_service"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .defer("content")
            .annotate(task_total=Count("tasks"), size_bytes=Length("content"))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("project", "unid", *self.readonly_fields) if obj else self.readonly_fields

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=gettext_lazy("bytes"), ordering="size_bytes")
    def size(self, obj: Any) -> int:
        return obj.size_bytes

    @admin.display(description=gettext_lazy("tasks"), ordering="task_total")
    def task_count(self, obj: Any) -> int:
        return obj.task_total

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
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

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        task_services.delete_store_conf(obj)

    @admin.action(
        description=gettext_lazy("Delete the selected storage configs (refused while a task uses one)")
    )
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self.service_delete_queryset(request, queryset, task_services.delete_store_conf)


class VideoChannelForm(forms.ModelForm):
    """The ONVIF password is never shown: left empty, the stored one stays."""

    onvif_password = forms.CharField(
        required=False,
        label=gettext_lazy("ONVIF password"),
        widget=forms.PasswordInput(render_value=False),
        help_text=gettext_lazy("the dome camera's ONVIF password; leave empty to keep the stored one"),
    )

    def clean_onvif_password(self) -> str:
        if not self.cleaned_data.get("ptz"):  # not a dome camera (any more): no ONVIF password
            return str(self.cleaned_data.get("onvif_password") or "")
        return str(self.cleaned_data.get("onvif_password") or self.instance.onvif_password or "")

    class Meta:
        model = VideoChannel
        fields = (
            "project",
            "vchan_refid",
            "name",
            "url",
            "width",
            "height",
            "ptz",
            "onvif_url",
            "onvif_username",
        )


@admin.register(VideoChannel)
class VideoChannelAdmin(TenantAdminMixin, ServiceChangeMixin, admin.ModelAdmin):
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
    # The v2 fields are shown, and changed through the v2 API (docs/dialects.md, Video sources).
    V2_FIELDS = ("access_type", "kind", "type_config", "latitude", "longitude", "tags")
    # A dome camera's PTZ / ONVIF settings (the mtask journey); the password is write-only.
    PTZ_FIELDS = ("ptz", "onvif_url", "onvif_username", "onvif_password")
    form = VideoChannelForm
    fields = ("project", "vchan_refid", "name", "url", "width", "height", *PTZ_FIELDS, *V2_FIELDS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                subtask_total=Count("subtasks"),
                active_total=Count("subtasks", filter=Q(subtasks__state__in=ACTIVE_STATES)),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("project", "vchan_refid", *self.V2_FIELDS) if obj else self.V2_FIELDS

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=gettext_lazy("size"))
    def size(self, obj: VideoChannel) -> str:
        return f"{obj.width}×{obj.height}" if obj.width and obj.height else "—"

    @admin.display(description=gettext_lazy("subtasks"), ordering="subtask_total")
    def subtask_count(self, obj: Any) -> int:
        return obj.subtask_total

    @admin.display(description=gettext_lazy("active"), ordering="active_total")
    def active_count(self, obj: Any) -> int:
        return obj.active_total

    @admin.display(description=gettext_lazy("frame"))
    def frame_link(self, obj: VideoChannel) -> str:
        url = reverse("admin:tasks_scene_frame") + f"?vchan={obj.pk}&view=1"
        return format_html('<a href="{}" target="_blank">{}</a>', url, _("grab a frame"))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        names = ("name", "url", "width", "height", "ptz", "onvif_url", "onvif_username")
        spec = {name: form.cleaned_data.get(name) for name in names}
        spec["onvif_password"] = form.cleaned_data.get("onvif_password") or ""  # empty: the stored one
        if change:
            task_services.update_vchan(obj, spec)
        else:
            spec["vchan_refid"] = form.cleaned_data["vchan_refid"]
            channel = task_services.create_vchan(form.cleaned_data["project"], spec)
            obj.pk = channel.pk
            obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        task_services.delete_vchan(obj)

    @admin.action(description=gettext_lazy("Delete the selected channels (refused while a subtask uses one)"))
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self.service_delete_queryset(request, queryset, task_services.delete_vchan)
