"""Request middleware shared by every API."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from vias.lib.envelopes import dialect_for_path, error_response


class BodySizeLimitMiddleware:
    """Refuse a declared body over VIAS_MAX_BODY_BYTES with 413 before anything reads it.

    Bodies without a Content-Length are capped when read (DATA_UPLOAD_MAX_MEMORY_SIZE);
    the exception handler turns that into the same 413.
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
            message = _("the request body is %(size)d bytes, over the limit of %(cap)d bytes") % {
                "size": declared,
                "cap": cap,
            }
            return error_response(dialect_for_path(request.path), 413, message)
        return self.get_response(request)
