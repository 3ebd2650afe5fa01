"""Mtask schedules run, through the native API and the one Schedule row a started task gets:
a type 1 window that excludes now waits (SCHEDULING, next start, no node slot), runs past its
opening and stops past its end; a type 0 rotation of two scenes on a dome camera alternates at
every turn, and the camera (a local ONVIF endpoint) is sent to each scene's preset by the job.

"Moving the clock" is calling what the Schedule row calls (subtasks.services.run_mtask_edge) with
the moment of its edge, read from the row itself."""

from __future__ import annotations

import ast
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from analysis import control
from analysis.jobs import run_subtask
from subtasks.models import Subtask
from subtasks.services import run_mtask_edge
from tests.analysis_helpers import live_node
from tests.conftest import task_body
from tests.nodes import BIKES, long_video, wait_for
from tests.onnx_models import register_fixed_person_model
from tests.onvif_fake import FakeOnvifCamera

pytestmark = pytest.mark.django_db(transaction=True)


def polygon_roi(name: str) -> str:
    return (
        f'<root><polygon name="{name}" mode="include"><point x="0" y="0"/><point x="1" y="0"/>'
        '<point x="1" y="1"/><point x="0" y="1"/></polygon></root>'
    )


def dome_task(actor, mtask: dict, scenes: list[dict], onvif_url: str = "") -> tuple[str, int]:
    body = task_body(vchans=1, algo_type="2")
    channel = {**body["vchans"][0], "ptz": True, "url": body["vchans"][0]["url"]}
    if onvif_url:
        channel.update(onvif_url=onvif_url, onvif_username="op", onvif_password="pw")
    body["vchans"] = [channel]
    body["mtasks"] = [{**body["mtasks"][0], **mtask, "scenes": scenes}]
    answer = actor.post("/tasks", body).json()
    assert answer["ecode"] == 200, answer
    task_id = answer["data"]["task_id"]
    (subtask,) = actor.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    assert actor.post(f"/subtasks/{subtask['subtask_id']}/config_complete").json()["ecode"] == 200
    return task_id, subtask["subtask_id"]


def scene(unid: str, preset: int, zone: str) -> dict:
    return {
        "scene_unid": unid,
        "name": unid,
        "algo_type": 2,
        "preset": preset,
        "vchan_refid": "cam-0",
        "rois": [{"roi": polygon_roi(zone)}],
    }


def the_edge(task_id: str) -> tuple[str, object]:
    """The task's one Schedule row: its arguments and when it runs."""
    row = Schedule.objects.get(name=f"vias-mtask-{task_id}")
    assert row.func == "subtasks.services.run_mtask_edge"
    return ast.literal_eval(f"({row.args})")[1], row.next_run


def hhmmss(moment) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


def test_a_time_window_that_excludes_now_waits_then_runs_then_stops(alice):
    now = timezone.now().replace(microsecond=0)
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    mtask = {"type": 1, "start_time": hhmmss(opens), "end_time": hhmmss(closes)}
    task_id, pk = dome_task(alice, mtask, [scene("s1", 0, "yard")])
    node = live_node(capacity=1)

    started = alice.post(f"/tasks/{task_id}/start").json()
    assert started["ecode"] == 200 and "waiting until" in started["subtasks"][0]["reason"]
    shown = alice.get(f"/tasks/{task_id}").json()["data"]
    assert shown["schedule_state"] == "SCHEDULING"
    assert shown["next_start_dt"].startswith(timezone.localtime(opens).strftime("%Y-%m-%d %H:%M:%S"))
    sub = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (sub["state"], sub["schedule_state"], sub["node"]) == ("CONFIGURED", "SCHEDULING", "")
    assert node.subtasks.count() == 0  # no slot taken while it waits

    activated, edge = the_edge(task_id)
    assert edge == opens
    run_mtask_edge(task_id, activated, now=edge + timedelta(seconds=1))
    sub = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (sub["state"], sub["schedule_state"]) == ("STARTING", "")
    assert Subtask.objects.get(pk=pk).node == node  # dispatched at the edge
    activated, edge = the_edge(task_id)
    assert edge == closes
    # Halfway through the window (a stream): the mtask's progress is the share elapsed.
    run_mtask_edge(task_id, activated, now=opens + timedelta(minutes=30))
    assert alice.get(f"/tasks/{task_id}").json()["data"]["mtasks"][0]["progress"] == 50
    activated, edge = the_edge(task_id)

    run_mtask_edge(task_id, activated, now=edge + timedelta(seconds=1))
    sub = alice.get(f"/subtasks/{pk}").json()["data"]
    assert (sub["state"], sub["schedule_state"]) == ("STOPPED", "SCHEDULING")
    assert the_edge(task_id)[1] == opens + timedelta(days=1)

    assert alice.post(f"/tasks/{task_id}/stop").json()["ecode"] == 200
    assert not Schedule.objects.filter(name=f"vias-mtask-{task_id}").exists()
    assert alice.get(f"/tasks/{task_id}").json()["data"]["schedule_state"] == ""


def test_run_dt_in_the_future_delays_the_first_run(alice):
    later = timezone.now() + timedelta(days=2)
    body = task_body(vchans=1, run_dt=timezone.localtime(later).strftime("%Y-%m-%d %H:%M:%S"))
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (sub,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    alice.post(f"/subtasks/{sub['subtask_id']}/config_complete")
    live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    assert alice.get(f"/subtasks/{sub['subtask_id']}").json()["data"]["state"] == "CONFIGURED"
    _activated, edge = the_edge(task_id)
    assert abs((edge - later).total_seconds()) < 1


@pytest.fixture
def long_source() -> str:
    store = Path(settings.DATA_DIR) / "videos"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKES, store / "bikes.mp4")
    long_video(store / "long.mp4", loops=8)
    return "long.mp4"


def test_two_scenes_on_a_dome_take_turns_and_the_camera_goes_to_each_preset(
    alice, settings, long_source, loopback_sources
):
    settings.VIAS_PTZ_SETTLE_MS = 0
    register_fixed_person_model(Path(settings.VIAS_MODELS_DIR), [(32.0, 32.0, 16.0, 24.0, 0, 0.9)])
    with FakeOnvifCamera() as camera:
        mtask = {"type": 0, "time_interval": 1, "start_time": "00:00:00", "end_time": "23:59:59"}
        scenes = [scene("door", 1, "door"), scene("gate", 2, "gate")]
        task_id, pk = dome_task(alice, mtask, scenes, onvif_url=camera.url)
        Subtask.objects.filter(pk=pk).update(source_url=long_source)  # a long file stands in for the stream
        live_node(capacity=1)
        alice.post(f"/tasks/{task_id}/start")
        first = Subtask.objects.select_related("scene").get(pk=pk).scene
        zone_of = {"door": 'name="door"', "gate": 'name="gate"'}
        assert zone_of[first.name] in Subtask.objects.get(pk=pk).rois[0]

        result: list[str] = []

        def job() -> None:
            try:
                result.append(run_subtask(pk, Subtask.objects.get(pk=pk).node.name))
            finally:
                connection.close()

        thread = threading.Thread(target=job)
        thread.start()
        try:
            wait_for(lambda: control.live_pid(pk), what="the job to be live")
            wait_for(lambda: len(camera.presets) == 1, what="the first GotoPreset")
            for _turn in range(2):
                activated, edge = the_edge(task_id)
                run_mtask_edge(task_id, activated, now=edge)
                wait_for(
                    lambda n=len(camera.presets): len(camera.presets) == n + 1,  # noqa: B008
                    what="the next GotoPreset",
                )
            names = [Subtask.objects.select_related("scene").get(pk=pk).scene.name]
        finally:
            alice.post(f"/tasks/{task_id}/stop")
            thread.join(30)
    other = "gate" if first.name == "door" else "door"
    preset = {"door": "1", "gate": "2"}
    assert [p for _profile, p in camera.presets] == [preset[first.name], preset[other], preset[first.name]]
    assert names == [first.name]
    assert result == ["stopped"]


def test_vcs_exec_start_time_in_the_future_delays_the_first_run(alice, settings, tmp_path):
    from tests.vcs_helpers import CREATE, START, compute_body, make_store, vcs_ok

    settings.DATA_DIR = tmp_path
    make_store(tmp_path)
    later = timezone.now() + timedelta(days=3)
    body = compute_body(execStartTime=int(later.timestamp() * 1000))
    task_id = vcs_ok(alice.post(CREATE, body))["taskId"]
    live_node(capacity=1)
    vcs_ok(alice.post(START, {"taskId": task_id}))
    assert Subtask.objects.get(task_id=task_id).state == "CONFIGURED"  # nothing runs before it
    activated, edge = the_edge(task_id)
    assert abs((edge - later).total_seconds()) < 1
    run_mtask_edge(task_id, activated, now=edge)
    assert Subtask.objects.get(task_id=task_id).state == "STARTING"


def test_a_waiting_task_shows_scheduling_in_every_dialect(alice):
    from tests.test_v2_helpers import v2, v2_ok
    from tests.vcs_helpers import GET, vcs_ok

    now = timezone.now().replace(microsecond=0)
    opens, closes = now + timedelta(hours=2), now + timedelta(hours=3)
    mtask = {"type": 1, "start_time": hhmmss(opens), "end_time": hhmmss(closes)}
    task_id, pk = dome_task(alice, mtask, [scene("s1", 0, "yard")])
    live_node(capacity=1)
    (vcs_before,) = vcs_ok(alice.post(GET, {"taskIds": [task_id]}))
    assert (vcs_before["taskStatus"], vcs_before["nextStartTime"]) == ("WAITING", None)

    alice.post(f"/tasks/{task_id}/start")
    opens_ms = int(opens.timestamp() * 1000)
    (vcs,) = vcs_ok(alice.post(GET, {"taskIds": [task_id]}))
    assert (vcs["taskStatus"], vcs["nextStartTime"]) == ("SCHEDULING", opens_ms)
    (device,) = vcs["datasources"]["devices"]
    assert (device["taskStatus"], device["nextStartTime"]) == ("SCHEDULING", opens_ms)
    shown = v2_ok(alice.get(v2(alice, f"/tasks/{task_id}")))
    assert (shown["schedule_state"], shown["next_start_at"]) == ("SCHEDULING", str(opens_ms))
    listed = v2_ok(alice.get(v2(alice, "/tasks?task_state=SCHEDULING")))["tasks"]
    assert [t["id"] for t in listed] == [task_id]
    assert alice.get(f"/tasks/{task_id}").json()["data"]["schedule_state"] == "SCHEDULING"

    activated, edge = the_edge(task_id)
    run_mtask_edge(task_id, activated, now=edge + timedelta(seconds=1))  # inside: it runs
    (vcs,) = vcs_ok(alice.post(GET, {"taskIds": [task_id]}))
    assert (vcs["taskStatus"], vcs["nextStartTime"]) == ("ONLINED", None)
    assert v2_ok(alice.get(v2(alice, f"/tasks/{task_id}")))["schedule_state"] == ""


def test_a_running_stream_mtask_reports_the_share_of_its_window_through_the_housekeeping(
    alice, django_assert_max_num_queries
):
    from analysis import dispatch

    now = timezone.now().replace(microsecond=0)
    opens, closes = now - timedelta(hours=1), now + timedelta(hours=3)  # inside: it starts
    mtask = {"type": 1, "start_time": hhmmss(opens), "end_time": hhmmss(closes)}
    task_id, pk = dome_task(alice, mtask, [scene("s1", 0, "yard")])
    live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    assert Subtask.objects.get(pk=pk).state == "STARTING"  # on a node: a running stream mtask
    progress = lambda: alice.get(f"/tasks/{task_id}").json()["data"]["mtasks"][0]["progress"]  # noqa: E731

    with django_assert_max_num_queries(3):  # one SELECT, one UPDATE, the mean's UPDATE
        dispatch.refresh_mtask_progress(now=opens + timedelta(hours=1))
    assert progress() == 25
    dispatch.refresh_mtask_progress(now=opens + timedelta(hours=3))
    assert progress() == 75  # through the window, not only at its edges
    # A subtask's own progress (0 for a stream) does not overwrite it.
    Subtask.objects.filter(pk=pk).update(progress=0.0)
    dispatch.refresh_mtask_progress(now=opens + timedelta(hours=2))
    assert progress() == 50


def test_a_stream_mtask_that_runs_all_day_reports_the_share_of_the_day(alice):
    from datetime import datetime, time

    from analysis import dispatch

    body = task_body(vchans=1)  # type 0, 00:00:00..23:59:59: it runs at once, no schedule row
    task_id = alice.post("/tasks", body).json()["data"]["task_id"]
    (sub,) = alice.get(f"/tasks/{task_id}/subtasks").json()["list_data"]
    alice.post(f"/subtasks/{sub['subtask_id']}/config_complete")
    live_node(capacity=1)
    alice.post(f"/tasks/{task_id}/start")
    assert not Schedule.objects.filter(name=f"vias-mtask-{task_id}").exists()
    today = timezone.localtime().date()
    at = datetime.combine(today, time(18), tzinfo=timezone.get_current_timezone())
    dispatch.refresh_mtask_progress(now=at)
    assert alice.get(f"/tasks/{task_id}").json()["data"]["mtasks"][0]["progress"] == 75
