"""Websocket twins of the native HTTP API, and the seed's three commands (20.1 - 20.3).
Real channels-redis layer and control channel on a private Redis (tests/ws_helpers.py)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from subtasks.models import Node, Subtask
from tasks.models import StoreConf, Task
from tests.conftest import task_body
from tests.ws_helpers import FakeDevice, ask, cmd, connect, in_sync_thread, private_redis  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("private_redis")]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@in_sync_thread
def http(actor, method: str, path: str, body=None):
    response = getattr(actor, method)(path, body) if body is not None else getattr(actor, method)(path)
    return response.json()


@in_sync_thread
def db(func, *args, **kwargs):
    return func(*args, **kwargs)


async def test_task_lifecycle_by_websocket(alice):
    ws = await connect(alice.token)
    created = await ask(ws, cmd("post", "tasks"), task_body(vchans=2))
    assert created["ecode"] == 200, created
    task = created["data"]
    assert (task["subtask_count"], task["state"]) == (2, "PENDING")
    task_id = task["task_id"]

    listed = await ask(ws, cmd("get", "tasks"), {"offset": 0, "limit": 10})
    assert (listed["total_num"], listed["list_size"]) == (1, 1)
    one = await ask(ws, cmd("get", "tasks"), {"task_id": task_id})
    # the same document the HTTP API answers
    assert one["data"] == (await http(alice, "get", f"/tasks/{task_id}"))["data"]

    changed = await ask(ws, cmd("put", "tasks"), {"task_id": task_id, "task_name": "back door"})
    assert changed["data"]["task_name"] == "back door"

    subtasks = await ask(ws, cmd("get", "tasks/subtasks"), {"task_id": task_id})
    assert subtasks["total_num"] == 2
    ids = [item["subtask_id"] for item in subtasks["list_data"]]

    # 20.1: deleting a task fails while it has subtasks
    refused = await ask(ws, cmd("delete", "tasks"), {"task_id": task_id})
    assert refused["ecode"] == 409 and "2 subtasks" in refused["enote"]
    for pk in ids:
        assert (await ask(ws, cmd("delete", "subtasks"), {"subtask_id": pk}))["ecode"] == 200
    assert (await ask(ws, cmd("delete", "tasks"), {"task_id": task_id}))["ecode"] == 200
    assert (await ask(ws, cmd("get", "tasks"), {"task_id": task_id}))["ecode"] == 404
    await ws.disconnect()


async def test_validation_errors_are_those_of_the_http_api(alice):
    bad = task_body(vchans=1, algo_type="9", run_dt="yesterday")
    bad["mtasks"][0]["scenes"][0]["rois"] = [{"roi": "<root><polygon/></root>"}]
    ws = await connect(alice.token)
    by_ws = await ask(ws, cmd("post", "tasks"), bad)
    by_http = await http(alice, "post", "/tasks", bad)
    assert by_ws["ecode"] == by_http["ecode"] == 400
    assert by_ws["errors"] == by_http["errors"]
    assert by_ws["enote"] == by_http["enote"]

    model_rule = task_body(vchans=1)
    model_rule["mtasks"][0]["scenes"][0]["rois"] = [{"roi": "<root><polygon/></root>"}]
    by_ws = await ask(ws, cmd("post", "tasks"), model_rule)
    by_http = await http(alice, "post", "/tasks", model_rule)
    assert by_ws["ecode"] == by_http["ecode"] == 400
    assert by_ws["errors"] == by_http["errors"]  # paths as the client wrote them (…rois[0].roi)
    await ws.disconnect()


async def test_a_project_sees_only_its_own(alice, bob):
    ws_alice = await connect(alice.token)
    task_id = (await ask(ws_alice, cmd("post", "tasks"), task_body(vchans=1)))["data"]["task_id"]
    ws_bob = await connect(bob.token)
    assert (await ask(ws_bob, cmd("get", "tasks")))["total_num"] == 0
    for verb, resource in [("get", "tasks"), ("delete", "tasks"), ("post", "tasks/start")]:
        assert (await ask(ws_bob, cmd(verb, resource), {"task_id": task_id}))["ecode"] == 404
    pk = (await ask(ws_alice, cmd("get", "tasks/subtasks"), {"task_id": task_id}))["list_data"][0][
        "subtask_id"
    ]
    assert (await ask(ws_bob, cmd("get", "subtasks"), {"subtask_id": pk}))["ecode"] == 404
    assert (await ask(ws_bob, cmd("post", "subscriptions"), {"task_id": task_id}))["ecode"] == 404
    await ws_alice.disconnect()
    await ws_bob.disconnect()


async def test_subtask_config_config_complete_start_stop(alice):
    ws = await connect(alice.token)
    task_id = (await ask(ws, cmd("post", "tasks"), task_body(vchans=1)))["data"]["task_id"]
    pk = (await ask(ws, cmd("get", "tasks/subtasks"), {"task_id": task_id}))["list_data"][0]["subtask_id"]

    not_ready = await ask(ws, cmd("post", "subtasks/start"), {"subtask_id": pk})
    assert not_ready["subtasks"][0]["ok"] is False and "config-complete" in not_ready["subtasks"][0]["reason"]

    configured = await ask(ws, cmd("put", "subtasks"), {"subtask_id": pk, "algo_args": {"fps": 2}})
    assert configured["ecode"] == 200 and configured["data"]["algo_args"] == {"fps": 2}
    # an idle subtask takes the change from the database: "applied"
    assert configured["subtasks"][0]["status"] == "applied"
    bad = await ask(ws, cmd("put", "subtasks"), {"subtask_id": pk, "algo_args": {"fps": 1000}})
    assert bad["ecode"] == 400 and "algo_args" in bad["errors"]

    done = await ask(ws, cmd("post", "subtasks/config_complete"), {"subtask_id": pk})
    assert (done["data"]["state"], done["data"]["config_complete"]) == ("CONFIGURED", True)
    started = await ask(ws, cmd("post", "subtasks/start"), {"subtask_id": pk})
    assert started["ecode"] == 200 and started["subtasks"][0]["state"] == "STARTING", started
    stopped = await ask(ws, cmd("post", "subtasks/stop"), {"subtask_id": pk})
    assert stopped["subtasks"][0]["state"] == "STOPPED"

    again = await ask(ws, cmd("post", "tasks/start"), {"task_id": task_id})
    assert [o["state"] for o in again["subtasks"]] == ["STARTING"]
    assert [
        o["state"] for o in (await ask(ws, cmd("post", "tasks/stop"), {"task_id": task_id}))["subtasks"]
    ] == ["STOPPED"]
    await ws.disconnect()


async def test_configuring_a_running_subtask_waits_for_its_device(alice):
    ws = await connect(alice.token)
    task_id = (await ask(ws, cmd("post", "tasks"), task_body(vchans=1)))["data"]["task_id"]
    pk = await db(lambda: Subtask.objects.get(task_id=task_id).pk)
    await db(lambda: Subtask.objects.filter(pk=pk).update(state="RUNNING", config_complete=True))
    with FakeDevice(pk) as device:
        body = await ask(ws, cmd("put", "subtasks"), {"subtask_id": pk, "algo_args": {"fps": 3}})
    assert body["ecode"] == 200
    assert body["subtasks"][0]["status"] == "acknowledged"
    assert device.received[0].op == "update"
    await ws.disconnect()


# ---- 20.2 picture task config ---------------------------------------------------------------------


def pic_task(alice, nodes: int = 2) -> dict:
    return task_body(vchans=0, mtasks=0, source_type="push_pic_files", node_count=nodes)


async def test_pic_task_config_changes_the_combination_and_sends_it(alice, settings):
    ws = await connect(alice.token)
    task_id = (await ask(ws, cmd("post", "tasks"), pic_task(alice)))["data"]["task_id"]
    pks = await db(
        lambda: list(
            Subtask.objects.filter(task_id=task_id).order_by("position").values_list("pk", flat=True)
        )
    )
    await db(lambda: Subtask.objects.filter(pk=pks[0]).update(state="RUNNING", config_complete=True))
    with FakeDevice(pks[0]) as device:
        body = await ask(
            ws,
            cmd("post", "tasks/pic_task_config"),
            {"task_id": task_id, "detector_models": ["face", "body"]},
        )
    assert body["ecode"] == 200, body
    assert [(o["subtask_id"], o["status"]) for o in body["subtasks"]] == [
        (pks[0], "acknowledged"),
        (pks[1], "applied"),
    ]
    assert device.received[0].body == {"fields": {"detector_models": ["face", "body"]}}
    assert await db(lambda: Task.objects.get(pk=task_id).detector_models) == ["face", "body"]

    # the seed's name for it
    alias = await ask(ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id, "algo_comb": ["motor"]})
    assert alias["ecode"] == 200
    assert await db(lambda: Task.objects.get(pk=task_id).detector_models) == ["motor"]
    await ws.disconnect()


async def test_pic_task_config_refusals_and_bad_input(alice, settings):
    ws = await connect(alice.token)
    video = (await ask(ws, cmd("post", "tasks"), task_body(vchans=1)))["data"]["task_id"]
    refused = await ask(
        ws, cmd("post", "tasks/pic_task_config"), {"task_id": video, "detector_models": ["face"]}
    )
    assert refused["ecode"] == 400 and "picture tasks" in refused["enote"]

    task_id = (await ask(ws, cmd("post", "tasks"), pic_task(alice, nodes=1)))["data"]["task_id"]
    unknown = await ask(
        ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id, "detector_models": ["cat"]}
    )
    assert unknown["ecode"] == 400 and "detector_models" in unknown["errors"]
    missing = await ask(ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id})
    assert missing["ecode"] == 400 and "detector_models" in missing["errors"]

    pk = await db(lambda: Subtask.objects.get(task_id=task_id).pk)
    await db(lambda: Subtask.objects.filter(pk=pk).update(state="RUNNING", config_complete=True))
    with FakeDevice(pk, refuse="model not installed"):
        body = await ask(
            ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id, "detector_models": ["face"]}
        )
    assert body["ecode"] == 502 and "model not installed" in body["enote"]
    assert body["subtasks"][0]["status"] == "refused"

    settings.VIAS_ACK_TIMEOUT = 0.5
    with FakeDevice(pk, silent=True):
        body = await ask(
            ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id, "detector_models": ["body"]}
        )
    assert body["ecode"] == 504
    assert body["subtasks"][0]["status"] == "timeout"
    await ws.disconnect()


# ---- 20.3 storage configs --------------------------------------------------------------------------


async def test_store_conf_replace_reaches_running_subtasks_and_waits_for_them(alice, settings):
    ws = await connect(alice.token)
    sc = {"unid": "sc-1", "name": "store", "file_ext": "xml", "file_b64": b64("<root><a/></root>")}
    assert (await ask(ws, cmd("post", "store_confs"), sc))["data"]["version"] == 1
    task_id = (await ask(ws, cmd("post", "tasks"), task_body(vchans=2, store_conf_unid="sc-1")))["data"][
        "task_id"
    ]
    pks = await db(
        lambda: list(
            Subtask.objects.filter(task_id=task_id).order_by("position").values_list("pk", flat=True)
        )
    )
    await db(lambda: Subtask.objects.filter(pk__in=pks).update(state="RUNNING", config_complete=True))

    new = {"unid": "sc-1", "name": "store", "file_ext": "xml", "file_b64": b64("<root><b/></root>")}
    with FakeDevice(pks[0]) as first, FakeDevice(pks[1], refuse="disk full") as second:
        body = await ask(ws, cmd("put", "store_confs"), new)
    # delivered to both: a refusal still counts (the seed: the platform keeps no old copy)
    assert body["ecode"] == 200, body
    assert body["data"]["version"] == 2
    assert sorted(o["status"] for o in body["subtasks"]) == ["acknowledged", "refused"]
    assert first.received[0].op == "store_conf" and first.received[0].body["version"] == 2
    assert second.received

    settings.VIAS_ACK_TIMEOUT = 0.5
    with FakeDevice(pks[0], silent=True), FakeDevice(pks[1]):
        late = await ask(ws, cmd("put", "store_confs"), {"unid": "sc-1", "name": "renamed"})
    assert late["ecode"] == 504 and "1 of 2" in late["enote"]
    assert await db(lambda: StoreConf.objects.get(unid="sc-1").name) == "renamed"  # written all the same

    listed = await ask(ws, cmd("get", "store_confs"))
    assert listed["total_num"] == 1
    assert (await ask(ws, cmd("get", "store_confs"), {"unid": "sc-1"}))["data"]["version"] == 3
    assert (await ask(ws, cmd("put", "store_confs"), {"unid": "nope"}))["ecode"] == 404
    too_bad = await ask(ws, cmd("put", "store_confs"), {"unid": "sc-1", "file_b64": b64("<root>")})
    assert too_bad["ecode"] == 400 and "file_b64" in too_bad["errors"]
    assert (await ask(ws, cmd("delete", "store_confs"), {"unid": "sc-1"}))["ecode"] == 409
    await ws.disconnect()


async def test_video_channels(alice):
    ws = await connect(alice.token)
    made = await ask(ws, cmd("post", "vchans"), {"vchan_refid": "cam-9", "name": "gate", "url": "rtsp://h/x"})
    assert made["ecode"] == 200 and made["data"]["vchan_refid"] == "cam-9"
    assert (await ask(ws, cmd("post", "vchans"), {"vchan_refid": "cam-9", "url": "rtsp://h/x"}))[
        "ecode"
    ] == 409
    bad_url = await ask(ws, cmd("post", "vchans"), {"vchan_refid": "cam-8", "url": "file:///etc/passwd"})
    assert bad_url["ecode"] == 400 and "url" in bad_url["errors"]
    changed = await ask(ws, cmd("put", "vchans"), {"vchan_refid": "cam-9", "name": "north gate"})
    assert changed["data"]["name"] == "north gate"
    assert (await ask(ws, cmd("get", "vchans")))["total_num"] == 1
    assert (await ask(ws, cmd("get", "vchans"), {"vchan_refid": "cam-9"}))["data"]["url"] == "rtsp://h/x"
    assert (await ask(ws, cmd("delete", "vchans"), {"vchan_refid": "cam-9"}))["ecode"] == 200
    assert (await ask(ws, cmd("get", "vchans"), {"vchan_refid": "cam-9"}))["ecode"] == 404
    await ws.disconnect()


async def test_nodes_with_state_load_and_capabilities(alice):
    ws = await connect(alice.token)
    task_id = (await ask(ws, cmd("post", "tasks"), task_body(vchans=1)))["data"]["task_id"]

    @in_sync_thread
    def nodes():
        gpu = Node.objects.create(
            name="gpu-1", capacity=4, last_heartbeat=timezone.now(), capabilities={"providers": ["CUDA"]}
        )
        Node.objects.create(name="old", capacity=2, last_heartbeat=timezone.now() - timedelta(days=1))
        Subtask.objects.filter(task_id=task_id).update(state="RUNNING", node=gpu)

    await nodes()
    body = await ask(ws, cmd("get", "nodes"))
    assert body["ecode"] == 200 and body["total_num"] == 2
    gpu, old = body["list_data"]
    assert (gpu["name"], gpu["state"], gpu["running"], gpu["load"]) == ("gpu-1", "online", 1, 0.25)
    assert gpu["capabilities"] == {"providers": ["CUDA"]}
    assert (old["state"], old["running"], old["load"]) == ("offline", 0, 0.0)
    await ws.disconnect()
