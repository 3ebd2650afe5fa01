"""A NUL character in any query parameter is refused in the dialect's own envelope (never a 500:
PostgreSQL refuses NUL in every string it is given)."""

from __future__ import annotations

import pytest

from tests.analysis_helpers import ready_task
from tests.api_helpers import error
from tests.test_v2_helpers import v2, v2_refused

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/tasks?offset=%00", "/vchans?limit=1%00", "/store_confs?x=%00"])
def test_native_lists(alice, path):
    name = path.split("?")[1].split("=")[0]
    assert error(alice.get(path), 400)["errors"] == {name: ["null characters are not allowed"]}


@pytest.mark.parametrize("param", ["category", "rule", "zone", "since"])
def test_event_filters(alice, param):
    task = ready_task(alice)
    assert param in error(alice.get(f"/tasks/{task.pk}/events?{param}=a%00b"), 400)["errors"]


@pytest.mark.parametrize("param", ["task_name", "title", "camera_name", "company", "task_state"])
def test_v2_task_filters(alice, param):
    v2_refused(alice.get(v2(alice, f"/tasks?{param}=%00")), 400, None, param)


def test_a_nul_in_the_parameter_name_is_refused_too(alice):
    assert error(alice.get("/tasks?a%00b=1"), 400)["errors"] == {
        "a\\x00b": ["null characters are not allowed"]
    }
