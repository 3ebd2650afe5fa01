"""A task page already open when its subtask moves to waiting for its mtask's window shows it
without a reload: beside the subtask's and the task's badges, "SCHEDULING → <next start>" from the
websocket's "subtask.schedule" and "task.state" pushes (static/vias/live.js). Daphne serves the
admin and the websocket; Playwright + Debian's headless Chromium."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tasks.api.serializers import format_dt
from tests.browser.conftest import login
from tests.browser.test_mtask_replan_browser import hhmmss, in_thread


def test_an_open_task_page_shows_the_subtask_waiting_with_its_next_start(page, asgi_server):
    from analysis.models import Detector
    from subtasks import services as subtask_services
    from subtasks.models import Node
    from tasks import services
    from tasks.models import Project

    Detector.objects.create(name="people", onnx_file="people.onnx", classes={"0": {"category": "body"}})
    Node.objects.create(name="node-a", capacity=1, last_heartbeat=timezone.now())
    now = timezone.now().replace(microsecond=0)
    opens = now + timedelta(hours=2)
    task = services.create_task(
        Project.objects.get(project_id="ops"),
        {
            "task_name": "yard",
            "algo_type": "1",
            "run_dt": now - timedelta(days=1),
            "play_url": "rtsp://10.0.0.1/live",
            "mtasks": [
                {
                    "mtask_unid": "day",
                    "type": 0,
                    "start_time": hhmmss(opens),
                    "end_time": hhmmss(opens + timedelta(hours=1)),
                    "scenes": [{"scene_unid": "s", "name": "yard", "algo_type": "1"}],
                }
            ],
        },
    )
    subtask = task.subtasks.get()
    in_thread(lambda: subtask_services.mark_config_complete(subtask))

    login(page, asgi_server)
    page.goto(f"{asgi_server}/admin/tasks/task/{task.pk}/change/")
    page.wait_for_selector("body[data-live=on]")
    assert page.locator(".vias-schedule").count() == 0
    page.evaluate("window.notReloaded = true")

    in_thread(lambda: subtask_services.start_task(task))  # elsewhere: the page only listens
    expected = f"SCHEDULING → {format_dt(opens)}"
    note = page.wait_for_selector(f"[data-subtask-id='{subtask.pk}'] .vias-schedule", timeout=15000)
    assert note.inner_text().strip() == expected
    task_note = page.wait_for_selector(f"#vias-task-panel [data-task-id='{task.pk}'] .vias-schedule")
    assert task_note.inner_text().strip() == expected
    assert page.evaluate("window.notReloaded") is True
