"""The operator's console in a real browser against a real daphne and a real node (`manage.py node`):
add a camera in one page from a video of the store, start it, watch the live view update and the
figures move, find its event with a clip that Chromium plays, then read the same pages in Chinese
with no English word left. The interactions (clicks and typed fields) that take one camera from
nothing to running with a zone are counted here, for the one-page set-up and for the old way
(task page, scene page, config complete, start). Screenshots under var/screenshots/."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tests.browser.conftest import SCREENSHOTS, login, screenshot
from tests.nodes import BIKES, NodeProcess, long_video, wait_for
from tests.onnx_models import register_fixed_person_model
from tests.test_console_i18n import WORD, english_words
from tests.test_jobs import PERSON

# Nearly the whole frame: the test model's person stands in the middle, feet near the bottom.
CLICKS = [(0.04, 0.04), (0.96, 0.04), (0.96, 0.985), (0.04, 0.985)]
TARGET = 12
# What a reader sees on the page (innerText: rendered text only), without the code editors'
# documents, the drop-downs' options (XML and file names are data, not labels) and <code> (commands).
READABLE_TEXT = """() => {
  const editors = [...document.querySelectorAll('.CodeMirror, select, code')];
  editors.forEach(n => { n.style.display = 'none'; });
  const text = document.body.innerText;  // rendered text only: closed <details> stay out
  editors.forEach(n => { n.style.display = ''; });
  return text;
}"""


class Interactions:
    """The operator's clicks and typed fields on a Playwright page, counted as they happen."""

    def __init__(self, page) -> None:
        self.page = page
        self.count = 0

    def click(self, selector: str) -> None:
        self.page.click(selector)
        self.count += 1

    def fill(self, selector: str, value: str) -> None:
        self.page.fill(selector, value)
        self.count += 1

    def select(self, selector: str, value: str) -> None:
        self.page.select_option(selector, value)
        self.count += 1

    def click_canvas(self, canvas, fx: float, fy: float) -> None:
        box = canvas.bounding_box()
        self.page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        self.count += 1


def record(name: str, count: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "interactions.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = count
    path.write_text(json.dumps(figures, indent=2))


@pytest.fixture
def store() -> Path:
    path = Path(settings.DATA_DIR) / "videos"
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, path / "bikes.mp4")
    # Fifteen minutes of video: still running while the browser watches (a file is read at full speed).
    long_video(path / "lobby.mp4", loops=90)
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)
    return path


@pytest.fixture
def node(store):
    from subtasks.models import Node

    process = NodeProcess(capacity=1)
    try:
        wait_for(lambda: Node.objects.filter(name=process.name).exists(), 60, what="the node to register")
        yield process
    finally:
        process.stop()


def draw_zone(ops: Interactions, scope: str, name: str) -> None:
    page = ops.page
    page.wait_for_function(
        f"() => document.querySelector('{scope} .vias-draw').dataset.frame === 'ok'", timeout=30000
    )
    ops.click(f"{scope} .vias-draw button[data-action=polygon]")
    canvas = page.locator(f"{scope} .vias-draw canvas")
    for fx, fy in CLICKS:
        ops.click_canvas(canvas, fx, fy)
    ops.click(f"{scope} .vias-draw button[data-action=finish]")
    ops.fill(f"{scope} .vias-draw input.vias-shape-name", name)


def test_one_camera_from_nothing_to_running_with_live_view_figures_and_a_clip(page, asgi_server, node):
    from analysis.models import Event
    from subtasks.models import Subtask

    base = asgi_server
    login(page, base)
    screenshot(page, "10-dashboard-empty")
    ops = Interactions(page)

    # From the dashboard: one page, one button.
    ops.click("a.vias-add-camera")
    page.wait_for_selector("#vias-camera-form")
    ops.fill("#id_name", "lobby")
    ops.select("#id_video", "lobby.mp4")
    ops.select("#id_algo_type", "2")
    draw_zone(ops, ".field-roi", "hall")
    screenshot(page, "11-add-a-camera")
    ops.click("input[name=_start]")
    page.wait_for_selector("#vias-camera-panel")
    record("one-page camera set-up", ops.count)
    assert ops.count <= TARGET, f"{ops.count} interactions to get one camera running"

    subtask = Subtask.objects.select_related("task").get()
    assert 'name="hall"' in subtask.rois[0] and subtask.source_url == "lobby.mp4"
    # The live view: frames keep coming (the node publishes only while this page asks).
    page.wait_for_function(
        "() => Number(document.querySelector('img[data-live-frame]').dataset.frames || 0) >= 3", timeout=60000
    )
    assert page.evaluate("document.querySelector('img[data-live-frame]').naturalWidth") == 640
    # The figures move.
    figures = "table[data-camera-figures]"
    page.wait_for_function(
        f"() => Number(document.querySelector('{figures}').dataset.framesAnalysed || 0) > 0"
    )
    first = int(page.get_attribute(figures, "data-frames-analysed"))
    page.wait_for_function(
        f"() => Number(document.querySelector('{figures}').dataset.framesAnalysed) > {first}", timeout=20000
    )
    assert "CPU" in page.inner_text(figures)
    # Buttons follow the state: a running subtask offers Stop, not Start.
    assert page.is_visible("form[data-states] button[data-command=stop]")
    assert not page.is_visible("form[data-states] button[data-command=start]")
    screenshot(page, "12-subtask-live-view")

    # The task's page: the live view of its running camera and the review timeline with the event.
    page.goto(f"{base}/admin/tasks/task/{subtask.task_id}/change/")
    page.wait_for_function(
        "() => Number(document.querySelector('img[data-live-frame]').dataset.frames || 0) >= 1", timeout=30000
    )
    page.wait_for_selector(".vias-timeline a[data-event]")
    screenshot(page, "14-task-page-timeline")

    # Its event, with a clip Chromium plays (written a few seconds after the event).
    wait_for(
        lambda: Event.objects.filter(subtask=subtask).exclude(clip="").exists(),
        60,
        what=lambda: (
            f"a clip; events {list(Event.objects.values_list('key', 'clip'))}\n{node.output()[-3000:]}"
        ),
    )
    event = Event.objects.filter(subtask=subtask).exclude(clip="").first()
    page.goto(f"{base}/admin/analysis/event/{event.pk}/change/")
    page.wait_for_function(
        "() => { const v = document.querySelector('video.vias-clip'); return v && v.readyState >= 2 && v.duration > 0; }",
        timeout=20000,
    )
    assert page.evaluate("document.querySelector('video.vias-clip').error") is None
    assert page.evaluate("document.querySelector('video.vias-clip').videoWidth") == 640
    screenshot(page, "13-event-with-clip")

    page.goto(f"{base}/admin/console/system/")
    assert node.name in page.inner_text("table.vias-system")
    screenshot(page, "15-system")
    page.goto(f"{base}/admin/")
    assert "lobby" in page.inner_text("#vias-dashboard")
    screenshot(page, "16-dashboard-running")

    # The same pages in Chinese: the language switch, then no English word on them.
    page.select_option("select[name=language]", "zh-hans")
    page.wait_for_selector("html[lang=zh-hans]")
    for name, url in (
        ("dashboard", "/admin/"),
        ("add-a-camera", "/admin/tasks/task/camera/"),
        ("subtask", f"/admin/subtasks/subtask/{subtask.pk}/change/"),
        ("event", f"/admin/analysis/event/{event.pk}/change/"),
        ("system", "/admin/console/system/"),
    ):
        page.goto(base + url)
        # Data, not labels: names, the event's key, "English" in the language switch (each language
        # in its own words). The XML editors' documents are data too.
        data = {"admin", "lobby", "hall", "English", *WORD.findall(node.name), *WORD.findall(event.key)}
        data |= set(WORD.findall(socket.gethostname()))  # the node's host, on the System page
        left = english_words(page.evaluate(READABLE_TEXT), data)
        assert not left, f"English on the {name} page in Chinese: {left}"
        screenshot(page, f"17-zh-{name}")

    from subtasks import services as subtask_services

    subtask_services.stop_task(subtask.task)
    wait_for(lambda: Subtask.objects.get(pk=subtask.pk).state == "STOPPED", 60, what="STOPPED")


def test_the_old_way_to_one_running_camera_counts_its_interactions(page, live_server, store):
    """The same camera through the task and subtask pages, as before the one-page set-up: the task
    form (project, name, type, run time, play URL, an mtask), the subtask's ROI editor, config
    complete, start. (A scene added afterwards is not linked to the subtask already split.)"""
    from subtasks.models import Subtask
    from tasks.models import Project

    base = live_server.url
    login(page, base)
    ops = Interactions(page)
    ops.click("a[href='/admin/tasks/task/add/']")
    ops.select("#id_project", str(Project.objects.get().pk))
    ops.fill("#id_task_name", "lobby")
    ops.select("#id_algo_type", "2")
    ops.fill("#id_run_dt_0", timezone.now().strftime("%Y-%m-%d"))
    ops.fill("#id_run_dt_1", "10:00:00")
    ops.fill("#id_play_url", "lobby.mp4")
    ops.click("#mtasks-group .add-row a")
    ops.fill("#id_mtasks-0-mtask_unid", "all-day")
    ops.click("input[name=_continue]")
    page.wait_for_selector("#vias-task-panel")
    ops.click("#subtasks-group a.inlinechangelink")
    page.wait_for_selector("#vias-subtask-panel")
    draw_zone(ops, ".field-rois .vias-roi-doc:last-of-type", "hall")
    ops.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    ops.click("button[data-command=config-complete]")
    page.wait_for_selector("form:not([hidden]) > button[data-command=start]")
    ops.click("form:not([hidden]) > button[data-command=start]")
    page.wait_for_selector(".messagelist")
    subtask = Subtask.objects.get()
    assert subtask.state == "STARTING" and 'name="hall"' in subtask.rois[0]
    record("before: task and subtask pages", ops.count)
    assert ops.count > TARGET


def test_the_calibration_editor_shows_each_pairs_error_and_a_ground_grid(page, live_server, store):
    from subtasks.models import Subtask
    from tasks import services
    from tasks.models import Project

    # A 10 m square and its centre, the centre's ground point 0.3 m off (under the refusal limit).
    pairs = [
        ((0.2, 0.2), (0, 0)),
        ((0.8, 0.2), (10, 0)),
        ((0.8, 0.8), (10, 10)),
        ((0.2, 0.8), (0, 10)),
        ((0.5, 0.5), (5.3, 5)),
    ]
    xml = (
        "<root>"
        + "".join(
            f'<pair><image x="{a}" y="{b}"/><ground x="{c}" y="{d}"/></pair>' for (a, b), (c, d) in pairs
        )
        + "</root>"
    )
    task = services.create_task(
        Project.objects.get(),
        {
            "task_name": "yard",
            "algo_type": "2",
            "run_dt": timezone.now(),
            "play_url": "bikes.mp4",
            "mtasks": [
                {
                    "mtask_unid": "m",
                    "scenes": [{"scene_unid": "s", "name": "yard", "algo_type": "2", "calibration_xml": xml}],
                }
            ],
        },
    )
    subtask = task.subtasks.get()
    assert Subtask.objects.get(pk=subtask.pk).calibration_xml == xml
    login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/subtasks/subtask/{subtask.pk}/change/")
    editor = ".field-calibration_xml .vias-draw"
    page.wait_for_selector(f"{editor}[data-grid=on]")
    errors = [
        float(v)
        for v in page.eval_on_selector_all(
            f"{editor} td.vias-pair-error", "cells => cells.map(c => c.dataset.error)"
        )
    ]
    assert len(errors) == 5 and max(errors) == errors[4] and 0.05 < errors[4] < 0.3
    assert "reprojection error" in page.inner_text(f"{editor} .vias-draw-shapes")
    page.locator(editor).scroll_into_view_if_needed()
    page.locator(editor).screenshot(path=str(SCREENSHOTS / "18-calibration-grid.png"))
