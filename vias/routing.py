"""Websocket routes: the websocket command protocol (docs/websocket.md)."""

from __future__ import annotations

from django.urls import re_path

from tasks.api.ws.consumers import DevconfConsumer

websocket_urlpatterns: list = [
    re_path(r"^wsapi/v1/devconf_fx/?$", DevconfConsumer.as_asgi(), name="ws-devconf"),
]
