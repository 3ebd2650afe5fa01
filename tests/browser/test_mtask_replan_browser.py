"""The operator edits a started task's mtask window on the admin's task page: the task re-plans at
once (docs/state-machine.md): the waiting subtask starts when the window now includes now, and the
Schedule row moves to the new end. In a real browser (Playwright + Debian's headless Chromium)."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from tests.browser.conftest import login


def in_thread(function) -> None:
    """Core calls beside Playwright's event loop (their announcements use async_to_sync)."""

    def run() -> None:
        try:
            function()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def hhmmss(moment) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


def configured_task_with_a_window(opens):
    """A config-complete one-channel task whose only mtask's window opens at `opens`, for an
    hour, with a detector and a live node row (nothing opens its stored private stream URL)."""
    from analysis.models import Detector
    from subtasks import services as subtask_services
    from subtasks.models import Node
    from tasks import services
    from tasks.models import Project

    Detector.objects.create(name="people", onnx_file="people.onnx", classes={"0": {"category": "body"}})
    Node.objects.create(name="node-a", capacity=1, last_heartbeat=timezone.now())
    task = services.create_task(
        Project.objects.get(project_id="ops"),
        {
            "task_name": "yard",
            "algo_type": "1",
            "run_dt": opens - timedelta(days=1),
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
    return task, subtask


def test_editing_the_window_on_the_task_page_starts_a_waiting_subtask_at_once(page, live_server):
    from django_q.models import Schedule

    from subtasks import services as subtask_services

    now = timezone.now().replace(microsecond=0)
    opens = now + timedelta(hours=2)
    task, subtask = configured_task_with_a_window(opens)
    in_thread(lambda: subtask_services.start_task(task))
    subtask.refresh_from_db()
    assert (subtask.state, subtask.waiting_until) == ("CONFIGURED", opens)

    login(page, live_server.url)
    page.goto(f"{live_server.url}/admin/tasks/task/{task.pk}/change/")
    closes = now + timedelta(hours=1)
    page.fill("#id_mtasks-0-start_time", hhmmss(now - timedelta(hours=1)))
    page.fill("#id_mtasks-0-end_time", hhmmss(closes))
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")

    subtask.refresh_from_db()
    assert (subtask.state, subtask.waiting_until, subtask.node.name) == ("STARTING", None, "node-a")
    assert Schedule.objects.get(name=f"vias-mtask-{task.pk}").next_run == closes
