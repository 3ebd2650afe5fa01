"""VIAS v2 video sources and video source groups with the public API's bodies, over HTTP:
the reference's own example requests, every field rule at its boundaries, filters, and bad input
answered in the v2 error body with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from subtasks.choices import State
from subtasks.models import Subtask
from tasks.models import VideoChannel, VideoGroup
from tests.test_v2_helpers import (
    DELETE,
    add_sources,
    batch_body,
    create_task,
    edit,
    group_body,
    snapshot,
    source_body,
    v2,
    v2_ok,
    v2_refused,
)

pytestmark = pytest.mark.django_db

URL_CONFIG = "<type_config><url_address>rtsp://10.7.7.7/live</url_address></type_config>"
# The reference's CreateVideoSource example (a url source), with a reachable-looking address.
EXAMPLE_SOURCE = {
    "video_source_name": "url_test",
    "access_type": "cloud",
    "type": "url",
    "latitude": "30.00000",
    "longitude": "120.00000",
    "type_config": URL_CONFIG,
    "tag": ["gate"],
}


def make_source(actor, body: dict[str, Any]) -> str:
    return v2_ok(actor.post(v2(actor, "/source"), body))["video_source_id"]


def test_the_references_create_example_makes_a_source_it_shows(alice):
    answer = v2_ok(alice.post(v2(alice, "/source"), EXAMPLE_SOURCE))

    assert set(answer) == {"video_source_id"}
    shown = v2_ok(alice.get(v2(alice, f"/source/sources/{answer['video_source_id']}")))
    assert shown["video_source_id"] == answer["video_source_id"]
    assert shown["video_source_name"] == "url_test"
    assert (shown["access_type"], shown["type"], shown["type_config"]) == ("cloud", "url", URL_CONFIG)
    assert (shown["latitude"], shown["longitude"], shown["tag"]) == ("30.00000", "120.00000", ["gate"])
    assert shown["stream_path"] == "rtsp://10.7.7.7/live"
    assert shown["status"]["status"] == "2" and isinstance(shown["create_at"], int)
    channel = VideoChannel.objects.get(vchan_refid=answer["video_source_id"])
    assert channel.url == "rtsp://10.7.7.7/live" and len(channel.vchan_refid) == 36


def test_a_source_is_a_channel_the_native_api_lists(alice):
    source_id = make_source(alice, EXAMPLE_SOURCE)
    native = alice.get("/vchans").json()
    assert source_id in {v["vchan_refid"] for v in native["list_data"]}


def test_update_changes_name_address_and_groups(alice):
    source_id = make_source(alice, EXAMPLE_SOURCE)
    group_id = v2_ok(alice.post(v2(alice, "/video-group"), group_body("east", [])))["video_group_id"]
    body = {
        "video_source_name": "url test 2",
        "type_config": "<type_config><url_address>rtsp://10.7.7.8/live</url_address></type_config>",
        "tag": [],
        "video_group_ids": [group_id],
    }

    changed = v2_ok(alice.put(v2(alice, f"/source/{source_id}"), body))

    assert changed["video_source_name"] == "url test 2"
    assert changed["stream_path"] == "rtsp://10.7.7.8/live" and changed["tag"] == []
    assert [g["video_group_id"] for g in changed["video_packages"]] == [group_id]
    assert changed["latitude"] == "30.00000"  # left out of the body: kept


def test_changing_the_address_of_a_running_source_is_refused(alice):
    source_id = make_source(alice, EXAMPLE_SOURCE)
    create_task(alice, sources=[source_id])
    Subtask.objects.update(state=State.RUNNING)
    before = snapshot()
    body = {**EXAMPLE_SOURCE, "type_config": URL_CONFIG.replace("10.7.7.7", "10.7.7.9")}

    v2_refused(alice.put(v2(alice, f"/source/{source_id}"), body), 400, "VIAS.00010004", "type_config")
    assert snapshot() == before
    # The name alone may change while it runs.
    assert v2_ok(alice.put(v2(alice, f"/source/{source_id}"), {**EXAMPLE_SOURCE, "video_source_name": "n"}))


def test_list_pages_filters_and_sorts(alice):
    cams = add_sources(alice, 7)
    edge = make_source(alice, source_body("edge one", "rtsp://10.8.8.8/l", access_type="edge", tag=["yard"]))
    group = v2_ok(alice.post(v2(alice, "/video-group"), group_body("west", cams[:2])))["video_group_id"]
    create_task(alice, sources=[cams[3]])
    create_task(alice, sources=[cams[3]], name="second")
    Subtask.objects.filter(video_channel__vchan_refid=cams[3]).update(state=State.RUNNING)
    create_task(alice, sources=[cams[4]], name="third")
    Subtask.objects.filter(video_channel__vchan_refid=cams[4]).update(state=State.ABNORMAL)

    def ids(query: str) -> list[str]:
        answer = v2_ok(alice.get(v2(alice, f"/source/sources?{query}")))
        assert answer["video_source_number"] == len(answer["video_source_list"])
        return [item["video_source_id"] for item in answer["video_source_list"]]

    everything = v2_ok(alice.get(v2(alice, "/source/sources")))
    assert (everything["total_number"], everything["video_source_number"]) == (8, 8)  # unpaged by default
    assert everything["quota_number"] == 5000
    assert ids("is_paged=true&page_size=5&page_num=2&order_by=asc") == [cams[5], cams[6], edge]
    assert ids("is_paged=true&page_size=5&order_by=asc") == cams[:5]
    assert set(ids("scope=camera 1")) == {cams[1]}
    assert set(ids("scope=west&scope_name=group_name")) == set(cams[:2])
    assert set(ids(f"video_group_id={group}")) == set(cams[:2])
    assert ids("access_type=edge") == [edge]
    assert ids("tag=yard") == [edge]
    assert ids("status=1") == [cams[3]]
    assert ids("status=9") == [cams[4]]
    assert len(ids("status=2")) == 6 and len(ids("status=1&status=9")) == 2 and len(ids("status=1,9")) == 2
    assert ids("sort_name=num_task")[0] == cams[3]
    assert ids("type=url&type=obs") and ids("type=obs") == []


@pytest.mark.parametrize(
    "created",
    [
        pytest.param(datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC), id="fraction-999999"),
        pytest.param(datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC), id="no-fraction"),
        pytest.param(datetime(2025, 7, 1, 8, 30, 15, 1_500, tzinfo=UTC), id="fraction-001500"),
        pytest.param(datetime(2025, 7, 1, 8, 30, 15, 999, tzinfo=UTC), id="fraction-000999"),
    ],
)
def test_list_and_detail_show_every_public_field_as_stored(alice, created):
    """The list item (ListVideoSourceInfoDto) and the detail field by field from the stored row,
    the creation time in whole milliseconds (floored) whatever its fraction of a second."""
    (cam,) = add_sources(alice, 1)
    group = v2_ok(alice.post(v2(alice, "/video-group"), group_body("west", [cam])))["video_group_id"]
    create_task(alice, sources=[cam])
    VideoChannel.objects.filter(vchan_refid=cam).update(
        created_at=created, latitude="-30.5", longitude="120.25", tags=["gate", "东门"]
    )
    channel = VideoChannel.objects.get(vchan_refid=cam)
    stored = VideoGroup.objects.get(group_id=group)
    millis = (created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    expected = {
        "video_source_id": cam,
        "video_source_name": channel.name,
        "status": {"status": "2", "name": "offline", "level": "2"},
        "access_type": "cloud",
        "type": "url",
        "latitude": "-30.5",
        "longitude": "120.25",
        "create_at": millis,
        "stream_path": channel.url,
        "video_packages": [
            {
                "video_group_id": group,
                "video_group_name": "west",
                "description": "",
                "access_type": "cloud",
                "create_at": (stored.created_at - datetime(1970, 1, 1, tzinfo=UTC))
                // timedelta(milliseconds=1),
                "modify_at": (stored.updated_at - datetime(1970, 1, 1, tzinfo=UTC))
                // timedelta(milliseconds=1),
            }
        ],
        "tag": ["gate", "东门"],
        "num_task": 1,
        "num_template": 0,
    }

    for query in ("", "?is_paged=true&page_size=5"):
        (item,) = v2_ok(alice.get(v2(alice, f"/source/sources{query}")))["video_source_list"]
        assert item == expected
    assert v2_ok(alice.get(v2(alice, f"/source/sources/{cam}"))) == {
        **expected,
        "type_config": channel.type_config,
        "service_config_templates": [],
        "image": "",
        "scene_recommend": [],
        "video_source_quality": [],
    }


@pytest.mark.parametrize(
    "change, place",
    [
        pytest.param(edit("video_source_name", "a" * 101), "video_source_name", id="name-101"),
        pytest.param(edit("video_source_name", ""), "video_source_name", id="name-empty"),
        pytest.param(edit("video_source_name", " gate"), "video_source_name", id="name-leading-space"),
        pytest.param(edit("video_source_name", "gate "), "video_source_name", id="name-trailing-space"),
        pytest.param(edit("video_source_name", "gate@1"), "video_source_name", id="name-at-sign"),
        pytest.param(edit("video_source_name", DELETE), "video_source_name", id="name-missing"),
        pytest.param(edit("access_type", "sky"), "access_type", id="access-type"),
        pytest.param(edit("access_type", DELETE), "access_type", id="access-type-missing"),
        pytest.param(edit("type", "ftp"), "type", id="type-unknown"),
        pytest.param(edit("type", "vcn"), "type_config", id="type-not-analysable"),
        pytest.param(edit("latitude", "90.00001"), "latitude", id="latitude-over"),
        pytest.param(edit("latitude", "-90.1"), "latitude", id="latitude-under"),
        pytest.param(edit("latitude", "1.123456"), "latitude", id="latitude-6-places"),
        pytest.param(edit("latitude", "north"), "latitude", id="latitude-word"),
        pytest.param(edit("latitude", "NaN"), "latitude", id="latitude-nan"),
        pytest.param(edit("longitude", "180.00001"), "longitude", id="longitude-over"),
        pytest.param(edit("tag", ["a", "b", "c", "d", "e"]), "tag", id="tags-5"),
        pytest.param(edit("tag", ["a" * 11]), "tag[0]", id="tag-11"),
        pytest.param(edit("tag", ["a b"]), "tag", id="tag-space"),
        pytest.param(edit("tag", ["a", "a"]), "tag", id="tag-twice"),
        pytest.param(edit("tag", "gate"), "tag", id="tag-not-a-list"),
        pytest.param(edit("type_config", "not xml"), "type_config", id="config-not-xml"),
        pytest.param(
            edit("type_config", "<config><url_address>rtsp://a/b</url_address></config>"),
            "type_config",
            id="config-root",
        ),
        pytest.param(
            edit("type_config", "<type_config><ip>1.2.3.4</ip></type_config>"),
            "type_config",
            id="config-no-url",
        ),
        pytest.param(
            edit("type_config", "<type_config><url_address>file:///etc/passwd</url_address></type_config>"),
            "type_config",
            id="config-file-url",
        ),
        pytest.param(
            edit(
                "type_config",
                '<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                "<type_config><url_address>&x;</url_address></type_config>",
            ),
            "type_config",
            id="config-xxe",
        ),
        pytest.param(
            edit(
                "type_config", f"<type_config><url_address>rtsp://h/{'a' * 962}</url_address></type_config>"
            ),
            "type_config",
            id="config-1025-bytes",
        ),
        pytest.param(edit("type_config", DELETE), "type_config", id="config-missing"),
        pytest.param(edit("video_source_id", "abc"), "video_source_id", id="id-3"),
        pytest.param(edit("video_source_id", "a" * 37), "video_source_id", id="id-37"),
        pytest.param(edit("video_source_id", "Gate-1"), "video_source_id", id="id-uppercase"),
        pytest.param(edit("video_group_ids", ["no-such-group"]), "video_group_ids[0]", id="unknown-group"),
    ],
)
def test_bad_source_bodies_are_refused_in_the_v2_body_and_write_nothing(alice, change, place):
    before = snapshot()

    response = alice.post(v2(alice, "/source"), change(EXAMPLE_SOURCE))

    body = v2_refused(response, 404 if place == "video_group_ids[0]" else 400)
    assert body["params"] == [place], body
    assert snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(edit("video_source_name", "a" * 100), id="name-100"),
        pytest.param(edit("video_source_name", "南门 camera (1).a-b_c（东）"), id="name-every-kind"),
        pytest.param(edit("latitude", "-90"), id="latitude-min"),
        pytest.param(edit("latitude", "90.00000"), id="latitude-max"),
        pytest.param(edit("longitude", "-180.00000"), id="longitude-min"),
        pytest.param(edit("tag", ["a", "b", "c", "南门-_1234"]), id="tags-4-of-10"),
        pytest.param(edit("video_source_id", "abcd"), id="id-4"),
        pytest.param(edit("video_source_id", "a" * 36), id="id-36"),
        pytest.param(edit("latitude", DELETE), id="no-latitude"),
        pytest.param(
            edit(
                "type_config", f"<type_config><url_address>rtsp://h/{'a' * 961}</url_address></type_config>"
            ),
            id="config-1024-bytes",
        ),
    ],
)
def test_sources_at_the_boundaries_are_accepted(alice, change):
    body = change(EXAMPLE_SOURCE)
    assert len(body["type_config"].encode()) <= 1024
    source_id = make_source(alice, body)
    assert VideoChannel.objects.filter(vchan_refid=source_id).exists()


def test_an_id_in_use_is_already_exists(alice):
    make_source(alice, {**EXAMPLE_SOURCE, "video_source_id": "gate-1"})
    before = snapshot()
    v2_refused(
        alice.post(v2(alice, "/source"), {**EXAMPLE_SOURCE, "video_source_id": "gate-1"}),
        400,
        "VIAS.00010003",
    )
    assert snapshot() == before


def test_the_source_quota_is_kept(alice, settings):
    settings.VIAS_V2_SOURCE_QUOTA = 2
    add_sources(alice, 2)
    v2_refused(alice.post(v2(alice, "/source"), EXAMPLE_SOURCE), 400, "VIAS.00010001", "quota")
    assert v2_ok(alice.get(v2(alice, "/source/sources")))["quota_number"] == 2


@pytest.mark.parametrize(
    "query",
    [
        "status=3",
        "type=ftp",
        "access_type=sky",
        "page_size=4",
        "page_size=201",
        "page_num=0",
        "page_num=10001",
        "sort_name=name",
        "order_by=up",
        "is_paged=maybe",
        "scope_name=tag",
        "video_group_id=a%20b",
        "tag=" + "a" * 11,
    ],
)
def test_bad_list_queries_are_refused(alice, query):
    body = v2_refused(alice.get(v2(alice, f"/source/sources?{query}")), 400, "VIAS.00010001")
    assert body["params"] == [query.split("=")[0]]


def test_unknown_sources_are_not_found(alice):
    for method in ("get", "put", "delete"):
        path = "/source/sources/nope" if method == "get" else "/source/nope"
        args = (EXAMPLE_SOURCE,) if method == "put" else ()
        v2_refused(getattr(alice, method)(v2(alice, path), *args), 404, "VIAS.00010002")


# ---- video source groups -------------------------------------------------------------------------------


def test_the_references_group_examples_create_show_update_and_delete(alice):
    cams = add_sources(alice, 3)

    made = v2_ok(alice.post(v2(alice, "/video-group"), group_body("test000", cams[:1])))
    path = v2(alice, f"/video-group/{made['video_group_id']}")
    shown = v2_ok(alice.get(path))
    assert set(made) == {"video_group_id"} and len(made["video_group_id"]) == 36
    assert (shown["video_group_name"], shown["access_type"], shown["num_video_source"]) == (
        "test000",
        "cloud",
        1,
    )
    assert shown["group_status"] == {"num_online": 0, "num_exception": 0, "num_offline": 1}
    assert shown["video_source_ids"] == cams[:1]

    update = {"video_source_ids": cams[1:], "video_group_name": "test000", "description": ""}
    assert v2_ok(alice.put(path, update)) == {}
    assert v2_ok(alice.get(path))["video_source_ids"] == cams[1:]
    assert v2_ok(alice.put(path, {"video_source_ids": cams[:1]})) == {}
    assert v2_ok(alice.get(path))["video_group_name"] == "test000"  # left out: kept

    assert v2_ok(alice.delete(path)) == {}
    v2_refused(alice.get(path), 404, "VIAS.00010002")
    assert VideoChannel.objects.filter(vchan_refid__in=cams).count() == 3  # its sources stay


def test_group_list_counts_filters_and_batches(alice):
    cams = add_sources(alice, 4)
    a = v2_ok(alice.post(v2(alice, "/video-group"), group_body("alpha", cams[:2])))["video_group_id"]
    b = v2_ok(alice.post(v2(alice, "/video-group"), group_body("beta", cams[2:])))["video_group_id"]
    batch = batch_body(cams[:2])
    batch["batch_input"]["video_source_group"][0]["video_source_group_id"] = a
    v2_ok(alice.post(v2(alice, "/batch-tasks"), batch))
    Subtask.objects.filter(video_channel__vchan_refid=cams[0]).update(state=State.RUNNING)

    def groups(query: str = "") -> dict[str, dict[str, Any]]:
        answer = v2_ok(alice.get(v2(alice, f"/video-group/groups?{query}")))
        assert answer["video_group_number"] == len(answer["video_group_list"])
        return {g["video_group_id"]: g for g in answer["video_group_list"]}

    listed = groups()
    assert listed[a]["num_batch_task"] == 1 and listed[b]["num_batch_task"] == 0
    assert listed[a]["group_status"] == {"num_online": 1, "num_exception": 0, "num_offline": 1}
    assert listed[a]["type"] == "url" and listed[a]["num_video_source"] == 2
    assert set(groups("name=alp")) == {a}
    assert set(groups("has_task=true")) == {a} and set(groups("has_task=false")) == {b}
    assert set(groups("status=1")) == {a} and set(groups("status=2")) == {b}
    assert list(groups("sort_name=num_task&order_by=asc")) == [b, a]
    assert list(groups("is_paged=true&page_size=5&page_num=2")) == []


def test_the_task_list_video_group_filter_uses_the_groups(alice):
    cams = add_sources(alice, 3)
    group = v2_ok(alice.post(v2(alice, "/video-group"), group_body("door", cams[:1])))["video_group_id"]
    inside = create_task(alice, sources=[cams[0]], name="inside")
    create_task(alice, sources=[cams[1]], name="outside")

    listed = v2_ok(alice.get(v2(alice, f"/tasks?video_group_id={group}")))

    assert [t["id"] for t in listed["tasks"]] == [inside["id"]]


@pytest.mark.parametrize(
    "change, place, status",
    [
        pytest.param(edit("video_group_name", "a" * 21), "video_group_name", 400, id="name-21"),
        pytest.param(edit("video_group_name", ""), "video_group_name", 400, id="name-empty"),
        pytest.param(edit("video_group_name", "a b"), "video_group_name", 400, id="name-space"),
        pytest.param(edit("video_group_name", DELETE), "video_group_name", 400, id="name-missing"),
        pytest.param(edit("description", "d" * 101), "description", 400, id="description-101"),
        pytest.param(edit("access_type", "both"), "access_type", 400, id="access-type"),
        pytest.param(edit("video_source_ids", ["nope"]), "video_source_ids[0]", 404, id="unknown-source"),
        pytest.param(edit("video_source_ids", "cam-0"), "video_source_ids", 400, id="sources-not-a-list"),
    ],
)
def test_bad_group_bodies_are_refused_and_write_nothing(alice, change, place, status):
    add_sources(alice, 1)
    before = snapshot()
    body = v2_refused(alice.post(v2(alice, "/video-group"), change(group_body("door", ["cam-0"]))), status)
    assert body["params"] == [place], body
    assert snapshot() == before


def test_groups_at_the_boundaries_are_accepted(alice):
    cams = add_sources(alice, 50)
    made = v2_ok(
        alice.post(v2(alice, "/video-group"), group_body("南门-_" + "a" * 16, [], description="d" * 100))
    )
    path = v2(alice, f"/video-group/{made['video_group_id']}")
    assert v2_ok(alice.put(path, {"video_source_ids": cams})) == {}
    assert VideoGroup.objects.get().channels.count() == 50


@pytest.mark.parametrize(
    "body, place",
    [
        pytest.param({"video_source_ids": []}, "video_source_ids", id="no-sources"),
        pytest.param(
            {"video_source_ids": [f"cam-{i}" for i in range(51)]}, "video_source_ids", id="51-sources"
        ),
        pytest.param({"video_group_name": "east"}, "video_source_ids", id="sources-missing"),
        pytest.param(
            {"video_source_ids": ["cam-0"], "video_group_name": "a" * 21}, "video_group_name", id="name-21"
        ),
    ],
)
def test_bad_group_updates_are_refused_and_write_nothing(alice, body, place):
    add_sources(alice, 1)
    group = v2_ok(alice.post(v2(alice, "/video-group"), group_body("door", ["cam-0"])))["video_group_id"]
    before = snapshot()
    answer = v2_refused(alice.put(v2(alice, f"/video-group/{group}"), body), 400, "VIAS.00010001")
    assert answer["params"] == [place], answer
    assert snapshot() == before


def test_an_edge_source_does_not_join_a_cloud_group(alice):
    edge = make_source(alice, source_body("edge one", "rtsp://10.8.8.8/l", access_type="edge"))
    before = snapshot()
    answer = v2_refused(
        alice.post(v2(alice, "/video-group"), group_body("door", [edge])), 400, "VIAS.00010001"
    )
    assert answer["params"] == ["video_source_ids[0]"]
    assert snapshot() == before
