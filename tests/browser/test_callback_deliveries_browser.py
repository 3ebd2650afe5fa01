# ruff: noqa: F811 - the fixtures imported from tests.test_outputs are parameters here
"""Task-state callback deliveries in the operator's admin (Playwright + Debian's headless Chromium):
a task's state change is POSTed to a real HTTP receiver on loopback, as the django-q2 worker does
it, and an operator (staff, not a superuser, a member of the task's project) then sees that
delivery in the deliveries list and on the task's page, and not another project's."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from tests.browser.conftest import screenshot
from tests.test_outputs import output_settings, private_queue, receiver  # noqa: F401 - fixtures
from tests.test_state_callbacks import queued

OPERATOR_PASSWORD = "carol-password-123"


def callback_task(project: Any, url: str, name: str) -> Any:
    from tasks import services
    from tasks.models import Task

    task = services.create_task(
        project,
        {"task_name": name, "algo_type": "1", "run_dt": timezone.now(), "play_url": "rtsp://10.0.0.1/live"},
    )
    Task.objects.filter(pk=task.pk).update(output={"callback": {"url": url}})
    task.refresh_from_db()
    return task


def fire_and_deliver(task: Any, broker: Any) -> None:
    """A state change through the core (config complete: PENDING -> CONFIGURED), then every queued
    callback run as the worker would run it."""
    from analysis import outputs
    from subtasks import services as subtask_services

    subtask_services.mark_config_complete(task.subtasks.get())
    for func, args in queued(broker):
        if func == outputs.CALLBACK_TASK:
            outputs.deliver_callback(*args)


@pytest.fixture
def operator(admin_user) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from tasks.models import Project

    user = get_user_model().objects.create_user("carol", password=OPERATOR_PASSWORD, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["tasks", "subtasks", "analysis"])
    )
    Project.objects.get(project_id="ops").members.add(user)
    return user


def test_an_operator_sees_a_fired_callback_in_the_admin_and_on_the_task_page(
    page, live_server, operator, receiver, private_queue
):
    from analysis.models import Delivery
    from tasks.models import Project

    hook = receiver(statuses=200)
    mine = callback_task(Project.objects.get(project_id="ops"), hook.url("/state"), "front door")
    other_project = Project.objects.create(project_id="elsewhere", name="elsewhere")
    theirs = callback_task(other_project, hook.url("/theirs"), "not carols")
    fire_and_deliver(mine, private_queue)
    fire_and_deliver(theirs, private_queue)
    assert sorted(r["path"] for r in hook.requests) == ["/state", "/state", "/theirs", "/theirs"]
    mine_ids = set(Delivery.objects.filter(task=mine, ok=True, status_code=200).values_list("pk", flat=True))
    assert len(mine_ids) == 2  # the subtask's change and the task's

    base = live_server.url
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", OPERATOR_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{base}/admin/analysis/delivery/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    listed = rows.all_inner_texts()
    assert all("task-state callback" in row and "front door" in row for row in listed), listed
    assert all("/state" in row and "200" in row for row in listed), listed
    assert "not carols" not in page.inner_text("#result_list")
    screenshot(page, "admin-callback-deliveries")

    # Another project's delivery is not there (404), as on the APIs.
    (their_delivery,) = Delivery.objects.filter(task=theirs).values_list("pk", flat=True)[:1]
    answer = page.goto(f"{base}/admin/analysis/delivery/{their_delivery}/change/")
    assert answer is not None and answer.status == 404

    # The task's page lists them, with the link to all of them.
    page.goto(f"{base}/admin/tasks/task/{mine.pk}/change/")
    table = page.locator("#vias-callbacks tbody tr[data-delivery]")
    assert {int(v) for v in (table.nth(i).get_attribute("data-delivery") for i in range(table.count()))} == (
        mine_ids
    )
    assert "yes" in table.first.inner_text() and "200" in table.first.inner_text()
    screenshot(page, "admin-task-callbacks")
    with page.expect_navigation():
        page.click("text=all state callbacks of this task")
    assert page.locator("#result_list tbody tr").count() == 2
    assert f"task__task_id__exact={mine.pk}" in page.url
