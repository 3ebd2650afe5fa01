"""The video store: recorded files under `$VIAS_DATA_DIR/videos`, named by handle.

A video handle (the VCS-SPS `videoId`) names the file `<handle>` or `<handle>.<ext>` directly
in the store. Resolving it gives the path relative to the store, which is what a video
channel's `url` holds for a file source (tasks.validators.validate_source_url).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tasks.validators import resolve_video_path, videos_dir
from vias.lib.errors import NotFound

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
