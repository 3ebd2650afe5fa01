"""Complete Chinese on the operator's console pages: rendered in zh-hans, no English word is left
in the visible text except the technical names and units listed here. A label, help text, column,
badge or message without a Chinese translation in the catalogue (locale/) makes this fail, and the
failure names it."""

from __future__ import annotations

import html as html_lib
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analysis.models import CameraStats, Event
from subtasks.choices import State
from subtasks.models import Node, Subtask
from tasks import services as task_services
from tasks.models import Project

pytestmark = pytest.mark.django_db

VIDEO = Path(__file__).resolve().parent / "data" / "bikes.mp4"
# Names and units that stay as they are in a Chinese UI (product, protocols, hardware, formats).
TECHNICAL = {
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "Shift",
    "API",
    "VP",
    "mp",
    "JPEG",
    "VIAS",
    "ROI",
    "ROIs",
    "XML",
    "CPU",
    "GPU",
    "CUDA",
    "fps",
    "ms",
    "MB",
    "ID",
    "URL",
    "rtsp",
    "rtsps",
    "http",
    "https",
    "Django",
    "IoU",
    "NMS",
    "FP16",
    "ONNX",
    "WebM",
    "VP8",
    "VIAS_DATA_DIR",
    "videos",
    "mtask",
    "manage",
    "py",
    "node",
    "name",
    "PTZ",
    "JSON",
    "MEDIA_ROOT",
    "bikes",
    "mp4",
}
WORD = re.compile(r"[A-Za-z][A-Za-z_]*[A-Za-z]")


def visible_text(page: str) -> str:
    """The text a reader sees: no scripts, styles, templates or tags; entities decoded."""
    page = re.sub(r"<(script|style|template|textarea|select)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\b[0-9a-f]{32}\b", " ", html_lib.unescape(page))  # task IDs


def english_words(page: str, data: set[str]) -> list[str]:
    # Case-blind: a browser's innerText applies text-transform (the header's "ADMIN").
    allowed = {word.lower() for word in TECHNICAL | set(data)}
    return sorted({w for w in WORD.findall(visible_text(page)) if w.lower() not in allowed})


@pytest.fixture
def chinese_operator(db) -> Client:
    project = Project.objects.create(project_id="ops", name="运维")
    user = get_user_model().objects.create_superuser("admin", "a@example.com", "pw-123456789")
    project.members.add(user)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return client


@pytest.fixture
def console_data(chinese_operator):
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(VIDEO, store / "bikes.mp4")
    project = Project.objects.get(project_id="ops")
    roi = '<root><polygon name="门口"><point x="0.1" y="0.1"/><point x="0.9" y="0.1"/><point x="0.5" y="0.9"/></polygon></root>'
    task = task_services.create_task(
        project,
        {
            "task_name": "前门",
            "algo_type": "2",
            "run_dt": timezone.now(),
            "play_url": "bikes.mp4",
            "config_complete": True,
            "mtasks": [
                {
                    "mtask_unid": "m1",
                    "name": "全天",
                    "scenes": [{"scene_unid": "s1", "name": "前门", "algo_type": "2", "rois": [roi]}],
                }
            ],
        },
    )
    node = Node.objects.create(name="节点一", hostname="主机", capacity=2, last_heartbeat=timezone.now())
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(state=State.RUNNING, node=node)
    CameraStats.objects.create(
        subtask=subtask, node_name="节点一", provider="CPU", frames_decoded=50, frames_analysed=10
    )
    event = Event.objects.create(
        subtask=subtask,
        task=task,
        key="intrusion:门口:1:0",
        occurred_at=timezone.now(),
        category="body",
        rule="intrusion",
        zone="门口",
        score=0.9,
        track_id=1,
    )
    return {"task": task, "subtask": subtask, "event": event}


def pages(data) -> dict[str, str]:
    return {
        "dashboard": "/admin/",
        "add a camera": "/admin/tasks/task/camera/",
        "running cameras": "/admin/console/cameras/",
        "system": "/admin/console/system/",
        "subtask": f"/admin/subtasks/subtask/{data['subtask'].pk}/change/",
        "event": f"/admin/analysis/event/{data['event'].pk}/change/",
    }


@pytest.mark.parametrize(
    "name", ["dashboard", "add a camera", "running cameras", "system", "subtask", "event"]
)
def test_a_console_page_in_chinese_shows_no_english_word(chinese_operator, console_data, name):
    response = chinese_operator.get(pages(console_data)[name])
    assert response.status_code == 200
    page = response.content.decode()
    assert 'lang="zh-hans"' in page
    # The user's name ("欢迎, admin") and the event's key, an identifier (under "详情").
    data = {"admin", *WORD.findall(console_data["event"].key)}
    left = english_words(page, data)
    assert not left, f"English on the {name} page: {', '.join(left)}"


def test_the_check_finds_an_untranslated_label(chinese_operator, console_data):
    """The check itself can fail: an English label left on a page is reported by its words."""
    page = chinese_operator.get("/admin/console/system/").content.decode()
    assert english_words(page.replace("</h2>", " Untranslated label</h2>", 1), {"admin"}) == [
        "Untranslated",
        "label",
    ]
