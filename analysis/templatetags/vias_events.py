"""`{% live_events task_id=... subtask_id=... %}`: the latest events of a task or subtask as a table
that static/vias/live.js extends in place when an "event" push arrives (no reload)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from analysis.labels import rule_label
from analysis.models import Event
from tasks.choices import DetectorModel

register = template.Library()

# Enough to see what is happening; the event list has the rest.
LATEST = 20


def event_row(event: dict[str, Any]) -> tuple[Any, ...]:
    return (
        event["id"],
        reverse("admin:analysis_event_change", args=[event["id"]]),
        timezone.localtime(event["occurred_at"]).strftime("%Y-%m-%d %H:%M:%S"),
        event["subtask_id"],
        rule_label(event["rule"]),  # the operator's words, as the event list shows them
        _category_label(event["category"]),
        event["zone"] or "—",
        f"{event['score']:.2f}",
    )


def _category_label(category: str) -> str:
    labels = dict(DetectorModel.choices)
    return str(labels.get(category, category))


@register.simple_tag
def live_events(task_id: str = "", subtask_id: int | None = None) -> SafeString:
    events = Event.objects.filter(task_id=task_id)
    if subtask_id is not None:
        events = events.filter(subtask_id=subtask_id)
    rows = events.order_by("-occurred_at", "-pk").values(
        "id", "occurred_at", "subtask_id", "rule", "category", "zone", "score"
    )[:LATEST]
    body = format_html_join(
        "",
        '<tr data-event-id="{}"><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td></tr>",
        (event_row(row) for row in rows),
    )
    headers = format_html_join(
        "",
        "<th>{}</th>",
        ((h,) for h in (_("time"), _("subtask"), _("rule"), _("category"), _("zone"), _("score"))),
    )
    return format_html(
        '<table class="vias-live-events" data-live-events="{}" data-live-events-subtask="{}" '
        'data-event-url="{}" data-max-rows="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        task_id,
        "" if subtask_id is None else subtask_id,
        reverse("admin:analysis_event_change", args=[0]),
        LATEST,
        headers,
        body,
    )
