"""ONVIF GotoPreset through the real client library, against a local endpoint that records what
it was asked (tests/onvif_fake.py)."""

from __future__ import annotations

import socket

import pytest

from analysis.ptz import Camera, PtzError, goto_preset
from tests.onvif_fake import FakeOnvifCamera


def test_goto_preset_asks_the_camera_for_the_preset_on_its_first_profile():
    with FakeOnvifCamera() as camera:
        goto_preset(Camera(camera.url, "operator", "secret"), 3)
        goto_preset(Camera(camera.url, "operator", "secret"), 7)
    assert camera.presets == [("profile_main", "3"), ("profile_main", "7")]
    assert "GetServices" in camera.calls and "GetProfiles" in camera.calls
    assert all(camera.authorised)  # WS-Security UsernameToken on every request


def test_an_unreachable_camera_is_a_ptz_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    with pytest.raises(PtzError):
        goto_preset(Camera(f"http://127.0.0.1:{port}/onvif/device_service"), 1, timeout_s=5)
