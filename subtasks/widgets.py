"""Subtask state badges for the admin; `data-state` lets live.js update them."""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from subtasks.choices import State


def state_badge(state: str) -> SafeString:
    """A coloured badge for a subtask (or derived task) state; `data-state` lets live.js update it."""
    try:
        label = str(State(state).label)
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
