"""GET /wsapi/address: where to open the websocket (the seed's 获取ws连接地址的接口)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from tasks.api.ws.protocol import PATH
from vias.lib.api import NativeAPIView


class WsAddress(NativeAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The websocket address of the command protocol")
    def get(self, request: Request) -> Response:
        url = settings.VIAS_WS_PUBLIC_URL or (
            f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}{PATH}"
        )
        return self.ok(
            data={
                "ws_url": url,
                "path": PATH,
                "auth": ["Authorization header", "X-Auth-Token header", "token query parameter", "session"],
                "ack_timeout": settings.VIAS_ACK_TIMEOUT,
            }
        )
