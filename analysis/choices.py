"""The rule names the engine stores in Event.rule (analysis/rules/engine.py), in the operator's words."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

RULE_LABELS = {
    "line_cross": gettext_lazy("line crossing"),
    "speeding": gettext_lazy("speeding"),
    "flow": gettext_lazy("flow count"),
    "occupancy": gettext_lazy("occupancy over the limit"),
    "intrusion": gettext_lazy("intrusion"),
    "loitering": gettext_lazy("loitering"),
    "fall": gettext_lazy("fall"),
    "illegal_parking": gettext_lazy("illegal parking"),
    "face_capture": gettext_lazy("face capture"),
    "appear": gettext_lazy("appearance"),
}
