"""The operator's whole journey in a real browser (Playwright + Debian's Chromium): create a video
channel and a task over it, add a scene from the task page, draw a zone around the middle, a zone
in a corner and a counting line on the grabbed frame, save, mark config complete, start; the badge
shows RUNNING, events appear without a reload, and the subtask analysed with the drawn zones: the
person in the middle is seen in "middle", never in "corner".

daphne serves the admin and the websocket; the subtask's job is the real one (analysis.jobs), run
in this process for the node the start dispatched it to, on a real video with a tiny ONNX model
that sees one person in the middle of every frame.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.utils import timezone

from tests.browser.conftest import login, screenshot
from tests.nodes import long_video, wait_for

MIDDLE = [(0.3, 0.3), (0.7, 0.3), (0.7, 0.98), (0.3, 0.98)]
CORNER = [(0.02, 0.02), (0.2, 0.02), (0.2, 0.2), (0.02, 0.2)]
LINE = [(0.5, 0.05), (0.5, 0.95)]


@pytest.fixture
def long_file() -> str:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(long_video(Path(settings.DATA_DIR) / "bikes-long.mp4", loops=8), store / "street.mp4")
    return "street.mp4"


def click_canvas(page, canvas, fx: float, fy: float) -> None:
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def draw(page, editor, kind: str, points, name: str) -> None:
    editor.locator(f"button[data-action={kind}]").click()
    canvas = editor.locator("canvas")
    for fx, fy in points:
        click_canvas(page, canvas, fx, fy)
    if kind == "polygon":
        editor.locator("button[data-action=finish]").click()
    names = editor.locator("input.vias-shape-name")
    names.last.fill(name)
    names.last.press("Tab")


def subtask_of(task_name: str):
    from subtasks.models import Subtask

    return Subtask.objects.select_related("node").filter(task__task_name=task_name).first()


def test_channel_task_scene_drawn_started_running_with_live_events_in_the_drawn_zone(
    page, asgi_server, long_file
):
    from analysis.jobs import run_subtask
    from tests.analysis_helpers import live_node
    from tests.onnx_models import register_fixed_person_model

    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)])
    base = asgi_server
    login(page, base)

    # A video channel, then a task over it (security: an event when someone is inside a zone).
    page.goto(f"{base}/admin/tasks/videochannel/add/")
    page.select_option("#id_project", label="ops")
    page.fill("#id_vchan_refid", "street")
    page.fill("#id_url", long_file)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    page.goto(f"{base}/admin/tasks/task/add/")
    page.select_option("#id_project", label="ops")
    page.fill("#id_task_name", "street watch")
    page.select_option("#id_algo_type", "2")
    page.fill("#id_run_dt_0", timezone.localtime().strftime("%Y-%m-%d"))
    page.fill("#id_run_dt_1", "00:00:00")
    page.fill("#id_play_url", long_file)
    page.select_option("#id_vchans_from", label="street")
    page.click("#id_vchans_add")
    page.click("#mtasks-group .add-row a")
    page.fill("#id_mtasks-0-mtask_unid", "all-day")
    page.fill("#id_mtasks-0-name", "all day")
    page.fill("#id_mtasks-0-start_time", "00:00:00")
    page.fill("#id_mtasks-0-end_time", "23:59:59")
    page.click("input[name=_continue]")
    page.wait_for_selector("#vias-task-panel")
    task_url = page.url

    # The scene, from the task page; its zones and line drawn on a frame of the channel.
    page.click("a.vias-add-scene")
    page.fill("#id_name", "street")
    page.fill("#id_vchan_refid", "street")
    page.click("#rois-group .add-row a")
    editor = page.locator("#rois-0 .vias-draw")
    page.wait_for_function(
        "() => document.querySelector('#rois-0 .vias-draw').dataset.frame === 'ok'", timeout=30000
    )
    draw(page, editor, "polygon", MIDDLE, "middle")
    draw(page, editor, "polygon", CORNER, "corner")
    draw(page, editor, "line", LINE, "counter")
    written = page.input_value("#id_rois-0-xml")
    assert 'name="middle"' in written and 'name="corner"' in written and 'name="counter"' in written
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    screenshot(page, "10-journey-scene")

    # Config complete and start, from the task page's buttons.
    page.goto(task_url)
    page.click("button[data-command=config-complete]")
    page.wait_for_selector(".messagelist")
    node = live_node(capacity=2)  # a node that has just heartbeaten takes what is started
    page.click("button[data-command=start]")
    page.wait_for_selector(".messagelist")
    page.wait_for_selector("body[data-live=on]")
    page.evaluate("window.notReloaded = true")
    subtask = wait_for(lambda: (s := subtask_of("street watch")) and s.node_id and s, what="the dispatch")
    assert subtask.node == node and 'name="middle"' in subtask.rois[0]  # the drawn ROIs reached it

    def job() -> None:
        try:
            run_subtask(subtask.pk, node.name)
        finally:
            connections.close_all()

    worker = threading.Thread(target=job)
    worker.start()
    try:
        badge = f"#vias-task-panel [data-task-id='{subtask.task_id}'] .vias-badge"
        page.wait_for_selector(f"{badge}[data-state=RUNNING]", timeout=60000)
        page.wait_for_selector("[data-live-events] tbody tr[data-event-id]", timeout=60000)
        assert page.evaluate("window.notReloaded") is True
        rules = page.eval_on_selector_all(
            "[data-live-events] tbody tr[data-event-id] td:nth-child(3)",
            "cells => cells.map(c => c.textContent)",
        )
        assert "intrusion" in rules, rules
        zones = page.eval_on_selector_all(
            "[data-live-events] tbody tr[data-event-id] td:nth-child(5)",
            "cells => cells.map(c => c.textContent)",
        )
        assert "middle" in zones and "corner" not in zones
        screenshot(page, "11-journey-running")
    finally:
        page.click("button[data-command=stop]")
        worker.join(60)
