"""Admin helpers that know no domain: progress bars, service calls reported as messages, the
events chart, templates from the project, the live-update media (docs/admin.md).

Domain widgets live next to the app they edit: tasks/widgets.py (XML and drawing editors),
subtasks/widgets.py (state badges).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Min, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.db.models.functions.datetime import TruncBase
from django.forms.renderers import TemplatesSetting
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from vias.lib.errors import ServiceError, flatten_errors, summary
from vias.lib.xmlsafe import pretty

LIVE_MEDIA = forms.Media(css={"all": ("vias/admin.css",)}, js=("vias/live.js",))


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


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return summary(flatten_errors(exc)) or "; ".join(exc.messages)
    return str(exc)


# Words for the codes an outcome names (subtask states such as RUNNING, acknowledgement statuses),
# registered by the apps' admin modules (the lib names no app): the messages show the words, in the
# operator's language, where the services (whose texts the APIs answer too) name the codes.
OUTCOME_WORDS: dict[str, Any] = {}


def in_words(text: str) -> str:
    """`text` with each registered code (a whole word in capitals: a state) in words."""
    if not OUTCOME_WORDS or not text:
        return text
    return re.sub(r"\b[A-Z][A-Z_]+\b", lambda m: str(OUTCOME_WORDS.get(m.group(0), m.group(0))), str(text))


def run_service(
    request, fn: Callable[..., Any], *args: Any, prefix: str = "", **kwargs: Any
) -> tuple[bool, Any]:
    """Call a service function; a refusal (ServiceError, ValidationError) becomes an error message."""
    try:
        return True, fn(*args, **kwargs)
    except (ServiceError, ValidationError) as exc:
        messages.error(request, f"{prefix}{in_words(error_text(exc))}")
        return False, None


def report_outcomes(request, label: str, outcomes: Iterable[Any]) -> None:
    """One message per subtask Outcome (or control-channel Ack): success, or warning with the reason."""
    for outcome in outcomes:
        state = getattr(outcome, "state", "") or getattr(outcome, "status", "")
        reason = getattr(outcome, "reason", "")
        text = _("%(label)s: subtask %(id)s → %(state)s") % {
            "label": label,
            "id": outcome.subtask_id,
            "state": OUTCOME_WORDS.get(str(state), state),
        }
        if reason:
            text = f"{text} ({in_words(reason)})"
        level = messages.SUCCESS if outcome.ok else messages.WARNING
        messages.add_message(request, level, text)


def pretty_or_same(value: Any) -> Any:
    return pretty(value) if isinstance(value, str) and value.strip() else value


class ProjectTemplates(forms.Widget):
    """Widgets whose templates live in the project's templates/ (the default form renderer only
    looks inside Django and the installed apps)."""

    renderer = TemplatesSetting()

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer=None) -> SafeString:
        return super().render(name, value, attrs, renderer=self.renderer)


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 160, 28


def events_chart(queryset: QuerySet, *, title: str = "") -> SafeString:
    """Events of `queryset` per minute, hour or day (by the span they cover) as an inline SVG bar chart:
    two queries (the span, then the counts per bucket)."""
    span = queryset.order_by().aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    if not span["first"]:
        return format_html('<p class="vias-chart-empty">{}</p>', _("No events yet."))
    length = span["last"] - span["first"]
    trunc: type[TruncBase]
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
    buckets: list[tuple[Any, int]] = []
    at = rows[0]["bucket"]
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


class TenantAdminMixin:
    """Limits a ModelAdmin (or inline) to the rows of the user's projects; superusers see all.

    One hook for everything the admin shows or accepts: the changelist, change, delete and history
    pages and actions (all read `get_queryset`), autocomplete (it reads the target admin's
    queryset), and every foreign-key and many-to-many choice (`get_field_queryset`). Models whose
    queryset has no `visible_to` (users, nodes shared by every project) are left as they are. A
    row outside the user's projects is a 404, as on the APIs.
    """

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return visible(super().get_queryset(request), request)  # type: ignore[misc]

    def get_field_queryset(self, db: str | None, db_field: Any, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_field_queryset(db, db_field, request)  # type: ignore[misc]
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db)
        return visible(queryset, request)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        return limit_choices(form, request)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        formset.form = limit_choices(formset.form, request)
        return formset

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = super().get_list_filter(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return filters
        # A plain foreign-key filter lists every row of the related model; this one only those used.
        return [_related_only(self.model, name) for name in filters]  # type: ignore[attr-defined]

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None and not request.user.is_superuser:
            raise Http404  # not "does not exist": another project's row is simply not there
        return obj


def limit_choices(form_class: Any, request: HttpRequest) -> Any:
    """Model choices a form declares itself (not made by the admin from the model) limited the same
    way; the fields are copied first, as a form class shares its declared fields."""
    for name, field in list(form_class.base_fields.items()):
        queryset = getattr(field, "queryset", None)
        if queryset is not None and hasattr(queryset, "visible_to") and not request.user.is_superuser:
            limited = copy.deepcopy(field)
            limited.queryset = queryset.visible_to(request.user)
            form_class.base_fields[name] = limited
    return form_class


def visible(queryset: QuerySet[Any], request: HttpRequest) -> QuerySet[Any]:
    """The rows of `queryset` the request's user may see (all, for a model without tenancy)."""
    return queryset.visible_to(request.user) if hasattr(queryset, "visible_to") else queryset


def _related_only(model: Any, name: Any) -> Any:
    if not isinstance(name, str):
        return name
    field = get_fields_from_path(model, name)[-1]
    return (name, admin.RelatedOnlyFieldListFilter) if field.is_relation else name
