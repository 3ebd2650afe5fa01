"""Who may open a websocket from where (docs/websocket.md, "Connecting").

Channels' AllowedHostsOriginValidator refuses every client without an `Origin` header, which is
every non-browser client (Python `websockets`, Node `ws`, devices), and compares host names
only, so a page on another port of the same host passes. The rule here follows what the
credential can prove:

- a handshake that carries an API token (`Authorization` / `X-Auth-Token` header or `?token=`)
  is let through whatever its `Origin`: a token is not sent by the browser on its own, so a
  page from another site cannot borrow it;
- a handshake that would be authenticated by the session cookie alone (the admin's live pages)
  needs an `Origin` equal to the address it connects to, host *and* port, whose host is in
  ALLOWED_HOSTS (or an origin listed in CSRF_TRUSTED_ORIGINS); without an `Origin` it is refused,
  since only a browser holds the cookie and every browser sends one;
- a handshake with neither goes on to the consumer, which answers 4401.

Refused handshakes get HTTP 403, as channels' validator gives them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.datastructures import CaseInsensitiveMapping
from rest_framework import exceptions

from vias.lib.auth import raw_token

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _headers(scope: dict[str, Any]) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(bytes(name).lower(), bytes(value).decode("latin-1"))
    return found


def carries_token(scope: dict[str, Any]) -> bool:
    """True when the consumer will authenticate this handshake by a token (valid or not), read
    exactly as tasks/api/ws/auth.py reads it; it then never falls back to the session."""
    headers = CaseInsensitiveMapping(
        {name.decode("latin-1"): value for name, value in _headers(scope).items()}
    )
    raw = scope.get("query_string", b"")
    try:
        query = dict(parse_qsl(raw.decode("ascii") if isinstance(raw, bytes) else raw))
    except UnicodeDecodeError:
        query = {}
    try:
        return raw_token(headers, query) is not None
    except (exceptions.AuthenticationFailed, UnicodeError):
        return True  # a malformed token: the consumer refuses it (4401) without looking at the session


def carries_session(scope: dict[str, Any]) -> bool:
    cookie = _headers(scope).get(b"cookie", "")
    name = settings.SESSION_COOKIE_NAME
    return any(part.strip().split("=", 1)[0] == name for part in cookie.split(";"))


def _host_port(netloc: str, default_port: int | None) -> tuple[str, int | None] | None:
    domain, port = split_domain_port(netloc)
    if not domain:
        return None
    try:
        return domain, int(port) if port else default_port
    except ValueError:
        return None


def _is_secure(scope: dict[str, Any], headers: dict[bytes, str]) -> bool:
    """wss, or a TLS proxy's header as SECURE_PROXY_SSL_HEADER names it (as Django's is_secure)."""
    if scope.get("scheme") == "wss":
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header:
        return False
    name, secure_value = proxy_header
    meta_name = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
    return headers.get(meta_name, "").split(",")[0].strip() == secure_value


def origin_matches(origin: str, host_header: str, secure: bool) -> bool:
    """True when `origin` (scheme://host[:port]) names the address the socket connects to: https
    for wss and http for ws, the host and port of the `Host` header, the host in ALLOWED_HOSTS;
    or when `origin` is in CSRF_TRUSTED_ORIGINS (a site behind a proxy that rewrites the host)."""
    if origin.lower() in {trusted.lower().rstrip("/") for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    scheme = "https" if secure else "http"
    if parts.scheme.lower() != scheme:
        return False
    origin_address = _host_port(parts.netloc.lower(), DEFAULT_PORTS[scheme])
    # A Host without a port is the default port of the scheme.
    host_address = _host_port(host_header.lower(), DEFAULT_PORTS[scheme])
    if origin_address is None or origin_address != host_address:
        return False
    return validate_host(origin_address[0], settings.ALLOWED_HOSTS)


def session_origin_allowed(scope: dict[str, Any]) -> bool:
    headers = _headers(scope)
    origin = headers.get(b"origin")
    host = headers.get(b"host")
    if origin is None or host is None:
        return False
    return origin_matches(origin, host, _is_secure(scope, headers))


def admits(scope: dict[str, Any]) -> bool:
    """Whether a websocket handshake may go on to the consumer (the rule in the module docstring)."""
    if carries_token(scope) or not carries_session(scope):
        return True
    return session_origin_allowed(scope)


class WebsocketOriginPolicy:
    """ASGI middleware in front of the websocket router: `admits` or HTTP 403."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not admits(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
