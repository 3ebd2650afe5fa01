"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vias.settings")
# Django must be set up before anything imports models (consumers, routing).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from vias.lib import framing  # noqa: E402
from vias.lib.ws_origin import WebsocketOriginPolicy  # noqa: E402
from vias.routing import websocket_urlpatterns  # noqa: E402

# 431 for oversized headers and 1009 for oversized websocket frames, not dropped connections.
framing.install()

# One process serves the whole system on the embedded default, so it serves static files too.
http_app = ASGIStaticFilesHandler(django_http) if settings.STATIC_URL else django_http

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Tokens from anywhere, the session cookie only from our own origin (vias/lib/ws_origin.py).
        "websocket": WebsocketOriginPolicy(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
