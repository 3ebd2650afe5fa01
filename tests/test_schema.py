"""The OpenAPI schema, Swagger UI (served locally, no CDN) and DRF's browsable API."""

from __future__ import annotations

import pytest
import yaml
from django.test import Client

pytestmark = pytest.mark.django_db


def test_schema_describes_the_native_endpoints_and_the_token(client: Client):
    answer = client.get("/api/schema/")
    assert answer.status_code == 200
    schema = yaml.safe_load(answer.content)
    paths = schema["paths"]
    for path in (
        "/tasks",
        "/tasks/{task_id}",
        "/tasks/{task_id}/start",
        "/subtasks/{subtask_id}",
        "/store_confs",
    ):
        assert any(p.rstrip("/") == path for p in paths), path
    assert schema["components"]["securitySchemes"]["apiToken"]["type"] == "apiKey"
    task_in = schema["components"]["schemas"]["TaskInRequest"]
    assert {"task_name", "algo_type", "run_dt", "play_url"} <= set(task_in["required"])


def test_swagger_ui_assets_are_served_by_the_project(client: Client):
    page = client.get("/api/schema/swagger-ui/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_browsable_api_renders_for_a_logged_in_member(alice):
    alice.client.force_login(alice.user)
    page = alice.client.get("/tasks", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b"total_num" in page.content
