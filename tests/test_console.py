"""The operator's console in the admin, with Django's test client (analysis/admin/console.py,
tasks/admin/camera.py, vias/admin_site.py): the dashboard and branding, a camera added in one
page, the live view endpoint, per-camera figures, buttons that follow the state, the event page
(clip, previous/next, labels), the review timeline and the System page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analysis import control, sysstats
from analysis.models import CameraStats, Event
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tasks.models import Project, Task
from tests.test_admin import ROI, make_task

pytestmark = pytest.mark.django_db

VIDEO = Path(__file__).resolve().parent / "data" / "bikes.mp4"
BOW_TIE = (
    '<root><polygon name="yard"><point x="0" y="0"/><point x="1" y="1"/>'
    '<point x="1" y="0"/><point x="0" y="1"/></polygon></root>'
)


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(project_id="ops", name="operations")


@pytest.fixture
def operator(db, project) -> Client:
    user = get_user_model().objects.create_user("olga", password="pw-123456789", is_staff=True)
    user.user_permissions.set(
        __import__("django.contrib.auth.models", fromlist=["Permission"]).Permission.objects.all()
    )
    project.members.add(user)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def store() -> Path:
    path = Path(settings.DATA_DIR) / "videos"
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(VIDEO, path / "bikes.mp4")
    return path


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def camera_post(**fields) -> dict[str, str]:
    return {
        "name": "front door",
        "project": str(Project.objects.get(project_id="ops").pk),
        "algo_type": "2",
        "roi": ROI,
        "mtask_name": "all day",
        "calibration_xml": "<root/>",
        "config_xml": "<root/>",
        **fields,
    }


# -- branding and the dashboard ----------------------------------------------------------------------


def test_the_index_is_a_vias_dashboard_without_django_internals(operator, project):
    html = page(operator, "/admin/")
    assert "<title>Dashboard | VIAS</title>" in html and ">VIAS<" in html
    assert 'href="/admin/">' in html  # "View site" opens the dashboard
    for section in ("Running cameras", "events today", "Failing subtasks", "Add a camera"):
        assert section in html
    assert "Django Q" not in html and "Groups" not in html


def test_the_dashboard_counts_todays_events_and_lists_failing_subtasks(operator, project):
    task = make_task(project, vchans=2)
    first, second = task.subtasks.order_by("position")
    Subtask.objects.filter(pk=second.pk).update(state=State.FAILED, status_reason="SourceCorrupt: no frames")
    for index in range(3):
        Event.objects.create(
            subtask=first,
            task=task,
            key=f"intrusion:yard:1:{index}",
            occurred_at=timezone.now(),
            category="body",
            rule="intrusion",
        )
    html = page(operator, "/admin/")
    assert "3 events today" in html and "intrusion: 3" in html
    assert "SourceCorrupt: no frames" in html


# -- a camera in one page ----------------------------------------------------------------------------


def test_the_camera_page_offers_the_videos_of_the_store(operator, store):
    html = page(operator, "/admin/tasks/task/camera/")
    assert '<option value="bikes.mp4">bikes.mp4</option>' in html
    assert "Test connection" in html and "Advanced" in html and "Save and start" in html


def test_save_and_start_creates_one_configured_camera_and_starts_it(operator, store):
    response = operator.post("/admin/tasks/task/camera/", camera_post(video="bikes.mp4", _start="1"))
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get()
    subtask = task.subtasks.get()
    assert response["Location"] == f"/admin/subtasks/subtask/{subtask.pk}/change/"
    assert (task.task_name, task.algo_type, task.play_url) == ("front door", "2", "bikes.mp4")
    assert subtask.source_url == "bikes.mp4" and subtask.config_complete
    assert subtask.state == State.STARTING  # no node yet: it waits for one
    assert 'name="door"' in subtask.rois[0]
    assert task.mtasks.get().scenes.get().name == "front door"


def test_save_without_starting_leaves_it_configured(operator, store):
    response = operator.post("/admin/tasks/task/camera/", camera_post(video="bikes.mp4", _save="1"))
    assert response.status_code == 302
    assert Subtask.objects.get().state == State.CONFIGURED


def test_an_uploaded_video_goes_to_the_store(operator, store):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("My Lobby!.mp4", VIDEO.read_bytes(), content_type="video/mp4")
    response = operator.post("/admin/tasks/task/camera/", {**camera_post(_save="1"), "upload": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Subtask.objects.get().source_url == "My-Lobby.mp4" and (store / "My-Lobby.mp4").is_file()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({}, "Choose a video from the store, upload one or give a stream URL.", id="no-source"),
        pytest.param(
            {"video": "bikes.mp4", "stream_url": "rtsp://10.0.0.1/live"}, "Give one source only", id="two"
        ),
        pytest.param({"stream_url": "10.0.0.1/live"}, "a stream URL starts with", id="no-scheme"),
        pytest.param({"stream_url": "file:///etc/passwd"}, "file", id="a-local-file"),
        pytest.param(
            {"video": "bikes.mp4", "roi": BOW_TIE}, "polygon &#x27;yard&#x27;: its edges cross", id="bow-tie"
        ),
        pytest.param({"video": "other.mp4"}, "Select a valid choice", id="not-in-store"),
    ],
)
def test_a_camera_that_cannot_work_is_refused_on_the_page_and_nothing_is_saved(
    operator, store, fields, message
):
    response = operator.post("/admin/tasks/task/camera/", camera_post(**fields, _start="1"))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Task.objects.exists() and not Subtask.objects.exists()


def test_the_frame_for_the_editor_comes_from_the_chosen_source(operator, store):
    info = operator.get("/admin/tasks/scene/frame/", {"source": "bikes.mp4"}).json()
    assert info["ok"] and info["src"].startswith("/admin/tasks/scene/frame/")
    refused = operator.get("/admin/tasks/scene/frame/", {"source": "/etc/passwd"}).json()
    assert not refused["ok"] and refused["reason"]


# -- the live view, figures and buttons of a subtask ----------------------------------------------


def test_the_live_frame_is_what_the_node_published_and_asking_marks_a_viewer(operator, project):
    subtask = make_task(project, vchans=1).subtasks.get()
    prefix = settings.VIAS_CONTROL_PREFIX
    control.client().delete(f"{prefix}:viewers:{subtask.pk}", f"{prefix}:frame:{subtask.pk}")
    response = operator.get(f"/admin/console/live/{subtask.pk}.jpg")
    assert response.status_code == 204 and "no-store" in response["Cache-Control"]
    assert control.client().ttl(f"{prefix}:viewers:{subtask.pk}") > 0
    control.client().set(f"{prefix}:frame:{subtask.pk}", b"\xff\xd8jpeg", ex=5)
    response = operator.get(f"/admin/console/live/{subtask.pk}.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content == b"\xff\xd8jpeg"


def test_another_projects_camera_is_not_found(operator, db):
    other = Project.objects.create(project_id="other", name="other")
    subtask = make_task(other, vchans=1).subtasks.get()
    assert operator.get(f"/admin/console/live/{subtask.pk}.jpg").status_code == 404
    assert operator.get(f"/admin/console/camera/{subtask.pk}.json").status_code == 404


def test_the_subtask_page_shows_figures_and_says_when_nothing_was_detected(operator, project):
    subtask = make_task(project, vchans=1).subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(state=State.SUCCEEDED)
    CameraStats.objects.create(
        subtask=subtask,
        node_name="gpu-1",
        provider="CUDA",
        frames_decoded=500,
        frames_analysed=100,
        source_fps=25,
        analysed_fps=5,
        detections=0,
        inference_ms=12.5,
        last_frame_at=timezone.now(),
    )
    html = page(operator, f"/admin/subtasks/subtask/{subtask.pk}/change/")
    assert "500 / 100" in html and "5.0 / 25.0" in html and "12.5 ms" in html and "gpu-1 / CUDA" in html
    assert "100 frames analysed and not one detection" in html
    figures = operator.get(f"/admin/console/camera/{subtask.pk}.json").json()
    assert figures["state"] == "SUCCEEDED" and figures["note"].startswith("100 frames analysed")


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (State.PENDING, {"config-complete"}),
        (State.CONFIGURED, {"start"}),
        (State.RUNNING, {"stop"}),
        (State.STOPPED, {"start"}),
        (State.ABNORMAL, {"stop", "dispatch"}),
    ],
)
def test_a_subtask_page_shows_the_buttons_of_its_state_only(operator, project, state, shown):
    subtask = make_task(project, vchans=1).subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(state=state, config_complete=state != State.PENDING)
    html = page(operator, f"/admin/subtasks/subtask/{subtask.pk}/change/")
    visible = set()
    for verb in ("config-complete", "start", "stop", "dispatch"):
        form_start = html.index(f"/do/{verb}/")
        tag = html[html.rindex("<form", 0, form_start) : html.index(">", form_start)]
        if " hidden" not in tag:
            visible.add(verb)
    assert visible == shown


def test_a_task_page_shows_live_views_of_its_running_cameras_and_the_review_timeline(operator, project):
    task = make_task(project, vchans=2)
    first, second = task.subtasks.order_by("position")
    Subtask.objects.filter(pk=first.pk).update(state=State.RUNNING)
    Subtask.objects.filter(pk=second.pk).update(state=State.CONFIGURED, config_complete=True)
    for index in range(4):
        Event.objects.create(
            subtask=first,
            task=task,
            key=f"intrusion:yard:{index}:{index}",
            occurred_at=timezone.now() - timezone.timedelta(minutes=4 - index),
            category="body",
            rule="intrusion",
            snapshot=f"events/x/{index}.jpg",
        )
    html = page(operator, f"/admin/tasks/task/{task.pk}/change/")
    assert f'data-live-frame="/admin/console/live/{first.pk}.jpg"' in html
    assert f'data-live-frame="/admin/console/live/{second.pk}.jpg"' not in html
    assert html.count('role="listitem"') == 4 and "4 events; the latest 4 on the time axis." in html
    assert ">Stop<" in html and ">Start<" in html  # one running, one not
    assert "vias-chart" not in html


# -- events you can review ---------------------------------------------------------------------------


def test_the_event_page_plays_the_clip_and_links_the_previous_and_next_events(operator, project):
    task = make_task(project, vchans=1)
    subtask = task.subtasks.get()
    media = Path(settings.MEDIA_ROOT) / "events" / "t"
    media.mkdir(parents=True, exist_ok=True)
    (media / "1.webm").write_bytes(b"\x1a\x45\xdf\xa3webm")
    events = [
        Event.objects.create(
            subtask=subtask,
            task=task,
            key=f"intrusion:yard:7:{i}",
            occurred_at=timezone.now() + timezone.timedelta(seconds=i),
            category="body",
            rule="intrusion",
            zone="yard",
            score=0.876543219,
            track_id=7,
            snapshot="events/t/1.jpg",
            clip="events/t/1.webm" if i == 1 else "",
        )
        for i in range(3)
    ]
    html = page(operator, f"/admin/analysis/event/{events[1].pk}/change/")
    assert f'src="/admin/analysis/event/{events[1].pk}/clip.webm"' in html and "<video" in html
    assert f'href="/admin/analysis/event/{events[0].pk}/change/"' in html  # previous
    assert f'href="/admin/analysis/event/{events[2].pk}/change/"' in html  # next
    assert "intrusion in yard, track #7, frame 1" in html and "0.88" in html and "0.876543" not in html
    assert html.count(">snapshot<") == 0 and html.count("Snapshot") <= 1
    clip = operator.get(f"/admin/analysis/event/{events[1].pk}/clip.webm")
    assert clip.status_code == 200 and clip["Content-Type"] == "video/webm"
    assert operator.get(f"/admin/analysis/event/{events[0].pk}/clip.webm").status_code == 404


# -- the System page ---------------------------------------------------------------------------------


def test_the_system_page_shows_each_nodes_load_subtasks_and_queue(operator, project):
    node = Node.objects.create(
        name="gpu-1",
        capacity=4,
        last_heartbeat=timezone.now(),
        capabilities={"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
    )
    Node.objects.create(name="old", capacity=1)
    subtask = make_task(project, vchans=1).subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(state=State.RUNNING, node=node)
    sample = {
        "cpu_percent": 37.0,
        "cpu_count": 16,
        "memory_percent": 41.0,
        "memory_used_mb": 52000,
        "memory_total_mb": 128000,
        "gpus": [
            {
                "name": "NVIDIA H200",
                "util_percent": 63.0,
                "memory_used_mb": 20000.0,
                "memory_total_mb": 141000.0,
            }
        ],
    }
    control.client().set(f"{settings.VIAS_CONTROL_PREFIX}:nodestats:gpu-1", json.dumps(sample), ex=30)
    control.client().delete(f"{settings.VIAS_CONTROL_PREFIX}:nodestats:old")
    html = page(operator, "/admin/console/system/")
    assert "37 % (16 cores)" in html and "52000 / 128000 MB" in html
    assert "NVIDIA H200: 63 %, 20000 / 141000 MB" in html and "CUDAExecutionProvider" in html
    assert f"/admin/subtasks/subtask/{subtask.pk}/change/" in html and "1 / 4" in html
    assert "silent" in html  # the node that never heartbeat


def test_a_node_publishes_its_load_with_its_heartbeat(db):
    from analysis import node

    Node.objects.create(name="n1", capacity=1, instance=node.INSTANCE)  # this process's node
    node.heartbeat("n1")
    sample = sysstats.read(["n1"])["n1"]
    assert (
        0 <= sample["cpu_percent"] <= 100
        and sample["memory_total_mb"] > 0
        and isinstance(sample["gpus"], list)
    )
