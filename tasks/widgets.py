"""The admin's editors for the task core's XML fields: a code editor for every XML document and
a drawing editor over a video frame for ROIs and calibration, validated with the models' rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from tasks.validators import validate_calibration_xml, validate_roi_xml, validate_xml
from vias.lib.admin import ProjectTemplates, pretty_or_same
from vias.lib.xmlsafe import check_xml

CODEMIRROR = "vendor/codemirror-5.65.21"


EDITOR_MEDIA = forms.Media(
    css={"all": (f"{CODEMIRROR}/lib/codemirror.css", "vias/admin.css")},
    js=(
        f"{CODEMIRROR}/lib/codemirror.js",
        f"{CODEMIRROR}/mode/xml/xml.js",
        f"{CODEMIRROR}/addon/fold/xml-fold.js",
        f"{CODEMIRROR}/addon/edit/closetag.js",
        f"{CODEMIRROR}/addon/edit/matchbrackets.js",
        "vias/xml-editor.js",
    ),
)


DRAW_MEDIA = forms.Media(js=("vias/draw-editor.js",))


KIND_VALIDATORS: dict[str, Callable[[str], None]] = {
    "xml": validate_xml,
    "roi": validate_roi_xml,
    "calibration": validate_calibration_xml,
}


_WHERE = re.compile(r"line (\d+)(?:, column (\d+))?")


def locate_error(text: str, kind: str) -> tuple[int, int]:
    """The line and column (0 when unknown) of what is wrong with `text`, read in English."""
    problem = check_xml(text)
    if problem is not None:
        return problem.line, problem.column
    with translation.override("en"):
        try:
            KIND_VALIDATORS[kind](text)
        except ValidationError as exc:
            match = _WHERE.search(" ".join(exc.messages))
            if match:
                return int(match.group(1)), int(match.group(2) or 0)
    return 0, 0


class XmlEditor(ProjectTemplates, forms.Textarea):
    """A textarea that xml-editor.js turns into a CodeMirror editor with line numbers; the error's
    line and column (when the last save was refused) are marked beside that line."""

    template_name = "vias/widgets/xml_editor.html"
    kind = "xml"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__({"rows": 12, "cols": 90, "spellcheck": "false", **(attrs or {})})
        self.error_at: tuple[int, int] | None = None
        self.frame_url = ""

    @property
    def media(self) -> forms.Media:
        return EDITOR_MEDIA

    def format_value(self, value: Any) -> str | None:
        return super().format_value(pretty_or_same(value))

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget_attrs = context["widget"]["attrs"]
        widget_attrs["class"] = f"{widget_attrs.get('class', '')} vias-xml".strip()
        widget_attrs["data-kind"] = self.kind
        if self.error_at:
            widget_attrs["data-error-line"] = self.error_at[0]
            widget_attrs["data-error-column"] = self.error_at[1]
            context["error_at"] = _("line %(line)d, column %(column)d") % {
                "line": self.error_at[0],
                "column": self.error_at[1],
            }
        return context


class DrawEditor(XmlEditor):
    """The XML editor plus a canvas over a recent frame of the video source (draw-editor.js)."""

    template_name = "vias/widgets/draw_editor.html"

    @property
    def media(self) -> forms.Media:
        return EDITOR_MEDIA + DRAW_MEDIA

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"]["data-frame-url"] = self.frame_url
        context["labels"] = json.dumps(editor_labels(), ensure_ascii=False)
        return context


class RoiEditor(DrawEditor):
    kind = "roi"


class CalibrationEditor(DrawEditor):
    kind = "calibration"


def editor_labels() -> dict[str, str]:
    """The drawing editor's words, in the request's language."""
    return {
        "polygon": _("Add polygon"),
        "line": _("Add line"),
        "pair": _("Add point pair"),
        "shape_polygon": _("polygon"),
        "shape_line": _("line"),
        "finish": _("Finish shape"),
        "cancel": _("Cancel"),
        "delete": _("Delete"),
        "name": _("Name"),
        "mode": _("Mode"),
        "include": _("include"),
        "exclude": _("exclude"),
        "direction": _("Direction"),
        "both": _("both directions"),
        "left_to_right": _("from the left of A→B to its right"),
        "right_to_left": _("from the right of A→B to its left"),
        "ground_x": _("ground x (m)"),
        "ground_y": _("ground y (m)"),
        "points": _("points"),
        "no_frame": _("No frame could be grabbed: %(reason)s. Drawing on a blank canvas of %(w)s×%(h)s."),
        "loading": _("Grabbing a frame from the video source…"),
        "refresh": _("Grab a new frame"),
        "invalid": _("The XML text does not parse, so the drawing is not updated: %(error)s"),
        "help_roi": _(
            "Click “Add polygon” or “Add line”, then click on the picture to place points; "
            "a polygon ends with a double click, Enter or “Finish shape”. Drag a point to move it; "
            "Shift+click a point to delete it."
        ),
        "help_calibration": _(
            "Click “Add point pair”, click the picture where a ground point is, then enter its ground "
            "coordinates in metres. Drag a point to move it; Shift+click it to delete the pair."
        ),
        "frame_size": _("frame %(w)s×%(h)s"),
        "error": _("reprojection error %(e)s m"),
        "error_none": _("reprojection error: from 4 pairs"),
        "grid": _("ground grid: one line every %(step)s m"),
    }


class XmlFormField(forms.CharField):
    """An XML form field validated with the model's own rules; the error's line and column are
    kept on the widget so the editor can mark them."""

    def __init__(self, *args: Any, kind: str = "xml", **kwargs: Any):
        self.kind = kind
        kwargs.setdefault("widget", {"roi": RoiEditor, "calibration": CalibrationEditor}.get(kind, XmlEditor))
        kwargs.setdefault("strip", False)
        super().__init__(*args, **kwargs)

    def validate(self, value: str) -> None:
        super().validate(value)
        if value in self.empty_values:
            return
        try:
            KIND_VALIDATORS[self.kind](value)
        except ValidationError:
            self.widget.error_at = locate_error(value, self.kind)
            raise

    def has_changed(self, initial: Any, data: Any) -> bool:
        # The editor shows the document pretty-printed; that alone is no change.
        return pretty_or_same(initial or "") != pretty_or_same(data or "")


def xml_formfield(db_field, kind: str = "xml", **kwargs: Any) -> XmlFormField:
    defaults = {
        "required": not db_field.blank,
        "label": db_field.verbose_name.capitalize() if db_field.verbose_name else None,
        "help_text": db_field.help_text,
        "initial": db_field.default if isinstance(db_field.default, str) else None,
    }
    return XmlFormField(kind=kind, **{**defaults, **kwargs})


class RoiListWidget(ProjectTemplates, forms.Widget):
    """A subtask's ordered ROI documents: one ROI editor each, plus an empty one to add another."""

    template_name = "vias/widgets/roi_list.html"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__(attrs)
        self.frame_url = ""
        self.error_index: int | None = None
        self.error_at: tuple[int, int] | None = None

    @property
    def media(self) -> forms.Media:
        return EDITOR_MEDIA + DRAW_MEDIA

    def format_value(self, value: Any) -> list[str]:  # type: ignore[override]  # a list of documents
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = [value]
        return [pretty_or_same(v) for v in (value or []) if isinstance(v, str)]

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        documents = self.format_value(value) + [""]
        editors = []
        for index, text in enumerate(documents):
            editor = RoiEditor()
            editor.frame_url = self.frame_url
            if index == self.error_index:
                editor.error_at = self.error_at
            editors.append(editor.render(f"{name}_{index}", text, {"id": f"id_{name}_{index}"}))
        context["editors"] = editors
        return context

    def value_from_datadict(self, data, files, name: str) -> list[str]:
        documents, index = [], 0
        while f"{name}_{index}" in data:
            text = data[f"{name}_{index}"]
            if text.strip():
                documents.append(text)
            index += 1
        return documents

    def value_omitted_from_data(self, data, files, name: str) -> bool:
        return f"{name}_0" not in data


class RoiListField(forms.Field):
    widget = RoiListWidget

    def to_python(self, value: Any) -> list[str]:
        return list(value or [])

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        for index, text in enumerate(value):
            try:
                validate_roi_xml(text)
            except ValidationError as exc:
                self.widget.error_index = index
                self.widget.error_at = locate_error(text, "roi")
                raise ValidationError(
                    _("ROI %(n)d: %(error)s") % {"n": index + 1, "error": exc.messages[0]}
                ) from None

    def has_changed(self, initial: Any, data: Any) -> bool:
        return [pretty_or_same(v) for v in (initial or [])] != [pretty_or_same(v) for v in (data or [])]


# What kind of editor each XML field of the task core's models gets.
XML_KINDS = {"calibration_xml": "calibration", "config_xml": "xml", "basic_config_xml": "xml", "xml": "roi"}


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
