"""GET /tasks/{task_id}/events: a task's events, filtered, newest first."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from analysis.models import Event
from tests.analysis_helpers import ready_task
from tests.api_helpers import error, ok

pytestmark = pytest.mark.django_db


def add_events(task, count: int, **fields):
    subtask = task.subtasks.first()
    start = timezone.now() - timedelta(hours=1)
    for i in range(count):
        Event.objects.create(
            subtask=subtask,
            task=task,
            key=f"{fields.get('rule', 'intrusion')}:{i}:{fields.get('category', 'body')}",
            occurred_at=start + timedelta(minutes=i),
            category=fields.get("category", "body"),
            rule=fields.get("rule", "intrusion"),
            zone="door",
            box=[1, 2, 3, 4],
            score=0.9,
            track_id=i,
        )


def test_events_come_newest_first_with_their_snapshot_url(alice):
    task = ready_task(alice)
    add_events(task, 3)
    body = ok(alice.get(f"/tasks/{task.pk}/events"))
    assert body["total_num"] == 3
    times = [item["occurred_at"] for item in body["list_data"]]
    assert times == sorted(times, reverse=True)
    assert set(body["list_data"][0]) >= {
        "event_id",
        "rule",
        "category",
        "zone",
        "box",
        "score",
        "snapshot_url",
    }


def test_filters_by_category_rule_and_time(alice):
    task = ready_task(alice)
    add_events(task, 2, category="body", rule="intrusion")
    add_events(task, 3, category="motor", rule="parking")
    assert ok(alice.get(f"/tasks/{task.pk}/events?category=motor"))["total_num"] == 3
    assert ok(alice.get(f"/tasks/{task.pk}/events?rule=intrusion"))["total_num"] == 2
    since = (timezone.now() - timedelta(minutes=59, seconds=30)).isoformat()
    assert ok(alice.get(f"/tasks/{task.pk}/events?{urlencode({'since': since})}"))["total_num"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("subtask_id=abc", "subtask_id"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_bad_filters_are_named(alice, query, field):
    task = ready_task(alice)
    assert field in error(alice.get(f"/tasks/{task.pk}/events?{query}"), 400)["errors"]


def test_another_projects_events_are_not_shown(alice, bob):
    task = ready_task(alice)
    add_events(task, 1)
    error(bob.get(f"/tasks/{task.pk}/events"), 404)
