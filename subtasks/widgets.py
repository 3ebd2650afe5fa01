"""Subtask state badges (their words translated, the state code in `data-state` for live.js) and
the command buttons that follow the state, for the admin."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from subtasks.choices import STARTABLE_STATES, STOP_DIRECTLY, STOP_VIA_NODE, State


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
        state,
        label,
    )


def counts_badges(counts: Mapping[str, int], *, zeros: bool = False) -> SafeString:
    """One small badge per state with subtasks in it (all states when `zeros`), in canonical order."""
    items = [(s, counts.get(s, 0)) for s in State.values if zeros or counts.get(s, 0)]
    inner = format_html_join(
        "",
        '<span class="vias-count vias-state-{}" data-count-state="{}" title="{}"{}>{} {}</span>',
        (
            (s.lower(), s, s, mark_safe(' hidden=""') if not n else "", State(s).label, n)
            for s, n in (items or [])
        ),
    )
    if not zeros:
        return format_html('<span class="vias-counts">{}</span>', inner or "—")
    return format_html('<span class="vias-counts" data-all-states="1">{}</span>', inner)


# The states in which each command button makes sense: a page shows only those (no Stop on a
# stopped subtask); a task's page shows a button when one of its subtasks is in such a state.
BUTTON_STATES: dict[str, frozenset[str]] = {
    "config-complete": frozenset({State.PENDING}),
    "start": frozenset(STARTABLE_STATES),
    "stop": frozenset(STOP_DIRECTLY | STOP_VIA_NODE),
    "dispatch": frozenset({State.STARTING, State.RECOVERING, State.ABNORMAL}),
}


def buttons_for(
    states: Iterable[str], buttons: Iterable[tuple[str, str, str]]
) -> list[tuple[str, str, str, str, bool]]:
    """(verb, label, css, the states it applies in, shown now) for each button: shown when it
    applies to one of `states`. The others are rendered hidden, for console.js to show when the
    state changes."""
    present = set(states)
    return [
        (verb, label, css, " ".join(sorted(BUTTON_STATES[verb])), bool(BUTTON_STATES[verb] & present))
        for verb, label, css in buttons
    ]
