"""Shared by the analysis-engine tests: a task ready to start, nodes, and the node queues."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from subtasks import services as subtask_services
from subtasks.models import Node, Subtask
from tasks.models import Task
from tests.conftest import task_body


def ready_task(actor, vchans: int = 1, **extra) -> Task:
    """A task created through the native API whose subtasks are config-complete (ready to start)."""
    answer = actor.post("/tasks", task_body(vchans=vchans, **extra))
    assert answer.status_code == 200, answer.content
    task = Task.objects.get(pk=answer.json()["data"]["task_id"])
    for subtask in task.subtasks.all():
        subtask_services.mark_config_complete(subtask)
    return task


def live_node(capacity: int = 2, name: str = "", **fields) -> Node:
    fields.setdefault("last_heartbeat", timezone.now())
    return Node.objects.create(name=name or f"node-{uuid.uuid4().hex[:8]}", capacity=capacity, **fields)


def queued_jobs(node_name: str) -> list[dict]:
    """The django-q2 jobs waiting on a node's queue (decoded, then removed)."""
    broker = get_broker(node_name)
    jobs = []
    while (item := broker.connection.lpop(broker.list_key)) is not None:
        jobs.append(SignedPackage.loads(item))
    return jobs


def age_heartbeat(subtask: Subtask, seconds: float) -> None:
    Subtask.objects.filter(pk=subtask.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def job_in_thread(subtask_pk: int, node_name: str) -> tuple[threading.Thread, list[str]]:
    """The node's job for a subtask (`analysis.jobs.run_subtask`), started in a thread with its own
    database connection; the list gets the job's outcome when it ends."""
    from analysis.jobs import run_subtask

    outcome: list[str] = []

    def run() -> None:
        try:
            outcome.append(run_subtask(subtask_pk, node_name))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome
