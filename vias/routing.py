"""Websocket routes (the websocket command protocol fills this in)."""

from __future__ import annotations

websocket_urlpatterns: list = []
