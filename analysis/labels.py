"""Words for what the rules find, as the operator reads them (the event list, its page, the review
timeline): the rule names the engine stores (Event.rule, analysis/choices.py) and an event's key
spelled out."""

from __future__ import annotations

from django.utils.translation import gettext as _

from analysis.choices import RULE_LABELS


def rule_label(rule: str) -> str:
    return str(RULE_LABELS.get(rule, rule))


def key_label(key: str) -> str:
    """`intrusion:yard:1:0` as "intrusion in yard, track #1, frame 0"."""
    rule, _sep, rest = key.partition(":")
    zone, _sep, rest = rest.partition(":")
    track, _sep, frame = rest.partition(":")
    parts = [rule_label(rule) + (" " + _("in %(zone)s") % {"zone": zone} if zone else "")]
    if track and track != "-":
        parts.append(_("track #%(id)s") % {"id": track})
    if frame:
        parts.append(_("frame %(n)s") % {"n": frame})
    return ", ".join(parts)
