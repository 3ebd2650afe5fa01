"""Shared actors for the tests: alice and bob, each with a project and an API token.

Tenancy tests then read naturally: bob's token must never see alice's tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tasks.models import ApiToken, Project

EMPTY_XML = '<?xml version="1.0" encoding="UTF-8"?><root></root>'


@dataclass
class Actor:
    """A user with a project and a raw API token, and a client that sends it."""

    user: Any
    project: Project
    token: str
    client: Client

    def headers(self, **extra: str) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": self.token, **extra}

    def get(self, path: str, **extra: Any):
        return self.client.get(path, **self.headers(), **extra)

    def delete(self, path: str, **extra: Any):
        return self.client.delete(path, **self.headers(), **extra)

    def post(self, path: str, body: Any = None, **extra: Any):
        data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type="application/json", **self.headers(), **extra)

    def put(self, path: str, body: Any = None, **extra: Any):
        data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
        return self.client.put(path, data, content_type="application/json", **self.headers(), **extra)


def make_actor(username: str, project_id: str) -> Actor:
    user = get_user_model().objects.create_user(username=username, password=f"{username}-password-123")
    project = Project.objects.create(project_id=project_id, name=project_id)
    project.members.add(user)
    _token, raw = ApiToken.issue(user, project)
    return Actor(user=user, project=project, token=raw, client=Client())


@pytest.fixture(autouse=True)
def default_language():
    # A test that answers in Chinese must not leave the next test's thread speaking it.
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture
def loopback_sources(settings):
    """Video and picture sources on this machine allowed, for tests that serve them from loopback
    servers: production refuses loopback (vias/lib/ssrf.py), so each such test asks for this."""
    settings.VIAS_SOURCE_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The actors' users get passwords; the default hasher costs half a second per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Every category a task can ask for has a registered detector, as after `manage.py fetch_models`
# plus a vehicle model: starting a task checks the registry (a test removes them to see the refusal).
# Tests that run analysis register real tiny ONNX files (tests/onnx_models.py).
REGISTERED_CLASSES = {
    "0": {"label": "person", "category": "body"},
    "1": {"label": "car", "category": "motor"},
    "2": {"label": "bicycle", "category": "no_motor"},
}


@pytest.fixture(autouse=True)
def registered_detectors(request):
    if not {"db", "transactional_db"} & set(request.fixturenames):
        return
    from analysis.models import Detector

    request.getfixturevalue("db" if "db" in request.fixturenames else "transactional_db")
    Detector.objects.get_or_create(
        name="registry-entry", defaults={"onnx_file": "none.onnx", "classes": REGISTERED_CLASSES}
    )


@pytest.fixture
def alice(db) -> Actor:
    return make_actor("alice", "proj-alice")


@pytest.fixture
def bob(db) -> Actor:
    return make_actor("bob", "proj-bob")


def scene_body(algo_type: int = 1, vchan_refid: str = "", rois: int = 2, **extra: Any) -> dict[str, Any]:
    """A scene as the seed shows it."""
    return {
        "scene_unid": extra.pop("scene_unid", "scene-1"),
        "name": "gate",
        "preset": 0,
        "callibration": {"calibration": EMPTY_XML},
        "rois": [{"roi": EMPTY_XML} for _ in range(rois)],
        "config": {"xml": EMPTY_XML},
        "basicConfig": {"xml": EMPTY_XML},
        "link_scenes": [],
        "algo_type": algo_type,
        "algo_args": {},
        "is_record": 1,
        "is_active": 1,
        "vchan_refid": vchan_refid,
        "play_urls": {"http": "", "rtsp": ""},
        "is_running": 0,
        "status_reason": "",
        **extra,
    }


def task_body(
    vchans: int = 2, mtasks: int = 1, scenes: int = 1, algo_type: str = "1", **extra: Any
) -> dict[str, Any]:
    """A POST /tasks body as the seed shows it, with `vchans` new video channels."""
    return {
        "task_name": "front door",
        "algo_type": algo_type,
        "run_dt": "2018-12-03 10:27:30.999",
        "play_url": "rtsp://192.168.9.155:8554/live",
        "vchans": [
            {"vchan_refid": f"cam-{i}", "name": f"camera {i}", "url": f"rtsp://10.0.0.{i + 1}/live"}
            for i in range(vchans)
        ],
        "mtasks": [
            {
                "mtask_unid": f"mtask-{m}",
                "name": f"mtask {m}",
                "type": 0,
                "time_interval": 5,
                "start_time": "00:00:00",
                "end_time": "23:59:59",
                "progress": 30,
                "scenes": [
                    scene_body(int(algo_type), vchan_refid=f"cam-{s}", scene_unid=f"scene-{m}-{s}")
                    for s in range(scenes)
                ],
            }
            for m in range(mtasks)
        ],
        **extra,
    }


# -- real nodes (tests/nodes.py) for the analysis-engine tests --


@pytest.fixture
def node_process(request):
    """start(**kwargs) -> a registered NodeProcess; every node started is stopped at the end."""
    from subtasks.models import Node
    from tests.nodes import NodeProcess, wait_for

    started: list[NodeProcess] = []

    def start(**kwargs) -> NodeProcess:
        process = NodeProcess(**kwargs)
        started.append(process)
        wait_for(
            lambda: Node.objects.filter(name=process.name).exists(), timeout=60, what="the node to register"
        )
        return process

    yield start
    # All at once: each drains for up to analysis' DRAIN_TIMEOUT, and a subtask one of them
    # hands back must not be taken by another about to stop.
    for process in started:
        process.terminate()
    for process in started:
        process.stop()


@pytest.fixture
def store():
    """The video store with bikes.mp4, and the fixed tiny person model registered."""
    import shutil
    from pathlib import Path

    from django.conf import settings

    from tests.nodes import BIKES
    from tests.onnx_models import register_fixed_person_model
    from tests.test_jobs import PERSON

    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, store / "bikes.mp4")
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
    return store
