"""A task page already open when its subtask moves to waiting for its mtask's window shows it
without a reload: beside the subtask's and the task's badges, "SCHEDULING → <next start>" from the
websocket's "subtask.schedule" and "task.state" pushes (static/vias/live.js). Daphne serves the
admin and the websocket; Playwright + Debian's headless Chromium."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tasks.api.serializers import format_dt
from tests.browser.conftest import login
from tests.browser.test_mtask_replan_browser import configured_task_with_a_window, in_thread


def test_an_open_task_page_shows_the_subtask_waiting_with_its_next_start(page, asgi_server):
    from subtasks import services as subtask_services

    opens = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    task, subtask = configured_task_with_a_window(opens)

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
