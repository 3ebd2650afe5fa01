"""Scenes reach the subtasks, from every way in that carries scenes (the native HTTP API and the
websocket; VCS-SPS and VIAS v2 have no scenes): the subtask analyses with its scene's ROIs.

Real analysis: the subtask's job (analysis.jobs.run_subtask, what a node runs) on a real video with
a tiny ONNX model that sees one person in the middle of every frame. A zone around the middle gets
an event; a zone in a corner gets none.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from analysis import control
from analysis.jobs import run_subtask
from tests.analysis_helpers import live_node
from tests.conftest import task_body
from tests.nodes import BIKES, long_video, wait_for
from tests.onnx_models import register_fixed_person_model
from tests.ws_helpers import ask, cmd, connect, in_sync_thread, private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

# One person in the middle of every frame (model input 64x64): the box's bottom centre is near
# (0.5, 0.94) of the frame.
PERSON = [(32.0, 32.0, 16.0, 24.0, 0, 0.9)]


def polygon(name: str, x0: float, y0: float, x1: float, y1: float) -> str:
    points = "".join(f'<point x="{x}" y="{y}"/>' for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    return f'<polygon name="{name}" mode="include">{points}</polygon>'


MIDDLE = polygon("middle", 0.3, 0.3, 0.7, 1.0)
CORNER = polygon("corner", 0.0, 0.0, 0.2, 0.2)
ELSEWHERE = polygon("elsewhere", 0.25, 0.25, 0.75, 1.0)


def roi(*shapes: str) -> str:
    return f"<root>{''.join(shapes)}</root>"


@pytest.fixture
def video_store() -> Path:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, store / "bikes.mp4")
    return store


@pytest.fixture
def person_model():
    return register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), PERSON)


def security_body(video: str, rois: list[str]) -> dict:
    body = task_body(vchans=1, algo_type="2")
    body["vchans"][0]["url"] = video
    scene = body["mtasks"][0]["scenes"][0]
    scene["vchan_refid"] = body["vchans"][0]["vchan_refid"]
    scene["rois"] = [{"roi": xml} for xml in rois]
    return body


def without_vchans(body: dict) -> dict:
    """A PUT body: the channels a task was split over cannot change."""
    return {key: value for key, value in body.items() if key != "vchans"}


def zones_of_events(actor, task_id: str) -> set[str]:
    events = actor.get(f"/tasks/{task_id}/events?limit=1000").json()["list_data"]
    return {event["zone"] for event in events}


def run_the_node_job(subtask_id: int) -> str:
    """What the node the subtask was dispatched to runs (here, in this process)."""
    from subtasks.models import Subtask

    return run_subtask(subtask_id, Subtask.objects.get(pk=subtask_id).node.name)


def test_a_scene_changed_through_put_tasks_is_what_the_subtask_analyses(alice, video_store, person_model):
    body = security_body("bikes.mp4", [roi(CORNER)])
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (subtask,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]

    body["mtasks"][0]["scenes"][0]["rois"] = [{"roi": roi(MIDDLE, CORNER)}]
    answer = alice.put(f"/tasks/{task_id}", without_vchans(body)).json()
    assert answer["ecode"] == 200
    assert [(a["subtask_id"], a["status"]) for a in answer["subtasks"]] == [
        (subtask["subtask_id"], "applied")
    ]
    shown = alice.get(f"/subtasks/{subtask['subtask_id']}").json()["data"]
    assert [item["roi"] for item in shown["rois"]] == [roi(MIDDLE, CORNER)]

    live_node(capacity=2)
    assert alice.post(f"/subtasks/{subtask['subtask_id']}/config_complete").json()["ecode"] == 200
    assert alice.post(f"/tasks/{task_id}/start").json()["ecode"] == 200
    assert run_the_node_job(subtask["subtask_id"]) == "succeeded"
    assert zones_of_events(alice, task_id) == {"middle"}  # the person is in the middle, never in the corner


@pytest.mark.usefixtures("private_redis")
async def test_a_scene_changed_over_the_websocket_is_what_the_subtask_analyses(
    alice, video_store, person_model
):
    ws = await connect(alice.token)
    body = security_body("bikes.mp4", [roi(CORNER)])
    created = await ask(ws, cmd("post", "tasks"), body)
    task_id = created["data"]["task_id"]
    listed = await ask(ws, cmd("get", "tasks/subtasks"), {"task_id": task_id})
    subtask_id = listed["list_data"][0]["subtask_id"]

    body["mtasks"][0]["scenes"][0]["rois"] = [{"roi": roi(MIDDLE)}]
    answer = await ask(ws, cmd("put", "tasks"), {**without_vchans(body), "task_id": task_id})
    assert answer["ecode"] == 200 and [a["status"] for a in answer["subtasks"]] == ["applied"]
    shown = await ask(ws, cmd("get", "subtasks"), {"subtask_id": subtask_id})
    assert [item["roi"] for item in shown["data"]["rois"]] == [roi(MIDDLE)]

    await in_sync_thread(live_node)(capacity=2)
    assert (await ask(ws, cmd("post", "subtasks/config_complete"), {"subtask_id": subtask_id}))[
        "ecode"
    ] == 200
    assert (await ask(ws, cmd("post", "tasks/start"), {"task_id": task_id}))["ecode"] == 200
    assert await in_sync_thread(run_the_node_job)(subtask_id) == "succeeded"
    assert await in_sync_thread(zones_of_events)(alice, task_id) == {"middle"}
    await ws.disconnect()


def test_editing_the_scene_of_a_running_task_reaches_the_running_subtask_live(
    alice, video_store, person_model
):
    long_video(video_store / "long.mp4", loops=8)
    body = security_body("long.mp4", [roi(MIDDLE)])
    body["mtasks"][0]["scenes"][0]["algo_args"] = {"fps": 25}
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (subtask,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    pk = subtask["subtask_id"]
    live_node(capacity=2)
    alice.post(f"/subtasks/{pk}/config_complete")
    alice.post(f"/tasks/{task_id}/start")

    result: list[str] = []

    def job() -> None:
        try:
            result.append(run_the_node_job(pk))
        finally:
            connection.close()

    thread = threading.Thread(target=job)
    thread.start()
    try:
        wait_for(lambda: control.live_pid(pk), what="the job to be live")
        wait_for(lambda: "middle" in zones_of_events(alice, task_id), what="an event in the first zone")
        body["mtasks"][0]["scenes"][0]["rois"] = [{"roi": roi(ELSEWHERE)}]
        answer = alice.put(f"/tasks/{task_id}", without_vchans(body)).json()
        assert answer["ecode"] == 200, answer
        assert [(a["subtask_id"], a["status"]) for a in answer["subtasks"]] == [(pk, "acknowledged")]
        assert alice.get(f"/subtasks/{pk}").json()["data"]["state"] == "RUNNING"  # not restarted
        wait_for(lambda: "elsewhere" in zones_of_events(alice, task_id), what="an event in the new zone")

        # Moving the running subtask to another scene is refused, naming it.
        body["mtasks"][0]["scenes"].append({**body["mtasks"][0]["scenes"][0], "scene_unid": "first-now"})
        body["mtasks"][0]["scenes"].reverse()
        refused = alice.put(f"/tasks/{task_id}", without_vchans(body)).json()
        assert (
            refused["ecode"] == 409 and f"#{pk}" in refused["enote"] and "stop it first" in refused["enote"]
        )
    finally:
        alice.post(f"/tasks/{task_id}/stop")
        thread.join(30)
    assert result == ["stopped"]


def test_a_live_put_keeps_the_scene_ids_and_the_running_subtasks_link(alice):
    """A client that sends back what it read without the ids (the seed's body marks them optional)
    edits the scenes in place: the same mtask_unid, scene_unid and scene row, the running subtask
    keeps its scene and gets the new ROIs (it was refused as "another scene" when the tree was
    made anew with new ids)."""
    from subtasks.models import Subtask
    from tasks.models import MTask, Scene

    body = task_body(vchans=1)
    scene_spec = body["mtasks"][0]["scenes"][0]
    scene_spec.update(vchan_refid="cam-0", rois=[{"roi": roi(MIDDLE)}])
    for mtask in body["mtasks"]:
        mtask.pop("mtask_unid")
    scene_spec.pop("scene_unid")
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    shown = alice.get(f"/tasks/{task_id}").json()["data"]["mtasks"][0]
    unids = (shown["mtask_unid"], shown["scenes"][0]["scene_unid"])
    (sub,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    pk = sub["subtask_id"]
    alice.post(f"/subtasks/{pk}/config_complete")
    live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    scene_row = Scene.objects.get(mtask__task_id=task_id)
    MTask.objects.filter(task_id=task_id).update(progress=40)
    assert Subtask.objects.get(pk=pk).scene_id == scene_row.pk

    scene_spec["rois"] = [{"roi": roi(ELSEWHERE)}]
    answer = alice.put(f"/tasks/{task_id}", without_vchans(body)).json()
    assert answer["ecode"] == 200, answer
    assert [a["subtask_id"] for a in answer["subtasks"]] == [pk]
    shown = alice.get(f"/tasks/{task_id}").json()["data"]["mtasks"][0]
    assert (shown["mtask_unid"], shown["scenes"][0]["scene_unid"]) == unids
    assert shown["progress"] == 40  # the mtask row is kept
    assert Scene.objects.get(mtask__task_id=task_id).pk == scene_row.pk
    subtask = alice.get(f"/subtasks/{pk}").json()["data"]
    assert subtask["state"] == "STARTING" and [r["roi"] for r in subtask["rois"]] == [roi(ELSEWHERE)]
    assert Subtask.objects.get(pk=pk).scene_id == scene_row.pk

    # A second scene added (with no id) is made anew; the first keeps its id and row.
    body["mtasks"][0]["scenes"].append({**scene_spec, "vchan_refid": "other", "name": "extra"})
    assert alice.put(f"/tasks/{task_id}", without_vchans(body)).json()["ecode"] == 200
    rows = list(Scene.objects.filter(mtask__task_id=task_id).order_by("position"))
    assert rows[0].pk == scene_row.pk and rows[0].scene_unid == unids[1]
    assert rows[1].scene_unid not in ("", unids[1])
