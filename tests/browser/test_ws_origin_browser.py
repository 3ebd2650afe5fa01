"""A real browser (Playwright + Debian's Chromium) logged in to the admin, on a page of another
origin (same host, another port: the browser sends the session cookie there too), cannot open
the websocket with that cookie; from the admin's own origin it can (vias/lib/ws_origin.py)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser.conftest import login

# Opens the socket, then reports whether it opened and how it closed.
OPEN_SOCKET = """(url) => new Promise((done) => {
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => { opened = true; ws.send(JSON.stringify(
      {command: "post /wsapi/v1/devconf_fx/echo", id: "b", params: {}})); };
  ws.onmessage = (m) => { done({opened, message: JSON.parse(m.data)}); ws.close(); };
  ws.onclose = (e) => done({opened, code: e.code});
  setTimeout(() => done({opened, timeout: true}), 10000);
})"""


class Blank(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"<!doctype html><title>elsewhere</title><p>another origin</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_session_cookie_opens_the_socket_only_from_the_admins_own_origin(page, asgi_server, other_origin):
    login(page, asgi_server)
    ws_url = asgi_server.replace("http://", "ws://") + "/wsapi/v1/devconf_fx"

    page.goto(f"{asgi_server}/admin/")
    own = page.evaluate(OPEN_SOCKET, ws_url)
    assert own["opened"] is True and own["message"]["ecode"] == 200, own

    page.goto(other_origin)
    foreign = page.evaluate(OPEN_SOCKET, ws_url)
    # Refused at the handshake (HTTP 403): never opened, closed abnormally (1006). An accepted but
    # unauthenticated socket would have opened and then closed with 4401.
    assert foreign == {"opened": False, "code": 1006}, foreign
