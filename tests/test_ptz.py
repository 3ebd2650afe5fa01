"""ONVIF GotoPreset through the real client library, against a local endpoint that records what
it was asked (tests/onvif_fake.py); and the camera's address under the source URL policy: a
refused address (this machine, metadata) is never asked anything, nor is a refused service address
the camera answers. Host names go through an injected resolver (no DNS)."""

from __future__ import annotations

import socket

import pytest

from analysis.ptz import Camera, PtzError, goto_preset
from tests.onvif_fake import FakeOnvifCamera
from vias.lib import ssrf


def test_goto_preset_asks_the_camera_for_the_preset_on_its_first_profile(loopback_sources):
    with FakeOnvifCamera() as camera:
        goto_preset(Camera(camera.url, "operator", "secret"), 3)
        goto_preset(Camera(camera.url, "operator", "secret"), 7)
    assert camera.presets == [("profile_main", "3"), ("profile_main", "7")]
    assert "GetServices" in camera.calls and "GetProfiles" in camera.calls
    assert all(camera.authorised)  # WS-Security UsernameToken on every request


def test_an_unreachable_camera_is_a_ptz_error(loopback_sources):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    with pytest.raises(PtzError):
        goto_preset(Camera(f"http://127.0.0.1:{port}/onvif/device_service"), 1, timeout_s=5)


@pytest.mark.parametrize("answer", ["127.0.0.1", "169.254.169.254", "::1"])
def test_a_camera_name_that_now_resolves_to_a_refused_address_is_never_asked(answer):
    with FakeOnvifCamera() as camera, ssrf.using_resolver(lambda host, port: [answer]):
        port = camera.url.rsplit(":", 1)[1].split("/")[0]
        with pytest.raises(PtzError, match="is refused"):
            goto_preset(Camera(f"http://dome.lan:{port}/onvif/device_service"), 1, timeout_s=5)
    assert camera.calls == []


def test_a_service_address_the_camera_answers_is_checked_too(loopback_sources):
    with FakeOnvifCamera(advertised="http://169.254.169.254") as camera:
        with pytest.raises(PtzError, match="service address the camera answered .* is refused"):
            goto_preset(Camera(camera.url, "operator", "secret"), 1, timeout_s=5)
    assert camera.calls == ["GetServices"]  # nothing asked of the metadata address


@pytest.mark.django_db
def test_a_start_with_a_dome_address_refused_now_fails_naming_the_camera(alice, settings):
    """A private (LAN) ONVIF address is stored (never opened here); once the policy refuses it
    (VIAS_SOURCE_ALLOW_PRIVATE false), or its name resolves to a refused address, the task does not
    start, and the answer names the camera and why."""
    from subtasks.models import Subtask
    from tests.analysis_helpers import live_node
    from tests.conftest import task_body

    body = task_body(vchans=2)
    body["vchans"][0].update(ptz=True, onvif_url="http://10.0.0.5/onvif/device_service", onvif_username="op")
    body["vchans"][1].update(ptz=True, onvif_url="http://dome-2.lan/onvif/device_service")
    with ssrf.using_resolver(lambda host, port: ["10.0.0.6"]):
        answer = alice.post("/tasks", body).json()
    assert answer["ecode"] == 200, answer
    task_id = answer["data"]["task_id"]
    for sub in alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]:
        alice.post(f"/subtasks/{sub['subtask_id']}/config_complete")
    live_node(capacity=2)

    settings.VIAS_SOURCE_ALLOW_PRIVATE = False
    refused = alice.post(f"/tasks/{task_id}/start").json()
    assert refused["ecode"] == 409 and "ONVIF address of dome camera cam-0 is refused" in refused["enote"]
    assert "private" in refused["enote"]

    settings.VIAS_SOURCE_ALLOW_PRIVATE = True
    settings.VIAS_SOURCE_ALLOWED_HOSTS = []
    with ssrf.using_resolver(lambda host, port: ["169.254.169.254"]):
        refused = alice.post(f"/tasks/{task_id}/start").json()
    assert refused["ecode"] == 409 and "dome camera cam-1 is refused" in refused["enote"]
    assert set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True)) == {"CONFIGURED"}

    with ssrf.using_resolver(lambda host, port: ["10.0.0.6"]):
        assert alice.post(f"/tasks/{task_id}/start").json()["ecode"] == 200
