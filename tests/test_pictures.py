"""POST /tasks/{task_id}/pictures: pictures pushed to a running push_pic_files task."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analysis.pictures import pop_picture
from subtasks.choices import State
from subtasks.models import Subtask
from tests.api_helpers import error, ok
from tests.conftest import task_body

pytestmark = pytest.mark.django_db


def jpeg(width: int = 64, height: int = 48) -> bytes:
    frame = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(frame, (8, 8), (40, 30), (0, 255, 0), -1)
    return cv2.imencode(".jpg", frame)[1].tobytes()


def picture_task(actor, running: bool = True) -> str:
    body = task_body(vchans=0, source_type="push_pic_files")
    task_id = ok(actor.post("/tasks", body), 200)["data"]["task_id"]
    if running:
        Subtask.objects.filter(task_id=task_id).update(state=State.RUNNING)
    return task_id


def push(actor, task_id: str, data: bytes, content_type: str = "image/jpeg"):
    return actor.client.post(f"/tasks/{task_id}/pictures", data, content_type=content_type, **actor.headers())


def test_a_pushed_picture_is_queued_for_a_running_subtask_and_comes_out_decoded(alice):
    task_id = picture_task(alice)
    answer = ok(push(alice, task_id, jpeg()))["data"]
    subtask_id = answer["subtask_id"]
    assert answer["queued"] == 1 and len(answer["picture_id"]) == 32
    picture_id, frame = pop_picture(subtask_id, timeout=1)
    assert picture_id == answer["picture_id"] and frame.shape == (48, 64, 3)
    assert pop_picture(subtask_id, timeout=0.05) is None


def test_a_picture_may_come_as_a_multipart_file(alice):
    task_id = picture_task(alice)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("p.jpg", jpeg(), content_type="image/jpeg")
    answer = alice.client.post(f"/tasks/{task_id}/pictures", {"picture": upload}, **alice.headers())
    subtask_id = ok(answer)["data"]["subtask_id"]
    assert pop_picture(subtask_id, timeout=1)[1].shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "not an image"),
        (b"GIF89a not really", 400, "not an image"),
        (b"<html>hello</html>", 400, "not an image"),
        (b"\xff\xd8\xff" + b"\x00" * 100, 400, "not an image"),
    ],
)
def test_what_is_not_an_image_is_refused(alice, data, status, words):
    task_id = picture_task(alice)
    assert words in error(push(alice, task_id, data), status)["enote"]


def test_a_picture_over_the_cap_is_refused(alice, settings):
    settings.VIAS_MAX_PICTURE_BYTES = 1000
    task_id = picture_task(alice)
    assert "at most 1000 bytes" in error(push(alice, task_id, jpeg(400, 400)), 413)["enote"]


def test_a_task_that_is_not_running_takes_no_pictures(alice):
    task_id = picture_task(alice, running=False)
    assert "not running" in error(push(alice, task_id, jpeg()), 409)["enote"]


def test_a_video_task_takes_no_pictures(alice):
    task_id = ok(alice.post("/tasks", task_body()), 200)["data"]["task_id"]
    assert "push_pic_files" in error(push(alice, task_id, jpeg()), 400)["enote"]


def test_a_full_queue_answers_503_instead_of_growing(alice, settings):
    settings.VIAS_PICTURE_QUEUE = 2
    task_id = picture_task(alice)
    ok(push(alice, task_id, jpeg()))
    ok(push(alice, task_id, jpeg()))
    error(push(alice, task_id, jpeg()), 503)


def test_another_project_cannot_push_to_the_task(alice, bob):
    task_id = picture_task(alice)
    error(push(bob, task_id, jpeg()), 404)


def test_a_picture_tasks_algorithm_combination_changes_over_http_and_reaches_its_devices(alice):
    from analysis.control import Inbox
    from tests.test_control import answer_in_thread

    task_id = picture_task(alice)
    subtask_id = Subtask.objects.get(task_id=task_id).pk
    with Inbox(subtask_id) as inbox:
        thread, received = answer_in_thread(inbox)
        body = ok(alice.post(f"/tasks/{task_id}/pic_task_config", {"detector_models": ["face", "body"]}))
        thread.join()
    from tasks.models import Task

    assert body["data"]["task_id"] == task_id
    assert Task.objects.get(pk=task_id).detector_models == ["face", "body"]
    assert [a["status"] for a in body["subtasks"]] == ["acknowledged"]
    assert received[0].op == "update"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "detector_models"),
        ({"detector_models": ["cat"]}, "detector_models"),
        ({"detector_models": "face"}, "detector_models"),
    ],
)
def test_a_bad_algorithm_combination_is_refused_and_nothing_changes(alice, body, field):
    task_id = picture_task(alice)
    assert field in error(alice.post(f"/tasks/{task_id}/pic_task_config", body), 400)["errors"]
    from tasks.models import Task

    assert Task.objects.get(pk=task_id).detector_models == []


def test_a_video_task_takes_no_picture_task_config(alice):
    task_id = ok(alice.post("/tasks", task_body()), 200)["data"]["task_id"]
    error(alice.post(f"/tasks/{task_id}/pic_task_config", {"detector_models": ["face"]}), 400)
