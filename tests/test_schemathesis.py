# ruff: noqa: F811 - pytest fixtures imported from tests/ws_helpers.py are arguments here
"""Schemathesis against a live daphne, on a bounded budget (every operation of every dialect, a
few generated requests each): no 5xx, no status code the schema does not document for that
operation, no answer that violates its documented schema or content type. The schema is the one
the server itself serves (vias/lib/schema.py); the longer run is bench/bench_hostile.py."""

from __future__ import annotations

import pytest

from tests.fuzz_helpers import run_schemathesis, seed_objects, write_config
from tests.test_ws_e2e import Server
from tests.ws_helpers import private_redis  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_OPERATION = 8


@pytest.fixture
def server(private_redis):
    running = Server(private_redis.url)
    running.start()
    yield running
    running.stop()


def test_every_operation_answers_as_its_schema_says(server, alice, tmp_path):
    from pathlib import Path

    base = f"http://127.0.0.1:{server.port}"
    ids = seed_objects(base, alice.token, alice.project.project_id, Path(server.data_dir))
    config = write_config(tmp_path / "schemathesis.toml", alice.token, alice.project.project_id, ids)

    # One worker: the embedded default's SQLite answers concurrent writers "database is locked"
    # (a 500), which is the cluster issue's (WAL), not the schema's.
    result = run_schemathesis(
        f"{base}/api/schema/", config, tmp_path, max_examples=EXAMPLES_PER_OPERATION, workers=1
    )

    report = "\n\n".join(result.messages[:5]) + "\n\nserver log:\n" + server.log()
    assert result.operations >= 50, result.as_dict()  # every operation of the schema was tried
    assert result.cases >= result.operations, result.as_dict()
    assert (result.server_errors, result.undocumented_statuses, result.schema_violations) == (0, 0, 0), report
    assert result.failures == 0, report


# -- what schemathesis found, kept as plain tests ------------------------------------------------


def test_a_v2_update_with_an_input_without_type_is_400_not_500(alice):
    """The partial update skipped `type`, and the input validator failed on its absence (500)."""
    from tests.test_v2_helpers import add_sources, task_body, v2, v2_ok, v2_refused

    task = v2_ok(alice.post(v2(alice, "/services/face/tasks"), task_body(add_sources(alice, 1))))
    answer = alice.put(v2(alice, f"/tasks/{task['id']}"), {"input": {"junk": 1}})
    v2_refused(answer, 400, "VIAS.00010001", "type")
