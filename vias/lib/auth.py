"""API token authentication shared by every dialect.

Accepted: `Authorization: <token>` (the seed's raw {atoken}), `Authorization: Token <token>`,
`Authorization: Bearer <token>`, or `X-Auth-Token: <token>` (VIAS v2). A missing, malformed or
unknown token is a 401 in the API's own envelope. Session login (admin, browsable API) works
too; such a user acts in the first project they are a member of.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
SCHEMES = ("token", "bearer")
# Writing last_used_at on every request would add a query to every call; minutes are enough.
LAST_USED_RESOLUTION = timedelta(minutes=10)


def raw_token(headers: Any, query: dict[str, str] | None = None) -> str | None:
    """The token a request carries, None when it carries none; AuthenticationFailed when malformed."""
    value = headers.get("X-Auth-Token") or headers.get("Authorization")
    if value is None and query:
        value = query.get("token")
    if value is None:
        return None
    parts = value.strip().split()
    if len(parts) == 2 and parts[0].lower() in SCHEMES:
        parts = parts[1:]
    if len(parts) != 1 or not TOKEN_RE.match(parts[0]):
        raise exceptions.AuthenticationFailed(_("malformed API token"))
    return parts[0]


def token_model() -> Any:
    """The API token model, named by settings.VIAS_API_TOKEN_MODEL ("app_label.Model"), as Django's
    get_user_model() does for AUTH_USER_MODEL: the lib names no app, the settings wire it."""
    return apps.get_model(settings.VIAS_API_TOKEN_MODEL, require_ready=True)


def token_for(raw: str) -> Any:
    token = token_model().objects.for_key(raw)
    if token is None or not token.user.is_active:
        raise exceptions.AuthenticationFailed(_("unknown API token"))
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        type(token).objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request):
        try:
            raw = raw_token(request.headers)
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("malformed API token")) from None
        if raw is None:
            return None
        token = token_for(raw)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 rather than 403 to unauthenticated calls.
        return "Token"


def request_project(request: Request):
    """The project a request acts in: its token's, or a logged-in user's first project."""
    cached = getattr(request, "_vias_project", None)
    if cached is not None:
        return cached
    token = getattr(request, "auth", None)
    project = getattr(token, "project", None)
    if project is None and request.user and request.user.is_authenticated:
        project = request.user.vias_projects.order_by("id").first()
    request._vias_project = project  # type: ignore[attr-defined]  # cached on the request
    return project


class HasProject(permissions.BasePermission):
    message = "this user belongs to no project; create a token with `manage.py create_token`"

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request_project(request) is not None


try:  # describe the token scheme in the OpenAPI schema
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
        target_class = "vias.lib.auth.TokenAuthentication"
        name = "apiToken"

        def get_security_definition(self, auto_schema):
            return {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`<token>`, `Token <token>` or `Bearer <token>`; or the X-Auth-Token header",
            }
except ImportError:  # pragma: no cover
    pass
