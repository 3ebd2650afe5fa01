"""Bad input to the VCS-SPS API: every refusal is the VCS envelope (Code = the HTTP status as a
string, Message naming the problem in VCS words) and leaves the database as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from tests.api_helpers import DELETE, edit
from tests.conftest import Actor
from tests.vcs_helpers import (
    CREATE,
    GET,
    MODIFY,
    START,
    STOP,
    compute_body,
    device,
    make_store,
    snapshot,
    vcs_ok,
    vcs_refused,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def videos(settings, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return make_store(tmp_path)


@pytest.fixture
def task_id(alice: Actor) -> str:
    """An existing compute task the refused requests could damage."""
    return vcs_ok(alice.post(CREATE, compute_body()))["taskId"]


DEV = "datasources.devices.0"
CREATE_CASES = [
    pytest.param(edit("name", DELETE), 400, ("name", "required"), id="missing-name"),
    pytest.param(edit("name", ""), 400, ("name",), id="blank-name"),
    pytest.param(edit("name", "n" * 129), 400, ("name",), id="long-name"),
    pytest.param(edit("name", "a\x00b"), 400, ("name", "null characters"), id="nul-in-name"),
    pytest.param(
        edit("execType", "realtimeVideo"), 400, ("execType", "historyVideoFile"), id="wrong-execType"
    ),
    pytest.param(edit("execType", DELETE), 400, ("execType", "required"), id="missing-execType"),
    pytest.param(
        edit("execStartTime", "tomorrow"), 400, ("execStartTime", "integer"), id="non-numeric-execStartTime"
    ),
    pytest.param(edit("execStartTime", 1.5), 400, ("execStartTime",), id="fractional-execStartTime"),
    pytest.param(edit("execStartTime", -1), 400, ("execStartTime",), id="negative-execStartTime"),
    pytest.param(edit("execStartTime", 10**20), 400, ("execStartTime",), id="huge-execStartTime"),
    pytest.param(edit("execStartTime", True), 400, ("execStartTime",), id="boolean-execStartTime"),
    pytest.param(
        edit("execStartTime", DELETE), 400, ("execStartTime", "required"), id="missing-execStartTime"
    ),
    pytest.param(
        edit("algorithms.0.models", ["face", "car"]),
        400,
        ("algorithms[0].models[1]", "car"),
        id="unknown-model",
    ),
    pytest.param(edit("algorithms.0.models", []), 400, ("algorithms",), id="empty-models"),
    pytest.param(edit("algorithms.0.models", "face"), 400, ("algorithms",), id="models-not-a-list"),
    pytest.param(edit("algorithms", []), 400, ("algorithms",), id="empty-algorithms"),
    pytest.param(edit("algorithms", DELETE), 400, ("algorithms", "required"), id="missing-algorithms"),
    pytest.param(edit("datasources", DELETE), 400, ("datasources", "required"), id="missing-datasources"),
    pytest.param(edit("datasources.devices", []), 400, ("datasources.devices",), id="no-devices"),
    pytest.param(
        edit("datasources.devices", "cam-1"), 400, ("datasources.devices",), id="devices-not-a-list"
    ),
    pytest.param(
        edit(f"{DEV}.deviceId", DELETE),
        400,
        ("datasources.devices[0].deviceId", "required"),
        id="missing-deviceId",
    ),
    pytest.param(
        edit(f"{DEV}.deviceId", "cam 1/.."), 400, ("datasources.devices[0].deviceId",), id="bad-deviceId"
    ),
    pytest.param(
        edit(f"{DEV}.videoId", "../../etc/passwd"),
        400,
        ("datasources.devices[0].videoId", "letters, digits"),
        id="videoId-traversal",
    ),
    pytest.param(edit(f"{DEV}.videoId", "clip.mp4"), 400, ("videoId",), id="videoId-with-dot"),
    pytest.param(edit(f"{DEV}.videoId", "v" * 129), 400, ("videoId",), id="videoId-too-long"),
    pytest.param(edit(f"{DEV}.videoId", ""), 400, ("videoId",), id="videoId-empty"),
    pytest.param(
        edit(f"{DEV}.videoId", "nosuchvideo"),
        404,
        ("datasources.devices[0].videoId", "nosuchvideo"),
        id="unknown-videoId",
    ),
    pytest.param(
        edit(f"{DEV}.videoTimeLength", -5),
        400,
        ("datasources.devices[0].videoTimeLength", "greater than 0"),
        id="negative-videoTimeLength",
    ),
    pytest.param(
        edit(f"{DEV}.videoTimeLength", 0),
        400,
        ("videoTimeLength", "greater than 0"),
        id="zero-videoTimeLength",
    ),
    pytest.param(
        edit(f"{DEV}.videoTimeLength", "long"), 400, ("videoTimeLength",), id="non-numeric-videoTimeLength"
    ),
    pytest.param(
        edit(f"{DEV}.videoBeginTime", "noon"), 400, ("videoBeginTime",), id="non-numeric-videoBeginTime"
    ),
    pytest.param(
        edit("datasources.devices", [device("cam-1"), device("cam-1", "clip-2")]),
        400,
        ("datasources.devices", "twice"),
        id="device-twice",
    ),
    pytest.param(edit("description", "d" * 1025), 400, ("description",), id="long-description"),
    pytest.param(edit("clientName", ["sps"]), 400, ("clientName",), id="clientName-not-a-string"),
]


@pytest.mark.parametrize(("change", "status", "fragments"), CREATE_CASES)
def test_create_refuses(alice, task_id, change, status, fragments):
    before = snapshot()
    vcs_refused(alice.post(CREATE, change(compute_body())), status, *fragments)
    assert snapshot() == before


MODIFY_CASES = [
    pytest.param(edit("name", "renamed"), 400, ("name", "cannot change"), id="changing-name"),
    pytest.param(
        edit("execType", "realtimeVideo"), 400, ("execType", "cannot change"), id="changing-execType"
    ),
    pytest.param(edit("taskId", DELETE), 400, ("taskId", "required"), id="missing-taskId"),
    pytest.param(edit("taskId", "f" * 32), 404, ("taskId",), id="unknown-taskId"),
    pytest.param(edit("taskId", ["x"]), 400, ("taskId",), id="taskId-not-a-string"),
    pytest.param(
        edit(f"{DEV}.videoId", "nosuchvideo"), 404, ("datasources.devices[0].videoId",), id="unknown-videoId"
    ),
    pytest.param(
        edit(f"{DEV}.videoTimeLength", -1), 400, ("videoTimeLength",), id="negative-videoTimeLength"
    ),
    pytest.param(edit("algorithms.0.models", ["lorry"]), 400, ("algorithms",), id="unknown-model"),
    pytest.param(edit("execStartTime", "soon"), 400, ("execStartTime",), id="non-numeric-execStartTime"),
    pytest.param(
        edit("datasources.devices", [device("cam-1", "clip-2")]),
        409,
        ("datasources.devices[0]", "another url"),
        id="device-moved-to-another-file",
    ),
]


@pytest.mark.parametrize(("change", "status", "fragments"), MODIFY_CASES)
def test_modify_refuses(alice, task_id, change, status, fragments):
    before = snapshot()
    body = compute_body(
        taskId=task_id, description="changed", devices=[device("cam-1"), device("cam-7", "clip-2")]
    )
    vcs_refused(alice.post(MODIFY, change(body)), status, *fragments)
    assert snapshot() == before


@pytest.mark.parametrize("path", [START, STOP])
@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 400, "taskId"),
        ({"taskId": ""}, 400, "taskId"),
        ({"taskId": {"id": 1}}, 400, "taskId"),
        ({"taskId": "nosuchtask"}, 404, "nosuchtask"),
        ([], 400, "JSON object"),
    ],
)
def test_start_and_stop_refuse(alice, task_id, path, body, status, fragment):
    before = snapshot()
    vcs_refused(alice.post(path, body), status, fragment)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"taskIds": "abc"}, "taskIds"),
        ({"taskIds": {"a": 1}}, "taskIds"),
        ({"taskIds": []}, "taskIds"),
        ({"taskIds": [f"t{i}" for i in range(101)]}, "taskIds"),
        ({"taskIds": [{"id": 1}]}, "taskIds"),
        ({}, "taskIds"),
    ],
)
def test_get_refuses(alice, task_id, body, fragment):
    vcs_refused(alice.post(GET, body), 400, fragment)


@pytest.mark.parametrize("path", [CREATE, MODIFY, START, STOP, GET])
def test_a_body_that_is_not_json_is_refused(alice, task_id, path):
    before = snapshot()
    vcs_refused(alice.post(path, '{"name": "task1",'), 400, "not valid JSON")
    assert snapshot() == before


@pytest.mark.parametrize("path", [CREATE, MODIFY, START, STOP, GET])
def test_no_token_is_a_401_in_the_vcs_envelope(alice, task_id, path):
    before = snapshot()
    response = Client().post(path, json.dumps(compute_body(taskId=task_id)), content_type="application/json")
    vcs_refused(response, 401, "token")
    assert snapshot() == before


def test_an_unknown_token_is_a_401_in_the_vcs_envelope(alice):
    response = Client().post(
        CREATE, json.dumps(compute_body()), content_type="application/json", HTTP_AUTHORIZATION="x" * 40
    )
    vcs_refused(response, 401, "unknown API token")


def test_a_body_over_the_limit_is_a_413_in_the_vcs_envelope(alice, task_id, settings):
    settings.VIAS_MAX_BODY_BYTES = 4096
    before = snapshot()
    vcs_refused(alice.post(CREATE, compute_body(description="d" * 5000)), 413, "over the limit")
    assert snapshot() == before


def test_other_methods_content_types_and_paths_answer_in_the_vcs_envelope(alice):
    vcs_refused(alice.get(GET), 405, "GET")
    response = alice.client.post(
        GET, "taskIds=1", content_type="application/x-www-form-urlencoded", **alice.headers()
    )
    vcs_refused(response, 415, "application/json")
    vcs_refused(alice.post("/vcs/console/task/deleteComputeTask", {}), 404, "not found")
