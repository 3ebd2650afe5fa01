"""Shared pieces of the operator's admin (docs/admin.md): state badges and progress bars, the XML
code editor and the visual ROI / calibration editors (form widgets), and the bridge from service
functions to admin messages. The ModelAdmins live in each app's admin.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.forms.renderers import TemplatesSetting
from django.utils import timezone, translation
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from subtasks.choices import State
from tasks.validators import validate_calibration_xml, validate_roi_xml, validate_xml
from vias.lib.errors import ServiceError, flatten_errors, summary
from vias.lib.xmlsafe import check_xml, pretty

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
LIVE_MEDIA = forms.Media(css={"all": ("vias/admin.css",)}, js=("vias/live.js",))

# ---- badges and progress ------------------------------------------------------------------------


def state_badge(state: str) -> SafeString:
    """A coloured badge for a subtask (or derived task) state; `data-state` lets live.js update it."""
    try:
        label = State(state).label
    except ValueError:
        label = state
    return format_html(
        '<span class="vias-badge vias-state-{}" data-state="{}" title="{}">{}</span>',
        state.lower(),
        state,
        label,
        state,
    )


def counts_badges(counts: Mapping[str, int], *, zeros: bool = False) -> SafeString:
    """One small badge per state with subtasks in it (all states when `zeros`), in canonical order."""
    items = [(s, counts.get(s, 0)) for s in State.values if zeros or counts.get(s, 0)]
    inner = format_html_join(
        "",
        '<span class="vias-count vias-state-{}" data-count-state="{}" title="{}"{}>{} {}</span>',
        (
            (s.lower(), s, State(s).label, mark_safe(' hidden=""') if not n else "", s, n)
            for s, n in (items or [])
        ),
    )
    if not zeros:
        return format_html('<span class="vias-counts">{}</span>', inner or "—")
    return format_html('<span class="vias-counts" data-all-states="1">{}</span>', inner)


def progress_bar(percent: float | None) -> SafeString:
    value = max(0.0, min(100.0, float(percent or 0.0)))
    return format_html(
        '<span class="vias-progress" data-progress="{}" title="{}%"><span style="width:{}%"></span>'
        "<em>{}%</em></span>",
        f"{value:.1f}",
        f"{value:.1f}",
        f"{value:.1f}",
        f"{value:.0f}",
    )


# ---- service calls reported as messages ---------------------------------------------------------


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return summary(flatten_errors(exc)) or "; ".join(exc.messages)
    return str(exc)


def run_service(
    request, fn: Callable[..., Any], *args: Any, prefix: str = "", **kwargs: Any
) -> tuple[bool, Any]:
    """Call a service function; a refusal (ServiceError, ValidationError) becomes an error message."""
    try:
        return True, fn(*args, **kwargs)
    except (ServiceError, ValidationError) as exc:
        messages.error(request, f"{prefix}{error_text(exc)}")
        return False, None


def report_outcomes(request, label: str, outcomes: Iterable[Any]) -> None:
    """One message per subtask Outcome (or control-channel Ack): success, or warning with the reason."""
    for outcome in outcomes:
        state = getattr(outcome, "state", "") or getattr(outcome, "status", "")
        reason = getattr(outcome, "reason", "")
        text = _("%(label)s: subtask %(id)s → %(state)s") % {
            "label": label,
            "id": outcome.subtask_id,
            "state": state,
        }
        if reason:
            text = f"{text} ({reason})"
        level = messages.SUCCESS if outcome.ok else messages.WARNING
        messages.add_message(request, level, text)


# ---- XML fields ---------------------------------------------------------------------------------

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


def pretty_or_same(value: Any) -> Any:
    return pretty(value) if isinstance(value, str) and value.strip() else value


class ProjectTemplates:
    """Widgets whose templates live in the project's templates/ (the default form renderer only
    looks inside Django and the installed apps)."""

    renderer = TemplatesSetting()

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer=None) -> SafeString:
        return super().render(name, value, attrs, renderer=self.renderer)


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

    def format_value(self, value: Any) -> list[str]:
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


# ---- events over time ---------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 160, 28


def events_chart(queryset: QuerySet, *, title: str = "") -> SafeString:
    """Events of `queryset` per minute, hour or day (by the span they cover) as an inline SVG bar chart:
    two queries (the span, then the counts per bucket)."""
    from django.db.models import Count, Max, Min

    span = queryset.order_by().aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    if not span["first"]:
        return format_html('<p class="vias-chart-empty">{}</p>', _("No events yet."))
    length = span["last"] - span["first"]
    if length <= timedelta(hours=2):
        trunc, step, fmt = TruncMinute, timedelta(minutes=1), "%H:%M"
    elif length <= timedelta(days=3):
        trunc, step, fmt = TruncHour, timedelta(hours=1), "%m-%d %H:00"
    else:
        trunc, step, fmt = TruncDay, timedelta(days=1), "%Y-%m-%d"
    rows = list(
        queryset.order_by()
        .annotate(bucket=trunc("occurred_at"))
        .values("bucket")
        .annotate(n=Count("pk"))
        .order_by("bucket")
    )
    counts = {row["bucket"]: row["n"] for row in rows}
    buckets, at = [], rows[0]["bucket"]
    while at <= rows[-1]["bucket"] and len(buckets) < 400:
        buckets.append((at, counts.get(at, 0)))
        at += step
    top = max(n for _b, n in buckets) or 1
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    bar_w = inner_w / len(buckets)
    bars = []
    for index, (bucket, n) in enumerate(buckets):
        h = inner_h * n / top
        local = timezone.localtime(bucket)
        bars.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}"><title>{}: {}</title></rect>',
                f"{CHART_PAD + index * bar_w:.1f}",
                f"{CHART_PAD + inner_h - h:.1f}",
                f"{max(bar_w - 1, 1):.1f}",
                f"{h:.1f}",
                local.strftime(fmt),
                n,
            )
        )
    first, last = timezone.localtime(buckets[0][0]), timezone.localtime(buckets[-1][0])
    total = sum(n for _b, n in buckets)
    return format_html(
        '<figure class="vias-chart"><figcaption>{} — {}</figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>'
        '<text x="{}" y="{}" class="label">{}</text><text x="{}" y="{}" class="label" text-anchor="end">{}</text>'
        '<text x="4" y="{}" class="label">{}</text>{}</svg></figure>',
        title or _("Events over time"),
        _("%(n)d events") % {"n": total},
        CHART_WIDTH,
        CHART_HEIGHT,
        title or _("Events over time"),
        CHART_PAD,
        CHART_PAD + inner_h,
        CHART_PAD + inner_w,
        CHART_PAD + inner_h,
        CHART_PAD,
        CHART_HEIGHT - 8,
        first.strftime(fmt),
        CHART_PAD + inner_w,
        CHART_HEIGHT - 8,
        last.strftime(fmt),
        CHART_PAD - 6,
        top,
        mark_safe("".join(bars)),
    )


def live_attrs(**ids: Any) -> SafeString:
    """Attributes telling live.js what this page shows (task / subtask ids) and where to subscribe."""
    return format_html_join(" ", 'data-{}="{}"', ((k.replace("_", "-"), v) for k, v in ids.items()))
