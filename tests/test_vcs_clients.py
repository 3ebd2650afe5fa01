"""What a real VCS-SPS client needs: application errors in HTTP 200 with the code in `Code`,
videoId handles resolved through a remote video store (an HTTP server on loopback here), a
modify that keeps what it leaves out, and execStartTime scheduling the start."""

from __future__ import annotations

import ast
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django_q.models import Schedule

from subtasks.choices import State
from subtasks.models import Subtask
from subtasks.services import run_mtask_edge
from tasks.models import Task, VideoChannel
from tests.vcs_helpers import (
    CREATE,
    GET,
    MODIFY,
    START,
    STOP,
    compute_body,
    device,
    make_store,
    snapshot,
    vcs_ok,
    vcs_refused,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def store(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return make_store(tmp_path)


def create(actor, **body) -> str:
    return vcs_ok(actor.post(CREATE, compute_body(**body)))["taskId"]


# ---- errors a VCS client can read -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body, code",
    [
        (START, {"taskId": "f" * 32}, "404"),
        (STOP, {"taskId": "f" * 32}, "404"),
        (MODIFY, {"taskId": "f" * 32, "description": "x"}, "404"),
        (CREATE, compute_body(name=""), "400"),
        (CREATE, compute_body(devices=[device(video_id="nope")]), "404"),
        (GET, {"taskIds": []}, "400"),
        (CREATE, "[]", "400"),
    ],
)
def test_application_errors_are_http_200_with_the_code_in_code(alice, path, body, code):
    before = snapshot()

    response = alice.post(path, body)

    assert response.status_code == 200
    answer = response.json()
    assert answer["Code"] == code and answer["Message"] and answer["Message"] != "SUCCESS"
    assert snapshot() == before


def test_a_state_conflict_is_http_200_with_code_409(alice):
    task_id = create(alice)
    Subtask.objects.filter(task_id=task_id).update(state=State.RUNNING)
    vcs_refused(alice.post(MODIFY, {"taskId": task_id, "description": "x"}), 409, "stop")


def test_authentication_failures_stay_401(alice):
    response = Client().post(CREATE, compute_body(), content_type="application/json")
    assert response.status_code == 401 and response.json()["Code"] == "401"
    bad = Client(headers={"Authorization": "Token nope"}).post(CREATE, {}, content_type="application/json")
    assert bad.status_code == 401 and bad.json()["Code"] == "401"


def test_an_unknown_path_and_method_answer_in_the_vcs_envelope(alice):
    response = alice.get(START)
    assert response.status_code == 200 and response.json()["Code"] == "405"
    response = alice.post("/vcs/console/task/noSuchCall", {})
    assert response.status_code == 200 and response.json()["Code"] == "404"


# ---- execStartTime -----------------------------------------------------------------------------------


def test_a_future_exec_start_time_defers_the_start_to_that_moment(alice):
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    task_id = create(alice, execStartTime=int(later.timestamp() * 1000))

    vcs_ok(alice.post(START, {"taskId": task_id}))

    assert set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True)) == {State.CONFIGURED}
    # The one mechanism for a delayed first run (subtasks.mtask_runs): the task's one ONCE row.
    (row,) = Schedule.objects.filter(name__contains=task_id)
    assert (row.schedule_type, row.func) == (Schedule.ONCE, "subtasks.services.run_mtask_edge")
    assert abs((row.next_run - later).total_seconds()) < 1
    # What django-q2 runs at that moment:
    activated = ast.literal_eval(f"({row.args})")[1]
    assert "1 of 1 subtasks run" in run_mtask_edge(task_id, activated, now=row.next_run)
    assert set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True)) == {State.STARTING}


def test_stopping_before_the_exec_start_time_cancels_it(alice):
    later = datetime.now(UTC) + timedelta(days=1)
    task_id = create(alice, execStartTime=int(later.timestamp() * 1000))
    vcs_ok(alice.post(START, {"taskId": task_id}))

    vcs_ok(alice.post(STOP, {"taskId": task_id}))

    assert not Schedule.objects.filter(name__contains=task_id).exists()


def test_a_past_exec_start_time_starts_at_once(alice):
    task_id = create(alice)  # the seed's 2019 execStartTime
    vcs_ok(alice.post(START, {"taskId": task_id}))
    assert set(Subtask.objects.filter(task_id=task_id).values_list("state", flat=True)) == {State.STARTING}
    assert not Schedule.objects.filter(name__contains=task_id).exists()


def test_a_deferred_start_that_cannot_start_is_refused_when_asked(alice):
    later = datetime.now(UTC) + timedelta(days=1)
    task_id = create(alice, execStartTime=int(later.timestamp() * 1000))
    Task.objects.filter(pk=task_id).update(detector_models=["no_motor"])
    from analysis.models import Detector

    Detector.objects.update(enabled=False)
    vcs_refused(alice.post(START, {"taskId": task_id}), 409)
    assert not Schedule.objects.filter(name__contains=task_id).exists()


# ---- the remote video store --------------------------------------------------------------------------


class VideoStoreHandler(BaseHTTPRequestHandler):
    """A VCS's storage: HEAD /videos/<handle> is 200 for the handles it has, 404 else; 'broken' 503."""

    known = {"lzfg54fg871fghwa", "clip-2"}

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        handle = self.path.rsplit("/", 1)[-1]
        status = 503 if handle == "broken" else 200 if handle in self.known else 404
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def remote_store(settings, loopback_sources):
    server = ThreadingHTTPServer(("127.0.0.1", 0), VideoStoreHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.VIAS_VIDEO_STORE_URL = f"http://127.0.0.1:{server.server_port}/videos/{{videoId}}"
    settings.VIAS_VIDEO_STORE_ALLOWED_HOSTS = ["127.0.0.1"]
    yield settings.VIAS_VIDEO_STORE_URL
    server.shutdown()
    server.server_close()


def test_a_video_id_resolves_to_the_remote_stores_url(alice, remote_store):
    task_id = create(alice)

    channel = VideoChannel.objects.get(vchan_refid="cam-1")
    assert channel.url == remote_store.replace("{videoId}", "lzfg54fg871fghwa")
    (item,) = vcs_ok(alice.post(GET, {"taskIds": [task_id]}))
    assert item["datasources"]["devices"][0]["videoId"] == "lzfg54fg871fghwa"


def test_a_video_the_remote_store_does_not_have_is_404_and_writes_nothing(alice, remote_store):
    before = snapshot()
    vcs_refused(alice.post(CREATE, compute_body(devices=[device(video_id="absent")])), 404, "absent")
    assert snapshot() == before


def test_a_remote_store_error_is_502(alice, remote_store):
    before = snapshot()
    vcs_refused(alice.post(CREATE, compute_body(devices=[device(video_id="broken")])), 502, "503")
    assert snapshot() == before


def test_a_loopback_store_not_allowed_is_refused_by_the_source_url_policy(alice, remote_store, settings):
    settings.VIAS_VIDEO_STORE_ALLOWED_HOSTS = []
    before = snapshot()
    vcs_refused(alice.post(CREATE, compute_body()), 400, "loopback", "VIAS_VIDEO_STORE_ALLOWED_HOSTS")
    assert snapshot() == before


def test_an_unreachable_store_is_502(alice, settings):
    settings.VIAS_VIDEO_STORE_URL = "http://127.0.0.1:9/videos/{videoId}"  # discard: nothing listens
    settings.VIAS_VIDEO_STORE_ALLOWED_HOSTS = ["127.0.0.1"]
    vcs_refused(alice.post(CREATE, compute_body()), 502)


def test_the_local_store_stays_the_default(alice):
    assert settings.VIAS_VIDEO_STORE_URL == ""
    create(alice)
    assert VideoChannel.objects.get(vchan_refid="cam-1").url == "lzfg54fg871fghwa.mp4"
