"""Who a websocket is: the same tokens as the HTTP API, read from the handshake.

Accepted, first match wins: `X-Auth-Token` or `Authorization` header (as vias.lib.auth reads
them), the `token` query parameter (browsers cannot set headers on a websocket), or the
session cookie of a logged-in user (the admin), who then acts in their first project.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from django.utils import translation
from django.utils.datastructures import CaseInsensitiveMapping
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header
from rest_framework import exceptions

from vias.lib.auth import raw_token, token_for


def scope_headers(scope: dict[str, Any]) -> CaseInsensitiveMapping:
    return CaseInsensitiveMapping(
        {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
    )


def scope_query(scope: dict[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    try:
        return dict(parse_qsl(raw.decode("ascii") if isinstance(raw, bytes) else raw))
    except UnicodeDecodeError:
        return {}


def language_of(headers: CaseInsensitiveMapping) -> str:
    """The language of the answers: Accept-Language as Django's LocaleMiddleware reads it."""
    from django.conf import settings

    for code, _q in parse_accept_lang_header(headers.get("Accept-Language", "")):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def session_project(user: Any, wanted: str | None) -> Any:
    """A logged-in user's project: the one asked for with `?project=` (a member's, or any for a
    superuser, who operates every project in the admin), else their first."""
    from tasks.models import Project

    if wanted:
        projects = Project.objects.all() if user.is_superuser else user.vias_projects.all()
        project = projects.filter(project_id=wanted).first()
        if project is None:
            raise exceptions.PermissionDenied(_("no project %(p)s of yours") % {"p": wanted})
        return project
    project = user.vias_projects.order_by("id").first()
    if project is None:
        raise exceptions.PermissionDenied(
            _("this user belongs to no project; create a token with `manage.py create_token`")
        )
    return project


def authenticate(headers: CaseInsensitiveMapping, query: dict[str, str], user: Any) -> tuple[Any, Any]:
    """(project, user) of a handshake; a DRF AuthenticationFailed / NotAuthenticated otherwise."""
    try:
        raw = raw_token(headers, query)
    except UnicodeError:
        raise exceptions.AuthenticationFailed(_("malformed API token")) from None
    if raw is not None:
        token = token_for(raw)
        return token.project, token.user
    if user is not None and getattr(user, "is_authenticated", False) and user.is_active:
        return session_project(user, query.get("project")), user
    raise exceptions.NotAuthenticated()
