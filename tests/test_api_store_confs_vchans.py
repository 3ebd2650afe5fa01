"""CRUD over HTTP on /store_confs (storage configuration files) and /vchans (video channels)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import StoreConf, VideoChannel
from tests.api_helpers import error, ok
from tests.conftest import Actor, task_body

pytestmark = pytest.mark.django_db

STORE_XML = b'<?xml version="1.0" encoding="UTF-8"?><root><bucket>results</bucket></root>'


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def store_conf(unid: str = "minio-1", content: bytes = STORE_XML, **extra: Any) -> dict[str, Any]:
    return {"unid": unid, "name": "results bucket", "file_ext": "xml", "file_b64": b64(content), **extra}


def add_conf(actor: Actor, **kwargs: Any) -> dict[str, Any]:
    return ok(actor.post("/store_confs", store_conf(**kwargs)), 201)["data"]


def add_vchan(
    actor: Actor, refid: str = "gate", url: str = "rtsp://10.0.0.9/live", **extra: Any
) -> dict[str, Any]:
    return ok(actor.post("/vchans", {"vchan_refid": refid, "url": url, **extra}), 201)["data"]


# ---- storage configs ------------------------------------------------------------------------------


def test_store_conf_create_answers_it_and_stores_the_decoded_file(alice):
    data = ok(alice.post("/store_confs", store_conf()), 201)["data"]

    assert (data["unid"], data["name"], data["file_ext"], data["version"]) == (
        "minio-1",
        "results bucket",
        "xml",
        1,
    )
    assert base64.b64decode(data["file_b64"]) == STORE_XML
    assert bytes(StoreConf.objects.get(project=alice.project, unid="minio-1").content) == STORE_XML


def test_store_conf_with_any_extension_keeps_binary_content(alice):
    content = bytes(range(256))

    data = ok(alice.post("/store_confs", store_conf(content=content, file_ext="bin")), 201)["data"]

    assert base64.b64decode(data["file_b64"]) == content


def test_store_conf_list_is_paged_by_unid(alice):
    for unid in ("c", "a", "b"):
        add_conf(alice, unid=unid)

    page = ok(alice.get("/store_confs?offset=1&limit=1"))

    assert (page["total_num"], page["offset"], page["list_size"]) == (3, 1, 1)
    assert [c["unid"] for c in page["list_data"]] == ["b"]
    assert [c["unid"] for c in ok(alice.get("/store_confs"))["list_data"]] == ["a", "b", "c"]


def test_store_conf_show(alice):
    created = add_conf(alice)

    assert ok(alice.get("/store_confs/minio-1"))["data"] == created


def test_store_conf_put_replaces_the_file_and_increases_the_version(alice):
    add_conf(alice)
    new_xml = b"<root><bucket>archive</bucket></root>"

    data = ok(alice.put("/store_confs/minio-1", {"file_b64": b64(new_xml)}))["data"]

    assert data["version"] == 2
    assert data["name"] == "results bucket"
    assert base64.b64decode(data["file_b64"]) == new_xml
    assert ok(alice.get("/store_confs/minio-1"))["data"]["version"] == 2


def test_store_conf_put_cannot_change_the_unid(alice):
    add_conf(alice)

    answer = error(alice.put("/store_confs/minio-1", {"unid": "other"}), 400)

    assert "unid" in answer["enote"]
    assert StoreConf.objects.get().unid == "minio-1"


def test_store_conf_unid_is_unique_per_project(alice):
    add_conf(alice)

    answer = error(alice.post("/store_confs", store_conf(name="again")), 409)

    assert "minio-1" in answer["enote"]
    assert StoreConf.objects.get().name == "results bucket"


def test_store_conf_delete(alice):
    add_conf(alice)

    ok(alice.delete("/store_confs/minio-1"))

    error(alice.get("/store_confs/minio-1"), 404)
    assert not StoreConf.objects.exists()


def test_store_conf_used_by_a_task_cannot_be_deleted(alice):
    add_conf(alice)
    task = ok(alice.post("/tasks", task_body(store_conf_unid="minio-1")), 200)["data"]

    answer = error(alice.delete("/store_confs/minio-1"), 409)

    assert task["store_conf_unid"] == "minio-1"
    assert "used by 1 tasks" in answer["enote"]
    assert StoreConf.objects.filter(unid="minio-1").exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_unknown_store_conf_is_404(alice, method):
    answer = error(getattr(alice, method)("/store_confs/nope"), 404)

    assert "nope" in answer["enote"]


# ---- video channels -------------------------------------------------------------------------------


def test_vchan_create_answers_it(alice):
    data = add_vchan(alice, name="north gate", width=1920, height=1080)

    assert (data["vchan_refid"], data["name"], data["url"]) == ("gate", "north gate", "rtsp://10.0.0.9/live")
    assert (data["width"], data["height"]) == (1920, 1080)
    assert VideoChannel.objects.filter(project=alice.project, vchan_refid="gate").exists()


def test_vchan_list_is_paged_by_refid(alice):
    for refid in ("cam-b", "cam-c", "cam-a"):
        add_vchan(alice, refid=refid)

    page = ok(alice.get("/vchans?limit=2"))

    assert (page["total_num"], page["offset"], page["list_size"]) == (3, 0, 2)
    assert [c["vchan_refid"] for c in page["list_data"]] == ["cam-a", "cam-b"]


def test_vchan_show(alice):
    created = add_vchan(alice)

    assert ok(alice.get("/vchans/gate"))["data"] == created


def test_vchan_refid_is_unique_per_project(alice):
    add_vchan(alice)

    answer = error(alice.post("/vchans", {"vchan_refid": "gate", "url": "rtsp://10.0.0.10/live"}), 409)

    assert "gate" in answer["enote"]
    assert VideoChannel.objects.get().url == "rtsp://10.0.0.9/live"


def test_vchan_put_changes_fields_and_moves_its_subtasks_to_the_new_url(alice):
    add_vchan(alice)
    body = task_body(vchans=0)
    body["vchans"] = ["gate"]
    ok(alice.post("/tasks", body), 200)

    data = ok(alice.put("/vchans/gate", {"name": "renamed", "url": "rtsp://10.0.0.99/main"}))["data"]

    assert (data["name"], data["url"]) == ("renamed", "rtsp://10.0.0.99/main")
    assert list(Subtask.objects.values_list("source_url", flat=True)) == ["rtsp://10.0.0.99/main"]


def test_vchan_url_cannot_change_while_it_is_analysed(alice):
    add_vchan(alice)
    body = task_body(vchans=0)
    body["vchans"] = ["gate"]
    ok(alice.post("/tasks", body), 200)
    Subtask.objects.update(state=State.RUNNING)

    answer = error(alice.put("/vchans/gate", {"url": "rtsp://10.0.0.99/main"}), 409)

    assert "url" in answer["enote"]
    assert VideoChannel.objects.get().url == "rtsp://10.0.0.9/live"
    assert ok(alice.put("/vchans/gate", {"name": "still fine"}))["data"]["name"] == "still fine"


def test_vchan_put_cannot_change_the_refid(alice):
    add_vchan(alice)

    answer = error(alice.put("/vchans/gate", {"vchan_refid": "other"}), 400)

    assert "vchan_refid" in answer["enote"]


def test_vchan_delete(alice):
    add_vchan(alice)

    ok(alice.delete("/vchans/gate"))

    error(alice.get("/vchans/gate"), 404)
    assert not VideoChannel.objects.exists()


def test_vchan_used_by_a_subtask_cannot_be_deleted(alice):
    ok(alice.post("/tasks", task_body(vchans=1)), 200)

    answer = error(alice.delete("/vchans/cam-0"), 409)

    assert "used by 1 subtasks" in answer["enote"]
    assert VideoChannel.objects.filter(vchan_refid="cam-0").exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_unknown_vchan_is_404(alice, method):
    answer = error(getattr(alice, method)("/vchans/nope"), 404)

    assert "nope" in answer["enote"]
