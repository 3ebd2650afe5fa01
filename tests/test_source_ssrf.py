"""The source URL policy (vias/lib/ssrf.py, docs/outputs.md "Source URLs"): each form of this
machine, link-local (cloud metadata), multicast and unspecified addresses is refused when a source
is saved (native, v2, the models under the admin) and again when it is opened (a node's video
source, the admin's frame grab, a picture pull), and a local listener proves no connection was
made. Private (LAN) cameras are accepted by default. Host names go through an injected resolver:
no test needs DNS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from analysis.sources import SourceRefused, SourceUnavailable, VideoSource, iter_pictures
from subtasks.models import Subtask
from tasks import frames
from tasks.models import Task, VideoChannel
from tasks.validators import validate_source_url
from tests.conftest import task_body
from tests.test_jobs import person_model  # noqa: F401 - a fixture
from tests.test_v2_helpers import source_body, v2, v2_refused
from tests.test_v2_helpers import task_body as v2_task_body
from vias.lib import ssrf


class Listener:
    """A TCP listener on every local address (IPv4 and IPv6) that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"looked up {host}: these forms must be refused without DNS")


def refused_forms(port: int) -> list[str]:
    return [
        f"rtsp://localhost:{port}/live",
        f"http://LOCALHOST.:{port}/v.mp4",
        f"rtsp://cam.localhost:{port}/live",
        f"rtsp://127.0.0.1:{port}/live",
        f"rtsp://127.1.2.3:{port}/live",
        f"rtsp://127.1:{port}/live",
        f"http://[::1]:{port}/v.mp4",
        f"http://[::ffff:127.0.0.1]:{port}/v.mp4",
        f"rtsp://[::ffff:7f00:1]:{port}/live",
        f"http://0:{port}/v.mp4",
        f"http://0.0.0.0:{port}/v.mp4",
        f"http://[::]:{port}/v.mp4",
        f"http://2130706433:{port}/v.mp4",
        f"http://0x7f000001:{port}/v.mp4",
        f"http://0177.0.0.1:{port}/v.mp4",
        f"rtsp://user:pw@127.0.0.1:{port}/live",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/v.mp4",
        "http://metadata.google.internal/computeMetadata/v1/",
        "rtsp://224.0.0.251/live",
        "http://100.100.100.200/latest/meta-data/",
    ]


FORMS = refused_forms(5554)  # the port is irrelevant when saving


@pytest.mark.parametrize("url", FORMS)
def test_each_refused_form_is_refused_by_the_model_validator(url):
    with ssrf.using_resolver(no_dns), pytest.raises(ValidationError) as refused:
        validate_source_url(url)
    assert "VIAS_SOURCE_ALLOWED_HOSTS" in refused.value.messages[0]


@pytest.mark.parametrize("url", FORMS)
def test_each_refused_form_is_refused_when_a_task_is_saved(alice, url):
    with ssrf.using_resolver(no_dns):
        as_play_url = alice.post("/tasks", task_body(vchans=0, play_url=url)).json()
        as_channel = task_body(vchans=1)
        as_channel["vchans"][0]["url"] = url
        as_vchan = alice.post("/tasks", as_channel).json()
    for answer in (as_play_url, as_vchan):
        assert answer["ecode"] == 400 and "refused" in answer["enote"], answer
    assert Task.objects.count() == 0 and VideoChannel.objects.count() == 0


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "rtsp://127.0.0.1/live"])
def test_the_v2_dialect_refuses_them_too(alice, url):
    with ssrf.using_resolver(no_dns):
        source = alice.post(v2(alice, "/source"), source_body("s", url))
        task = alice.post(
            v2(alice, "/services/traffic/tasks"), v2_task_body(input={"type": "url", "data": [{"url": url}]})
        )
    v2_refused(source, 400, None, "refused")
    v2_refused(task, 400, None, "refused")
    assert VideoChannel.objects.count() == 0


def test_a_private_camera_is_accepted_when_saved(alice):
    """Cameras live on LANs: 10/8, 172.16/12, 192.168/16, fc00::/7 and a LAN name are accepted (and
    never opened here)."""
    lan = {"nvr.lan": ["192.168.1.20"]}
    with ssrf.using_resolver(lambda host, port: lan[host]):
        for url in (
            "rtsp://10.0.0.1/live",
            "rtsp://172.16.5.5/x",
            "rtsp://[fd00::5]/x",
            "rtsp://nvr.lan/ch1",
        ):
            answer = alice.post("/tasks", task_body(vchans=0, play_url=url, task_name=url[:30])).json()
            assert answer["ecode"] == 200, answer


def test_private_ranges_can_be_refused_and_exceptions_listed(settings):
    settings.VIAS_SOURCE_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError, match="private"):
        validate_source_url("rtsp://10.0.0.1/live")
    settings.VIAS_SOURCE_ALLOWED_HOSTS = ["10.0.0.0/24", "cam.test"]
    validate_source_url("rtsp://10.0.0.1/live")
    with ssrf.using_resolver(lambda host, port: ["127.0.0.1"]):
        validate_source_url("rtsp://cam.test/live")  # listed by name: the address rules are skipped
    validate_source_url("rtsp://93.184.215.14/live")  # a public address needs no listing


def test_a_name_that_resolves_to_loopback_is_refused(settings):
    with ssrf.using_resolver(lambda host, port: ["203.0.113.7", "127.0.0.1"]):
        with pytest.raises(ValidationError, match="127.0.0.1"):
            validate_source_url("rtsp://rebind.test/live")


def test_a_name_that_does_not_resolve_is_saved_and_checked_again_when_opened(settings):
    def nothing(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with ssrf.using_resolver(nothing):
        validate_source_url("rtsp://camera.unknown/live")  # the node may see other DNS
        with pytest.raises(SourceUnavailable, match="cannot resolve"):
            VideoSource("rtsp://camera.unknown/live", open_timeout_s=1).open()


def test_each_refused_form_is_refused_when_opened_and_nothing_connects(listener, settings):
    for url in refused_forms(listener.port):
        with ssrf.using_resolver(no_dns):
            with pytest.raises(SourceRefused, match="refused"):
                VideoSource(url, open_timeout_s=2).open()
            grabbed = frames._grab(url, "k", 64, 36)
            assert grabbed.ok is False and "refused" in grabbed.reason, (url, grabbed)
            if url.startswith("http"):
                with pytest.raises(SourceRefused):
                    list(iter_pictures(url, timeout_s=2))
    assert listener.accepted == 0


def test_the_listener_does_see_a_connection_when_loopback_is_allowed(listener, loopback_sources):
    """The control: the listener above would have counted a connection had one been made."""
    with pytest.raises(SourceUnavailable):
        VideoSource(f"http://127.0.0.1:{listener.port}/v.mp4", open_timeout_s=2, read_timeout_s=2).open()
    assert listener.accepted >= 1


@pytest.fixture
def redirector(listener, settings) -> Iterator[str]:
    """An allowed HTTP source (on 127.0.0.2, listed) that redirects into the loopback listener."""
    target = f"http://127.0.0.1:{listener.port}/v.mp4"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.VIAS_SOURCE_ALLOWED_HOSTS = ["127.0.0.2"]
    yield f"http://127.0.0.2:{server.server_address[1]}/camera"
    server.shutdown()
    server.server_close()


def test_a_redirect_into_loopback_is_not_followed(redirector, listener):
    validate_source_url(redirector)  # the source itself is allowed
    with pytest.raises(SourceRefused, match="127.0.0.1"):
        VideoSource(redirector, open_timeout_s=3).open()
    grabbed = frames._grab(redirector, "k", 64, 36)
    assert grabbed.ok is False and "127.0.0.1" in grabbed.reason
    with pytest.raises(SourceRefused, match="127.0.0.1"):
        list(iter_pictures(redirector, timeout_s=3))
    assert listener.accepted == 0


# -- webhooks whose host does not resolve when saved ------------------------------------------


def unresolvable(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_webhook_host_that_does_not_resolve_is_saved_with_a_warning(alice):
    body = task_body(vchans=0, output={"webhook": {"url": "http://test/hook", "headers": {"a": "a"}}})
    with ssrf.using_resolver(unresolvable):
        created = alice.post("/tasks", body).json()
        changed = alice.put(f"/tasks/{created['data']['task_id']}", {"task_name": "renamed"}).json()
    assert created["ecode"] == 200, created
    assert created["data"]["output"]["webhook"]["url"] == "http://test/hook"
    [warning] = created["warnings"]
    assert "test" in warning and "checked again at each delivery" in warning
    assert changed["ecode"] == 200 and changed["warnings"] == created["warnings"]


def test_a_v2_batch_with_the_seeds_webhook_host_is_saved_with_a_warning(alice):
    from tests.test_v2_helpers import add_sources, batch_body

    body = batch_body(
        add_sources(alice, 1), output={"webhook": {"url": "http://test", "headers": {"a": "a"}}}
    )
    with ssrf.using_resolver(unresolvable):
        answer = alice.post(v2(alice, "/batch-tasks"), body)
    assert answer.status_code == 200, answer.json()
    assert answer.json()["succeed_count"] == 1 and len(answer.json()["warnings"]) == 1


def test_a_webhook_host_that_resolves_to_loopback_is_still_refused_when_saved(alice):
    body = task_body(vchans=0, output={"webhook": {"url": "http://hooks.test/in", "headers": {"a": "a"}}})
    with ssrf.using_resolver(lambda host, port: ["127.0.0.1"]):
        answer = alice.post("/tasks", body).json()
    assert answer["ecode"] == 400 and "loopback" in answer["enote"]
    assert Task.objects.count() == 0


def test_a_resolvable_webhook_gets_no_warning(alice):
    body = task_body(vchans=0, output={"webhook": {"url": "https://hooks.test/in", "headers": {"a": "a"}}})
    with ssrf.using_resolver(lambda host, port: ["93.184.215.14"]):
        answer = alice.post("/tasks", body).json()
    assert answer["ecode"] == 200 and "warnings" not in answer


@pytest.mark.django_db(transaction=True)
def test_a_node_fails_a_subtask_whose_source_is_refused_without_connecting(alice, listener, person_model):  # noqa: F811
    """A source saved before the policy (written straight into the row, as an old database has it)
    is refused by the node's job when it opens it: FAILED with the reason, no retry, no connection."""
    from tests.test_jobs import in_thread, security_task, state_of

    _task, subtask, node = security_task(alice, f"http://127.0.0.1:{listener.port}/live.mp4")
    thread, result = in_thread(subtask, node)
    thread.join(60)
    assert result == ["failed"] and state_of(subtask) == "FAILED"
    assert "SourceRefused" in Subtask.objects.get(pk=subtask.pk).status_reason
    assert listener.accepted == 0


@pytest.mark.parametrize("host", ["metadata.google.internal", "localhost", "cam.localhost", "instance-data"])
def test_a_webhook_to_a_metadata_or_local_name_is_refused_even_when_it_does_not_resolve(alice, host):
    """Found by bench/bench_hostile.py: such names did not resolve here and were saved with a warning."""
    body = task_body(vchans=0, output={"webhook": {"url": f"http://{host}/hook", "headers": {"a": "a"}}})
    with ssrf.using_resolver(unresolvable):
        answer = alice.post("/tasks", body).json()
    kind = "(loopback)" if "localhost" in host else "(cloud metadata)"
    assert answer["ecode"] == 400 and kind in answer["enote"], answer
    assert Task.objects.count() == 0
