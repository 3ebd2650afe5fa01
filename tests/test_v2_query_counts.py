"""The cost of the v2 reads: a fixed number of SQL queries whatever the page size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subtasks.choices import State
from subtasks.models import Subtask
from tests.conftest import Actor
from tests.test_v2_helpers import add_sources, batch_body, create_task, v2, v2_ok

pytestmark = pytest.mark.django_db

MAX_QUERIES = 5  # token, count, rows with per-state counts, sources (+ nothing per row)


def queries_of(actor: Actor, path: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        answer = v2_ok(actor.get(path))
    return len(captured), answer


@pytest.fixture
def many(alice: Actor) -> Actor:
    sources = add_sources(alice, 30)
    for i in range(30):
        create_task(alice, sources=[sources[i], sources[(i + 1) % 30]], name=f"task_{i}")
    for i in range(6):
        v2_ok(
            alice.post(v2(alice, "/batch-tasks"), batch_body(sources[i * 5 : i * 5 + 5], name=f"batch_{i}"))
        )
    states = list(State)
    for index, pk in enumerate(Subtask.objects.order_by("pk").values_list("pk", flat=True)):
        Subtask.objects.filter(pk=pk).update(state=states[index % len(states)])
    alice.get(v2(alice, "/tasks"))  # warm-up: the token's last_used_at is written on first use
    return alice


@pytest.mark.parametrize(
    "query",
    ["", "&task_state=RUNNING", "&task_state=SCHEDULING", "&camera_name=camera&title=face&sort_dir=asc"],
)
def test_listing_tasks_costs_the_same_for_5_or_60_tasks(many, query):
    small, five = queries_of(many, v2(many, f"/tasks?page_size=5{query}"))
    large, sixty = queries_of(many, v2(many, f"/tasks?page_size=60{query}"))

    assert small == large <= MAX_QUERIES
    assert five["count"] <= 5 and sixty["count"] >= five["count"]


def test_the_full_list_has_every_task(many):
    answer = v2_ok(many.get(v2(many, "/tasks?page_size=1000")))
    assert answer["count"] == answer["total"] == 60


def test_listing_batch_tasks_costs_the_same_whatever_the_page(many):
    small, five = queries_of(many, v2(many, "/batch-tasks?page_size=5"))
    large, all_ = queries_of(many, v2(many, "/batch-tasks?page_size=200"))

    assert small == large <= MAX_QUERIES
    assert (five["count"], all_["count"]) == (5, 6)
    assert all(
        len(b["batch_input"]["video_source_group"][0]["video_source_list"]) == 5 for b in all_["batch_tasks"]
    )


def test_showing_a_task_is_cheap(many, django_assert_max_num_queries):
    task_id = v2_ok(many.get(v2(many, "/tasks?page_size=5")))["tasks"][0]["id"]
    with django_assert_max_num_queries(4):
        v2_ok(many.get(v2(many, f"/tasks/{task_id}")))


def test_listing_sources_costs_the_same_whatever_the_page(many):
    small, _ = queries_of(many, v2(many, "/source/sources?is_paged=true&page_size=5"))
    large, answer = queries_of(many, v2(many, "/source/sources?is_paged=true&page_size=200"))
    unpaged, everything = queries_of(many, v2(many, "/source/sources"))
    assert small == large == unpaged <= 6  # token, count, rows, subtask counts, memberships, groups
    assert answer["video_source_number"] == everything["video_source_number"] == 30


def test_a_batch_of_100_sources_is_a_handful_of_statements(alice):
    sources = add_sources(alice, 100)
    alice.get(v2(alice, "/tasks"))
    with CaptureQueriesContext(connection) as captured:
        answer = v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body(sources, groups=4)))
    inserts = [q["sql"] for q in captured if q["sql"].startswith("INSERT")]

    tables = {sql.split()[2] for sql in inserts}
    assert answer["succeed_count"] == 100
    assert tables == {'"tasks_batchtask"', '"tasks_task"', '"subtasks_subtask"'}
    if connection.vendor == "postgresql":  # SQLite splits a bulk INSERT at its parameter limit
        assert len(inserts) == 3 and len(captured) <= 12
