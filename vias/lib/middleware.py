"""Request middleware shared by every API."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from vias.lib.envelopes import dialect_for_path, error_response


class BodySizeLimitMiddleware:
    """Refuse a declared body over VIAS_MAX_BODY_BYTES with 413 before anything reads it.

    Bodies without a Content-Length are capped when read (DATA_UPLOAD_MAX_MEMORY_SIZE);
    the exception handler turns that into the same 413. A chunked body (Transfer-Encoding:
    chunked, de-chunked by daphne) is read here, up to the cap, and given its Content-Length.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(dialect_for_path(request.path), 400, _("Content-Length is not a number"))
        cap = settings.VIAS_MAX_BODY_BYTES
        if declared > cap and not request.path.startswith("/admin/"):
            return _too_large(request, declared, cap)
        if not declared and is_chunked(request):
            body = request.read(cap + 1)
            if len(body) > cap:
                return _too_large(request, len(body), cap)
            _use_body(request, body)
        return self.get_response(request)


def is_chunked(request: HttpRequest) -> bool:
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def _use_body(request: HttpRequest, body: bytes) -> None:
    """Give a de-chunked body the Content-Length it lacks. Daphne de-chunks request bodies, but
    Django (request.body is fine) and DRF (no Content-Length: no body at all) go by Content-Length;
    without this a chunked JSON body would be silently read as empty."""
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._body = body  # what request.body answers from now on
    request._stream = io.BytesIO(body)  # and what request.read() / DRF's parser read
    request._read_started = False  # type: ignore[attr-defined]  # Django's own flag, set by read()


def _too_large(request: HttpRequest, size: int, cap: int) -> HttpResponse:
    message = _("the request body is %(size)d bytes, over the limit of %(cap)d bytes") % {
        "size": size,
        "cap": cap,
    }
    return error_response(dialect_for_path(request.path), 413, message)


class SecureCookiesOverHttps:
    """Mark the session and CSRF cookies Secure on answers to https requests (request.is_secure(),
    which honours SECURE_PROXY_SSL_HEADER), so a browser never sends them back over plain http,
    while the embedded default keeps working on http://127.0.0.1. Sits above the session and CSRF
    middleware, so it sees the cookies they set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response
