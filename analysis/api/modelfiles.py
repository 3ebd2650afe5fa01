"""The registered model files, for nodes that have no registry access (`fetch_models --from`).

Authenticated with the node key (`X-Vias-Node-Key`, derived from the shared SECRET_KEY:
vias/lib/nodekey.py) or, like every native endpoint, an API token.
"""

from __future__ import annotations

from django.http import FileResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response

from analysis.modelfiles import served_file, served_models
from vias.lib.api import NativeAPIView
from vias.lib.auth import HasProject
from vias.lib.errors import NotFound
from vias.lib.nodekey import HEADER, is_node_key


class NodeKeyOrProject(permissions.BasePermission):
    message = "a node key (X-Vias-Node-Key) or an API token is required"

    def has_permission(self, request: Request, view) -> bool:
        return is_node_key(request.headers.get(HEADER)) or HasProject().has_permission(request, view)


class ModelList(NativeAPIView):
    permission_classes = [NodeKeyOrProject]

    @extend_schema(
        responses=OpenApiTypes.OBJECT, summary="The registered models this host serves, with their files"
    )
    def get(self, request: Request) -> Response:
        return self.ok(models=served_models())


class ModelFileDownload(NativeAPIView):
    permission_classes = [NodeKeyOrProject]

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="One file of a registered model",
    )
    def get(self, request: Request, name: str, path: str) -> FileResponse:
        found = served_file(name, path)
        if found is None:
            raise NotFound(
                _("model %(name)s has no file %(path)s") % {"name": name, "path": path}, field="path"
            )
        return FileResponse(found.absolute.open("rb"), content_type="application/octet-stream")
