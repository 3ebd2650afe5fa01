"""The websocket command protocol: authentication on connect, the request/answer envelope,
malformed messages, several requests in flight. Real channels-redis layer (a private Redis)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.conftest import make_actor
from tests.ws_helpers import (  # noqa: F401
    FakeDevice,
    answer,
    ask,
    cmd,
    communicator,
    connect,
    in_sync_thread,
    private_redis,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_redis")]


@pytest.fixture
def alice_t(db):
    return make_actor("alice", "proj-alice")


async def test_echo_answers_in_the_envelope_and_echoes_command_src_page_and_id(alice_t):
    ws = await connect(alice_t.token)
    await ws.send_json_to(
        {"command": f"post {cmd('post', 'echo').split()[1]}", "src_page": "p1", "id": 7, "params": {"a": 1}}
    )
    body = await answer(ws)
    assert body == {
        "command": "post /wsapi/v1/devconf_fx/echo",
        "src_page": "p1",
        "id": 7,
        "ecode": 200,
        "enote": "OK",
        "data": {"a": 1},
    }
    await ws.disconnect()


@pytest.mark.parametrize("how", ["authorization", "token_scheme", "x_auth_token", "query"])
async def test_every_token_form_authenticates(alice_t, how):
    token = alice_t.token
    if how == "authorization":
        ws = await connect(token)
    elif how == "token_scheme":
        ws = await connect(headers=[(b"authorization", f"Token {token}".encode())])
    elif how == "x_auth_token":
        ws = await connect(headers=[(b"x-auth-token", token.encode())])
    else:
        ws = await connect(query=f"token={token}")
    body = await ask(ws, cmd("get", "tasks"))
    assert (body["ecode"], body["total_num"]) == (200, 0)
    await ws.disconnect()


async def test_admin_session_cookie_authenticates(alice_t):
    ws = await session_socket("alice")
    body = await ask(ws, cmd("get", "tasks"))
    assert body["ecode"] == 200
    await ws.disconnect()
    # channels' AuthMiddleware read the session in asgiref's shared thread; close what it opened.
    await sync_to_async(close_all_connections)()


async def session_socket(username: str, query: str = ""):
    def login() -> str:
        client = Client()
        assert client.login(username=username, password=f"{username}-password-123")
        return client.cookies["sessionid"].value

    session = await in_sync_thread(login)()
    ws = communicator(headers=[(b"cookie", f"sessionid={session}".encode())], query=query)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws


@pytest.mark.parametrize(
    ("who", "project", "allowed"),
    [
        ("alice", "proj-alice", True),  # a member picks the project
        ("alice", "proj-bob", False),  # not hers
        ("root", "proj-bob", True),  # a superuser operates every project (the admin's live pages)
        ("root", "no-such-project", False),
    ],
)
async def test_a_session_user_may_pick_a_project_they_may_act_in(alice_t, who, project, allowed):
    def setup() -> None:
        from django.contrib.auth import get_user_model

        make_actor("bob", "proj-bob")
        get_user_model().objects.create_superuser("root", "", "root-password-123")

    await in_sync_thread(setup)()
    ws = await session_socket(who, f"project={project}")
    if allowed:
        body = await ask(ws, cmd("get", "tasks"))
        assert body["ecode"] == 200
    else:
        message = await ws.receive_json_from(timeout=5)
        assert message["push"] == "auth" and message["ecode"] == 403 and project in message["enote"]
    await ws.disconnect()
    await sync_to_async(close_all_connections)()


def close_all_connections() -> None:
    from django.db import connections

    connections.close_all()


@pytest.mark.parametrize(
    ("token", "fragment"),
    [(None, "API token is required"), ("x" * 40, "unknown API token"), ("bad token!", "malformed")],
)
async def test_no_or_bad_credentials_are_told_then_closed_4401(alice_t, token, fragment):
    ws = communicator(token)
    connected, _ = await ws.connect(timeout=5)
    assert connected  # accepted so that the reason can be read
    message = await ws.receive_json_from(timeout=5)
    assert message["push"] == "auth" and message["ecode"] == 401 and fragment in message["enote"]
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_messages_follow_accept_language(alice_t):
    ws = await connect(alice_t.token, lang="zh-CN,zh;q=0.9")
    body = await ask(ws, cmd("get", "tasks"), {"task_id": "nope"})
    assert body["ecode"] == 404
    assert body["enote"] == "task_id: 任务 nope 不存在"
    await ws.disconnect()


@pytest.mark.parametrize(
    ("raw", "ecode", "fragment"),
    [
        ("not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ('{"src_page": "x"}', 400, "command is required"),
        ('{"command": "fetch /wsapi/v1/devconf_fx/tasks"}', 400, "unknown verb"),
        ('{"command": "get"}', 400, "command must be"),
        ('{"command": "get /elsewhere/tasks"}', 404, "unknown path"),
        ('{"command": "get /wsapi/v1/devconf_fx/cats"}', 404, "unknown resource"),
        ('{"command": "patch /wsapi/v1/devconf_fx/tasks"}', 400, "unknown verb"),
        ('{"command": "post /wsapi/v1/devconf_fx/tasks/subtasks"}', 404, "use get"),
        ('{"command": "get /wsapi/v1/devconf_fx/tasks", "params": [1]}', 400, "params must be"),
        ('{"command": "delete /wsapi/v1/devconf_fx/tasks", "params": {}}', 400, "task_id"),
        ('{"command": "get /wsapi/v1/devconf_fx/tasks", "params": {"limit": 0}}', 400, "limit"),
    ],
)
async def test_malformed_messages_get_an_error_and_the_socket_stays_open(alice_t, raw, ecode, fragment):
    ws = await connect(alice_t.token)
    await ws.send_to(text_data=raw)
    body = await answer(ws)
    assert body["ecode"] == ecode, body
    assert fragment in body["enote"], body
    # still open and serving
    assert (await ask(ws, cmd("post", "echo"), {"n": 1}))["data"] == {"n": 1}
    await ws.disconnect()


async def test_a_malformed_request_still_echoes_what_it_can(alice_t):
    ws = await connect(alice_t.token)
    await ws.send_json_to({"command": "get /wsapi/v1/devconf_fx/nothing", "src_page": "pg", "id": "r-1"})
    body = await answer(ws)
    assert (body["command"], body["src_page"], body["id"], body["ecode"]) == (
        "get /wsapi/v1/devconf_fx/nothing",
        "pg",
        "r-1",
        404,
    )
    await ws.disconnect()


async def test_binary_frames_with_json_are_read_and_other_bytes_refused(alice_t):
    ws = await connect(alice_t.token)
    await ws.send_to(bytes_data=b'{"command": "post /wsapi/v1/devconf_fx/echo", "params": {"b": 2}}')
    assert (await answer(ws))["data"] == {"b": 2}
    await ws.send_to(bytes_data=b"\xff\xfe")
    assert (await answer(ws))["ecode"] == 400
    await ws.disconnect()


async def test_a_slow_command_does_not_hold_up_fast_ones(alice_t, settings):
    """A storage-config replace waits 1.5 s for a device; echoes sent after it are answered first."""
    from subtasks.models import Subtask
    from tasks.models import StoreConf, Task

    @in_sync_thread
    def running_subtask():
        conf = StoreConf.objects.create(
            project=alice_t.project, unid="sc1", name="n", file_ext="txt", content=b"a"
        )
        task = Task.objects.create(
            project=alice_t.project,
            task_name="t",
            algo_type="1",
            run_dt="2020-01-01T00:00:00Z",
            play_url="rtsp://h/x",
            store_conf=conf,
        )
        return Subtask.objects.create(task=task, state="RUNNING", config_complete=True).pk

    pk = await running_subtask()
    ws = await connect(alice_t.token)
    with FakeDevice(pk, delay=1.5):
        await ws.send_json_to(
            {
                "command": cmd("put", "store_confs"),
                "id": "slow",
                "params": {"unid": "sc1", "file_b64": "Yg=="},
            }
        )
        await asyncio.sleep(0.1)
        for i in range(3):
            await ws.send_json_to({"command": cmd("post", "echo"), "id": f"fast-{i}", "params": {}})
        order = [(await answer(ws))["id"] for _ in range(4)]
    assert order == ["fast-0", "fast-1", "fast-2", "slow"]
    await ws.disconnect()


async def test_too_many_requests_in_flight_are_answered_429(alice_t, settings):
    from subtasks.models import Subtask
    from tasks.models import StoreConf, Task

    settings.VIAS_WS_MAX_IN_FLIGHT = 1

    @in_sync_thread
    def running_subtask():
        conf = StoreConf.objects.create(
            project=alice_t.project, unid="sc1", name="n", file_ext="txt", content=b"a"
        )
        task = Task.objects.create(
            project=alice_t.project,
            task_name="t",
            algo_type="1",
            run_dt="2020-01-01T00:00:00Z",
            play_url="rtsp://h/x",
            store_conf=conf,
        )
        return Subtask.objects.create(task=task, state="RUNNING", config_complete=True).pk

    pk = await running_subtask()
    ws = await connect(alice_t.token)
    with FakeDevice(pk, delay=1.0):
        await ws.send_json_to({"command": cmd("put", "store_confs"), "id": 1, "params": {"unid": "sc1"}})
        await asyncio.sleep(0.2)
        busy = await ask(ws, cmd("post", "echo"), id=2)
        assert (busy["id"], busy["ecode"]) == (2, 429)
        assert (await answer(ws))["id"] == 1
    await ws.disconnect()


def test_the_http_endpoint_gives_the_websocket_address(alice_t, settings):
    body = alice_t.get("/wsapi/address").json()
    assert body["ecode"] == 200
    assert body["data"]["ws_url"] == "ws://testserver/wsapi/v1/devconf_fx"
    settings.VIAS_WS_PUBLIC_URL = "wss://vias.example/wsapi/v1/devconf_fx"
    assert alice_t.get("/wsapi/address").json()["data"]["ws_url"] == settings.VIAS_WS_PUBLIC_URL
    anonymous = Client().get("/wsapi/address")
    assert anonymous.status_code == 401 and anonymous.json()["ecode"] == 401
