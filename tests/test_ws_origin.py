# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""Who may open the websocket from where (vias/lib/ws_origin.py, docs/websocket.md "Connecting"),
against a live daphne with the real `websockets` client, which sends no Origin unless told to:

- a token (header or ?token=) is enough whatever the Origin, or with none;
- the session cookie alone needs an Origin equal to the address connected to (host and port);
  without an Origin, or from another port or host, the handshake is refused with 403.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.test_ws_e2e import Server
from tests.ws_helpers import cmd, in_sync_thread, private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "origin-test-password-1"


@pytest.fixture
def server(private_redis):
    running = Server(private_redis.url)
    running.start()
    yield running
    running.stop()


@in_sync_thread
def staff_member_of(project, username: str) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    # The server process knows only Django's default hashers, not the suite's fast MD5.
    hashed = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user = get_user_model().objects.create(username=username, is_staff=True, password=hashed)
    project.members.add(user)


def admin_session_cookie(base: str, username: str) -> str:
    """Log in through the admin's login page, as a browser does; the session cookie's value."""
    with httpx.Client(base_url=base, timeout=15) as client:
        client.get("/admin/login/")
        answer = client.post(
            "/admin/login/?next=/admin/",
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
                "next": "/admin/",
            },
            headers={"Referer": f"{base}/admin/login/"},
        )
        assert answer.status_code == 302, answer.text[:500]
        return client.cookies["sessionid"]


async def echo_over(ws) -> dict:
    await ws.send(json.dumps({"command": cmd("post", "echo"), "id": "o", "params": {"x": 1}}))
    return json.loads(await asyncio.wait_for(ws.recv(), 15))


async def refused_status(url: str, **options) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, open_timeout=15, **options):
            pass
    return refused.value.response.status_code


async def test_a_token_client_without_origin_connects(server, alice):
    async with websockets.connect(server.url, additional_headers={"Authorization": alice.token}) as ws:
        answer = await echo_over(ws)
    assert answer["ecode"] == 200 and answer["id"] == "o"


async def test_a_query_token_from_a_foreign_origin_connects(server, alice):
    url = f"{server.url}?token={alice.token}"
    async with websockets.connect(url, origin="http://elsewhere.example:3000") as ws:
        assert (await echo_over(ws))["ecode"] == 200


async def test_a_bad_token_without_origin_is_told_why_not_refused_blind(server, alice):
    async with websockets.connect(server.url, additional_headers={"Authorization": "x" * 40}) as ws:
        told = json.loads(await asyncio.wait_for(ws.recv(), 15))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 15)
    assert told["push"] == "auth" and told["ecode"] == 401
    assert ws.close_code == 4401


async def test_a_session_cookie_needs_the_servers_own_origin(server, alice):
    await staff_member_of(alice.project, "carol")
    base = f"http://127.0.0.1:{server.port}"
    cookie = {"Cookie": f"sessionid={await asyncio.to_thread(admin_session_cookie, base, 'carol')}"}

    async with websockets.connect(server.url, additional_headers=cookie, origin=base) as ws:
        assert (await echo_over(ws))["ecode"] == 200  # the admin's own pages

    assert await refused_status(server.url, additional_headers=cookie) == 403  # no Origin
    other_port = f"http://127.0.0.1:{server.port + 1}"
    assert await refused_status(server.url, additional_headers=cookie, origin=other_port) == 403
    other_host = f"http://localhost:{server.port}"  # also in ALLOWED_HOSTS, but not this address
    assert await refused_status(server.url, additional_headers=cookie, origin=other_host) == 403
    other_scheme = f"https://127.0.0.1:{server.port}"
    assert await refused_status(server.url, additional_headers=cookie, origin=other_scheme) == 403


async def test_an_empty_token_does_not_unlock_the_cookie_from_another_origin(server, alice):
    await staff_member_of(alice.project, "dave")
    base = f"http://127.0.0.1:{server.port}"
    cookie = {"Cookie": f"sessionid={await asyncio.to_thread(admin_session_cookie, base, 'dave')}"}
    # parse_qsl drops "token=" and the consumer would fall back to the session: so must the check.
    url = f"{server.url}?token="
    assert await refused_status(url, additional_headers=cookie, origin="http://evil.example") == 403
