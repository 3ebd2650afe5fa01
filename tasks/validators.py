"""Field validators of the task core. Models use them, so every API and the admin share them."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks.choices import AlgoType, DetectorModel, RoiMode, SourceKind
from tasks.xmlformats import MAX_POLYGON_POINTS, Roi, Zone, parse_calibration, parse_roi, render_roi
from vias.lib.ssrf import check_source_url, check_webhook_url_when_saved
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


def validate_xml(value: str | bytes) -> None:
    parse_xml(value)


def validate_roi_xml(value: str) -> None:
    parse_roi(value)


def validate_calibration_xml(value: str) -> None:
    parse_calibration(value)


def videos_dir() -> Path:
    """The documented video store: files under it can be analysed by relative path."""
    return settings.DATA_DIR / "videos"


def validate_source_url(value: str) -> None:
    """A stream URL (rtsp, rtsps, http, https) whose host vias.lib.ssrf.check_source_url accepts,
    or a file path inside the video store.

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
        # Not this machine, link-local / cloud metadata, multicast (SSRF); checked again when opened.
        check_source_url(value)
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
    AlgoType.SECURITY: {
        "loiter_seconds": (float, 1.0, 86400.0),
        "detect_fall": (bool, None, None),
        "min_track_frames": (int, 1, 1000),
    },
    AlgoType.ILLEGAL_PARKING: {"park_seconds": (float, 1.0, 86400.0), "min_track_frames": (int, 1, 1000)},
    AlgoType.FACE: {"min_face_px": (int, 8, 4096), "min_track_frames": (int, 1, 1000)},
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


# ---- Huawei VIAS v2 rules (docs/dialects.md): on the models, so every dialect and the admin share them.

# The seeds' patterns. The OBS ones lost their '*' to the seed page's markdown; restored here.
V2_NAME_RE = r"^[A-Za-z0-9_-]{1,100}\Z"
SERVICE_NAME_RE = r"^[\u4e00-\u9fa5A-Za-z0-9_-]{1,100}\Z"
SERVICE_VERSION_RE = r"^[a-z0-9.]{3,32}\Z"
ORDER_ID_RE = r"^[a-z0-9_-]{4,36}\Z"
ALG_ID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z"
TITLE_RE = r"^[A-Za-z0-9\u4e00-\u9fa5_,-]{2,64}\Z"
OBS_BUCKET_RE = re.compile(r"^[a-z0-9](?!.*[-.][-.].*)([a-z0-9-.]{1,61})[a-z0-9]\Z")
OBS_PATH_RE = re.compile(r"^(?![/.\s])(?!.*//.*)([^:*?\"<>|\\]{0,1023})(?<![.\s])\Z", re.S)
DIS_STREAM_RE = re.compile(r"^[-A-Za-z0-9_]{1,64}\Z")
TIMEZONE_RE = re.compile(r"^([+-])(\d\d):([0-5]\d)\Z")
CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\Z")

validate_v2_name = RegexValidator(
    V2_NAME_RE, gettext_lazy("use 1..100 letters, digits, '_' or '-'"), code="invalid"
)
validate_service_name = RegexValidator(
    SERVICE_NAME_RE, gettext_lazy("use 1..100 Chinese characters, letters, digits, '_' or '-'")
)
validate_service_version = RegexValidator(
    SERVICE_VERSION_RE, gettext_lazy("use 3..32 lowercase letters, digits or '.'")
)
validate_resource_order_id = RegexValidator(
    ORDER_ID_RE, gettext_lazy("use 4..36 lowercase letters, digits, '_' or '-'")
)
validate_alg_id = RegexValidator(ALG_ID_RE, gettext_lazy("an algorithm id is a lowercase version-4 UUID"))
validate_title = RegexValidator(
    TITLE_RE, gettext_lazy("use 2..64 Chinese characters, letters, digits, '_', ',' or '-'")
)

OUTPUT_MODES = ("obs", "dis", "webhook", "event_center")
MAX_WEBHOOK_URL = 1000
MAX_HEADERS = 10
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
MAX_DATA_CATEGORIES = 10
MAX_CONFIG_BYTES = 64 * 1024
MAX_WINDOWS_PER_DAY = 24


def _object(value: Any, keys: set[str], required: set[str], what: str) -> dict[str, Any]:
    """`value` as a JSON object with only `keys`, all of `required`; ValidationError naming `what`."""
    if not isinstance(value, dict):
        raise ValidationError(_("%(what)s must be an object") % {"what": what})
    unknown = sorted(set(value) - keys)
    if unknown:
        raise ValidationError(
            _("%(what)s: unknown key %(key)s; allowed: %(allowed)s")
            % {"what": what, "key": unknown[0], "allowed": ", ".join(sorted(keys))}
        )
    for key in sorted(required):
        if key not in value:
            raise ValidationError(_("%(what)s.%(key)s is required") % {"what": what, "key": key})
    return value


def _text(value: Any, where: str, max_length: int, min_length: int = 1) -> str:
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        raise ValidationError(
            _("%(where)s must be a string of %(low)d..%(high)d characters")
            % {"where": where, "low": min_length, "high": max_length}
        )
    return value


def _data_category(value: dict[str, Any], where: str) -> None:
    if "data_category" not in value:
        return
    items = value["data_category"]
    if not isinstance(items, list) or len(items) > MAX_DATA_CATEGORIES:
        raise ValidationError(
            _("%(where)s.data_category must be a list of at most %(n)d strings")
            % {"where": where, "n": MAX_DATA_CATEGORIES}
        )
    for item in items:
        _text(item, f"{where}.data_category[]", 64)


def validate_webhook_url(url: Any) -> None:
    """An http(s) URL of at most 1000 characters that does not lead into our own network (SSRF)."""
    _text(url, "webhook.url", MAX_WEBHOOK_URL)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("webhook.url must be an http or https URL with a host"))
    # The SSRF rules are shared with every other place that calls out (vias/lib/ssrf.py). A host that
    # does not resolve now passes (output_warnings tells the client); delivery checks it again.
    check_webhook_url_when_saved(url)


def output_warnings(output: Any) -> list[str]:
    """What a client should hear about a saved `output` that was accepted: a webhook host that
    does not resolve yet."""
    hook = output.get("webhook") if isinstance(output, dict) else None
    url = hook.get("url") if isinstance(hook, dict) else None
    if not isinstance(url, str):
        return []
    try:
        warning = check_webhook_url_when_saved(url)
    except ValidationError:
        return []  # refused URLs are never saved; nothing to warn about
    return [warning] if warning else []


def _validate_webhook(value: Any) -> None:
    hook = _object(value, {"url", "headers", "data_category"}, {"url", "headers"}, "webhook")
    _check_headers(hook["headers"], "webhook")
    _data_category(hook, "webhook")
    validate_webhook_url(hook["url"])


def _check_headers(headers: Any, where: str) -> None:
    if not isinstance(headers, dict) or not 1 <= len(headers) <= MAX_HEADERS:
        raise ValidationError(
            _("%(w)s.headers must be an object of 1..%(n)d string pairs") % {"w": where, "n": MAX_HEADERS}
        )
    for name, text in headers.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}", name):
            raise ValidationError(
                _("%(w)s.headers: %(name)r is not a header name") % {"w": where, "name": name}
            )
        if not isinstance(text, str) or len(text) > MAX_HEADER_VALUE or re.search(r"[\r\n\x00]", text):
            raise ValidationError(
                _("%(w)s.headers.%(name)s must be a one-line string of at most %(n)d characters")
                % {"w": where, "name": name, "n": MAX_HEADER_VALUE}
            )


def _validate_callback(value: Any) -> None:
    """Task-state callbacks: {"url", "headers"?}, under the webhook's URL rules (docs/outputs.md)."""
    hook = _object(value, {"url", "headers"}, {"url"}, "callback")
    if "headers" in hook:
        _check_headers(hook["headers"], "callback")
    validate_webhook_url(hook["url"])


def _validate_obs(value: Any) -> None:
    obs = _object(value, {"bucket", "path", "data_category"}, {"bucket", "path"}, "obs")
    if (
        not isinstance(obs["bucket"], str)
        or len(obs["bucket"]) > 63
        or not OBS_BUCKET_RE.match(obs["bucket"])
    ):
        raise ValidationError(
            _("obs.bucket: use 3..63 lowercase letters, digits, '-' or '.', no two of '-.' in a row")
        )
    if not isinstance(obs["path"], str) or len(obs["path"]) > 1023 or not OBS_PATH_RE.match(obs["path"]):
        raise ValidationError(
            _(
                "obs.path: at most 1023 characters, none of :*?\"<>|\\, no '//', "
                "not starting with '/', '.' or a space, not ending with '.' or a space"
            )
        )
    _data_category(obs, "obs")


def _validate_dis(value: Any) -> None:
    dis = _object(value, {"stream_name", "data_category"}, {"stream_name"}, "dis")
    if not isinstance(dis["stream_name"], str) or not DIS_STREAM_RE.match(dis["stream_name"]):
        raise ValidationError(_("dis.stream_name: use 1..64 letters, digits, '_' or '-'"))
    _data_category(dis, "dis")


def validate_task_output(value: Any) -> None:
    """Where results go: {"webhook": {url, headers}, "dis": {stream_name}, "obs": {bucket, path}}
    (any of them, each optionally with data_category) and "event_center": true/false."""
    output = _object(value, {*OUTPUT_MODES, "callback"}, set(), "output")
    checks = {
        "webhook": _validate_webhook,
        "obs": _validate_obs,
        "dis": _validate_dis,
        "callback": _validate_callback,
    }
    for key, check in checks.items():
        if key in output:
            check(output[key])
    if "event_center" in output and not isinstance(output["event_center"], bool):
        raise ValidationError(_("output.event_center must be true or false"))


def has_output_mode(output: Any) -> bool:
    """At least one mode is configured (the v2 rule): obs, dis, webhook, or event_center true."""
    if not isinstance(output, dict):
        return False
    return any(key in output for key in ("obs", "dis", "webhook")) or output.get("event_center") is True


def validate_task_config(value: Any) -> None:
    """v2 TaskServiceConfig: {"common": {...}}, the algorithm service's own settings."""
    config = _object(value, {"common"}, set(), "config")
    if "common" in config and not isinstance(config["common"], dict):
        raise ValidationError(_("config.common must be an object"))
    validate_switches(config.get("common") or {})
    if len(json.dumps(config, ensure_ascii=False)) > MAX_CONFIG_BYTES:
        raise ValidationError(_("config is over %(n)d bytes") % {"n": MAX_CONFIG_BYTES})


def parse_clock(value: Any, where: str) -> int:
    """ "HH:MM" or "HH:MM:SS" as seconds after midnight."""
    match = CLOCK_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(_("%(where)s must be a time HH:MM or HH:MM:SS") % {"where": where})
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)


def parse_utc_offset(value: Any) -> int:
    """ "+08:00" as minutes east of UTC (-12:00..+14:00)."""
    match = TIMEZONE_RE.match(value) if isinstance(value, str) else None
    minutes = None
    if match is not None:
        sign, hours, mins = match.groups()
        minutes = (int(hours) * 60 + int(mins)) * (-1 if sign == "-" else 1)
    if minutes is None or not -12 * 60 <= minutes <= 14 * 60:
        raise ValidationError(_("schedule.timezone must be an offset such as +08:00 (-12:00..+14:00)"))
    return minutes


def _int_list(value: Any, low: int, high: int, max_items: int, where: str) -> list[int]:
    ok = (
        isinstance(value, list)
        and 1 <= len(value) <= max_items
        and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value)
    )
    if not ok:
        raise ValidationError(
            _("%(where)s must be a list of 1..%(n)d integers in %(low)d..%(high)d")
            % {"where": where, "n": max_items, "low": low, "high": high}
        )
    if len(set(value)) != len(value):
        raise ValidationError(_("%(where)s lists a day twice") % {"where": where})
    return value


def _validate_periods(periods: Any, days: int) -> None:
    if not isinstance(periods, list) or not periods or len(periods) not in (1, days):
        raise ValidationError(
            _(
                "schedule.periods must be a list of lists of windows: one list for every day, or one per day of days_of_week"
            )
        )
    for index, day in enumerate(periods):
        where = f"schedule.periods[{index}]"
        if not isinstance(day, list) or not 1 <= len(day) <= MAX_WINDOWS_PER_DAY:
            raise ValidationError(
                _("%(where)s must be a list of 1..%(n)d windows") % {"where": where, "n": MAX_WINDOWS_PER_DAY}
            )
        for w_index, window in enumerate(day):
            at = f"{where}[{w_index}]"
            _object(window, {"begin_at", "end_at"}, {"begin_at", "end_at"}, at)
            if parse_clock(window["begin_at"], f"{at}.begin_at") == parse_clock(
                window["end_at"], f"{at}.end_at"
            ):
                raise ValidationError(_("%(where)s: begin_at and end_at must differ") % {"where": at})


def validate_task_schedule(value: Any) -> None:
    """A weekly schedule: {"type": "weekly", "timezone": "+08:00", "days_of_week": [1..7],
    "periods": [[{"begin_at": "08:00", "end_at": "18:00"}], ...]}; {} means none (tasks/schedules.py)."""
    if value == {}:
        return
    keys = {"type", "timezone", "days_of_week", "days_of_month", "periods"}
    schedule = _object(value, keys, {"type", "timezone", "days_of_week", "periods"}, "schedule")
    if schedule["type"] != "weekly":
        raise ValidationError(_("schedule.type: only weekly schedules are supported"))
    if "days_of_month" in schedule:
        raise ValidationError(_("schedule.days_of_month: monthly schedules are not supported"))
    parse_utc_offset(schedule["timezone"])
    days = _int_list(schedule["days_of_week"], 1, 7, 7, "schedule.days_of_week")
    _validate_periods(schedule["periods"], len(days))


validate_batch_id = RegexValidator(
    ORDER_ID_RE, gettext_lazy("use 4..36 lowercase letters, digits, '_' or '-'")
)


def validate_onvif_url(value: str) -> None:
    """The ONVIF device service of a dome camera: an http(s) URL with a host (and no credentials:
    they have their own fields, so that they are never shown with the address)."""
    if not value:
        return
    parts = urlsplit(value) if "://" in value else None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or value != value.strip()
        or any(ord(c) < 33 for c in value)
    ):
        raise ValidationError(
            _("an ONVIF address is an http(s) URL, e.g. http://10.0.0.5/onvif/device_service")
        )
    if parts.username or parts.password:
        raise ValidationError(_("give the ONVIF user name and password in their own fields"))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValidationError(_("the port of the ONVIF address is out of range")) from None
    # The source URL policy: not this machine, link-local / cloud metadata, multicast (SSRF).
    check_source_url(value)


# ---- VIAS v2 video sources and groups (the public API reference's rules) -----------------------------

MAX_TYPE_CONFIG = 1024
MAX_TAGS = 4


# What can be analysed here: a stream or file address (`url`), and an OBS object read from the
# video store's copy of its bucket (`obs`: `<bucket>/<path>` under the store). The other public
# types name Huawei platforms or devices (VCN, IVM, IEF cameras, a RESTful stream broker).
SUPPORTED_KINDS = (SourceKind.URL, SourceKind.OBS)

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
    """The fields of a `<type_config>` document, e.g. {"url_address": "rtsp://..."}; for `obs`
    (`<bucket>`, `<path>`) `url_address` is the object's path in the video store, `bucket/path`.

    Refuses a document that is not `<type_config>` with one child per field, a type this
    installation cannot analyse, a `url` without `url_address`, an `obs` without a valid bucket
    and object path."""
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
            _("video sources of type %(k)s cannot be analysed here; use url or obs") % {"k": kind},
            code="kind",
        )
    if kind == SourceKind.OBS:
        return {**fields, "url_address": _obs_object(fields)}
    if not fields.get("url_address"):
        raise ValidationError(_("a url video source needs <url_address>"))
    return fields


def _obs_object(fields: dict[str, str]) -> str:
    """An obs source's object as a video-store path: the store holds a copy of the bucket."""
    bucket, path = fields.get("bucket", ""), fields.get("path", "")
    if not OBS_BUCKET_RE.match(bucket):
        raise ValidationError(
            _(
                "an obs video source needs <bucket>: 3..63 lowercase letters, digits, '-' or '.', no two of '-.' in a row"
            )
        )
    if not path or not OBS_PATH_RE.match(path) or path.endswith("/"):
        raise ValidationError(
            _(
                'an obs video source needs <path>, an object: at most 1023 characters, none of :*?"<>|\\, '
                "no '//', not starting with '/', '.' or a space, not ending with '/', '.' or a space"
            )
        )
    return f"{bucket}/{path}"


def type_config_for_url(url: str) -> str:
    """The `<type_config>` of a url source, for channels made by other APIs."""
    return f"<type_config><url_address>{escape(url)}</url_address></type_config>"


# ---- VIAS v2 target_roi: JSON polygons in pixels, normalised to the frame into the task's ROIs ----------

MAX_POLYGONS = 16
MAX_NAME = 64
MAX_PIXEL = 100_000
DEFAULT_JPEG_QUALITY = 85

Polygon = tuple[str, tuple[tuple[float, float], ...]]


def _fail(message: str) -> ValidationError:
    return ValidationError(_("target_roi: %(m)s") % {"m": message})


def _point(value: Any, where: str) -> tuple[float, float]:
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) and 0 <= v <= MAX_PIXEL for v in value):
        raise _fail(_("%(w)s must be [x, y] pixels, 0..%(n)d") % {"w": where, "n": MAX_PIXEL})
    return float(value[0]), float(value[1])


def parse_target_roi(text: str) -> list[Polygon]:
    """The polygons of a target_roi string; ValidationError saying what is wrong and where."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError):
        raise _fail(_("not a JSON string")) from None
    polygons = document.get("polygons") if isinstance(document, dict) else None
    if not isinstance(polygons, list) or not 1 <= len(polygons) <= MAX_POLYGONS:
        raise _fail(_("polygons must be a list of 1..%(n)d polygons") % {"n": MAX_POLYGONS})
    parsed: list[Polygon] = []
    for index, polygon in enumerate(polygons):
        where = f"polygons[{index}]"
        data = polygon.get("data") if isinstance(polygon, dict) else None
        if not isinstance(data, list) or not 3 <= len(data) <= MAX_POLYGON_POINTS:
            raise _fail(_("%(w)s.data must be 3..%(n)d points") % {"w": where, "n": MAX_POLYGON_POINTS})
        name = polygon.get("name", f"roi_{index + 1}")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise _fail(_("%(w)s.name must be 1..%(n)d characters") % {"w": where, "n": MAX_NAME})
        if name in {p[0] for p in parsed}:
            raise _fail(_("%(w)s.name %(name)r is used twice") % {"w": where, "name": name})
        points = tuple(_point(p, f"{where}.data[{i}]") for i, p in enumerate(data))
        parsed.append((name, points))
    return parsed


def validate_target_roi(value: str) -> None:
    if value:
        parse_target_roi(value)


def roi_xml(text: str, width: int, height: int) -> str:
    """The target_roi as one ROI document normalised to a `width` x `height` frame; points beyond
    the frame are clamped to its edge (the frame size may be smaller than the client thought)."""
    zones = tuple(
        Zone(name, RoiMode.INCLUDE, tuple((min(x / width, 1.0), min(y / height, 1.0)) for x, y in points))
        for name, points in parse_target_roi(text)
    )
    return render_roi(Roi(zones=zones))


def validate_switches(common: dict[str, Any]) -> None:
    """render_roi_sw / render_result_sw are 0 or 1; image_compression_ratio a JPEG quality 1..100."""
    for name in ("render_roi_sw", "render_result_sw"):
        value = common.get(name, 0)
        if isinstance(value, bool) or value not in (0, 1):
            raise ValidationError(_("config.common.%(n)s must be 0 or 1") % {"n": name})
    ratio = common.get("image_compression_ratio")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int) or not 1 <= ratio <= 100):
        raise ValidationError(_("config.common.image_compression_ratio must be an integer 1..100"))
    if "target_roi" in common:
        if not isinstance(common["target_roi"], str):
            raise ValidationError(_("config.common.target_roi must be a JSON string"))
        validate_target_roi(common["target_roi"])


def snapshot_options(config: dict[str, Any]) -> dict[str, Any]:
    """How a task's snapshots are drawn: the box (render_result_sw, default on), the ROIs
    (render_roi_sw, default off) and the JPEG quality (image_compression_ratio)."""
    common = (config.get("common") if isinstance(config, dict) else None) or {}
    return {
        "draw_result": common.get("render_result_sw", 1) != 0,
        "draw_rois": common.get("render_roi_sw", 0) == 1,
        "quality": common.get("image_compression_ratio") or DEFAULT_JPEG_QUALITY,
    }
