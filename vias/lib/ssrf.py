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

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# IPv6 prefixes whose last 32 bits are an IPv4 address the traffic ends up at.
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
# Hosts inet_aton may read as an IPv4 address: digits, hex digits, x and dots only.
INET_ATON_FORM = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)
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


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, as the operating system's resolver answers (one lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for _family, _type, _proto, _canonname, sockaddr in infos]


# Tests swap it (`using_resolver`) so that no check needs DNS.
_resolver: Resolver = system_resolver


@contextlib.contextmanager
def using_resolver(resolver: Resolver) -> Iterator[None]:
    """Resolve host names with `resolver` (host, port -> address strings; OSError: no answer)."""
    global _resolver
    previous, _resolver = _resolver, resolver
    try:
        yield
    finally:
        _resolver = previous


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one, in any form the C resolver reads as one: besides the
    standard forms, inet_aton's decimal (2130706433), hex (0x7f000001), octal and short (127.1, 0)
    IPv4 forms, which FFmpeg and urllib would connect to."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if INET_ATON_FORM.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _unresolved(host: str, what: str) -> ValidationError:
    if what == "source":
        message = _("cannot resolve the source host %(host)s") % {"host": host}
    else:
        message = _("cannot resolve the webhook host %(host)s") % {"host": host}
    return ValidationError(message, code=UNRESOLVED)


def _resolve(host: str, port: int, what: str = "webhook") -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order: one lookup, no retry."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        answers = _resolver(host, port)
    except (OSError, UnicodeError):
        raise _unresolved(host, what) from None
    addresses: list[IPAddress] = []
    for answer in answers:
        text = answer.split("%", 1)[0]  # drop an IPv6 scope id
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _unresolved(host, what)
    return addresses


def _check(url: object) -> tuple[_Parsed, IPAddress]:
    parsed = _parse(url)
    if is_refused_name(parsed.host) and not _is_allowed_host(parsed.host):
        # Before any lookup: a name that does not resolve here would otherwise be saved.
        kind = (
            _("cloud metadata")
            if "metadata" in parsed.host or "instance-data" in parsed.host
            else _("loopback")
        )
        raise ValidationError(
            _(
                "the webhook host %(host)s is refused (%(kind)s); only public addresses are allowed "
                "unless the host is listed in VIAS_WEBHOOK_ALLOWED_HOSTS"
            )
            % {"host": parsed.host, "kind": kind},
            code="ssrf",
        )
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


def check_webhook_url_when_saved(url: str) -> str | None:
    """`check_webhook_url` for a URL being saved: a host that does not resolve now is accepted
    (a name of the receiver's network; the seed's batch example uses http://test) and the warning
    to show is returned; delivery checks it again (`resolve_for_delivery`). None when all is well."""
    try:
        _check(url)
    except ValidationError as exc:
        if exc.code != UNRESOLVED:
            raise
        return _(
            "the webhook host %(host)s does not resolve now; it is accepted and checked again at each "
            "delivery, which fails (and is retried) while it does not resolve to a public address"
        ) % {"host": _parse(url).host}
    return None


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


# -- video and picture sources (docs/outputs.md, "Source URLs") ------------------------------
#
# A camera lives on a LAN, so private addresses are allowed by default (VIAS_SOURCE_ALLOW_PRIVATE);
# the machine itself, link-local (cloud metadata at 169.254.169.254), multicast, unspecified and
# reserved addresses, and the names that always mean them, are not. VIAS_SOURCE_ALLOWED_HOSTS lists
# exceptions: host names or addresses, or networks in CIDR form.

SOURCE_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
HTTP_SCHEMES = ("http", "https")
# Names that reach this machine or a cloud's instance-metadata service whatever DNS answers.
REFUSED_SOURCE_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
# Metadata services outside link-local: Alibaba Cloud's 100.100.100.200, AWS's IPv6 fd00:ec2::254.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host": 0.x.x.x reaches the machine itself
MAX_SOURCE_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# The code of a ValidationError for a source that could not be reached to follow its redirects.
UNREACHABLE = "unreachable"


def _source_host(url: str) -> tuple[str, str, int]:
    """(scheme, ASCII host, port) of a stream URL; ValidationError(code="ssrf") when it has none."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or SOURCE_DEFAULT_PORTS.get(scheme, 0)
        host = host.encode("idna").decode("ascii").lower() if host else ""
    except (ValueError, UnicodeError):
        raise ValidationError(_("the source URL has an invalid host or port"), code="ssrf") from None
    if scheme not in SOURCE_DEFAULT_PORTS or not host:
        raise ValidationError(_("the source URL must be rtsp, rtsps, http or https with a host"), code="ssrf")
    return scheme, host, port


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in getattr(settings, "VIAS_SOURCE_ALLOWED_HOSTS", []) or []:
        text = entry.strip().strip("[]").rstrip(".").lower()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text)
    return names, networks


def source_address_refusal(address: IPAddress) -> str | None:
    """Why a source must not be opened at `address` (a short translated word), None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := source_address_refusal(embedded)):
            return reason
    if address in METADATA_ADDRESSES:
        return _("cloud metadata")
    if address.is_unspecified or (address.version == 4 and address in THIS_NETWORK):
        return _("unspecified")
    checks = (
        ("is_loopback", _("loopback")),
        ("is_link_local", _("link-local")),
        ("is_multicast", _("multicast")),
        ("is_reserved", _("reserved")),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if not address.is_global and not getattr(settings, "VIAS_SOURCE_ALLOW_PRIVATE", True):
        return _("private")
    return None


def _refused(host: str, detail: str) -> ValidationError:
    return ValidationError(
        _(
            "the source host %(host)s is refused (%(detail)s): VIAS opens no source on this machine or "
            "on link-local, multicast, reserved or metadata addresses (nor on private ones when "
            "VIAS_SOURCE_ALLOW_PRIVATE is false) unless VIAS_SOURCE_ALLOWED_HOSTS lists it"
        )
        % {"host": host, "detail": detail},
        code="ssrf",
    )


def is_refused_name(host: str) -> bool:
    """A name that means this machine or a cloud metadata service whatever DNS answers."""
    return host in REFUSED_SOURCE_NAMES or host.endswith(".localhost")


def _check_source_host(host: str, port: int) -> None:
    names, networks = _allow_list()
    if host in names:
        return
    if is_refused_name(host):
        raise _refused(host, _("a name of this machine or of a metadata service"))
    for address in _resolve(host, port, "source"):
        if str(address) in names or any(address in network for network in networks):
            continue
        if reason := source_address_refusal(address):
            raise _refused(host, f"{address}, {reason}")


def check_source_url(url: str) -> None:
    """Raise ValidationError(code="ssrf") when a stream URL's host is refused (see above). A host
    that does not resolve here passes: the node may see other DNS, and checks again when it opens."""
    _scheme, host, port = _source_host(url)
    try:
        _check_source_host(host, port)
    except ValidationError as exc:
        if exc.code != UNRESOLVED:
            raise


def check_source_for_open(url: str, timeout_s: float = 10.0) -> str:
    """Check a stream URL again just before it is opened and answer the URL to open. For http(s)
    the redirects are followed here, each hop checked, up to MAX_SOURCE_REDIRECTS; the URL they
    end at is opened. ValidationError codes: "ssrf" refused, UNRESOLVED no address (DNS may answer
    later), UNREACHABLE the server did not answer (try later)."""
    scheme, host, port = _source_host(url)
    _check_source_host(host, port)
    if scheme not in HTTP_SCHEMES:
        return url
    return _follow_checked_redirects(url, timeout_s)


def check_source_host_for_open(url: str) -> None:
    """Check a stream URL's host just before connecting to it (ValidationError codes as
    check_source_for_open); for clients that check each redirect themselves (picture pulls)."""
    _scheme, host, port = _source_host(url)
    _check_source_host(host, port)


def _follow_checked_redirects(url: str, timeout_s: float) -> str:
    import httpx  # deferred: only http(s) sources need it

    current = url
    with httpx.Client(follow_redirects=False, timeout=timeout_s, verify=True) as client:
        for _hop in range(MAX_SOURCE_REDIRECTS + 1):
            try:
                with client.stream("GET", current, headers={"User-Agent": "VIAS"}) as answer:
                    location = answer.headers.get("location")
                    status = answer.status_code
            except httpx.HTTPError as exc:
                raise ValidationError(
                    _("cannot reach the source %(url)s: %(error)s")
                    % {"url": redacted(current), "error": exc},
                    code=UNREACHABLE,
                ) from None
            if status not in REDIRECT_STATUSES or not location:
                return current
            current = urljoin(current, location)
            scheme, host, port = _source_host(current)
            if scheme not in HTTP_SCHEMES:
                raise ValidationError(_("a source redirects to a non-http URL"), code="ssrf")
            _check_source_host(host, port)
    raise ValidationError(
        _("the source redirects more than %(n)s times") % {"n": MAX_SOURCE_REDIRECTS}, code="ssrf"
    )
