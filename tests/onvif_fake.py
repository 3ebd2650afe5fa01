"""A small ONVIF endpoint for the tests: a local HTTP server answering the SOAP requests a
GotoPreset needs (GetServices, GetProfiles, GotoPreset) and recording what it was asked.
The camera is the one thing that cannot exist here; everything on our side is real."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"'
    ' xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
    "<s:Body>{body}</s:Body></s:Envelope>"
)
SERVICE = (
    "<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base}{path}</tds:XAddr>"
    "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
)
SERVICES = (
    ("http://www.onvif.org/ver10/device/wsdl", "/onvif/device_service"),
    ("http://www.onvif.org/ver10/media/wsdl", "/onvif/media_service"),
    ("http://www.onvif.org/ver20/ptz/wsdl", "/onvif/ptz_service"),
)
PROFILES = (
    '<trt:GetProfilesResponse><trt:Profiles token="profile_main" fixed="true">'
    "<tt:Name>main</tt:Name></trt:Profiles></trt:GetProfilesResponse>"
)
FIRST_BODY_ELEMENT = re.compile(rb"<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)", re.S)
PRESET_TOKEN = re.compile(rb"<(?:[\w-]+:)?PresetToken>([^<]*)<")
PROFILE_TOKEN = re.compile(rb"<(?:[\w-]+:)?ProfileToken>([^<]*)<")


class FakeOnvifCamera:
    """`with FakeOnvifCamera() as camera:` — camera.url is its device service; camera.calls the
    operations asked (in order) and camera.presets the (profile, preset) of each GotoPreset."""

    def __init__(self, advertised: str = "") -> None:
        # `advertised`: the base of the service addresses (XAddrs) it answers, when not its own.
        self.advertised = advertised
        self.calls: list[str] = []
        self.presets: list[tuple[str, str]] = []
        self.authorised: list[bool] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                owner._answer(self, self.rfile.read(length))

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base}/onvif/device_service"

    def _answer(self, handler: BaseHTTPRequestHandler, request: bytes) -> None:
        found = FIRST_BODY_ELEMENT.search(request)
        operation = found.group(1).decode() if found else "?"
        self.calls.append(operation)
        self.authorised.append(b"UsernameToken" in request)
        if operation == "GetServices":
            body = "<tds:GetServicesResponse>{}</tds:GetServicesResponse>".format(
                "".join(
                    SERVICE.format(ns=ns, base=self.advertised or self.base, path=path)
                    for ns, path in SERVICES
                )
            )
        elif operation == "GetProfiles":
            body = PROFILES
        elif operation == "GotoPreset":
            preset = PRESET_TOKEN.search(request)
            profile = PROFILE_TOKEN.search(request)
            self.presets.append(
                (profile.group(1).decode() if profile else "", preset.group(1).decode() if preset else "")
            )
            body = "<tptz:GotoPresetResponse/>"
        else:
            handler.send_response(400)
            handler.end_headers()
            return
        payload = ENVELOPE.format(body=body).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def __enter__(self) -> FakeOnvifCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
