# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""Secrets like a security-minded Django project: with SECRET_KEY unset a random key is made once
per data directory and kept there (never a fixed development key); session and CSRF cookies are
Secure over https; MEDIA_ROOT is never served as static files (vias/lib/env.py, settings, urls)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from tests.test_ws_e2e import Server
from tests.ws_helpers import private_redis  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PRINT_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"
OLD_FIXED_KEY = "vias-insecure-development-key-change-me"


def key_in(data_dir: Path, **env: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    environment.update(DJANGO_SETTINGS_MODULE="vias.settings", VIAS_DATA_DIR=str(data_dir), **env)
    return subprocess.Popen(
        [sys.executable, "-c", f"import django; django.setup(); {PRINT_KEY}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def keys(*processes: subprocess.Popen) -> list[str]:
    out = []
    for process in processes:
        stdout, _err = process.communicate(timeout=60)
        assert process.returncode == 0
        out.append(stdout.strip())
    return out


def test_an_unset_secret_key_is_generated_once_per_data_directory_and_kept(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    # Four processes starting at once on a fresh directory (web, node, commands) agree on one key.
    together = keys(*(key_in(first) for _ in range(4)))
    [again] = keys(key_in(first))
    [other] = keys(key_in(second))

    assert len(set(together)) == 1 and together[0] == again
    key = again
    assert len(key) >= 50 and key != OLD_FIXED_KEY and other != key
    kept = first / "secret-key.txt"
    assert kept.read_text().strip() == key
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [p.name for p in first.iterdir() if p.name.startswith(".secret-key-")] == []  # no leftovers


def test_a_set_secret_key_is_used_and_nothing_is_written(tmp_path):
    [key] = keys(key_in(tmp_path, SECRET_KEY="k" * 60))
    assert key == "k" * 60 and not (tmp_path / "secret-key.txt").exists()


def test_the_test_sessions_own_key_is_a_generated_one():
    assert settings.SECRET_KEY != OLD_FIXED_KEY
    assert (Path(settings.DATA_DIR) / "secret-key.txt").read_text().strip() == settings.SECRET_KEY


@pytest.fixture
def staff(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("op", password="op-password-123", is_staff=True)


def login_cookies(client: Client, **extra) -> dict:
    client.get("/admin/login/", **extra)
    answer = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "op",
            "password": "op-password-123",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        **extra,
    )
    assert answer.status_code == 302
    return {name: answer.cookies[name] for name in ("sessionid", "csrftoken") if name in answer.cookies}


def test_session_and_csrf_cookies_are_secure_over_https(staff):
    cookies = login_cookies(
        Client(enforce_csrf_checks=True), secure=True, HTTP_REFERER="https://testserver/admin/login/"
    )
    assert set(cookies) == {"sessionid", "csrftoken"}
    assert all(cookie["secure"] for cookie in cookies.values())
    assert cookies["sessionid"]["httponly"]


def test_cookies_over_plain_http_are_not_marked_secure(staff):
    """The embedded default on http://127.0.0.1 keeps working: a Secure cookie would not come back."""
    cookies = login_cookies(Client())
    assert cookies["sessionid"]["secure"] == ""


def test_behind_a_tls_proxy_the_proxy_header_counts_as_https(staff, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookies = login_cookies(
        Client(enforce_csrf_checks=True),
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_HOST="testserver",  # as the proxy forwards it (else Django adds the plain-http port)
        HTTP_REFERER="https://testserver/admin/login/",
    )
    assert cookies["sessionid"]["secure"] is True


@pytest.mark.django_db(transaction=True)
def test_media_is_never_served_as_static_files_even_with_debug(private_redis):
    server = Server(private_redis.url, DEBUG="true")
    snapshot = Path(server.data_dir) / "media" / "events" / "1.jpg"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8\xff secret snapshot")
    server.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/media/events/1.jpg", timeout=15)
    finally:
        server.stop()
    assert answer.status_code == 404 and b"secret" not in answer.content  # DEBUG's own 404 page
