"""Shared pieces of the VCS-SPS tests: paths, a valid body, the video store, the envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subtasks.models import Subtask
from tasks.models import Task, VideoChannel

VCS = "/vcs/console/task/"
CREATE, MODIFY, START, STOP, GET = (
    f"{VCS}{name}"
    for name in (
        "createComputeTask",
        "modifyComputeTask",
        "startComputeTask",
        "stopComputeTask",
        "getComputeTasks",
    )
)
BEGIN_MS = 1564675200001


def make_store(data_dir: Path) -> Path:
    """A video store under `data_dir` with three small files."""
    store = data_dir / "videos"
    store.mkdir()
    for name in ("lzfg54fg871fghwa.mp4", "clip-2.avi", "bare_handle"):
        (store / name).write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return store


def device(device_id: str = "cam-1", video_id: str = "lzfg54fg871fghwa", **extra: Any) -> dict[str, Any]:
    return {
        "deviceId": device_id,
        "videoId": video_id,
        "videoTimeLength": 600,
        "videoBeginTime": BEGIN_MS,
        **extra,
    }


def compute_body(
    devices: list[dict[str, Any]] | None = None, models: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """The seed's createComputeTask body."""
    return {
        "name": "task1",
        "execType": "historyVideoFile",
        "execStartTime": 1564675200000,
        "description": "this is a task",
        "datasources": {"devices": devices if devices is not None else [device()]},
        "algorithms": [{"models": models if models is not None else ["face", "body"]}],
        "clientName": "sps",
        **extra,
    }


def vcs_ok(response) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    assert body["Code"] == "0" and body["Message"] == "SUCCESS", body
    return body.get("Data")


def vcs_refused(response, status: int, *fragments: str) -> dict[str, Any]:
    """The VCS error envelope: Code is the error's status as a string, Message says what is wrong;
    HTTP 200 (VCS clients read Code), except 401 for authentication failures."""
    body = response.json()
    assert response.status_code == (401 if status == 401 else 200), body
    assert body["Code"] == str(status), body
    assert isinstance(body["Message"], str) and body["Message"] and body["Message"] != "SUCCESS", body
    assert "ecode" not in body and "enote" not in body
    for fragment in fragments:
        assert fragment in body["Message"], body
    return body


def snapshot() -> dict[str, Any]:
    """What a VCS request could write: tasks, subtasks, channels."""
    return {
        "tasks": list(Task.objects.order_by("pk").values()),
        "subtasks": list(Subtask.objects.order_by("pk").values()),
        "vchans": list(VideoChannel.objects.order_by("pk").values()),
    }
