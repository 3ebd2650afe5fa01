"""The video store: where a video handle (the VCS-SPS `videoId`, "视频文件句柄") leads.

Two backends, chosen by settings.VIAS_VIDEO_STORE_URL:
* empty (the default): recorded files under `$VIAS_DATA_DIR/videos`; a handle names the file
  `<handle>` or `<handle>.<ext>` directly in the store, and resolves to the path relative to the
  store, which is what a video channel's `url` holds for a file source;
* an HTTP(S) URL template such as `https://vcs.example/videos/{videoId}`: a handle resolves to
  that URL once the VCS's storage answers a HEAD request for it with 2xx (404: no such video).
  The URL is checked under the source URL policy first: http(s), no credentials, and a host that
  resolves only to public addresses unless listed in VIAS_VIDEO_STORE_ALLOWED_HOSTS; the check
  connects to the address it checked (vias.lib.ssrf.pinned_request), never to a second lookup's.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks.validators import resolve_video_path, videos_dir
from vias.lib import ssrf
from vias.lib.errors import Invalid, NotFound, ServiceError

HANDLE = "{videoId}"


class StoreUnavailable(ServiceError):
    """The remote video store did not answer, or answered neither 2xx nor 404."""

    status = 502
    kind = "store_unavailable"


validate_video_id = RegexValidator(
    r"^[A-Za-z0-9_-]{1,128}\Z", gettext_lazy("a video id is 1..128 letters, digits, '_' or '-'")
)
EXTENSION_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")


def resolve_video_handles(video_ids: Iterable[str]) -> dict[str, str]:
    """{handle: path relative to the store} for the handles that name a file; others are left out.

    The store is listed once, however many handles are asked for. `<handle>` itself wins over
    `<handle>.<ext>`; of several extensions, the first in alphabetical order. Files that lead
    out of the store (symbolic links) do not count.
    """
    wanted = set(video_ids)
    for video_id in wanted:
        validate_video_id(video_id)
    if settings.VIAS_VIDEO_STORE_URL:
        urls = {video_id: remote_url(video_id) for video_id in sorted(wanted)}
        return {video_id: url for video_id, url in urls.items() if url is not None}
    return _local_handles(wanted)


def _local_handles(wanted: set[str]) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    try:
        entries = list(os.scandir(videos_dir()))
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    for entry in entries:
        stem, dot, ext = entry.name.partition(".")
        if stem not in wanted or (dot and not EXTENSION_RE.match(ext)):
            continue
        try:
            if not entry.is_file():
                continue
            resolve_video_path(entry.name)
        except (OSError, ValidationError):
            continue
        found.setdefault(stem, []).append(entry.name)
    # "" sorts first: the bare name wins over any "<handle>.<ext>".
    return {stem: min(names, key=lambda name: name.partition(".")[2]) for stem, names in found.items()}


def resolve_video_handle(video_id: str) -> str:
    """The store-relative path of the file a handle names; NotFound when there is none."""
    paths = resolve_video_handles([video_id])
    if video_id not in paths:
        raise NotFound(_("no video file %(id)s in the video store") % {"id": video_id})
    return paths[video_id]


# ---- the HTTP(S) backend ---------------------------------------------------------------------------


def url_for(video_id: str) -> str:
    return settings.VIAS_VIDEO_STORE_URL.replace(HANDLE, quote(video_id, safe=""))


def handle_of(url: str) -> str | None:
    """The handle a remote store URL was made from; None when `url` is not one of its URLs."""
    template = settings.VIAS_VIDEO_STORE_URL
    if not template or HANDLE not in template:
        return None
    head, _, tail = template.partition(HANDLE)
    if url.startswith(head) and url.endswith(tail) and len(url) > len(head) + len(tail):
        return url[len(head) : len(url) - len(tail)]
    return None


def _allowed(host: str) -> bool:
    allowed = settings.VIAS_VIDEO_STORE_ALLOWED_HOSTS or []
    return host in {h.strip().strip("[]").rstrip(".").lower() for h in allowed if h.strip()}


def checked_address(url: str) -> str:
    """The address to connect to for `url`, under the source URL policy; Invalid otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise Invalid(_("the video store URL must be http(s), with a host and no credentials"))
    try:
        infos = socket.getaddrinfo(
            host, parts.port or ssrf.DEFAULT_PORTS[parts.scheme], type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise StoreUnavailable(_("cannot resolve the video store host %(h)s") % {"h": host}) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not _allowed(host):
        for address in addresses:
            if reason := ssrf.address_refusal(address):
                raise Invalid(
                    _(
                        "the video store host %(h)s resolves to %(ip)s (%(why)s); only public addresses "
                        "are allowed unless the host is listed in VIAS_VIDEO_STORE_ALLOWED_HOSTS"
                    )
                    % {"h": host, "ip": address, "why": reason}
                )
    return str(addresses[0])


def remote_url(video_id: str) -> str | None:
    """The store URL of `video_id` when the store has it, None when it answers 404."""
    url = url_for(video_id)
    connect_url, headers, extensions = ssrf.pinned_request(url, checked_address(url))
    timeout = httpx.Timeout(float(settings.VIAS_VIDEO_STORE_TIMEOUT))
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            status = client.head(connect_url, headers=headers, extensions=extensions).status_code
    except httpx.HTTPError as exc:
        raise StoreUnavailable(
            _("the video store did not answer for %(id)s: %(why)s")
            % {"id": video_id, "why": type(exc).__name__}
        ) from None
    if status == 404:
        return None
    if not 200 <= status < 300:
        raise StoreUnavailable(_("the video store answered %(s)d for %(id)s") % {"s": status, "id": video_id})
    return url
