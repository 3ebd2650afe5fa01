"""Field rules of VIAS v2 video sources and video source groups (the public API reference's).

The models use them (VideoChannel, VideoGroup), so the v2 API and the admin enforce the same
rules. `type_config` is an XML string, read with the project's hardened parser.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from vias.lib.xmlsafe import parse_xml

MAX_TYPE_CONFIG = 1024
MAX_TAGS = 4


class AccessType(models.TextChoices):
    CLOUD = "cloud", gettext_lazy("cloud")
    EDGE = "edge", gettext_lazy("edge")


class SourceKind(models.TextChoices):
    """The v2 `type` of a video source. Only `url` can be analysed here (docs/dialects.md)."""

    URL = "url", "url"
    RESTFUL = "restful", "restful"
    VCN = "vcn", "vcn"
    OBS = "obs", "obs"
    CAMERA = "camera", "camera"
    IVM = "ivm", "ivm"
    VCN_RESTFUL = "vcn_restful", "vcn_restful"


SUPPORTED_KINDS = (SourceKind.URL,)

# Chinese, letters, digits, space and .-_() (the full-width parentheses too), no space at either end.
SOURCE_NAME_RE = r"^(?! )[\u4e00-\u9fa5A-Za-z0-9 .\-_()\uff08\uff09]{1,100}(?<! )\Z"
SOURCE_ID_RE = r"^[a-z0-9_-]{4,36}\Z"
TAG_RE = re.compile(r"^[\u4e00-\u9fa5A-Za-z0-9_-]{1,10}\Z")
GROUP_NAME_RE = r"^[\u4e00-\u9fa5A-Za-z0-9_-]{1,20}\Z"

validate_source_name = RegexValidator(
    SOURCE_NAME_RE,
    gettext_lazy(
        "use 1..100 Chinese characters, letters, digits, spaces or .-_(), not starting or ending with a space"
    ),
)
validate_source_id = RegexValidator(
    SOURCE_ID_RE, gettext_lazy("use 4..36 lowercase letters, digits, '_' or '-'")
)
validate_group_name = RegexValidator(
    GROUP_NAME_RE, gettext_lazy("use 1..20 Chinese characters, letters, digits, '_' or '-'")
)


def _coordinate(value: str, limit: int) -> None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or not -limit <= number <= limit:
        raise ValidationError(_("a number from -%(n)d to %(n)d") % {"n": limit})
    if number.as_tuple().exponent < -5:  # type: ignore[operator]
        raise ValidationError(_("at most 5 decimal places"))


def validate_latitude(value: str) -> None:
    _coordinate(value, 90)


def validate_longitude(value: str) -> None:
    _coordinate(value, 180)


def validate_tags(value: Any) -> None:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ValidationError(_("a list of at most %(n)d tags") % {"n": MAX_TAGS})
    for tag in value:
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise ValidationError(
                _("a tag is 1..10 Chinese characters, letters, digits, '_' or '-': %(t)r") % {"t": tag}
            )
    if len(set(value)) != len(value):
        raise ValidationError(_("a tag is listed twice"))


def parse_type_config(kind: str, text: str) -> dict[str, str]:
    """The fields of a `<type_config>` document, e.g. {"url_address": "rtsp://..."}.

    Refuses a document that is not `<type_config>` with one child per field, a type this
    installation cannot analyse, and a `url` without `url_address`."""
    if len(text.encode("utf-8")) > MAX_TYPE_CONFIG:
        raise ValidationError(_("at most %(n)d bytes") % {"n": MAX_TYPE_CONFIG})
    root = parse_xml(text, max_bytes=MAX_TYPE_CONFIG)
    if root.tag != "type_config":
        raise ValidationError(_("the root element must be <type_config>, not <%(t)s>") % {"t": root.tag})
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str) or len(child):
            raise ValidationError(_("<type_config> holds only simple elements"))
        if child.tag in fields:
            raise ValidationError(_("<%(t)s> is given twice") % {"t": child.tag})
        fields[child.tag] = (child.text or "").strip()
    if kind not in SUPPORTED_KINDS:
        raise ValidationError(
            _("video sources of type %(k)s cannot be analysed here; use url") % {"k": kind}, code="kind"
        )
    if not fields.get("url_address"):
        raise ValidationError(_("a url video source needs <url_address>"))
    return fields


def type_config_for_url(url: str) -> str:
    """The `<type_config>` of a url source, for channels made by other APIs."""
    return f"<type_config><url_address>{escape(url)}</url_address></type_config>"
