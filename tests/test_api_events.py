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


def test_an_events_snapshot_is_served_to_its_project_only(alice, bob, settings):
    from pathlib import Path

    task = ready_task(alice)
    add_events(task, 1)
    event = Event.objects.get(task=task)
    event.snapshot = f"events/{task.pk}/1.jpg"
    event.save()
    path = Path(settings.MEDIA_ROOT) / event.snapshot
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0fake-but-bytes")
    url = ok(alice.get(f"/tasks/{task.pk}/events"))["list_data"][0]["snapshot_url"]
    assert url == f"/events/{event.pk}/snapshot"
    answer = alice.client.get(url, **alice.headers())
    assert answer.status_code == 200 and answer["Content-Type"] == "image/jpeg"
    assert b"".join(answer.streaming_content) == path.read_bytes()
    error(bob.get(url), 404)


@pytest.mark.parametrize("event_id", ["0", "abc", "9" * 30, "12"])
def test_a_missing_snapshot_is_a_404(alice, event_id):
    error(alice.get(f"/events/{event_id}/snapshot"), 404)
