"""Field validators of the task core. Models use them, so every API and the admin share them."""

from __future__ import annotations

import base64
import binascii
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks.choices import AlgoType, DetectorModel
from tasks.xmlformats import parse_calibration, parse_roi
from vias.lib.xmlsafe import parse_xml

validate_unid = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
    gettext_lazy("use 1..64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"),
)
validate_file_ext = RegexValidator(r"^[A-Za-z0-9]{1,10}$", gettext_lazy("use 1..10 letters or digits"))
validate_project_id = RegexValidator(
    r"^[A-Za-z0-9_-]{1,64}$", gettext_lazy("use 1..64 letters, digits, '_' or '-'")
)

STREAM_SCHEMES = {"rtsp", "rtsps", "http", "https"}


def validate_xml(value: str) -> None:
    parse_xml(value)


def validate_roi_xml(value: str) -> None:
    parse_roi(value)


def validate_calibration_xml(value: str) -> None:
    parse_calibration(value)


def videos_dir() -> Path:
    """The documented video store: files under it can be analysed by relative path."""
    return settings.DATA_DIR / "videos"


def validate_source_url(value: str) -> None:
    """A stream URL (rtsp, rtsps, http, https) or a file path inside the video store.

    Everything else (file:, concat:, subfile:, pipe:, data:, absolute paths, ..) is refused:
    these strings reach FFmpeg through OpenCV, which would otherwise read any local file.
    """
    if not value or value != value.strip() or any(ord(c) < 32 for c in value):
        raise ValidationError(
            _("a source URL must be non-empty, without spaces around or control characters")
        )
    scheme = urlsplit(value).scheme.lower() if "://" in value else ""
    if scheme:
        if scheme not in STREAM_SCHEMES:
            raise ValidationError(
                _(
                    "the scheme %(scheme)s: is not allowed; use rtsp, rtsps, http, https or a file in the video store"
                )
                % {"scheme": scheme}
            )
        if not urlsplit(value).hostname:
            raise ValidationError(_("the URL %(url)s has no host") % {"url": value})
        return
    if ":" in value.split("/")[0]:
        raise ValidationError(_("the protocol in %(url)s is not allowed") % {"url": value})
    resolve_video_path(value)


def resolve_video_path(relative: str) -> Path:
    """The file a video-store path names; ValidationError when it leaves the store."""
    if relative.startswith("/") or "\\" in relative:
        raise ValidationError(
            _("a video file must be given relative to the video store, not as %(p)s") % {"p": relative}
        )
    root = videos_dir().resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValidationError(_("the path %(p)s leaves the video store") % {"p": relative})
    return path


def validate_detector_models(value: Any) -> None:
    """A task's detector models: a list of distinct known names (empty: chosen by algo_type)."""
    if not isinstance(value, list):
        raise ValidationError(_("models must be a list"))
    for name in value:
        if name not in DetectorModel.values:
            raise ValidationError(
                _("unknown model %(name)s; use %(allowed)s")
                % {"name": name, "allowed": ", ".join(DetectorModel.values)}
            )
    if len(set(value)) != len(value):
        raise ValidationError(_("a model is listed twice"))


def decode_file_b64(value: str) -> bytes:
    """Strict base64 with the size cap; ValidationError saying which rule failed."""
    if not isinstance(value, str):
        raise ValidationError(_("file_b64 must be a base64 string"))
    cap = settings.VIAS_MAX_STORE_CONF_BYTES
    if len(value) > (cap * 4) // 3 + 8:
        raise ValidationError(
            _("the file is over the limit of %(cap)d bytes") % {"cap": cap}, code="too_large"
        )
    try:
        content = base64.b64decode(re.sub(r"\s+", "", value), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(_("file_b64 is not valid base64")) from None
    if len(content) > cap:
        raise ValidationError(
            _("the file is over the limit of %(cap)d bytes") % {"cap": cap}, code="too_large"
        )
    return content


# algo_args: one table per algorithm type. Each entry: key -> (type, minimum, maximum).
_COMMON_ARGS: dict[str, tuple[type, float | None, float | None]] = {
    "fps": (float, 0.1, 60.0),
    "min_score": (float, 0.0, 1.0),
}
ALGO_ARGS: dict[str, dict[str, tuple[type, float | None, float | None]]] = {
    AlgoType.TRAFFIC: {"speed_limit_kmh": (float, 1.0, 300.0), "min_track_frames": (int, 1, 1000)},
    AlgoType.PASSENGER_FLOW: {"occupancy_limit": (int, 0, 100000), "min_track_frames": (int, 1, 1000)},
    AlgoType.SECURITY: {"loiter_seconds": (float, 1.0, 86400.0), "detect_fall": (bool, None, None)},
    AlgoType.ILLEGAL_PARKING: {"park_seconds": (float, 1.0, 86400.0)},
    AlgoType.FACE: {"min_face_px": (int, 8, 4096)},
}


def validate_algo_args(algo_type: str, args: Any) -> None:
    """algo_args is an object whose keys and ranges depend on the algorithm type."""
    if not isinstance(args, dict):
        raise ValidationError(_("algo_args must be an object"))
    allowed = {**_COMMON_ARGS, **ALGO_ARGS.get(str(algo_type), {})}
    for key, value in args.items():
        if key not in allowed:
            raise ValidationError(
                _("unknown key %(key)r for algo_type %(type)s; allowed: %(allowed)s")
                % {"key": key, "type": algo_type, "allowed": ", ".join(sorted(allowed))}
            )
        _check_arg(key, value, *allowed[key])


def _check_arg(key: str, value: Any, kind: type, low: float | None, high: float | None) -> None:
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(_("%(key)s must be true or false") % {"key": key})
        return
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    # Python ints are exact and may be too large for a float (JSON allows any length), so no float() here.
    is_finite = is_number and (isinstance(value, int) or math.isfinite(value))
    if not is_finite or (kind is int and not (isinstance(value, int) or value.is_integer())):
        raise ValidationError(_("%(key)s must be a %(kind)s") % {"key": key, "kind": kind.__name__})
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(
            _("%(key)s must be within %(low)s..%(high)s") % {"key": key, "low": low, "high": high}
        )
