"""The operator's admin in a real browser (Playwright + Debian's headless Chromium): log in, create a
task with a scene, draw a polygon ROI on a frame of the video, save, reload and find it again; see an
XML error at its line; watch a task's badge change live over the websocket. Screenshots of the main
pages go to var/screenshots/."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from tests.browser.conftest import login, screenshot

VIDEO = Path(__file__).resolve().parent.parent / "data" / "bikes.mp4"
CLICKS = [(0.2, 0.2), (0.7, 0.25), (0.75, 0.8), (0.25, 0.75)]


@pytest.fixture
def video_store():
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(VIDEO, store / "bikes.mp4")


def click_canvas(page, canvas, fx: float, fy: float) -> None:
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def roi_points(xml: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r'<point x="([\d.]+)" y="([\d.]+)"/>', xml)]


def test_create_a_task_with_a_scene_and_draw_a_polygon_roi(page, live_server, video_store):
    base = live_server.url
    login(page, base)
    screenshot(page, "01-admin-index")

    # A task whose one video source is a file in the video store.
    page.goto(f"{base}/admin/tasks/task/add/")
    page.select_option("#id_project", label="ops")
    page.fill("#id_task_name", "lobby")
    page.select_option("#id_algo_type", "1")
    page.fill("#id_run_dt_0", timezone.now().strftime("%Y-%m-%d"))
    page.fill("#id_run_dt_1", "10:00:00")
    page.fill("#id_play_url", "bikes.mp4")
    page.click("#mtasks-group .add-row a")
    page.fill("#id_mtasks-0-mtask_unid", "all-day")
    page.fill("#id_mtasks-0-name", "all day")
    page.click("input[name=_continue]")
    page.wait_for_selector("#vias-task-panel")
    assert "subtasks: 1" in page.inner_text("#vias-task-panel")

    # Its scene, from the task page's link; then an ROI drawn on the frame.
    page.click("a.vias-add-scene")
    page.fill("#id_name", "entrance")
    page.click("#rois-group .add-row a")
    editor = page.locator("#rois-0 .vias-draw")
    page.wait_for_function(
        "() => document.querySelector('#rois-0 .vias-draw').dataset.frame === 'ok'", timeout=20000
    )
    editor.locator("button[data-action=polygon]").click()
    canvas = editor.locator("canvas")
    for fx, fy in CLICKS:
        click_canvas(page, canvas, fx, fy)
    editor.locator("button[data-action=finish]").click()
    editor.locator("input.vias-shape-name").fill("doorway")
    editor.locator("input.vias-shape-name").press("Tab")
    written = page.input_value("#id_rois-0-xml")
    assert 'name="doorway"' in written and len(roi_points(written)) == 4
    screenshot(page, "02-scene-roi-editor")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")

    # Reloaded from the database: the same polygon, drawn again from the saved XML.
    page.reload()
    editor = page.locator("#rois-0 .vias-draw")
    editor.locator("tr[data-shape=polygon]").wait_for()
    assert editor.locator("tr[data-shape=polygon]").count() == 1
    assert editor.locator("input.vias-shape-name").input_value() == "doorway"
    saved = roi_points(page.input_value("#id_rois-0-xml"))
    assert [pytest.approx(p, abs=0.01) for p in CLICKS] == saved

    from tasks.models import SceneRoi

    assert 'name="doorway"' in SceneRoi.objects.get().xml

    page.goto(f"{base}/admin/tasks/task/")
    screenshot(page, "03-task-list")
    page.click("a:text('lobby')")
    screenshot(page, "04-task-page")
    page.goto(f"{base}/admin/subtasks/subtask/")
    page.click("table#result_list tbody tr th a")
    page.wait_for_selector("#vias-subtask-panel")
    screenshot(page, "05-subtask-page")
    page.goto(f"{base}/admin/analysis/event/")
    screenshot(page, "06-event-list")


def test_invalid_xml_shows_the_error_at_its_line(page, live_server):
    from tasks import services
    from tasks.models import Project, Scene

    services.create_task(
        Project.objects.get(project_id="ops"),
        {
            "task_name": "gate",
            "algo_type": "1",
            "run_dt": timezone.now(),
            "play_url": "rtsp://10.0.0.1/live",
            "mtasks": [
                {"mtask_unid": "m", "scenes": [{"scene_unid": "s", "name": "gate", "algo_type": "1"}]}
            ],
        },
    )
    scene = Scene.objects.get()
    login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/tasks/scene/{scene.pk}/change/")
    page.wait_for_selector(".CodeMirror[data-for=id_config_xml]")
    page.evaluate(
        "document.getElementById('id_config_xml').viasEditor.setValue('<root>\\n  <camera>\\n  </lens>\\n</root>')"
    )
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    where = page.inner_text(".field-config_xml .vias-xml-error-at")
    assert where.startswith("line 3, column")
    marked = page.evaluate(
        "(() => { const cm = document.getElementById('id_config_xml').viasEditor;"
        " return [0, 1, 2, 3].filter(i => (cm.getLineHandle(i).bgClass || '').includes('vias-error-line')); })()"
    )
    assert marked == [2]  # the third line, 0-based
    assert "line 3" in page.inner_text(".field-config_xml .vias-error-widget")
    screenshot(page, "07-xml-error")


def test_starting_a_task_changes_its_badge_without_reloading(page, asgi_server):
    from analysis.models import Detector
    from subtasks import services as subtask_services
    from subtasks.choices import State
    from subtasks.models import Subtask
    from tasks import services
    from tasks.models import Project

    Detector.objects.create(name="people", onnx_file="people.onnx", classes={"0": {"category": "body"}})
    task = services.create_task(
        Project.objects.get(project_id="ops"),
        {"task_name": "live", "algo_type": "1", "run_dt": timezone.now(), "play_url": "rtsp://10.0.0.1/live"},
    )
    for subtask in task.subtasks.all():
        Subtask.objects.filter(pk=subtask.pk).update(state=State.CONFIGURED, config_complete=True)

    login(page, asgi_server)
    page.goto(f"{asgi_server}/admin/tasks/task/{task.pk}/change/")
    badge = f"#vias-task-panel [data-task-id='{task.pk}'] .vias-badge"
    assert page.get_attribute(badge, "data-state") == "CONFIGURED"
    page.wait_for_selector("body[data-live=on]", timeout=15000)
    page.evaluate("window.notReloaded = true")

    # As any API would. In a thread of its own: Playwright keeps an event loop in this one, and the
    # announcement after commit (async_to_sync) cannot run beside it.
    def start() -> None:
        try:
            subtask_services.start_task(task)
        finally:
            connections.close_all()  # this thread's connection, or the test database cannot be dropped

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()

    page.wait_for_selector(f"{badge}[data-state=STARTING]", timeout=15000)
    page.wait_for_selector("[data-subtask-id] .vias-badge[data-state=STARTING]")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "08-live-task-page")


def test_dispatch_again_on_the_task_page_redispatches_an_abnormal_subtask(page, live_server):
    """The button as an operator clicks it: the form posts, the page comes back with a message and
    the subtask is STARTING again (it answered 500 when the admin imported a missing name)."""
    from subtasks.choices import State
    from subtasks.models import Subtask
    from tasks import services
    from tasks.models import Project

    task = services.create_task(
        Project.objects.get(project_id="ops"),
        {
            "task_name": "stuck",
            "algo_type": "1",
            "run_dt": timezone.now(),
            "play_url": "rtsp://10.0.0.1/live",
        },
    )
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(state=State.ABNORMAL, config_complete=True)

    login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/tasks/task/{task.pk}/change/")
    with page.expect_navigation():
        page.click("button[data-command=dispatch]")

    assert page.url.endswith(f"/admin/tasks/task/{task.pk}/change/")
    assert f"subtask {subtask.pk} → starting" in page.inner_text("ul.messagelist")
    assert Subtask.objects.get(pk=subtask.pk).state == State.STARTING
