"""VIAS v2 algorithm services: what a service name stands for in the core's words.

A v2 task is created under an algorithm service (`POST /v2/{project_id}/services/{service_name}/tasks`);
the core knows algorithm types and detector models, not services, so the dialect translates here.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tasks.choices import AlgoType, DetectorModel

# A v2 algorithm service name -> (algo_type, detector models); any other name: security, default models.
SERVICE_ALGORITHMS: dict[str, tuple[str, list[str]]] = {
    **{code: (code, []) for code in AlgoType.values},
    **{str(label): (code, []) for code, label in AlgoType.choices},
    **{code_name.lower(): (code, []) for code_name, code in AlgoType.__members__.items()},
    "交通": (AlgoType.TRAFFIC, []),
    "客流": (AlgoType.PASSENGER_FLOW, []),
    "安防": (AlgoType.SECURITY, []),
    "违停": (AlgoType.ILLEGAL_PARKING, []),
    "人脸": (AlgoType.FACE, []),
    DetectorModel.BODY: (AlgoType.SECURITY, [DetectorModel.BODY]),
    DetectorModel.MOTOR: (AlgoType.TRAFFIC, [DetectorModel.MOTOR]),
    DetectorModel.NO_MOTOR: (AlgoType.TRAFFIC, [DetectorModel.NO_MOTOR]),
}


def service_spec(service_name: str) -> dict[str, Any]:
    """The core fields a v2 algorithm service stands for: algo_type, detector models, a stable alg_id.

    alg_id (v2 algorithm_publish_id) is a version-4-shaped UUID made from the name, so every task
    of one service shares it.
    """
    key = service_name.lower().replace("-", "_").replace(" ", "_")
    algo_type, models = SERVICE_ALGORITHMS.get(key, (AlgoType.SECURITY, []))
    digest = hashlib.sha256(service_name.encode("utf-8")).digest()[:16]
    return {
        "service_name": service_name,
        "algo_type": str(algo_type),
        "detector_models": [str(m) for m in models],
        "alg_id": str(uuid.UUID(bytes=digest, version=4)),
    }
