"""A recent frame of a video source, for the admin's ROI and calibration editors.

One frame is grabbed server-side with OpenCV (open and read timeouts passed when the capture is
opened, so a dead stream never hangs a request for long) and cached as a JPEG under
`VIAS_DATA_DIR/frames/` for FRAME_TTL seconds. A failure is cached for a shorter time, so a page
with several editors on one dead camera waits once. The source goes through the same
`validate_source_url` as every saved source: no `file:`, `concat:` or paths outside the video store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from subtasks.models import Subtask
from tasks.choices import SourceType
from tasks.models import MTask, Project, Scene, VideoChannel
from tasks.validators import resolve_video_path, validate_source_url
from vias.lib.ssrf import check_source_for_open

FRAME_TTL = 300  # seconds a grabbed frame is reused
FAILURE_TTL = 30  # seconds a failure is remembered
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
DEFAULT_SIZE = (1280, 720)
JPEG_QUALITY = 85
_KEY = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Frame:
    """The outcome of one grab: `key` names the cached JPEG when `ok`; `reason` says why not."""

    ok: bool
    key: str
    width: int
    height: int
    reason: str = ""
    grabbed_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def frames_dir() -> Path:
    path = Path(settings.DATA_DIR) / "frames"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()  # noqa: S324 - a file name, not security


def jpeg_path(key: str) -> Path | None:
    """The cached JPEG for `key`, or None (unknown key, expired or never grabbed)."""
    if not _KEY.match(key or ""):
        return None
    path = frames_dir() / f"{key}.jpg"
    return path if path.is_file() else None


def _open_target(source: str) -> str:
    """What OpenCV opens: a stream URL as it is, a video-store path as an absolute file path."""
    validate_source_url(source)
    if "://" in source:
        # Checked again as it is opened: DNS may have changed, and http(s) redirects are followed here.
        return check_source_for_open(source, OPEN_TIMEOUT_MS / 1000)
    return str(resolve_video_path(source))


def grab(source: str, size: tuple[int | None, int | None] = (None, None), fresh: bool = False) -> Frame:
    """A frame of `source`, from the cache when it is recent enough (`fresh` forces a new grab)."""
    width, height = size[0] or DEFAULT_SIZE[0], size[1] or DEFAULT_SIZE[1]
    key = cache_key(source)
    meta_path = frames_dir() / f"{key}.json"
    if not fresh and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            ttl = FRAME_TTL if meta["ok"] else FAILURE_TTL
            if time.time() - meta["grabbed_at"] < ttl and (not meta["ok"] or jpeg_path(key)):
                return Frame(**meta)
        except (ValueError, KeyError, TypeError):
            pass
    frame = _grab(source, key, width, height)
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(frame.as_dict()))
    os.replace(tmp, meta_path)
    return frame


def _grab(source: str, key: str, width: int, height: int) -> Frame:
    now = time.time()
    if not source:
        return Frame(False, key, width, height, _("no video source"), now)
    try:
        target = _open_target(source)
    except ValidationError as exc:
        return Frame(False, key, width, height, exc.messages[0], now)
    if "://" not in target and not Path(target).is_file():
        return Frame(False, key, width, height, _("no video file %(p)s") % {"p": source}, now)

    import cv2  # deferred: OpenCV is heavy and only needed here

    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        OPEN_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        READ_TIMEOUT_MS,
    ]
    capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    try:
        if not capture.isOpened():
            return Frame(False, key, width, height, _("the source could not be opened"), now)
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        return Frame(False, key, width, height, _("no frame could be read from the source"), now)
    encoded, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not encoded:
        return Frame(False, key, width, height, _("the frame could not be encoded"), now)
    path = frames_dir() / f"{key}.jpg"
    tmp = path.with_suffix(".jpg.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)
    return Frame(True, key, int(image.shape[1]), int(image.shape[0]), "", now)


def frame_source(
    params: Mapping[str, str], projects: QuerySet[Project]
) -> tuple[str, tuple[int | None, int | None], str]:
    """(source, (width, height), reason-why-not) for the admin frame endpoint's query
    (source=, subtask=, vchan=, mtask= or scene= with vchan_refid=), among the objects of
    `projects` only; a `source` is checked by grab() like every saved source."""
    subtasks = Subtask.objects.filter(task__project__in=projects)
    channels = VideoChannel.objects.filter(project__in=projects)
    channel = None
    if params.get("source"):  # the camera page, before anything is saved (grab() validates it)
        return params["source"], (None, None), ""
    if params.get("subtask"):
        subtask = subtasks.select_related("video_channel").filter(pk=_int(params["subtask"])).first()
        if subtask is None:
            return "", (None, None), _("no subtask %(id)s") % {"id": params["subtask"]}
        channel = subtask.video_channel
        if channel is None:
            return subtask.source_url, (None, None), "" if subtask.source_url else _("no video source")
    elif params.get("vchan"):
        channel = channels.filter(pk=_int(params["vchan"])).first()
    else:
        mtask = (
            MTask.objects.select_related("task")
            .filter(task__project__in=projects, pk=_int(params.get("mtask")))
            .first()
        )
        if mtask is None and params.get("scene"):
            scene = (
                Scene.objects.select_related("mtask__task")
                .filter(mtask__task__project__in=projects, pk=_int(params["scene"]))
                .first()
            )
            mtask = scene.mtask if scene else None
            refid = params.get("vchan_refid", scene.vchan_refid if scene else "")
        else:
            refid = params.get("vchan_refid", "")
        if mtask is None:
            return "", (None, None), _("choose the scene's mtask first")
        task = mtask.task
        if not refid:
            if task.source_type != SourceType.PULL_VIDEO_STREAM:
                return "", (None, None), _("a picture task has no video stream")
            return task.play_url, (None, None), ""
        channel = channels.filter(project_id=task.project_id, vchan_refid=refid).first()
        if channel is None:
            return "", (None, None), _("no video channel %(r)s") % {"r": refid}
    if channel is None:
        return "", (None, None), _("no video source")
    return channel.url, (channel.width, channel.height), ""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
