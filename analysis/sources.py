"""Where frames come from: video files and rtsp/http(s) streams through OpenCV, and pictures.

    with VideoSource(url, fps=5, start_frame=resume_at) as source:
        for frame in Prefetcher(source.frames()):   # decoding overlaps inference
            ...frame.index, frame.offset_s, frame.image (BGR)...

Errors are distinct exceptions:
  SourceUnavailable  cannot open a stream, or it went silent or dropped: reconnect with backoff;
  SourceCorrupt      a file that cannot be decoded (SourceMissing: no such file): fail, no retry;
and a file that ends simply ends the iteration.

Open and read timeouts are given to OpenCV's FFmpeg backend when the capture is opened, so no
read blocks longer than the read timeout on a dead stream. Frames that are not analysed are
skipped with grab() (demux + decode, no colour conversion, no copy to numpy).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import cv2
import numpy as np

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
DEFAULT_OPEN_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 10.0
# A file whose decoding stops this many frames (or more) before its announced end is corrupt.
TRUNCATION_SLACK = 0.05
PREFETCH = 8


class SourceError(Exception):
    """A source problem; `reason` is what the subtask's status_reason says."""

    @property
    def reason(self) -> str:
        return str(self)


class SourceUnavailable(SourceError):
    """The stream cannot be opened, or stopped delivering frames: try again later."""


class SourceCorrupt(SourceError):
    """The file cannot be decoded: trying again will not help."""


class SourceMissing(SourceCorrupt):
    """The file does not exist."""


class SourceRefused(SourceCorrupt):
    """The source URL leads where VIAS opens nothing (vias/lib/ssrf.py): fail, no retry."""


def checked_stream_url(url: str, timeout_s: float = DEFAULT_OPEN_TIMEOUT_S) -> str:
    """The URL to open for a stream, after the source policy's check at opening time (vias/lib/ssrf.py:
    the host again, and for http(s) each redirect). SourceRefused when refused; SourceUnavailable when
    the host does not resolve or the server does not answer (both may change)."""
    from django.core.exceptions import ValidationError

    from vias.lib.ssrf import check_source_for_open

    try:
        return check_source_for_open(url, timeout_s)
    except ValidationError as exc:
        reason = exc.messages[0]
        if exc.code == "ssrf":
            raise SourceRefused(reason) from None
        raise SourceUnavailable(reason) from None


@dataclass(frozen=True, slots=True)
class Frame:
    index: int  # position in the source, from 0 (the same on a resumed run)
    offset_s: float  # seconds from the start of the source (streams: since it was opened)
    image: np.ndarray


def is_stream(url: str | Path) -> bool:
    text = str(url)
    return "://" in text and urlsplit(text).scheme.lower() in STREAM_SCHEMES


def sample_step(native_fps: float, analysis_fps: float) -> float:
    """Source frames per analysed frame (≥ 1)."""
    if native_fps <= 0 or analysis_fps <= 0:
        return 1.0
    return max(1.0, native_fps / analysis_fps)


def is_sampled(index: int, step: float) -> bool:
    """Whether frame `index` is analysed: the first frame of each step, counted from frame 0, so a
    resumed run analyses exactly the frames the first run would have."""
    if step <= 1.0:
        return True
    return index == 0 or int(index / step) != int((index - 1) / step)


def decode_threads() -> int:
    """FFmpeg decoding threads per source (VIAS_DECODE_THREADS; 0: FFmpeg's choice, one per core).
    One thread decodes far faster than a CPU detector infers, and leaves the cores to inference."""
    try:
        return max(0, int(os.environ.get("VIAS_DECODE_THREADS", "1")))
    except ValueError:
        return 1


def open_capture(url: str | Path, open_timeout_s: float, read_timeout_s: float) -> cv2.VideoCapture:
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]
    if threads := decode_threads():
        params += [cv2.CAP_PROP_N_THREADS, threads]
    return cv2.VideoCapture(str(url), cv2.CAP_FFMPEG, params)


class VideoSource:
    """A video file or stream sampled at `fps` analysed frames per second (default: the settings')."""

    def __init__(
        self,
        url: str | Path,
        fps: float | None = None,
        start_frame: int = 0,
        open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self.url = str(url)
        self.stream = is_stream(url)
        self.analysis_fps = float(fps) if fps else _default_fps()
        self.start_frame = max(0, int(start_frame))
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.capture: cv2.VideoCapture | None = None
        self.native_fps = 0.0
        self.frame_count = 0  # 0 when unknown (streams)
        self.width = self.height = 0
        self.position = self.start_frame  # index of the next frame to read
        self.analysed = 0

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> VideoSource:
        if self.capture is not None:
            return self
        if not self.stream:
            path = Path(self.url)
            if not path.is_file():
                raise SourceMissing(f"no video file {self.url}")
            if path.stat().st_size == 0:
                raise SourceCorrupt(f"the video file {self.url} is empty")
        target = checked_stream_url(self.url, self.open_timeout_s) if self.stream else self.url
        capture = open_capture(target, self.open_timeout_s, self.read_timeout_s)
        if not capture.isOpened():
            capture.release()
            if self.stream:
                raise SourceUnavailable(f"cannot open the stream {_redact(self.url)}")
            raise SourceCorrupt(f"cannot decode the video file {self.url}")
        self.capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = float(fps) if fps and 0 < fps < 1000 else 0.0
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # A file served over http(s) has a length; live streams (rtsp, HLS, MJPEG) report none.
        finite = not self.stream or urlsplit(self.url).scheme.lower() in ("http", "https")
        self.frame_count = int(count) if finite and count and 0 < count < 1e9 else 0
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.start_frame and not self.stream:
            if self.frame_count and self.start_frame >= self.frame_count:
                self.position = self.start_frame
            elif not capture.set(cv2.CAP_PROP_POS_FRAMES, self.start_frame):
                self._skip_to(self.start_frame)
        return self

    def _skip_to(self, index: int) -> None:
        capture = self._capture()
        position = 0
        while position < index and capture.grab():
            position += 1
        self.position = position

    def _capture(self) -> cv2.VideoCapture:
        if self.capture is None:
            self.open()
        assert self.capture is not None
        return self.capture

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def __enter__(self) -> VideoSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- progress --------------------------------------------------------------------------

    @property
    def step(self) -> float:
        return sample_step(self.native_fps, self.analysis_fps)

    @property
    def total_samples(self) -> int:
        """Frames that will be analysed in the whole file (0: unknown, a stream)."""
        if not self.frame_count:
            return 0
        step = self.step
        return sum(1 for i in range(self.frame_count) if is_sampled(i, step))

    @property
    def progress(self) -> float:
        """0..1 of the file read (0 for streams)."""
        return min(1.0, self.position / self.frame_count) if self.frame_count else 0.0

    # -- frames ----------------------------------------------------------------------------

    def frames(self) -> Iterator[Frame]:
        """Analysed frames in order. Raises SourceUnavailable / SourceCorrupt; ends at the end of
        a file."""
        capture = self._capture()
        if self.stream and not self.native_fps:
            yield from self._frames_by_clock(capture)
            return
        step = self.step
        fps = self.native_fps or self.analysis_fps
        opened = time.monotonic()
        decoded_any = False
        while True:
            index = self.position
            if self.frame_count and index >= self.frame_count:
                return
            wanted = is_sampled(index, step)
            if wanted:
                ok, image = capture.read()
                ok = ok and image is not None
            else:
                ok, image = capture.grab(), None
            if not ok:
                self._ended(index, decoded_any, time.monotonic() - opened)
                return
            decoded_any = True
            self.position = index + 1
            if wanted:
                self.analysed += 1
                yield Frame(index, index / fps, cast(np.ndarray, image))  # read() gave one

    def _ended(self, index: int, decoded_any: bool, elapsed: float) -> None:
        slack = max(2, int(self.frame_count * TRUNCATION_SLACK))
        if self.stream and self.frame_count and index >= self.frame_count - slack:
            return  # a file served over http(s) that ended
        if self.stream:
            raise SourceUnavailable(
                f"the stream {_redact(self.url)} stopped after frame {index} ({elapsed:.0f} s): "
                "no frame within the read timeout or the connection dropped"
            )
        if not decoded_any and index == self.start_frame:
            raise SourceCorrupt(f"no frame of {self.url} can be decoded (from frame {index})")
        if self.frame_count and index < self.frame_count - slack:
            raise SourceCorrupt(f"decoding {self.url} stopped at frame {index} of {self.frame_count}")

    def _frames_by_clock(self, capture: cv2.VideoCapture) -> Iterator[Frame]:
        """A stream that does not say its frame rate: sample by wall-clock time."""
        interval = 1.0 / self.analysis_fps
        opened = time.monotonic()
        next_due = opened
        while True:
            index = self.position
            if not capture.grab():
                self._ended(index, True, time.monotonic() - opened)
                return
            self.position = index + 1
            now = time.monotonic()
            if now < next_due:
                continue
            ok, image = capture.retrieve()
            if not ok or image is None:
                continue
            next_due = max(next_due + interval, now)
            self.analysed += 1
            yield Frame(index, now - opened, image)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()


def _default_fps() -> float:
    try:
        from django.conf import settings

        return float(settings.VIAS_DEFAULT_FPS)
    except Exception:  # outside Django (a bare script)
        return 5.0


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


class Prefetcher:
    """Runs an iterator (decoding) in a thread, `size` items ahead, so that decoding overlaps
    inference. Exceptions reach the consumer in order; close() stops the thread promptly.

    `on_wait`, when given, is called every `wait_s` seconds while the consumer waits for the next
    item (a stalled stream blocks a read for up to its read timeout): a job polls its commands
    there, so a stop still takes effect at once; an exception it raises ends the iteration."""

    _END = object()

    def __init__(
        self,
        items: Iterable[Any],
        size: int = PREFETCH,
        on_wait: Callable[[], None] | None = None,
        wait_s: float = 0.25,
    ) -> None:
        self._items = items
        self._on_wait = on_wait
        self._wait_s = wait_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decode-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put(_Raised(exc))
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                item = self._next()
                if item is self._END:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            self.close()

    def _next(self) -> Any:
        if self._on_wait is None:
            return self._queue.get()
        while True:
            try:
                return self._queue.get(timeout=self._wait_s)
            except queue.Empty:
                self._on_wait()

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock the producer
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        close = getattr(self._items, "close", None)
        if callable(close) and not self._thread.is_alive():
            close()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


# -- pictures ---------------------------------------------------------------------------------

MAX_PICTURE_BYTES = 20 * 1024 * 1024
MAX_LISTING_BYTES = 2 * 1024 * 1024
MAX_PICTURES_PER_PULL = 1000
PICTURE_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff")
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
)
_EXTENSIONS = "|".join(PICTURE_EXTENSIONS)
_LINK = re.compile(
    r"""(?:href|src)\s*=\s*["']([^"']+\.(?:""" + _EXTENSIONS + r""")(?:\?[^"']*)?)["']""", re.I
)


class NotAnImage(ValueError):
    """Bytes that are not a picture OpenCV can decode (or too many of them)."""


@dataclass(frozen=True)
class Picture:
    name: str  # its URL, or the name it was pushed with
    image: np.ndarray


def looks_like_image(data: bytes) -> bool:
    return data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def decode_picture(data: bytes, max_bytes: int = MAX_PICTURE_BYTES) -> np.ndarray:
    """A pushed or pulled picture (JPEG, PNG, BMP, WebP, TIFF) as a BGR image; NotAnImage otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise NotAnImage("the picture is empty")
    if len(data) > max_bytes:
        raise NotAnImage(f"the picture is over the limit of {max_bytes} bytes")
    data = bytes(data)
    if not looks_like_image(data):
        raise NotAnImage("not a JPEG, PNG, BMP, WebP or TIFF picture")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise NotAnImage("the picture cannot be decoded")
    return image


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s) and only where the source policy allows (vias/lib/ssrf.py)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-http URL refused", headers, fp)
        _check_picture_host(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_picture_host(url: str) -> None:
    from django.core.exceptions import ValidationError

    from vias.lib.ssrf import check_source_host_for_open

    try:
        check_source_host_for_open(url)
    except ValidationError as exc:
        if exc.code == "ssrf":
            raise SourceRefused(exc.messages[0]) from None
        raise SourceUnavailable(exc.messages[0]) from None


_opener = urllib.request.build_opener(_CheckedRedirects)


def fetch(url: str, timeout_s: float, max_bytes: int) -> tuple[bytes, str]:
    """GET an http(s) URL: (body, content type). SourceUnavailable on any network error."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise SourceUnavailable(f"only http and https picture sources are supported, not {url}")
    _check_picture_host(url)
    request = urllib.request.Request(url, headers={"User-Agent": "VIAS", "Accept": "image/*, */*"})
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            body = response.read(max_bytes + 1)
            kind = response.headers.get_content_type() or ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceUnavailable(f"cannot fetch {_redact(url)}: {exc}") from exc
    if len(body) > max_bytes:
        raise SourceUnavailable(f"{_redact(url)} is over the limit of {max_bytes} bytes")
    return body, kind


def picture_links(body: bytes, kind: str, base_url: str) -> list[str]:
    """Picture URLs listed by a JSON document (a list of URLs, or an object with "pictures",
    "images" or "urls") or by an HTML / text page (href/src attributes ending in a picture
    extension), made absolute against `base_url`."""
    text = body.decode("utf-8", "replace")
    links: list[str] = []
    if "json" in kind or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = next(
                (data[k] for k in ("pictures", "images", "urls") if isinstance(data.get(k), list)), []
            )
        if isinstance(data, list):
            links = [item for item in data if isinstance(item, str)]
    if not links:
        links = _LINK.findall(text)
    absolute = [urljoin(base_url, link) for link in links]
    return [u for u in dict.fromkeys(absolute) if urlsplit(u).scheme.lower() in ("http", "https")]


def iter_pictures(
    url: str,
    seen: set[str] | None = None,
    timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    max_bytes: int = MAX_PICTURE_BYTES,
    max_pictures: int = MAX_PICTURES_PER_PULL,
) -> Iterator[Picture]:
    """One pull of a `pull_pic_files` source. `url` is a picture (served as image/*) or a listing
    (JSON or HTML, see picture_links) of pictures. Names in `seen` are skipped and the pulled
    ones added, so polling the same listing analyses each picture once. A listed picture that
    cannot be decoded is skipped; the listing itself failing raises SourceUnavailable."""
    seen = seen if seen is not None else set()
    body, kind = fetch(url, timeout_s, max(max_bytes, MAX_LISTING_BYTES))
    if kind.startswith("image/") or looks_like_image(body):
        if url not in seen:
            seen.add(url)
            yield Picture(url, _decode_or_raise(body, max_bytes, url))
        return
    for link in picture_links(body, kind, url)[:max_pictures]:
        if link in seen:
            continue
        try:
            data, _kind = fetch(link, timeout_s, max_bytes)
            image = decode_picture(data, max_bytes)
        except (SourceUnavailable, SourceRefused, NotAnImage):  # a refused link is never fetched
            continue
        seen.add(link)
        yield Picture(link, image)


def _decode_or_raise(body: bytes, max_bytes: int, url: str) -> np.ndarray:
    try:
        return decode_picture(body, max_bytes)
    except NotAnImage as exc:
        raise SourceCorrupt(f"{_redact(url)}: {exc}") from exc
