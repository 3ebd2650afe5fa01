"""The VIAS v2 algorithm services catalogue (ListUserServices, ShowServiceDetail): what this
installation can run, read from the algorithm types and the registered detectors.

One service per algorithm type and per detector model a task may name (the service names
`tasks.api.v2.algorithms.service_spec` knows). A service is `service_running` when every detector
category it needs has an enabled registered detector (or OpenCV's built-in face cascade), else
`not_deployed`; its `alg_version` names the detectors it would run (docs/dialects.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analysis.dispatch import built_in_categories
from analysis.models import Detector
from tasks.api.v2.algorithms import service_spec
from tasks.api.v2.sources import ms
from tasks.api.v2.views import V2APIView, as_sent
from tasks.choices import AlgoType, DetectorModel
from vias.lib.errors import NotFound

FUNCTION_VERSION = "1.0.0"
RUNNING, NOT_DEPLOYED = "service_running", "not_deployed"
ALG_STATUSES = (
    "service_running",
    "service_deploying",
    "service_failed",
    "service_stopping",
    "service_stopped",
    "service_upgrading",
    "service_finished",
    "service_concerning",
    "not_deployed",
)
# The canonical service names: one per algorithm type, one per detector model beyond the defaults.
SERVICE_NAMES = (
    *(name.lower() for name in AlgoType.__members__),
    DetectorModel.BODY.value,
    DetectorModel.MOTOR.value,
    DetectorModel.NO_MOTOR.value,
)


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    categories: frozenset[str]
    created_at: datetime | None


def registered_detectors() -> list[DetectorInfo]:
    """Enabled detectors by priority (one query), and the built-in face cascade when present."""
    rows = Detector.objects.filter(enabled=True).order_by("-priority", "name")
    found = [
        DetectorInfo(row.name, frozenset(row.categories()), row.created_at)
        for row in rows.only("name", "classes", "created_at")
    ]
    if DetectorModel.FACE in built_in_categories():
        found.append(DetectorInfo("opencv-haar-face", frozenset({DetectorModel.FACE.value}), None))
    return found


def service_info(name: str, detectors: list[DetectorInfo]) -> dict[str, Any]:
    """ServicesListInfoDto with the detail's fields (ShowServiceDetail) and ours: `algo_type`,
    `categories`, `detectors` (the registered detector chosen per category)."""
    # Here, not at the top: the rules engine imports supervision (scipy), seconds of every web
    # process's and node's start-up (the URL conf imports this module).
    from analysis.rules.engine import categories_for

    spec = service_spec(name)
    categories = categories_for(spec["algo_type"], spec["detector_models"])
    chosen = {c: next((d for d in detectors if c in d.categories), None) for c in categories}
    used = list(dict.fromkeys(d for d in chosen.values() if d is not None))
    ready = all(chosen.values())
    times = [d.created_at for d in used if d.created_at]
    alg_version = "+".join(d.name for d in used) if ready else ""
    return {
        "alg_id": spec["alg_id"],
        "service_id": spec["alg_id"],
        "service_name": name,
        "alg_name": name,
        "package_id": "",
        "package_name": name,
        "company": "VIAS",
        "alg_version": alg_version,
        "alg_versions": [alg_version] if alg_version else [],
        "function_version": FUNCTION_VERSION,
        "tags": [str(AlgoType(spec["algo_type"]).label), *categories],
        "created_at": ms(min(times)) if times else 0,
        "updated_at": ms(max(times)) if times else 0,
        "alg_status": RUNNING if ready else NOT_DEPLOYED,
        "deploy_type": "cloud",
        "alg_class": "self",
        "request_mode": "async",
        "release_flag": ready,
        "api": f"/v2/{{project_id}}/services/{name}/tasks",
        "description": _("finds %(c)s in video streams") % {"c": ", ".join(categories)},
        "error_msg": "" if ready else _missing_text(chosen),
        "algo_type": spec["algo_type"],
        "categories": categories,
        "detectors": {c: (d.name if d else None) for c, d in chosen.items()},
    }


def _missing_text(chosen: dict[str, DetectorInfo | None]) -> str:
    missing = ", ".join(c for c, d in chosen.items() if d is None)
    return _("no detector is registered for %(c)s (admin: Detectors)") % {"c": missing}


def catalogue() -> list[dict[str, Any]]:
    detectors = registered_detectors()
    return [service_info(name, detectors) for name in SERVICE_NAMES]


class ServiceListIn(serializers.Serializer):
    """GET /v2/{project_id}/algorithm/services/user (ListUserServices)."""

    name_like = serializers.CharField(required=False, allow_blank=True, max_length=100)
    is_paged = serializers.BooleanField(required=False, default=False)
    page_size = serializers.IntegerField(required=False, default=10, min_value=5, max_value=200)
    page_num = serializers.IntegerField(required=False, default=1, min_value=1, max_value=10000)
    order_by = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    sort_name = serializers.ChoiceField(
        choices=["created_at", "function_version"], required=False, default="created_at"
    )
    alg_status = serializers.ListField(child=serializers.ChoiceField(choices=ALG_STATUSES), required=False)


class ServiceCollection(V2APIView):
    request_path_of = staticmethod(as_sent)

    @extend_schema(
        parameters=[ServiceListIn], responses=OpenApiTypes.OBJECT, summary="v2: the algorithm services"
    )
    def get(self, request: Request, project_id: str) -> Response:
        query = self.query(ServiceListIn)
        items = catalogue()
        if query.get("name_like"):
            items = [i for i in items if query["name_like"].lower() in i["service_name"].lower()]
        if query.get("alg_status"):
            items = [i for i in items if i["alg_status"] in query["alg_status"]]
        items.sort(
            key=lambda i: (i[query["sort_name"]], i["service_name"]), reverse=query["order_by"] == "desc"
        )
        total = len(items)
        if query["is_paged"]:
            start = (query["page_num"] - 1) * query["page_size"]
            items = items[start : start + query["page_size"]]
        return Response({"count": len(items), "service_list": items, "total": total})


class ServiceDetail(V2APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="v2: one algorithm service")
    def get(self, request: Request, project_id: str, service_id: str) -> Response:
        """By `service_id` (its alg_id) or, as a convenience, by its service_name."""
        for item in catalogue():
            if service_id in (item["service_id"], item["service_name"]):
                return Response(item)
        raise NotFound(_("no algorithm service %(id)s") % {"id": service_id}, field="service_id")
