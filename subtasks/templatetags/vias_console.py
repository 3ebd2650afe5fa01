"""Template tags of the console: the state words in the page's language, for live.js."""

from __future__ import annotations

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString

from subtasks.choices import State

register = template.Library()


@register.simple_tag
def state_labels_json() -> SafeString:
    return json_script({state.value: str(state.label) for state in State}, "vias-state-labels")
