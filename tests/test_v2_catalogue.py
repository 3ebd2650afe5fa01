"""The v2 algorithm services catalogue over HTTP: it lists what this installation can run, from
the algorithm types and the registered detectors, and its ids are the ones tasks carry."""

from __future__ import annotations

import pytest

from analysis.models import Detector
from tests.test_v2_helpers import add_sources, create_task, v2, v2_ok, v2_refused

pytestmark = pytest.mark.django_db

ALL = {"traffic", "passenger_flow", "security", "illegal_parking", "face", "body", "motor", "no_motor"}


def services(actor, query: str = "") -> dict[str, dict]:
    answer = v2_ok(actor.get(v2(actor, f"/algorithm/services/user?{query}")))
    assert answer["count"] == len(answer["service_list"])
    return {item["service_name"]: item for item in answer["service_list"]}


def test_every_service_is_listed_with_the_detectors_it_would_run(alice):
    listed = services(alice)

    assert set(listed) == ALL
    traffic = listed["traffic"]
    assert (traffic["alg_status"], traffic["categories"], traffic["detectors"]) == (
        "service_running",
        ["motor", "no_motor"],  # vehicles and bicycles: a traffic task counts both
        {"motor": "registry-entry", "no_motor": "registry-entry"},
    )
    assert traffic["alg_version"] == "registry-entry" and traffic["alg_versions"] == ["registry-entry"]
    assert traffic["function_version"] == "1.0.0" and traffic["deploy_type"] == "cloud"
    assert listed["face"]["detectors"]["face"] in ("opencv-haar-face", None)


def test_a_category_without_a_detector_is_not_deployed(alice):
    Detector.objects.update(enabled=False)

    listed = services(alice)

    assert listed["motor"]["alg_status"] == "not_deployed"
    assert "motor" in listed["motor"]["error_msg"] and listed["motor"]["alg_version"] == ""
    assert set(services(alice, "alg_status=not_deployed")) >= {"traffic", "body", "motor", "no_motor"}


def test_a_task_carries_its_services_id(alice):
    add_sources(alice, 1)
    task = create_task(alice, "traffic")
    service = services(alice)["traffic"]

    assert task["service_id"] == service["service_id"] == service["alg_id"]
    shown = v2_ok(alice.get(v2(alice, f"/algorithm/services/{service['service_id']}")))
    assert shown["service_name"] == "traffic"
    assert v2_ok(alice.get(v2(alice, "/algorithm/services/traffic")))["service_id"] == service["service_id"]
    by_alg = v2_ok(alice.get(v2(alice, f"/tasks?alg_id={service['alg_id']}")))
    assert [t["id"] for t in by_alg["tasks"]] == [task["id"]]


def test_filters_and_pages(alice):
    assert set(services(alice, "name_like=MOTOR")) == {"motor", "no_motor"}
    page = v2_ok(alice.get(v2(alice, "/algorithm/services/user?is_paged=true&page_size=5&page_num=2")))
    assert (page["count"], page["total"]) == (3, 8)
    names = list(services(alice, "sort_name=function_version&order_by=asc"))
    assert names == sorted(names)


@pytest.mark.parametrize(
    "query", ["page_size=4", "page_size=201", "page_num=0", "order_by=up", "sort_name=name", "alg_status=up"]
)
def test_bad_queries_are_refused(alice, query):
    body = v2_refused(alice.get(v2(alice, f"/algorithm/services/user?{query}")), 400, "VIAS.00010001")
    assert body["params"][0].startswith(query.split("=")[0])


def test_an_unknown_service_is_not_found(alice):
    v2_refused(alice.get(v2(alice, "/algorithm/services/nope")), 404, "VIAS.00010002")


def test_another_projects_path_is_refused(alice, bob):
    v2_refused(bob.get(v2(alice, "/algorithm/services/user")), 403, "VIAS.00010005")


@pytest.mark.parametrize(
    "path", ["/edge-pool/pools", "/algorithm/deployments", "/service-templates", "/source/sources/x/image"]
)
def test_public_operations_not_here_answer_a_v2_error_not_a_page(alice, path):
    v2_refused(alice.get(v2(alice, path)), 404, "VIAS.00010002")


def test_a_known_path_with_another_method_is_405_in_the_v2_body(alice):
    response = alice.delete(v2(alice, "/source/sources"))
    assert response.status_code == 405 and response.json()["error_code"] == "VIAS.00010001"
