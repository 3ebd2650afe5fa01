"""HTTP and websocket framing under daphne (docs/native-api.md, "Framing").

Three things the server does on its own, below Django, that a client cannot tell from a crash:

- A header line longer than Twisted's line limit (16 KiB) makes `LineReceiver` drop the TCP
  connection with no answer; headers over the total limit get a bare "400 Bad Request". Both now
  answer **431 Request Header Fields Too Large** with the dialect's error envelope, then close.
  Twisted's other bare 400s (a malformed request line or header, a multipart body it cannot
  parse) answer 400 in the envelope.
- A websocket frame or message over the size cap makes autobahn drop the TCP connection
  (`failByDrop`, its default). Now it sends the close frame: **1009** (message too big) with the
  reason, as RFC 6455 says.
- (Chunked request bodies: daphne de-chunks them, but Django and DRF read a body only when
  `Content-Length` says one is there. BodySizeLimitMiddleware reads it; see vias/lib/middleware.py.)

`install()` patches Twisted's HTTPChannel and daphne's websocket factory; vias/asgi.py calls it,
so it is in force in every daphne that serves the project (`manage.py up`, `daphne vias.asgi:...`).
"""

from __future__ import annotations

import json
from typing import Any

HEADER_LINE_LIMIT = 16384  # Twisted's LineReceiver.MAX_LENGTH for HTTPChannel
_installed = False


REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}


def error_answer(path: bytes | None, status: int) -> bytes:
    """A whole HTTP/1.1 error answer, its body in the envelope of the dialect `path` belongs to."""
    from django.utils.translation import gettext as _

    from vias.lib.envelopes import dialect_for_path, error_body

    text_path = path.decode("latin-1", "replace").split("?", 1)[0] if path else "/"
    if status == 431:
        message = _("the request headers are too large (at most %(n)d bytes in all)") % {
            "n": HEADER_LINE_LIMIT
        }
    else:
        message = _("the request is malformed (request line, a header or a multipart body)")
    body = json.dumps(error_body(dialect_for_path(text_path), status, message), ensure_ascii=False).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


def _path_of(channel: Any) -> bytes | None:
    """The request's path: the channel's while it reads headers, the request's once it has them."""
    path = getattr(channel, "_path", None)
    if path is None and getattr(channel, "requests", None):
        path = getattr(channel.requests[-1], "uri", None)
    return path


def _answer(channel: Any, status: int) -> None:
    channel.transport.write(error_answer(_path_of(channel), status))
    channel.loseConnection()


def _patch_http_channel() -> None:
    from twisted.web import http

    original_line_received = http.HTTPChannel.lineReceived

    def lineLengthExceeded(self: Any, line: bytes) -> None:  # noqa: N802 - Twisted's name
        _answer(self, 431)

    def _respondToBadRequestAndDisconnect(self: Any) -> None:  # noqa: N802 - Twisted's name
        # Twisted's bare "400 Bad Request" (no Content-Type, no body), e.g. for a multipart body
        # it cannot parse before the request reaches Django: the same 400 in the envelope.
        _answer(self, 400)

    def lineReceived(self: Any, line: bytes) -> None:  # noqa: N802 - Twisted's name
        # Twisted answers a bare 400 when the headers add up to more than totalHeadersSize.
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            _answer(self, 431)
            return
        original_line_received(self, line)

    http.HTTPChannel.lineLengthExceeded = lineLengthExceeded  # type: ignore[method-assign]
    http.HTTPChannel._respondToBadRequestAndDisconnect = _respondToBadRequestAndDisconnect  # type: ignore[method-assign]
    http.HTTPChannel.lineReceived = lineReceived  # type: ignore[method-assign]


def _patch_websocket_factory() -> None:
    from daphne.ws_protocol import WebSocketFactory

    original_init = WebSocketFactory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - the patched method
        original_init(self, *args, **kwargs)
        # Close with a code and reason (1009 for a frame over the cap) instead of dropping TCP.
        self.setProtocolOptions(failByDrop=False)

    WebSocketFactory.__init__ = __init__


def install() -> None:
    """Patch the server's framing once per process; a no-op where daphne / Twisted are absent."""
    global _installed
    if _installed:
        return
    try:
        _patch_http_channel()
        _patch_websocket_factory()
    except ImportError:  # pragma: no cover - served by another ASGI server
        return
    _installed = True
