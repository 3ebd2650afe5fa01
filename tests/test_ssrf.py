# ruff: noqa: F811 - pytest fixtures arrive as parameters named like the imported fixture
"""Server-side request forgery rules for webhook URLs (vias/lib/ssrf.py), when saved and when delivering."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django_q.models import Schedule

from analysis import outputs
from analysis.models import Delivery
from tests.test_outputs import make_event, receiver, webhook_task  # noqa: F401 - receiver: a fixture
from vias.lib.ssrf import address_refusal, check_webhook_url, pinned_request, resolve_for_delivery

REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.8.9.10:8080/hook", "loopback"),
    ("http://10.0.0.5/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://172.31.255.254/hook", "private"),
    ("http://192.168.1.20/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fc00::1]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),  # NAT64 of 169.254.169.254
    ("http://[2002:c0a8:0101::]/hook", "private"),  # 6to4 of 192.168.1.1
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://100.64.0.1/hook", "non-public"),
    ("http://localhost/hook", "loopback"),  # a name that resolves to 127.0.0.1
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 as one number
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_private_and_special_addresses_are_refused(url, kind, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(ValidationError) as caught:
        check_webhook_url(url)
    assert f"({kind})" in caught.value.messages[0]
    assert "VIAS_WEBHOOK_ALLOWED_HOSTS" in caught.value.messages[0]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com/", "http or https"),
        ("http://user:secret@93.184.215.14/hook", "credentials"),
        ("http://user@93.184.215.14/hook", "credentials"),
        ("http:///hook", "no host"),
        ("http://93.184.215.14:99999/hook", "invalid host or port"),
        ("http://93.184.215.14/a b", "spaces or control characters"),
        ("", "non-empty"),
    ],
)
def test_malformed_urls_are_refused_before_any_lookup(url, words, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("looked up"))
    with pytest.raises(ValidationError, match=words):
        check_webhook_url(url)


def test_a_public_address_passes():
    check_webhook_url("https://93.184.215.14/hook")
    check_webhook_url("https://[2606:4700:4700::1111]:8443/hook")
    assert address_refusal(__import__("ipaddress").ip_address("8.8.8.8")) is None


class FakeDNS:
    """socket.getaddrinfo answering `answers[host]`, one list per call, counting the calls."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.calls.append(host)
            ips = self.answers[host][min(len(self.calls), len(self.answers[host])) - 1]
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port, 0, 0) if ":" in ip else (ip, port),
                )
                for ip in ips
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_is_refused_when_any_of_its_addresses_is_private(monkeypatch, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []
    FakeDNS(monkeypatch, {"hooks.example.com": [["93.184.215.14", "10.1.2.3"]]})
    with pytest.raises(ValidationError, match=r"10\.1\.2\.3 \(private\)"):
        check_webhook_url("https://hooks.example.com/x")


def test_delivery_resolves_once_and_pins_the_checked_address(monkeypatch, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []
    # DNS rebinding: the first answer is public, every later one points inside.
    dns = FakeDNS(monkeypatch, {"hooks.example.com": [["93.184.215.14"], ["127.0.0.1"]]})

    url, ip = resolve_for_delivery("https://hooks.example.com:8443/in?sig=1#frag")

    assert (url, ip) == ("https://hooks.example.com:8443/in?sig=1#frag", "93.184.215.14")
    assert dns.calls == ["hooks.example.com"]
    connect_url, host, extensions = pinned_request(url, ip)
    assert connect_url == "https://93.184.215.14:8443/in?sig=1"
    assert host == {"Host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}  # the certificate is checked for the name
    assert pinned_request("http://h.example/", "2606:4700::1")[:2] == (
        "http://[2606:4700::1]/",
        {"Host": "h.example"},
    )


def test_the_allow_list_lets_a_listed_host_through(settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(ValidationError):
        check_webhook_url("http://localhost:8080/hook")
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["LOCALHOST", "[::1]"]
    check_webhook_url("http://localhost:8080/hook")
    check_webhook_url("http://[::1]/hook")
    assert resolve_for_delivery("http://localhost:8080/hook").ip in ("127.0.0.1", "::1")
    with pytest.raises(ValidationError):  # only the listed names
        check_webhook_url("http://127.0.0.1/hook")


# -- at delivery time ---------------------------------------------------------------------------


@pytest.fixture
def project(db):
    from tasks.models import Project

    return Project.objects.create(project_id="proj-ssrf", name="ssrf")


def test_a_redirect_answered_by_the_receiver_is_refused(project, receiver, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    target = receiver()
    hook = receiver(statuses=302, location=target.url("/internal"))
    event = make_event(webhook_task(project, hook.url()))

    assert outputs.deliver_webhook(event.pk, 1) is False

    assert len(hook.requests) == 1 and target.requests == []  # not followed
    [delivery] = Delivery.objects.filter(event=event)
    assert (delivery.ok, delivery.status_code) == (False, 302)
    assert "redirect refused" in delivery.error
    assert not Schedule.objects.exists()  # not retried either


def test_a_url_that_became_private_is_refused_when_delivering(project, receiver, settings):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    hook = receiver()
    event = make_event(webhook_task(project, hook.url()))  # saved while allowed
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = []

    assert outputs.deliver_webhook(event.pk, 1) is False

    assert hook.requests == []
    [delivery] = Delivery.objects.filter(event=event)
    assert delivery.error.startswith("refused:") and "(loopback)" in delivery.error
    assert not Schedule.objects.exists()


def test_delivery_connects_to_the_pinned_address_with_the_host_header(
    project, receiver, settings, monkeypatch
):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["hooks.test"]
    hook = receiver()
    dns = FakeDNS(monkeypatch, {"hooks.test": [["127.0.0.1"], ["203.0.113.9"]]})
    event = make_event(webhook_task(project, f"http://hooks.test:{hook.port}/in"))

    assert outputs.deliver_webhook(event.pk, 1) is True

    assert dns.calls == ["hooks.test"]  # the HTTP client did not look the name up again
    assert hook.requests[0]["headers"]["Host"] == f"hooks.test:{hook.port}"


def test_a_host_that_does_not_resolve_is_refused_and_retried_later(project, monkeypatch):
    def no_answer(*args: Any, **kwargs: Any):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(ValidationError, match="cannot resolve") as caught:
        check_webhook_url("https://hooks.example.invalid/in")
    assert caught.value.code == "unresolved"

    event = make_event(webhook_task(project, "https://hooks.example.invalid/in"))
    assert outputs.deliver_webhook(event.pk, 1) is False
    [delivery] = Delivery.objects.filter(event=event)
    assert delivery.error.startswith("refused: cannot resolve")
    assert Schedule.objects.filter(name=f"webhook-{event.pk}-2").exists()  # DNS may answer later
