"""Bad input to the VIAS v2 API: each rule of the seeds broken once gets the v2 error body with
the glossary's status and code, and leaves the database as it was. Hostile input never is a 500."""

from __future__ import annotations

import pytest

from tests.conftest import Actor
from tests.test_v2_helpers import (
    DELETE,
    WEBHOOK,
    add_sources,
    batch_body,
    create_task,
    edit,
    output,
    snapshot,
    source_body,
    task_body,
    v2,
    v2_ok,
    v2_refused,
)

pytestmark = pytest.mark.django_db

INVALID, NOT_FOUND, NO_TASK = "VIAS.00010001", "VIAS.00010002", "VIAS.00010007"
WINDOW = {"begin_at": "08:00", "end_at": "18:00"}
SCHEDULE = {"type": "weekly", "timezone": "+08:00", "days_of_week": [1, 2], "periods": [[WINDOW]]}


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.fixture
def existing(alice: Actor) -> dict:
    """Sources and a task the refused requests could damage."""
    add_sources(alice, 3)
    return create_task(alice, sources=["cam-0"], schedule=SCHEDULE)


# Rules shared by the task and the batch bodies: output, config, schedule, description, order id.
COMMON = [
    pytest.param(edit("description", "d" * 501), ("description",), id="description-501"),
    pytest.param(edit("resource_order_id", "AB-CD"), ("resource_order_id",), id="order-id-uppercase"),
    pytest.param(edit("resource_order_id", "abc"), ("resource_order_id",), id="order-id-3"),
    pytest.param(edit("resource_order_id", "a" * 37), ("resource_order_id",), id="order-id-37"),
    pytest.param(edit("service_version", "1"), ("service_version",), id="version-too-short"),
    pytest.param(edit("service_version", "V1.0"), ("service_version",), id="version-uppercase"),
    pytest.param(edit("service_version", "1" * 33), ("service_version",), id="version-33"),
    pytest.param(edit("service_version", DELETE), ("service_version", "required"), id="version-missing"),
    pytest.param(edit("output", DELETE), ("output", "required"), id="output-missing"),
    pytest.param(edit("output", {}), ("output", "at least one"), id="output-no-mode"),
    pytest.param(edit("output", {"event_center": False}), ("output",), id="output-event-center-false-only"),
    pytest.param(edit("output", "webhook"), ("output",), id="output-not-an-object"),
    pytest.param(edit("output.webhook.headers", {}), ("webhook.headers", "1..10"), id="headers-0"),
    pytest.param(
        edit("output.webhook.headers", {f"h{i}": "v" for i in range(11)}),
        ("webhook.headers",),
        id="headers-11",
    ),
    pytest.param(edit("output.webhook.headers", {"a": ["x"]}), ("headers",), id="header-not-a-string"),
    pytest.param(edit("output.webhook.headers", {"bad name": "v"}), ("header name",), id="header-bad-name"),
    pytest.param(edit("output.webhook.headers", {"a": "x\r\nInjected: 1"}), ("one-line",), id="header-crlf"),
    pytest.param(edit("output.webhook.headers", DELETE), ("headers", "required"), id="headers-missing"),
    pytest.param(edit("output.webhook.url", "ftp://93.184.216.34/x"), ("webhook.url",), id="webhook-ftp"),
    pytest.param(edit("output.webhook.url", WEBHOOK + "/" + "x" * 1000), ("url",), id="webhook-url-1001"),
    pytest.param(edit("output.webhook.url", "http:///nohost"), ("webhook.url",), id="webhook-no-host"),
    pytest.param(
        edit("output.obs", {"bucket": "A-bucket", "path": "x"}), ("obs.bucket",), id="obs-bucket-upper"
    ),
    pytest.param(edit("output.obs", {"bucket": "ab", "path": "x"}), ("obs.bucket",), id="obs-bucket-2"),
    pytest.param(edit("output.obs", {"bucket": "a..b", "path": "x"}), ("obs.bucket",), id="obs-bucket-dots"),
    pytest.param(edit("output.obs", {"bucket": "b" * 64, "path": "x"}), ("bucket",), id="obs-bucket-64"),
    pytest.param(
        edit("output.obs", {"bucket": "bucket", "path": "/abs"}), ("obs.path",), id="obs-path-leading-slash"
    ),
    pytest.param(
        edit("output.obs", {"bucket": "bucket", "path": "a//b"}), ("obs.path",), id="obs-path-double-slash"
    ),
    pytest.param(edit("output.obs", {"bucket": "bucket", "path": "a:b"}), ("obs.path",), id="obs-path-colon"),
    pytest.param(
        edit("output.obs", {"bucket": "bucket", "path": "dir."}), ("obs.path",), id="obs-path-trailing-dot"
    ),
    pytest.param(edit("output.obs", {"bucket": "bucket", "path": "p" * 1024}), ("path",), id="obs-path-1024"),
    pytest.param(edit("output.obs", {"bucket": "bucket"}), ("path", "required"), id="obs-path-missing"),
    pytest.param(edit("output.dis", {"stream_name": "bad name"}), ("dis.stream_name",), id="dis-space"),
    pytest.param(edit("output.dis", {"stream_name": "s" * 65}), ("stream_name",), id="dis-65"),
    pytest.param(
        edit("output.dis", {"stream_name": "s", "data_category": ["c"] * 11}),
        ("data_category",),
        id="data-category-11",
    ),
    pytest.param(edit("config", {"common": [1]}), ("config",), id="config-common-not-object"),
    pytest.param(edit("config", {"common": {"blob": "x" * 70000}}), ("config",), id="config-too-large"),
    pytest.param(edit("config", {"common": deep(40)}), ("nested",), id="config-too-deep"),
    pytest.param(edit("schedule", {**SCHEDULE, "type": "monthly"}), ("weekly",), id="schedule-monthly"),
    pytest.param(
        edit("schedule", {**SCHEDULE, "days_of_month": [1]}), ("days_of_month",), id="schedule-days-of-month"
    ),
    pytest.param(edit("schedule", {**SCHEDULE, "timezone": "+8"}), ("timezone",), id="timezone-short"),
    pytest.param(
        edit("schedule", {**SCHEDULE, "timezone": "+15:00"}), ("timezone",), id="timezone-out-of-range"
    ),
    pytest.param(edit("schedule", {**SCHEDULE, "timezone": "UTC"}), ("timezone",), id="timezone-name"),
    pytest.param(edit("schedule.timezone", DELETE), ("timezone", "required"), id="timezone-missing"),
    pytest.param(edit("schedule", {**SCHEDULE, "days_of_week": []}), ("days_of_week",), id="days-empty"),
    pytest.param(edit("schedule", {**SCHEDULE, "days_of_week": [0]}), ("days_of_week",), id="day-0"),
    pytest.param(edit("schedule", {**SCHEDULE, "days_of_week": [8]}), ("days_of_week",), id="day-8"),
    pytest.param(edit("schedule", {**SCHEDULE, "days_of_week": [1, 1]}), ("twice",), id="day-twice"),
    pytest.param(
        edit("schedule", {**SCHEDULE, "days_of_week": [1] * 8}), ("days_of_week",), id="days-8-items"
    ),
    pytest.param(edit("schedule", {**SCHEDULE, "days_of_week": [10**30]}), ("days_of_week",), id="day-huge"),
    pytest.param(edit("schedule", {**SCHEDULE, "periods": []}), ("periods",), id="periods-empty"),
    pytest.param(edit("schedule.periods", DELETE), ("periods",), id="periods-missing"),
    pytest.param(edit("schedule", {**SCHEDULE, "periods": [WINDOW]}), ("periods",), id="periods-flat"),
    pytest.param(
        edit("schedule", {**SCHEDULE, "days_of_week": [1, 2, 3], "periods": [[WINDOW], [WINDOW]]}),
        ("periods",),
        id="periods-per-day-mismatch",
    ),
    pytest.param(
        edit("schedule", {**SCHEDULE, "periods": [[{"begin_at": "25:00", "end_at": "26:00"}]]}),
        ("begin_at",),
        id="window-bad-time",
    ),
    pytest.param(
        edit("schedule", {**SCHEDULE, "periods": [[{"begin_at": "08:00", "end_at": "08:00"}]]}),
        ("differ",),
        id="window-empty",
    ),
    pytest.param(
        edit("schedule", {**SCHEDULE, "periods": [[{"begin_at": "08:00"}]]}), ("end_at",), id="window-no-end"
    ),
]

TASK_ONLY = [
    pytest.param(edit("name", DELETE), ("name", "required"), id="name-missing"),
    pytest.param(edit("name", "front door"), ("name", "letters"), id="name-with-space"),
    pytest.param(edit("name", "n" * 101), ("name",), id="name-101"),
    pytest.param(edit("name", "a\x00b"), ("name", "ull characters"), id="name-nul"),
    pytest.param(edit("name", None), ("name",), id="name-null"),
    pytest.param(edit("name", 10**100), ("name",), id="name-huge-number"),
    pytest.param(edit("name", {"a": 1}), ("name",), id="name-object"),
    pytest.param(edit("input", DELETE), ("input", "required"), id="input-missing"),
    pytest.param(edit("input.type", "obs"), ("input.type", "not supported"), id="input-type-obs"),
    pytest.param(edit("input.data", []), ("input.data",), id="input-data-empty"),
    pytest.param(
        edit("input.data", [{"video_source_id": f"s{i}"} for i in range(51)]),
        ("input.data",),
        id="input-data-51",
    ),
    pytest.param(
        edit("input.data.0", {}), ("input.data[0].video_source_id", "required"), id="input-no-source-id"
    ),
    pytest.param(
        edit("input.data", [{"video_source_id": "cam-1"}, {"video_source_id": "cam-1"}]),
        ("twice",),
        id="input-source-twice",
    ),
    pytest.param(
        edit("input", {"type": "url", "data": [{"url": "file:///etc/passwd"}]}),
        ("input.data",),
        id="input-url-file",
    ),
]


@pytest.mark.parametrize(("change", "fragments"), COMMON + TASK_ONLY)
def test_task_creation_refuses(alice, existing, change, fragments):
    before = snapshot()
    body = change(task_body(sources=["cam-1"], schedule=SCHEDULE, resource_order_id="order-1"))

    v2_refused(alice.post(v2(alice, "/services/face/tasks"), body), 400, INVALID, *fragments)

    assert snapshot() == before


def test_an_unknown_video_source_is_404(alice, existing):
    before = snapshot()
    body = task_body(sources=["no-such-cam"])

    v2_refused(
        alice.post(v2(alice, "/services/face/tasks"), body), 404, NOT_FOUND, "input.data[0]", "no-such-cam"
    )

    assert snapshot() == before


@pytest.mark.parametrize("service", ["smoke%20fire", "a" * 101, "bad!name"])
def test_service_name_follows_the_seeds_pattern(alice, existing, service):
    before = snapshot()

    v2_refused(
        alice.post(v2(alice, f"/services/{service}/tasks"), task_body(sources=["cam-1"])),
        400,
        INVALID,
        "service_name",
    )

    assert snapshot() == before


# An update leaves out what stays as it is, so "missing" is no error there.
UPDATE_COMMON = [case for case in COMMON if case.id not in ("version-missing", "output-missing")]


@pytest.mark.parametrize(("change", "fragments"), UPDATE_COMMON + TASK_ONLY[1:7])
def test_task_update_refuses(alice, existing, change, fragments):
    path = v2(alice, f"/tasks/{existing['id']}")
    body = change(
        {
            "name": "renamed",
            "description": "x",
            "service_version": "2.0",
            "resource_order_id": "order-2",
            "output": {"dis": {"stream_name": "d"}, **output()},
            "config": {"common": {}},
            "schedule": SCHEDULE,
        }
    )
    before = snapshot()

    v2_refused(alice.put(path, body), 400, INVALID, *fragments)

    assert snapshot() == before


def test_task_update_takes_one_input(alice, existing):
    before = snapshot()
    body = {
        "input": {
            "type": "video_source",
            "data": [{"video_source_id": "cam-1"}, {"video_source_id": "cam-2"}],
        }
    }

    v2_refused(alice.put(v2(alice, f"/tasks/{existing['id']}"), body), 400, INVALID, "one input")

    assert snapshot() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_an_unknown_task_is_404_with_the_no_task_code(alice, existing, method):
    before = snapshot()
    path = v2(alice, "/tasks/" + "f" * 32)
    response = alice.put(path, {"name": "x"}) if method == "put" else getattr(alice, method)(path)

    v2_refused(response, 404, NO_TASK)
    v2_refused(alice.put(path + "/action/start"), 404, NO_TASK)
    assert snapshot() == before


BATCH_ONLY = [
    pytest.param(edit("name", "wd wd"), ("name",), id="name-with-space"),
    pytest.param(edit("name", "n" * 101), ("name",), id="name-101"),
    pytest.param(edit("name", DELETE), ("name", "required"), id="name-missing"),
    pytest.param(
        edit("service_name", "Smoke and fire detection algorithm"),
        ("service_name",),
        id="service-name-spaces",
    ),
    pytest.param(edit("service_name", "s" * 101), ("service_name",), id="service-name-101"),
    pytest.param(edit("service_name", DELETE), ("service_name", "required"), id="service-name-missing"),
    pytest.param(edit("batch_input", DELETE), ("batch_input", "required"), id="batch-input-missing"),
    pytest.param(edit("batch_input.video_source_group", []), ("video_source_group",), id="groups-0"),
    pytest.param(
        edit(
            "batch_input.video_source_group",
            [{"video_source_group_id": f"g-{i}", "video_source_list": []} for i in range(101)],
        ),
        ("video_source_group",),
        id="groups-101",
    ),
    pytest.param(
        edit(
            "batch_input.video_source_group.0.video_source_list",
            [{"video_source_id": f"s{i}"} for i in range(101)],
        ),
        ("video_source_list",),
        id="sources-101",
    ),
    pytest.param(
        edit("batch_input.video_source_group.0.video_source_group_id", "bad id/"),
        ("video_source_group_id",),
        id="group-id",
    ),
    pytest.param(
        edit("batch_input.video_source_group.0.video_source_list.0.target_roi", "r" * 2049),
        ("target_roi",),
        id="roi-2049",
    ),
    pytest.param(
        edit("batch_input.video_source_group.0.video_source_list.0", {}),
        ("video_source_id", "required"),
        id="no-source-id",
    ),
    pytest.param(edit("is_saved_as_template", "maybe"), ("is_saved_as_template",), id="template-not-bool"),
]


@pytest.mark.parametrize(("change", "fragments"), COMMON + BATCH_ONLY)
def test_batch_creation_refuses(alice, existing, change, fragments):
    before = snapshot()
    body = change(batch_body(["cam-1", "cam-2"], schedule=SCHEDULE, resource_order_id="order-1"))

    v2_refused(alice.post(v2(alice, "/batch-tasks"), body), 400, INVALID, *fragments)

    assert snapshot() == before


@pytest.mark.parametrize(("change", "fragments"), COMMON[:3] + COMMON[9:12] + BATCH_ONLY[:2])
def test_batch_update_refuses(alice, existing, change, fragments):
    batch_id = v2_ok(alice.post(v2(alice, "/batch-tasks"), batch_body(["cam-1"])))["id"]
    before = snapshot()
    body = change(
        {
            "name": "other",
            "description": "",
            "resource_order_id": "order-1",
            "service_version": "2.0",
            "output": {"dis": {"stream_name": "d"}, **output()},
            "config": {},
            "schedule": SCHEDULE,
        }
    )

    v2_refused(alice.put(v2(alice, f"/batch-tasks/{batch_id}"), body), 400, INVALID, *fragments)

    assert snapshot() == before


@pytest.mark.parametrize(
    "query",
    [
        "page_size=4",
        "page_size=1001",
        "page_size=abc",
        f"page_size={10**30}",
        "page=0",
        f"page={10**30}",
        "sort_dir=up",
        "title=a",
        "title=bad title!",
        "camera_name=" + "c" * 256,
        "task_state=RUNNINGX",
        "task_name=" + "n" * 1025,
        "batch_id=AB",
        "batch_id=" + "b" * 37,
        "video_group_id=abc",
        "video_group_id=" + "g" * 2049,
        "alg_id=not-a-uuid",
        "alg_id=6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "source_data_type=batch_task",
        "task_name=a%00b",
    ],
)
def test_list_filters_are_checked(alice, existing, query):
    param = query.split("=")[0]
    v2_refused(alice.get(v2(alice, f"/tasks?{query}")), 400, INVALID, param)


@pytest.mark.parametrize(
    "query", ["page_size=4", "page_size=201", "page_num=0", "order_by=up", "sort_name=id", "task_state=X"]
)
def test_batch_list_filters_are_checked(alice, existing, query):
    v2_refused(alice.get(v2(alice, f"/batch-tasks?{query}")), 400, INVALID, query.split("=")[0])


def _config(url: str) -> str:
    return f"<type_config><url_address>{url}</url_address></type_config>"


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (edit("video_source_name", DELETE), ("video_source_name", "required")),
        (edit("type_config", DELETE), ("type_config", "required")),
        (edit("type_config", _config("file:///etc/passwd")), ("type_config", "scheme")),
        (edit("type_config", _config("../../etc/passwd")), ("type_config",)),
        (edit("type", "vcn"), ("type_config", "vcn")),
        (edit("video_source_id", "bad id/"), ("video_source_id",)),
        (edit("latitude", "91"), ("latitude",)),
        (edit("video_source_name", "n" * 101), ("video_source_name",)),
        (edit("video_source_name", ["x"]), ("video_source_name",)),
    ],
)
def test_video_source_creation_refuses(alice, existing, body, fragments):
    before = snapshot()

    v2_refused(
        alice.post(v2(alice, "/source"), body(source_body("x", "rtsp://10.0.0.9/l"))),
        400,
        INVALID,
        *fragments,
    )

    assert snapshot() == before


def test_a_video_source_id_cannot_change(alice, existing):
    body = source_body("renamed", "rtsp://10.0.0.9/l", video_source_id="cam-9")

    v2_ok(alice.put(v2(alice, "/source/cam-0"), body))

    assert v2_ok(alice.get(v2(alice, "/source/sources/cam-0")))["video_source_name"] == "renamed"
    v2_refused(alice.get(v2(alice, "/source/sources/cam-9")), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/services/face/tasks"),
        ("post", "/batch-tasks"),
        ("post", "/source"),
        ("put", "/source/cam-0"),
    ],
)
@pytest.mark.parametrize("body", ["[]", '"text"', "null", "12", '{"name": "x",'])
def test_bodies_that_are_not_objects_are_refused(alice, existing, method, path, body):
    before = snapshot()

    v2_refused(getattr(alice, method)(v2(alice, path), body), 400, INVALID)

    assert snapshot() == before


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/hook", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x"]
)
def test_webhooks_into_our_own_network_are_refused(alice, existing, url):
    before = snapshot()
    body = task_body(sources=["cam-1"], output={"webhook": {"url": url, "headers": {"a": "a"}}})

    v2_refused(alice.post(v2(alice, "/services/face/tasks"), body), 400, INVALID, "webhook")

    assert snapshot() == before
