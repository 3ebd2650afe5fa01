# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""Redis going away: sockets are told and closed with 1012, nothing crashes, and service
resumes once Redis is back. Uses a redis-server this test stops and starts itself."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from tests.ws_helpers import ask, cmd, communicator, connect, next_push, private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


async def closed_with_1012(ws) -> dict:
    """The 503 message, then the close frame."""
    message = await ws.receive_json_from(timeout=10)
    assert message["ecode"] == 503, message
    assert "Redis" in message["enote"]
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1012}
    return message


async def test_redis_down_closes_sockets_with_1012_and_service_resumes(private_redis, alice):
    ws = await connect(alice.token)
    assert (await ask(ws, cmd("post", "subscriptions")))["ecode"] == 200
    await next_push(ws, "snapshot")

    private_redis.stop()
    told = await closed_with_1012(ws)
    assert told["push"] == "unavailable"

    # while it is down, a new socket is accepted, told, and closed the same way (clients back off and retry)
    again = communicator(alice.token)
    assert (await again.connect(timeout=5))[0]
    await closed_with_1012(again)

    private_redis.start()
    await asyncio.sleep(0.2)
    back = await connect(alice.token)
    assert (await ask(back, cmd("post", "subscriptions")))["ecode"] == 200
    await get_channel_layer().group_send(
        "project.proj-alice", {"type": "vias.event", "kind": "vchan.created", "project_id": "proj-alice"}
    )
    assert (await next_push(back, "vchan.created"))["ecode"] == 200
    assert (await ask(back, cmd("get", "tasks")))["ecode"] == 200
    await back.disconnect()


async def test_a_command_meeting_the_outage_is_answered_503_and_the_socket_closed(private_redis, alice):
    ws = await connect(alice.token)
    private_redis.stop()
    await ws.send_json_to({"command": cmd("post", "subscriptions"), "id": "s1", "params": {}})
    # Either the command or the socket's channel-layer reader meets the outage first: one 503, then 1012.
    await closed_with_1012(ws)
    assert await ws.receive_nothing(timeout=0.3)
