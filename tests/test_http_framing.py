# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""HTTP and websocket framing against a live daphne, with raw sockets (vias/lib/framing.py,
vias/lib/middleware.py): a chunked JSON body is read, not dropped; an oversized one is 413;
oversized headers answer 431 in the dialect's envelope; a websocket frame over the cap is closed
with 1009 and a reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest
import websockets

from tests.conftest import task_body
from tests.test_ws_e2e import Server
from tests.ws_helpers import private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

BODY_CAP = 256 * 1024
FRAME_CAP = 1024 * 1024


@pytest.fixture
def server(private_redis):
    running = Server(private_redis.url, VIAS_MAX_BODY_BYTES=str(BODY_CAP))
    running.start()
    yield running
    running.stop()


def exchange(port: int, request: bytes, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before taking everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    assert answer, "the server closed without an answer"
    head, _sep, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _c, v in (line.partition(":") for line in header_lines)}
    if "chunked" in headers.get("transfer-encoding", ""):
        body = dechunk(body)
    return int(status_line.split()[1]), headers, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _sep, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def chunked(payload: bytes, piece: int = 1000) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + piece]), payload[i : i + piece])
        for i in range(0, len(payload), piece)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def post_chunked(port: int, path: str, token: str, payload: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode() + chunked(payload)


def test_a_chunked_json_body_is_read(server, alice):
    payload = json.dumps(task_body(vchans=1, task_name="chunked task")).encode()
    status, _headers, body = exchange(server.port, post_chunked(server.port, "/tasks", alice.token, payload))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["ecode"] == 200 and answer["data"]["task_name"] == "chunked task", answer
    listing = (
        f"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {alice.token}\r\nConnection: close\r\n\r\n"
    )
    _status, _h, listed = exchange(server.port, listing.encode())
    assert [t["task_name"] for t in json.loads(listed)["list_data"]] == ["chunked task"]


def test_a_chunked_body_over_the_cap_is_413_in_the_envelope(server, alice):
    payload = b'{"task_name": "' + b"x" * (BODY_CAP + 10) + b'"}'
    status, _headers, body = exchange(server.port, post_chunked(server.port, "/tasks", alice.token, payload))
    answer = json.loads(body)
    assert (status, answer["ecode"]) == (413, 413) and "limit" in answer["enote"], answer


@pytest.mark.parametrize(
    ("path", "key"),
    [("/tasks", "ecode"), ("/v2/proj/tasks", "error_code"), ("/vcs/console/task/getComputeTasks", "Code")],
)
def test_one_60_kB_header_answers_431_in_the_dialects_envelope(server, path, key):
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'a' * 60_000}\r\n\r\n".encode()
    status, headers, body = exchange(server.port, request)
    assert status == 431 and headers["content-type"] == "application/json"
    assert key in json.loads(body), body


def test_many_headers_adding_up_to_60_kB_answer_431(server):
    many = "".join(f"X-H{i}: {'b' * 1000}\r\n" for i in range(60))
    status, _headers, body = exchange(
        server.port, f"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode()
    )
    assert status == 431 and json.loads(body)["ecode"] == 431


def test_headers_under_the_limit_are_served(server, alice):
    request = f"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {alice.token}\r\nX-Pad: {'c' * 8000}\r\nConnection: close\r\n\r\n"
    status, _headers, body = exchange(server.port, request.encode())
    assert status == 200 and json.loads(body)["ecode"] == 200


async def test_a_websocket_frame_over_the_cap_is_closed_with_1009_and_a_reason(server, alice):
    async with websockets.connect(server.url, additional_headers={"Authorization": alice.token}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            # The close may come while the frame is still being sent (send raises) or after it (recv).
            await ws.send("x" * (10 * 1024 * 1024))
            await asyncio.wait_for(ws.recv(), 30)
    assert closed.value.rcvd is not None, "dropped without a close frame"
    assert closed.value.rcvd.code == 1009
    assert str(FRAME_CAP) in closed.value.rcvd.reason


@pytest.mark.parametrize(("path", "key"), [("/tasks/0/pictures", "ecode"), ("/v2/proj/source", "error_code")])
def test_a_multipart_body_the_server_cannot_parse_is_400_in_the_envelope(server, alice, path, key):
    """Twisted parses multipart bodies itself and used to answer a bare 400 with no body."""
    boundary = "c637e12e2b1a998d80d1b087531af51c"
    body = f"--{boundary}--\r\n".encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {alice.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, headers, answer = exchange(server.port, request)
    assert status == 400 and headers["content-type"] == "application/json"
    assert key in json.loads(answer), answer
