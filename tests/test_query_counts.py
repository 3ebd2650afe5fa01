"""The cost of reading tasks: a fixed number of SQL queries whatever the page size."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subtasks.choices import State
from subtasks.models import Subtask
from tests.conftest import Actor, task_body

pytestmark = pytest.mark.django_db

TASKS = 12
MTASKS, SCENES, ROIS = 3, 4, 2
MAX_LIST_QUERIES = 6
STATES = [
    State.PENDING,
    State.CONFIGURED,
    State.STARTING,
    State.RUNNING,
    State.STOPPED,
    State.FAILED,
    State.ABNORMAL,
]


def add_task(actor: Actor, name: str, vchans: int, **kwargs) -> str:
    body = task_body(vchans=vchans, task_name=name, **kwargs)
    for v in body["vchans"]:
        v["vchan_refid"] = f"{name}-{v['vchan_refid']}"
    response = actor.post("/tasks", body)
    assert response.status_code == 200, response.json()
    return response.json()["data"]["task_id"]


@pytest.fixture
def many_tasks(alice: Actor) -> Actor:
    """TASKS tasks, each with 3 mtasks x 4 scenes x 2 ROIs and 4 subtasks in various states."""
    for t in range(TASKS):
        add_task(alice, f"task-{t}", vchans=4, mtasks=MTASKS, scenes=SCENES)
    for index, pk in enumerate(Subtask.objects.order_by("pk").values_list("pk", flat=True)):
        Subtask.objects.filter(pk=pk).update(state=STATES[index % len(STATES)])
    return alice


def list_queries(actor: Actor, path: str) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        response = actor.get(path)
    assert response.status_code == 200, response.json()
    return len(queries), response.json()


def test_listing_costs_the_same_few_queries_for_10_or_100_tasks(many_tasks):
    many_tasks.get("/tasks?limit=1")  # warm-up: the token's last_used_at is written on first use

    small, ten = list_queries(many_tasks, "/tasks?limit=10")
    large, hundred = list_queries(many_tasks, "/tasks?limit=100")

    assert (ten["list_size"], hundred["list_size"]) == (10, TASKS)
    assert small == large
    assert large <= MAX_LIST_QUERIES


def test_the_listed_tree_is_complete(many_tasks):
    page = many_tasks.get("/tasks?limit=100").json()

    for task in page["list_data"]:
        assert len(task["mtasks"]) == MTASKS
        assert all(len(m["scenes"]) == SCENES for m in task["mtasks"])
        assert all(len(s["rois"]) == ROIS for m in task["mtasks"] for s in m["scenes"])
        assert task["subtask_count"] == 4
    counts = [t["state_counts"] for t in page["list_data"]]
    assert sum(c[State.RUNNING] for c in counts) == sum(
        1 for i in range(TASKS * 4) if STATES[i % len(STATES)] == State.RUNNING
    )


def test_showing_a_task_costs_no_more_than_a_list(many_tasks, django_assert_max_num_queries):
    task_id = many_tasks.get("/tasks?limit=1").json()["list_data"][0]["task_id"]

    with django_assert_max_num_queries(MAX_LIST_QUERIES):
        response = many_tasks.get(f"/tasks/{task_id}")

    assert len(response.json()["data"]["mtasks"]) == MTASKS


def test_a_tasks_subtasks_cost_the_same_whatever_their_number(alice, django_assert_num_queries):
    few = add_task(alice, "few", vchans=1)
    many = add_task(alice, "many", vchans=8)
    alice.get("/tasks?limit=1")  # warm-up

    with CaptureQueriesContext(connection) as one:
        assert len(alice.get(f"/tasks/{few}/subtasks").json()["list_data"]) == 1
    with django_assert_num_queries(len(one)):
        assert len(alice.get(f"/tasks/{many}/subtasks").json()["list_data"]) == 8
