"""Bad mtask schedules and camera settings, in the native HTTP API and over the websocket: a clear
error in the dialect's envelope, naming the field, and nothing stored. A dome camera accepts what
a fixed one refuses. (VCS-SPS and VIAS v2 carry no mtasks; execStartTime is tested in
tests/test_vcs_bad_input.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from subtasks.models import Subtask
from tasks.models import MTask, Scene, Task, VideoChannel
from tests.api_helpers import edit
from tests.conftest import task_body
from tests.ws_helpers import ask, cmd, connect, in_sync_thread, private_redis  # noqa: F401

MTASK = "mtasks.0"
SCENE = "mtasks.0.scenes.0"
DOME = {"vchan_refid": "cam-0", "url": "rtsp://10.0.0.1/live", "ptz": True}

CASES = [
    pytest.param(edit(f"{MTASK}.time_interval", 0), "time_interval", id="interval-zero"),
    pytest.param(edit(f"{MTASK}.time_interval", -5), "time_interval", id="interval-negative"),
    pytest.param(edit(f"{MTASK}.time_interval", 7 * 24 * 60 + 1), "time_interval", id="interval-over-a-week"),
    pytest.param(edit(f"{MTASK}.time_interval", "often"), "time_interval", id="interval-text"),
    pytest.param(edit(f"{MTASK}.start_time", "8 o'clock"), "start_time", id="start-malformed"),
    pytest.param(edit(f"{MTASK}.end_time", "24:30:00"), "end_time", id="end-malformed"),
    pytest.param(edit(f"{MTASK}.end_time", "00:00:00"), "equal", id="start-equals-end"),
    pytest.param(edit(f"{MTASK}.end_time", None), "both", id="start-without-end"),
    pytest.param(edit(f"{MTASK}.type", 1), "mtasks[0].type", id="type-1-on-a-fixed-camera"),
    pytest.param(edit(f"{MTASK}.type", 2), "dome", id="type-2-on-a-fixed-camera"),
    pytest.param(edit(f"{SCENE}.preset", 3), "mtasks[0].scenes[0].preset", id="preset-on-a-fixed-camera"),
    pytest.param(edit("vchans", [{**DOME, "onvif_url": "not a url"}]), "ONVIF address", id="onvif-not-a-url"),
    pytest.param(
        edit("vchans", [{**DOME, "onvif_url": "ftp://10.0.0.1/onvif"}]), "ONVIF address", id="onvif-ftp"
    ),
    pytest.param(
        edit("vchans", [{**DOME, "onvif_url": "http://user:pw@10.0.0.1/onvif/device_service"}]),
        "own fields",
        id="onvif-credentials-in-url",
    ),
    pytest.param(
        edit("vchans", [{**DOME, "ptz": False, "onvif_url": "http://10.0.0.1/onvif/device_service"}]),
        "dome",
        id="onvif-on-a-fixed-camera",
    ),
    pytest.param(
        edit("vchans", [{**DOME, "onvif_url": "http://127.0.0.1/onvif/device_service"}]),
        "loopback",
        id="onvif-on-this-machine",
    ),
    pytest.param(
        edit("vchans", [{**DOME, "onvif_url": "http://169.254.169.254/onvif/device_service"}]),
        "refused",
        id="onvif-on-the-metadata-service",
    ),
    pytest.param(edit("vchans", [{**DOME, "ptz": "yes"}]), "ptz", id="ptz-not-a-boolean"),
    pytest.param(edit("run_dt", "next tuesday"), "run_dt", id="run_dt-unparsable"),
]


def body(change) -> dict[str, Any]:
    return change(task_body(vchans=1))


def stored() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in (Task, MTask, Scene, Subtask, VideoChannel)}


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "fragment"), CASES)
def test_the_native_api_refuses_and_stores_nothing(alice, change, fragment):
    before = stored()
    response = alice.post("/tasks", body(change))
    answer = response.json()
    assert response.status_code == 400 and answer["ecode"] == 400, answer
    assert fragment in answer["enote"], answer
    assert stored() == before


@pytest.mark.django_db
def test_a_dome_camera_takes_every_type_and_presets(alice):
    for mtask_type in (0, 1, 2):
        channel = {
            **DOME,
            "vchan_refid": f"dome-{mtask_type}",
            "onvif_url": "http://10.0.0.9/onvif/device_service",
        }
        dome = edit("vchans", [{**channel, "onvif_username": "op", "onvif_password": "secret"}])
        chosen = edit(f"{MTASK}.type", mtask_type)
        scene = edit(f"{SCENE}.vchan_refid", channel["vchan_refid"])
        preset = edit(f"{SCENE}.preset", 4)
        response = alice.post("/tasks", preset(scene(chosen(dome(task_body(vchans=1))))))
        assert response.status_code == 200, response.json()
    shown = alice.get("/vchans/dome-1").json()["data"]
    assert (shown["ptz"], shown["onvif_url"], shown["onvif_username"]) == (
        True,
        "http://10.0.0.9/onvif/device_service",
        "op",
    )
    assert "onvif_password" not in shown and "secret" not in str(shown)


@pytest.mark.django_db
def test_a_channel_made_a_dome_through_put_vchans(alice):
    assert alice.post("/vchans", {"vchan_refid": "c", "url": "rtsp://10.0.0.3/x"}).status_code == 201
    refused = alice.put("/vchans/c", {"onvif_url": "http://10.0.0.3/onvif/device_service"}).json()
    assert refused["ecode"] == 400 and "dome" in refused["enote"]
    assert VideoChannel.objects.get(vchan_refid="c").onvif_url == ""
    answer = alice.put("/vchans/c", {"ptz": True, "onvif_url": "http://10.0.0.3/onvif/device_service"})
    assert answer.json()["data"]["ptz"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("private_redis")
@pytest.mark.parametrize(
    ("change", "fragment"),
    [CASES[0], CASES[6], CASES[8], CASES[10], CASES[11]],
)
async def test_the_websocket_refuses_and_stores_nothing(alice, change, fragment):
    count = in_sync_thread(stored)
    before = await count()
    ws = await connect(alice.token)
    answer = await ask(ws, cmd("post", "tasks"), body(change))
    assert answer["ecode"] == 400 and fragment in answer["enote"], answer
    assert await count() == before
    await ws.disconnect()
