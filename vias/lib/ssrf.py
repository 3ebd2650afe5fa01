"""Server-side request forgery (SSRF) rules for URLs VIAS calls out to (webhooks, docs/outputs.md).

A webhook URL is checked when it is saved (`check_webhook_url`, called by the task validators) and
again when an event is delivered (`resolve_for_delivery`). Both resolve the host once with
`socket.getaddrinfo` and refuse it when any address it resolves to is loopback, private,
link-local, multicast, reserved, unspecified or otherwise not public, including those addresses
written inside IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``,
Teredo). Hosts listed in settings.VIAS_WEBHOOK_ALLOWED_HOSTS skip the address rules.

Delivery connects to the address that was checked, never to a second lookup's answer (DNS
rebinding): `pinned_request` gives the URL with the address in place of the host, the Host
header and, for https, the TLS server name, so the certificate is still verified for the host.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# IPv6 prefixes whose last 32 bits are an IPv4 address the traffic ends up at.
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# The ValidationError code of a host that did not resolve (may pass later); every other refusal
# has the code "ssrf".
UNRESOLVED = "unresolved"


class Pinned(NamedTuple):
    """A checked URL and the one address delivery connects to."""

    url: str
    ip: str


class _Parsed(NamedTuple):
    parts: SplitResult
    scheme: str
    host: str  # ASCII (IDNA) host, lower case, no brackets, no trailing dot
    port: int


def _parse(url: object) -> _Parsed:
    if not isinstance(url, str) or not url:
        raise ValidationError(_("the webhook URL must be a non-empty string"), code="ssrf")
    if CONTROL_OR_SPACE.search(url):
        raise ValidationError(_("the webhook URL must not contain spaces or control characters"), code="ssrf")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValidationError(_("the webhook URL must use http or https"), code="ssrf")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValidationError(_("the webhook URL must not contain credentials (user:password@)"), code="ssrf")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError(_("the webhook URL has no host"), code="ssrf")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
        host = host.encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        raise ValidationError(_("the webhook URL has an invalid host or port"), code="ssrf") from None
    return _Parsed(parts, scheme, host, port)


def _is_allowed_host(host: str) -> bool:
    allowed = getattr(settings, "VIAS_WEBHOOK_ALLOWED_HOSTS", []) or []
    return host in {h.strip().strip("[]").rstrip(".").lower() for h in allowed if h.strip()}


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for network in NAT64_NETWORKS:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why delivery must not connect to `address` (a short translated word), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := address_refusal(embedded)):
            return reason
    checks = (
        ("is_unspecified", _("unspecified")),
        ("is_loopback", _("loopback")),
        ("is_link_local", _("link-local")),
        ("is_multicast", _("multicast")),
        ("is_private", _("private")),
        ("is_reserved", _("reserved")),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if not address.is_global:  # e.g. 100.64.0.0/10, the carrier-grade NAT range
        return _("non-public")
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order: one lookup, no retry."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ValidationError(
            _("cannot resolve the webhook host %(host)s") % {"host": host}, code=UNRESOLVED
        ) from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 scope id
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValidationError(_("cannot resolve the webhook host %(host)s") % {"host": host}, code=UNRESOLVED)
    return addresses


def _check(url: object) -> tuple[_Parsed, IPAddress]:
    parsed = _parse(url)
    addresses = _resolve(parsed.host, parsed.port)
    if not _is_allowed_host(parsed.host):
        for address in addresses:
            if reason := address_refusal(address):
                raise ValidationError(
                    _(
                        "the webhook host %(host)s resolves to %(ip)s (%(kind)s); only public addresses "
                        "are allowed unless the host is listed in VIAS_WEBHOOK_ALLOWED_HOSTS"
                    )
                    % {"host": parsed.host, "kind": reason, "ip": address},
                    code="ssrf",
                )
    return parsed, addresses[0]


def check_webhook_url(url: str) -> None:
    """Raise ValidationError unless `url` is an http(s) URL without credentials whose host resolves
    only to public addresses (or is listed in settings.VIAS_WEBHOOK_ALLOWED_HOSTS)."""
    _check(url)


def resolve_for_delivery(url: str) -> Pinned:
    """Check `url` again, resolving its host once, and return (url, ip): the address to connect to.
    Connect to that address (see `pinned_request`); never look the host up a second time."""
    _parsed, address = _check(url)
    return Pinned(url, str(address))


def pinned_request(url: str, ip: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL with `ip` in place of the host, {"Host": ...}, httpx request extensions) for sending to
    `url` over a connection to `ip`. For https the extensions set the TLS server name (SNI) to the
    host, against which httpx verifies the certificate. The fragment is dropped."""
    parsed = _parse(url)
    address = ipaddress.ip_address(ip)
    literal = f"[{address}]" if address.version == 6 else str(address)
    explicit_port = parsed.parts.port is not None and parsed.port != DEFAULT_PORTS[parsed.scheme]
    host_literal = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    netloc = f"{literal}:{parsed.port}" if explicit_port else literal
    host_header = f"{host_literal}:{parsed.port}" if explicit_port else host_literal
    connect_url = urlunsplit((parsed.scheme, netloc, parsed.parts.path or "/", parsed.parts.query, ""))
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return connect_url, {"Host": host_header}, extensions


def redacted(url: str) -> str:
    """The URL without query or fragment (they may carry secrets), for logs and delivery records."""
    try:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))[:1024]
    except ValueError:
        return "(invalid URL)"
