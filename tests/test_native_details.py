"""Native API details a client of the original relies on (issue 16): GET /tasks paging from a JSON
body, POST /tasks answering HTTP 200, `calibration` spelled correctly, pic_task_config read back
and its missing-parameter message, store_confs PUT answering every subtask that uses it."""

from __future__ import annotations

import base64
import json

import pytest

from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import Scene
from tests.api_helpers import error, ok
from tests.conftest import task_body
from tests.ws_helpers import ask, cmd, connect, in_sync_thread, private_redis  # noqa: F401

CALIBRATION = (
    "<root><pair><image x='0.1' y='0.9'/><ground x='0' y='0'/></pair>"
    "<pair><image x='0.9' y='0.9'/><ground x='10' y='0'/></pair>"
    "<pair><image x='0.9' y='0.1'/><ground x='10' y='20'/></pair>"
    "<pair><image x='0.1' y='0.1'/><ground x='0' y='20'/></pair></root>"
)


def get_with_body(actor, path: str, body) -> dict:
    """A GET carrying a JSON body, as the seed writes `get tasks` (requests.get(url, json=...))."""
    data = body if isinstance(body, str) else json.dumps(body)
    return actor.client.generic("GET", path, data, content_type="application/json", **actor.headers())


def make_tasks(actor, count: int) -> list[str]:
    return [
        ok(actor.post("/tasks", task_body(vchans=0, task_name=f"t{i}")))["data"]["task_id"]
        for i in range(count)
    ]


@pytest.mark.django_db
def test_post_tasks_answers_http_200_with_the_envelope(alice):
    response = alice.post("/tasks", task_body(vchans=1))
    assert response.status_code == 200
    assert (response.json()["ecode"], response.json()["enote"]) == (200, "OK")


@pytest.mark.django_db
def test_get_tasks_takes_offset_and_limit_from_a_json_body(alice):
    ids = make_tasks(alice, 5)[::-1]  # newest first

    from_body = ok(get_with_body(alice, "/tasks", {"offset": 1, "limit": 2}))
    from_query = ok(alice.get("/tasks?offset=1&limit=2"))

    assert [t["task_id"] for t in from_body["list_data"]] == ids[1:3]
    assert from_body["list_data"] == from_query["list_data"]
    assert (from_body["offset"], from_body["total_num"], from_body["list_size"]) == (1, 5, 2)
    both = ok(get_with_body(alice, "/tasks?limit=1", {"offset": 1, "limit": 3}))  # the query wins
    assert [t["task_id"] for t in both["list_data"]] == ids[1:2]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_bad_paging_in_a_body_is_refused(alice, body, field):
    assert field in error(get_with_body(alice, "/tasks", body), 400)["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["[1]", "{not json", '"text"'])
def test_a_get_body_that_is_not_an_object_is_refused(alice, body):
    error(get_with_body(alice, "/tasks", body), 400)


def _scene_calibration(actor, key: str, **extra) -> tuple[dict, str]:
    body = task_body(vchans=1, **extra)
    scene = body["mtasks"][0]["scenes"][0]
    scene.pop("callibration", None)
    scene[key] = {"calibration": CALIBRATION}
    return body, scene


@pytest.mark.django_db
def test_calibration_spelled_correctly_is_taken_and_answered_in_the_seeds_spelling(alice):
    body, _ = _scene_calibration(alice, "calibration")

    task = ok(alice.post("/tasks", body))["data"]

    assert Scene.objects.get().calibration_xml == CALIBRATION
    answered = task["mtasks"][0]["scenes"][0]
    assert answered["callibration"] == {"calibration": CALIBRATION} and "calibration" not in answered


@pytest.mark.django_db
def test_both_spellings_that_differ_are_refused(alice):
    body, scene = _scene_calibration(alice, "calibration")
    scene["callibration"] = {"calibration": "<root></root>"}
    assert any("calibration" in key for key in error(alice.post("/tasks", body), 400)["errors"])


@pytest.mark.django_db
def test_a_subtask_takes_calibration_spelled_correctly(alice):
    task = ok(alice.post("/tasks", task_body(vchans=1)))["data"]
    subtask = Subtask.objects.get(task_id=task["task_id"])
    answer = ok(alice.put(f"/subtasks/{subtask.pk}", {"calibration": {"calibration": CALIBRATION}}))
    assert answer["data"]["callibration"]["calibration"] == CALIBRATION


@pytest.mark.django_db
def test_a_task_id_only_pic_task_config_names_the_missing_parameter_and_its_values(alice):
    task_id = ok(alice.post("/tasks", task_body(vchans=0, source_type="push_pic_files")))["data"]["task_id"]
    body = error(alice.post(f"/tasks/{task_id}/pic_task_config", {}), 400)
    message = body["errors"]["detector_models"][0]
    assert all(
        word in message for word in ("detector_models", "algo_comb", "face", "body", "motor", "no_motor")
    )


@pytest.mark.django_db
def test_put_store_confs_answers_every_subtask_using_it(alice):
    conf = {
        "unid": "minio",
        "name": "bucket",
        "file_ext": "xml",
        "file_b64": base64.b64encode(b"<a/>").decode(),
    }
    ok(alice.post("/store_confs", conf), 201)
    task_id = ok(alice.post("/tasks", task_body(vchans=2, store_conf_unid="minio")))["data"]["task_id"]
    ok(alice.post("/tasks", task_body(vchans=0, task_name="other")))
    ids = list(Subtask.objects.filter(task_id=task_id).order_by("position").values_list("pk", flat=True))

    answer = ok(alice.put("/store_confs/minio", {"file_b64": base64.b64encode(b"<b/>").decode()}))

    assert [(s["subtask_id"], s["status"], s["ok"]) for s in answer["subtasks"]] == [
        (ids[0], "applied", True),
        (ids[1], "applied", True),
    ]
    assert answer["data"]["version"] == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("private_redis")
async def test_what_pic_task_config_sets_reads_back_by_http_and_websocket(alice):
    from tests.ws_helpers import FakeDevice

    @in_sync_thread
    def setup() -> tuple[str, int]:
        answer = alice.post("/tasks", task_body(vchans=0, source_type="push_pic_files"))
        task_id = answer.json()["data"]["task_id"]
        Subtask.objects.filter(task_id=task_id).update(state=State.RUNNING)
        return task_id, Subtask.objects.get(task_id=task_id).pk

    @in_sync_thread
    def http_get(task_id: str) -> dict:
        return alice.get(f"/tasks/{task_id}").json()["data"]

    task_id, subtask_id = await setup()
    ws = await connect(alice.token)
    with FakeDevice(subtask_id):
        changed = await ask(
            ws, cmd("post", "tasks/pic_task_config"), {"task_id": task_id, "algo_comb": ["face"]}
        )
    assert changed["ecode"] == 200, changed

    over_ws = (await ask(ws, cmd("get", "tasks"), {"task_id": task_id}))["data"]
    over_http = await http_get(task_id)
    assert over_ws["detector_models"] == over_ws["algo_comb"] == ["face"]
    assert over_http["detector_models"] == ["face"] and over_http == over_ws
    await ws.disconnect()
