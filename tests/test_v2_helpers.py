"""Shared pieces of the VIAS v2 tests (no tests here): paths, valid bodies, the error shape."""

from __future__ import annotations

from typing import Any

from django_q.models import Schedule

from tasks.models import BatchTask, VideoGroup
from tests.api_helpers import DELETE, edit  # noqa: F401 - the v2 tests import them from here
from tests.conftest import Actor
from tests.vcs_helpers import snapshot as vcs_snapshot

WEBHOOK = "https://93.184.216.34/hook"
ERROR_KEYS = {"error_code", "error_msg", "detail", "params", "reason", "advice"}


def v2(actor: Actor, rest: str = "") -> str:
    return f"/v2/{actor.project.project_id}{rest}"


def source_body(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """CreateVideoSource's body as the public reference shows it (a url source)."""
    return {
        "video_source_name": name,
        "access_type": "cloud",
        "type": "url",
        "type_config": f"<type_config><url_address>{url}</url_address></type_config>",
        **extra,
    }


def add_sources(actor: Actor, count: int, prefix: str = "cam") -> list[str]:
    """`count` video sources of the actor's project, made through the v2 API (ids chosen here)."""
    ids = []
    for i in range(count):
        body = source_body(
            f"{prefix} camera {i}",
            f"rtsp://10.0.{i // 250}.{i % 250 + 1}/live",
            video_source_id=f"{prefix}-{i}",
        )
        ids.append(v2_ok(actor.post(v2(actor, "/source"), body))["video_source_id"])
    return ids


def group_body(name: str, sources: list[str], **extra: Any) -> dict[str, Any]:
    """CreateVideoGroup's body as the public reference shows it."""
    return {
        "video_source_ids": sources,
        "video_group_name": name,
        "description": "",
        "access_type": "cloud",
        **extra,
    }


def output(**extra: Any) -> dict[str, Any]:
    return {"webhook": {"url": WEBHOOK, "headers": {"a": "a"}}, **extra}


def task_body(sources: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A v2 create-task body over video sources managed here."""
    return {
        "name": "door_watch",
        "description": "front door",
        "service_version": "1.0",
        "input": {"type": "video_source", "data": [{"video_source_id": s} for s in (sources or ["cam-0"])]},
        "output": output(),
        "config": {"common": {"fire_detection_sw": 1}},
        **extra,
    }


def batch_body(sources: list[str], groups: int = 1, **extra: Any) -> dict[str, Any]:
    """The seed's add-batch-task body, the sources spread over `groups` groups."""
    return {
        "name": "wdwd",
        "service_name": "smoke_fire",
        "service_version": "1.0",
        "manufacturer": "VIAS",
        "is_saved_as_template": False,
        "description": "",
        "priority": "low",
        "batch_input": {
            "video_source_group": [
                {
                    "video_source_group_id": f"group-{g}",
                    "video_source_list": [{"video_source_id": s} for s in sources[g::groups]],
                }
                for g in range(groups)
            ]
        },
        "output": output(),
        "config": {"common": {"render_result_sw": 1, "fire_detection_sw": 1, "smoke_detection_sw": 1}},
        **extra,
    }


def create_task(actor: Actor, service: str = "face", **body: Any) -> dict[str, Any]:
    return v2_ok(actor.post(v2(actor, f"/services/{service}/tasks"), task_body(**body)))


def v2_ok(response) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    assert "error_code" not in body, body
    return body


def v2_refused(response, status: int, code: str | None = None, *fragments: str) -> dict[str, Any]:
    """The v2 error body, with the status and error code expected, mentioning each fragment."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS, body
    assert body["error_code"].startswith("VIAS.000100"), body
    if code:
        assert body["error_code"] == code, body
    assert isinstance(body["error_msg"], str) and body["error_msg"], body
    assert isinstance(body["params"], list) and len(body["params"]) <= 1, body
    text = body["error_msg"] + " " + body["detail"]
    for fragment in fragments:
        assert fragment in text, body
    return body


def snapshot() -> dict[str, Any]:
    """Everything a v2 request could write: what a VCS one could, plus batches and schedules."""
    return {
        **vcs_snapshot(),
        "batches": list(BatchTask.objects.order_by("pk").values()),
        "schedules": list(Schedule.objects.order_by("pk").values()),
        "groups": list(VideoGroup.objects.order_by("pk").values()),
        "members": list(VideoGroup.channels.through.objects.order_by("pk").values()),
    }
