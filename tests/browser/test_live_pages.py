"""Live state is true in the browser: a task page opened before its subtask went RUNNING shows
RUNNING (the subscription's snapshot), and the events its subtask finds appear without a reload.

The analysis is the real job (analysis.jobs.run_subtask) on a real video with a tiny ONNX model
that sees one person in every frame; daphne serves the admin and the websocket in a subprocess.
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

WHOLE_FRAME = (
    '<root><polygon name="yard" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
    '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
)
# The page's socket opens, but what it sends waits until the test releases it: the subscription
# then happens after the subtask went RUNNING, as when a page loads while a task starts.
HOLD_SENDS = """
(() => {
  const send = WebSocket.prototype.send;
  const held = [];
  window.viasReleased = false;
  WebSocket.prototype.send = function (data) {
    if (window.viasReleased) return send.call(this, data);
    held.push([this, data]);
  };
  window.viasRelease = () => { window.viasReleased = true; held.forEach(([s, d]) => send.call(s, d)); };
})();
"""


def in_thread(func, *args) -> threading.Thread:
    """Playwright keeps an event loop in the test's thread; announcing (async_to_sync) needs another."""

    def run() -> None:
        try:
            func(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def state_of(subtask_id: int) -> str:
    from subtasks.models import Subtask

    return Subtask.objects.values_list("state", flat=True).get(pk=subtask_id)


@pytest.fixture
def long_file() -> str:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    # Long enough that the file never ends before the test stops it (the job got faster).
    path = long_video(Path(settings.DATA_DIR) / "bikes-long.mp4", loops=48)
    shutil.copy(path, store / "bikes-long.mp4")
    return "bikes-long.mp4"


def test_a_page_opened_before_running_shows_running_and_events_arrive_live(page, asgi_server, long_file):
    from analysis.jobs import run_subtask
    from subtasks import services as subtask_services
    from tasks import services
    from tasks.models import Project
    from tests.analysis_helpers import live_node
    from tests.onnx_models import register_fixed_person_model

    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)])
    scene = {"scene_unid": "s", "name": "yard", "algo_type": "2", "rois": [WHOLE_FRAME]}
    task = services.create_task(
        Project.objects.get(project_id="ops"),
        {
            "task_name": "yard",
            "algo_type": "2",
            "run_dt": timezone.now(),
            "play_url": long_file,
            "mtasks": [{"mtask_unid": "m", "scenes": [scene]}],
        },
    )
    subtask = task.subtasks.get()
    subtask_services.mark_config_complete(subtask)
    node = live_node(capacity=2)
    in_thread(subtask_services.start_task, task).join()
    assert state_of(subtask.pk) == "STARTING"

    page.add_init_script(HOLD_SENDS)
    login(page, asgi_server)
    page.goto(f"{asgi_server}/admin/tasks/task/{task.pk}/change/")
    badge = f"#vias-task-panel [data-task-id='{task.pk}'] .vias-badge"
    assert page.get_attribute(badge, "data-state") == "STARTING"  # as rendered
    assert page.locator("[data-live-events] tbody tr").count() == 0
    page.evaluate("window.notReloaded = true")

    job = in_thread(run_subtask, subtask.pk, node.name)  # the node's job: RUNNING, then events
    try:
        wait_for(lambda: state_of(subtask.pk) == "RUNNING", timeout=60, what="the job to run")
        page.evaluate("window.viasRelease()")  # only now does the page subscribe
        page.wait_for_selector("body[data-live=on]")
        page.wait_for_selector(f"{badge}[data-state=RUNNING]", timeout=15000)
        page.wait_for_selector(f"[data-subtask-id='{subtask.pk}'] .vias-badge[data-state=RUNNING]")
        page.wait_for_selector("[data-live-events] tbody tr[data-event-id]", timeout=60000)
        rows = page.eval_on_selector_all(
            "[data-live-events] tbody tr[data-event-id]", "rows => rows.map(r => r.innerText)"
        )
        assert any("yard" in row for row in rows), rows  # an event of the zone, arrived live
        assert page.evaluate("window.notReloaded") is True
        screenshot(page, "09-live-events")
    finally:
        in_thread(subtask_services.stop_task, task).join()
        job.join(60)
    assert state_of(subtask.pk) == "STOPPED"
