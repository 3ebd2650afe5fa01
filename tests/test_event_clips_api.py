"""An event's clip through the APIs, end to end: a real node analyses a video under a real daphne;
the websocket `event` push, the native `GET /tasks/{id}/events` and the webhook body all carry
`clip_url`, and `GET /events/{id}/clip` answers the WebM with the token of the event's project (a
404 in the native envelope before the node has written it, and to any other project)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import websockets
from django.conf import settings

from analysis import outputs
from analysis.models import Event
from subtasks import services as subtask_services
from subtasks.models import Subtask
from tasks.models import Task
from tests.analysis_helpers import ready_task
from tests.nodes import database_url, long_video, wait_for
from tests.test_jobs import WHOLE_FRAME
from tests.test_outputs import Receiver
from tests.ws_helpers import WS_PATH, cmd

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daphne():
    """The ASGI app (HTTP and websockets) under daphne, on the test database, Redis and data dir."""
    from tests.live_server import free_port

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "VIAS_DATA_DIR": str(settings.DATA_DIR),
        "DJANGO_SETTINGS_MODULE": "vias.settings",
    }
    port = free_port()
    log_path = Path(settings.DATA_DIR) / "daphne-clips.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vias.asgi:application"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"

            def answers() -> bool:
                assert process.poll() is None, log_path.read_text()[-2000:]
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(answers, 30, what="daphne to answer")
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


class Pushes:
    """A websocket client in its own thread, subscribed to one task; the pushes it received."""

    def __init__(self, url: str, token: str, task_id: str) -> None:
        self.url, self.token, self.task_id = url, token, task_id
        self.pushes: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self.thread.start()

    async def _listen(self) -> None:
        async with websockets.connect(
            self.url, additional_headers={"Authorization": self.token}, origin="http://127.0.0.1"
        ) as ws:
            body = {"command": cmd("post", "subscriptions"), "id": 1, "params": {"task_id": self.task_id}}
            await ws.send(json.dumps(body))
            while not self.done.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if message.get("id") == 1:
                    assert message["ecode"] == 200, message
                    self.subscribed.set()
                else:
                    self.pushes.append(message)

    def events(self) -> list[dict[str, Any]]:
        return [push["data"] for push in self.pushes if push.get("push") == "event"]

    def close(self) -> None:
        self.done.set()
        self.thread.join(10)


def _get(base: str, path: str, token: str) -> httpx.Response:
    return httpx.get(
        path if path.startswith("http") else base + path, headers={"Authorization": token}, timeout=30
    )


def test_an_events_clip_url_is_in_every_message_and_serves_the_webm_to_its_project_only(
    alice, bob, store, node_process, daphne, settings
):
    settings.VIAS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # the receiver is on loopback
    long_video(store / "long.mp4", loops=2)
    hook = Receiver(statuses=200)
    task = ready_task(alice, vchans=1, algo_type="2")
    Task.objects.filter(pk=task.pk).update(output={"webhook": {"url": hook.url()}})
    subtask = task.subtasks.get()
    Subtask.objects.filter(pk=subtask.pk).update(source_url="long.mp4")
    subtask_services.configure_subtask(subtask, {"rois": [WHOLE_FRAME], "algo_args": {"fps": 5}})
    node = node_process(capacity=1)
    ws_url = daphne.replace("http://", "ws://") + WS_PATH
    pushes = Pushes(ws_url, alice.token, task.task_id)
    try:
        assert pushes.subscribed.wait(30), "the subscription was not answered"
        subtask_services.start_task(task)
        pushed = wait_for(
            lambda: pushes.events(), 120, what=lambda: f"an event push\n{node.output()[-2000:]}"
        )[0]
    finally:
        pushes.close()
    event = Event.objects.get(pk=pushed["event_id"])
    # The push: the clip's URL, made absolute with the socket's host, before the clip is written.
    assert pushed["clip_url"] == f"{daphne}/events/{event.pk}/clip"
    assert pushed["snapshot_url"] == f"{daphne}/events/{event.pk}/snapshot"

    # Until the node has written the clip: a 404 in the native envelope that says so; then the WebM.
    early: list[dict[str, Any]] = []

    def fetched() -> httpx.Response | None:
        response = _get(daphne, pushed["clip_url"], alice.token)
        if response.status_code == 404:
            early.append(response.json())
            return None
        return response

    clip = wait_for(fetched, 60, interval=0.5, what="the clip")
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/webm"
    for body in early:
        assert body["ecode"] == 404 and "still being recorded" in body["enote"], body
    path = Path(settings.DATA_DIR) / "clip-from-api.webm"
    path.write_bytes(clip.content)
    video = cv2.VideoCapture(str(path))
    assert video.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"VP80")
    assert video.read()[0]
    video.release()

    # Another project's token: no such event, the same 404 as an id that does not exist.
    other = _get(daphne, f"/events/{event.pk}/clip", bob.token)
    assert other.status_code == 404 and other.json()["ecode"] == 404 and other.content != clip.content
    assert _get(daphne, "/events/999999/clip", alice.token).json()["ecode"] == 404
    assert _get(daphne, "/events/not-an-id/clip", alice.token).json()["ecode"] == 404
    assert _get(daphne, f"/events/{event.pk}/clip", "not-a-token").status_code == 401

    # The native event list and the webhook body carry the same URL (relative: the receiver's base).
    listed = _get(daphne, f"/tasks/{task.task_id}/events?limit=1000", alice.token).json()
    item = next(i for i in listed["list_data"] if i["event_id"] == event.pk)
    assert item["clip_url"] == f"/events/{event.pk}/clip"
    try:
        assert outputs.deliver_webhook(event.pk)
        posted = [json.loads(r["body"]) for r in hook.requests]
    finally:
        hook.close()
    assert {body["event_id"]: body["clip_url"] for body in posted}[event.pk] == f"/events/{event.pk}/clip"
    subtask_services.stop_task(task)


def test_a_picture_event_or_a_clip_that_never_came_has_no_clip_url(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    task = ready_task(alice, vchans=1, algo_type="2")
    subtask = task.subtasks.get()
    fields: dict[str, Any] = {
        "subtask": subtask,
        "task": task,
        "occurred_at": timezone.now(),
        "category": "body",
        "rule": "intrusion",
        "snapshot": "events/x/1.jpg",
    }
    video = Event.objects.create(key="video", **fields)
    picture = Event.objects.create(key="picture", attributes={"picture": "a.jpg"}, **fields)
    assert video.as_message()["clip_url"] == f"/events/{video.pk}/clip"  # being recorded
    assert picture.as_message()["clip_url"] == ""
    Event.objects.filter(pk=video.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    video.refresh_from_db()
    assert video.as_message()["clip_url"] == ""  # not written after minutes: not coming
    Event.objects.filter(pk=video.pk).update(clip="events/x/1.webm")
    video.refresh_from_db()
    assert video.as_message()["clip_url"] == f"/events/{video.pk}/clip"
    settings.VIAS_EVENT_CLIPS = False
    assert Event.objects.get(pk=picture.pk).as_message()["clip_url"] == ""
    answer = alice.get(f"/events/{picture.pk}/clip")
    assert answer.status_code == 404 and answer.json()["ecode"] == 404
