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
from tasks.models import Project, Task

pytestmark = pytest.mark.django_db

VIDEO = Path(__file__).resolve().parent / "data" / "bikes.mp4"
# The only English a Chinese page may show: names of products, protocols, formats, hardware and
# keys that Chinese UIs write as they are, and units. Everything else is translated, or it is data
# (what the operator named or typed, and the page's IDs: passed per page), an address (a URL), code
# (a <code> element: a command, a path, an API field) or a name with a digit in it (YOLOv8, VP8,
# v2, cam1), which the check leaves out.
PROPER_NAMES = {
    "VIAS",
    "VCS",
    "ONVIF",
    "RTSP",
    "RTSPS",
    "HTTP",
    "HTTPS",
    "PTZ",
    "ROI",
    "XML",
    "JSON",
    "URL",
    "ID",
    "API",
    "CPU",
    "GPU",
    "CUDA",
    "ONNX",
    "JPEG",
    "WebM",
    "Redis",
    "YOLO",
    "Darknet",
    "MTCNN",
    "Django",
    "Shift",
    "UTF",
    "Control",
    "Command",
    "Mac",
    "LDAP",
}
UNITS = {"fps", "ms", "MB"}
TECHNICAL = PROPER_NAMES | UNITS
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S*", re.I)
# A file name in the video store (an option of the video list) is the operator's data.
FILE_NAME = re.compile(r"[^\s/]+\.(?:mp4|mkv|avi|mov|webm|ts|flv|jpe?g|png)\b", re.I)


def visible_text(page: str) -> str:
    """The text a reader sees: no scripts, styles, templates or tags; entities decoded."""
    page = re.sub(r"<(script|style|template|textarea|code)\b.*?</\1>", " ", page, flags=re.S | re.I)
    page = re.sub(r"<!--.*?-->", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    text = URL.sub(" ", re.sub(r"\b[0-9a-f]{32}\b", " ", html_lib.unescape(page)))  # task IDs
    return FILE_NAME.sub(" ", text)


def english_words(page: str, data: set[str]) -> list[str]:
    # Case-blind: a browser's innerText applies text-transform (the header's "ADMIN").
    allowed = {word.lower() for word in TECHNICAL | set(data)}
    words = {w for w in WORD.findall(visible_text(page)) if not any(c.isdigit() for c in w)}
    return sorted(w for w in words if w.lower() not in allowed)


def where(page: str, word: str) -> str:
    """The words around the first place `word` is seen, for the failure message."""
    text = " ".join(visible_text(page).split())
    at = re.search(rf"\b{re.escape(word)}\b", text)
    return f"  {word}: …{text[max(0, at.start() - 60) : at.end() + 60]}…" if at else f"  {word}"


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
    return make_console_data(Project.objects.get(project_id="ops"))


def make_console_data(project: Project) -> dict:
    """A running camera with its figures and an event, on a node: what the console pages show."""
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(VIDEO, store / "bikes.mp4")
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


@pytest.fixture
def operator_data(console_data):
    return make_operator_data(Project.objects.get(project_id="ops"), console_data)


def make_operator_data(project: Project, console_data: dict) -> dict:
    """One of everything else an operator opens: a storage config, a video channel, a batch, a
    token, a delivery."""
    from analysis.models import Delivery
    from tasks.models import ApiToken, BatchTask, StoreConf, VideoChannel

    conf = StoreConf.objects.create(
        project=project, unid="sc1", name="存储一", file_ext="xml", content=b"<root/>"
    )
    channel = VideoChannel.objects.create(project=project, vchan_refid="cam1", name="门口", url="bikes.mp4")
    batch = BatchTask.objects.create(project=project, name="批量一")
    ApiToken.issue(get_user_model().objects.get(username="admin"), project, name="令牌一")
    Delivery.objects.create(event=console_data["event"], output="webhook", target="https://钩子.example/")
    scene = console_data["task"].mtasks.get().scenes.get()
    return {**console_data, "store_conf": conf, "channel": channel, "batch": batch, "scene": scene}


def pages(data) -> dict[str, str]:
    task, subtask, event = data["task"], data["subtask"], data["event"]
    more = {key: data.get(key) for key in ("scene", "channel", "store_conf", "batch")}
    return {
        "dashboard": "/admin/",
        "add a camera": "/admin/tasks/task/camera/",
        "running cameras": "/admin/console/cameras/",
        "system": "/admin/console/system/",
        "subtask": f"/admin/subtasks/subtask/{subtask.pk}/change/",
        "subtasks": "/admin/subtasks/subtask/",
        "event": f"/admin/analysis/event/{event.pk}/change/",
        "events": "/admin/analysis/event/",
        "tasks": "/admin/tasks/task/",
        "task": f"/admin/tasks/task/{task.pk}/change/",
        "add a task": "/admin/tasks/task/add/",
        "scenes": "/admin/tasks/scene/",
        "scene": f"/admin/tasks/scene/{getattr(more['scene'], 'pk', 0)}/change/",
        "add a scene": "/admin/tasks/scene/add/",
        "schedules": "/admin/tasks/mtask/",
        "video channels": "/admin/tasks/videochannel/",
        "video channel": f"/admin/tasks/videochannel/{getattr(more['channel'], 'pk', 0)}/change/",
        "add a video channel": "/admin/tasks/videochannel/add/",
        "storage configs": "/admin/tasks/storeconf/",
        "storage config": f"/admin/tasks/storeconf/{getattr(more['store_conf'], 'pk', 0)}/change/",
        "add a storage config": "/admin/tasks/storeconf/add/",
        "batches": "/admin/tasks/batchtask/",
        "batch": f"/admin/tasks/batchtask/{getattr(more['batch'], 'pk', 0)}/change/",
        "tokens": "/admin/tasks/apitoken/",
        "add a token": "/admin/tasks/apitoken/add/",
        "nodes": "/admin/subtasks/node/",
        "detectors": "/admin/analysis/detector/",
        "deliveries": "/admin/analysis/delivery/",
        # Django's auth pages the VIAS admin shows (Groups are hidden from it), and the one Django
        # Q page it links (the System page's queue failures; the rest of Django Q is hidden).
        "users": "/admin/auth/user/",
        "user": f"/admin/auth/user/{get_user_model().objects.get(username='admin').pk}/change/",
        "add a user": "/admin/auth/user/add/",
        "password change": "/admin/password_change/",
        "password changed": "/admin/password_change/done/",
        "queue failures": "/admin/django_q/failure/",
    }


CONSOLE_PAGES = ["dashboard", "add a camera", "running cameras", "system", "subtask", "event"]
OPERATOR_PAGES = [
    "subtasks",
    "events",
    "tasks",
    "task",
    "add a task",
    "scenes",
    "scene",
    "add a scene",
    "schedules",
    "video channels",
    "video channel",
    "add a video channel",
    "storage configs",
    "storage config",
    "add a storage config",
    "batches",
    "batch",
    "tokens",
    "add a token",
    "nodes",
    "detectors",
    "deliveries",
    "users",
    "user",
    "add a user",
    "password change",
    "password changed",
    "queue failures",
]


def page_data(data) -> set[str]:
    """Data on the pages, not labels: the user's name ("欢迎, admin") and e-mail address, the
    shown part of their password hash, the project's ID, the video's file name, the detectors'
    names and the token's prefix."""
    from analysis.models import Detector
    from tasks.models import ApiToken

    user = get_user_model().objects.get(username="admin")
    words = {"admin", "ops", "bikes", *WORD.findall(user.email)}
    for part in user.password.split("$"):  # the hash's summary shows a part's first 2 or 6
        words |= {*WORD.findall(part[:2]), *WORD.findall(part[:6])}
    for name in Detector.objects.values_list("name", flat=True):
        words |= set(WORD.findall(name))
    for prefix in ApiToken.objects.values_list("prefix", flat=True):
        words |= set(WORD.findall(prefix))
    return words


def page_words(data, name: str) -> set[str]:
    """The data on page `name`: `page_data`, and what only that page shows."""
    words = page_data(data)
    if name == "event":  # its key, an identifier, under "详情"
        words |= set(WORD.findall(data["event"].key))
    if name == "user":  # permission names: rows Django writes in English at migrate time
        from django.contrib.auth.models import Permission

        for permission in Permission.objects.values_list("name", flat=True):
            words |= set(WORD.findall(permission))
    return words


def assert_no_english(client: Client, data, name: str) -> None:
    response = client.get(pages(data)[name])
    assert response.status_code == 200
    page = response.content.decode()
    assert 'lang="zh-hans"' in page
    left = english_words(page, page_words(data, name))
    assert not left, f"English on the {name} page: {', '.join(left)}\n" + "\n".join(
        where(page, word) for word in left
    )


@pytest.mark.parametrize("name", CONSOLE_PAGES)
def test_a_console_page_in_chinese_shows_no_english_word(chinese_operator, console_data, name):
    assert_no_english(chinese_operator, console_data, name)


@pytest.mark.parametrize("name", OPERATOR_PAGES)
def test_every_operator_page_in_chinese_shows_no_english_word(chinese_operator, operator_data, name):
    assert_no_english(chinese_operator, operator_data, name)


@pytest.mark.parametrize(
    ("changelist", "action"),
    [
        ("/admin/tasks/task/", "config_complete"),
        ("/admin/tasks/task/", "start"),
        ("/admin/tasks/task/", "stop"),
        ("/admin/tasks/task/", "dispatch_again"),
        ("/admin/subtasks/subtask/", "config_complete"),
        ("/admin/subtasks/subtask/", "start"),
        ("/admin/subtasks/subtask/", "stop"),
    ],
)
def test_an_actions_messages_are_chinese(chinese_operator, console_data, changelist, action):
    """The list after an admin action: its messages (each subtask's outcome) in Chinese too."""
    pk = console_data["task"].pk if changelist.startswith("/admin/tasks/") else console_data["subtask"].pk
    response = chinese_operator.post(
        changelist, {"action": action, "_selected_action": [pk], "index": 0}, follow=True
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="messagelist"' in page, f"{action}: no message"
    left = english_words(page, page_data(console_data))
    assert not left, f"English after {action}: {', '.join(left)}\n" + "\n".join(where(page, w) for w in left)


@pytest.mark.parametrize(
    ("fields", "echoed"),
    [
        pytest.param({}, set(), id="no-source"),
        pytest.param({"video": "bikes.mp4", "stream_url": "rtsp://10.0.0.1/live"}, set(), id="two-sources"),
        pytest.param({"stream_url": "10.0.0.1/live"}, set(), id="no-scheme"),
        pytest.param({"stream_url": "file:///etc/passwd"}, {"file"}, id="a-local-file"),
        pytest.param({"video": "bikes.mp4", "roi": "bow-tie"}, set(), id="bow-tie"),
        pytest.param({"video": "other.mp4"}, {"other"}, id="not-in-store"),
    ],
)
def test_a_refused_camera_is_explained_in_chinese(chinese_operator, console_data, fields, echoed):
    """The camera page's refusals, each at its field, in Chinese too (`echoed`: what the operator
    typed, quoted back in the message)."""
    from tests.test_console import BOW_TIE, camera_post

    if fields.get("roi") == "bow-tie":
        fields = {**fields, "roi": BOW_TIE.replace("yard", "院子")}
    body = {**camera_post(**fields, _start="1"), "name": "前门", "mtask_name": "全天"}
    response = chinese_operator.post("/admin/tasks/task/camera/", body)
    assert response.status_code == 200
    page = response.content.decode()
    assert Task.objects.count() == 1  # refused: only the fixture's task
    left = english_words(page, page_data(console_data) | echoed)
    assert not left, f"English in the refusal: {', '.join(left)}\n" + "\n".join(where(page, w) for w in left)


def test_the_check_finds_an_untranslated_label(chinese_operator, console_data):
    """The check itself can fail: an English label left on a page is reported by its words."""
    page = chinese_operator.get("/admin/console/system/").content.decode()
    assert english_words(page.replace("</h2>", " Untranslated label</h2>", 1), {"admin"}) == [
        "Untranslated",
        "label",
    ]
