"""API tokens over HTTP: the accepted header forms, and 401 (never 500) for anything else."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tasks.models import ApiToken, Task
from tests.conftest import task_body

pytestmark = pytest.mark.django_db

# Every native endpoint, with ids that need not exist: auth is checked before anything is looked up.
ENDPOINTS = [
    ("get", "/tasks"),
    ("post", "/tasks"),
    ("get", "/tasks/0123456789abcdef0123456789abcdef"),
    ("put", "/tasks/0123456789abcdef0123456789abcdef"),
    ("delete", "/tasks/0123456789abcdef0123456789abcdef"),
    ("post", "/tasks/0123456789abcdef0123456789abcdef/start"),
    ("post", "/tasks/0123456789abcdef0123456789abcdef/stop"),
    ("get", "/tasks/0123456789abcdef0123456789abcdef/subtasks"),
    ("get", "/subtasks/1"),
    ("put", "/subtasks/1"),
    ("delete", "/subtasks/1"),
    ("post", "/subtasks/1/config_complete"),
    ("get", "/store_confs"),
    ("post", "/store_confs"),
    ("get", "/store_confs/minio"),
    ("put", "/store_confs/minio"),
    ("delete", "/store_confs/minio"),
    ("get", "/vchans"),
    ("post", "/vchans"),
    ("get", "/vchans/gate"),
    ("put", "/vchans/gate"),
    ("delete", "/vchans/gate"),
]
MALFORMED = {
    "empty": "",
    "blank": "   ",
    "scheme only": "Token",
    "bearer only": "Bearer ",
    "too short": "abc123",
    "too long": "a" * 129,
    "three parts": "Token abcdefghijklmnopqrstuvwxyz 123",
    "other scheme": "Basic abcdefghijklmnopqrstuvwxyz",
    "bad characters": "abcdefghijklmnop$%^&*()",
    "non-ascii": "ä" * 20,
    "control character": "abcdefghijklmnop\x01qrstuvwxyz",
    "huge": "x" * 20000,
}


def call(method: str, path: str, **headers: Any):
    client = Client()
    kwargs: dict[str, Any] = dict(headers)
    if method in ("post", "put"):
        kwargs.update(data="{}", content_type="application/json")
    return getattr(client, method)(path, **kwargs)


def unauthorized(response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 401, body
    assert body["ecode"] == 401
    assert isinstance(body["enote"], str) and body["enote"]
    assert "list_data" not in body and "data" not in body
    return body


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda t: {"HTTP_AUTHORIZATION": t}, id="raw"),
        pytest.param(lambda t: {"HTTP_AUTHORIZATION": f"Token {t}"}, id="Token"),
        pytest.param(lambda t: {"HTTP_AUTHORIZATION": f"Bearer {t}"}, id="Bearer"),
        pytest.param(lambda t: {"HTTP_AUTHORIZATION": f"bearer  {t} "}, id="bearer-lowercase-spaces"),
        pytest.param(lambda t: {"HTTP_X_AUTH_TOKEN": t}, id="X-Auth-Token"),
    ],
)
def test_accepted_header_forms_act_in_the_tokens_project(alice, headers):
    ok_task = alice.post("/tasks", task_body(vchans=0, task_name="alice's"))
    assert ok_task.status_code == 200

    response = Client().get("/tasks", **headers(alice.token))

    body = response.json()
    assert response.status_code == 200, body
    assert (body["ecode"], body["enote"]) == (200, "OK")
    assert [t["task_name"] for t in body["list_data"]] == ["alice's"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_missing_token_is_401_on_every_endpoint(db, method, path):
    response = call(method, path)

    body = unauthorized(response)
    assert "token" in body["enote"]
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_authorization_is_401(alice, value):
    body = unauthorized(call("get", "/tasks", HTTP_AUTHORIZATION=value))

    assert "token" in body["enote"]


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_x_auth_token_is_401(alice, value):
    body = unauthorized(call("post", "/tasks", HTTP_X_AUTH_TOKEN=value))

    assert "token" in body["enote"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_unknown_token_is_401_on_every_endpoint(alice, method, path):
    body = unauthorized(call(method, path, HTTP_AUTHORIZATION=f"Token {secrets.token_urlsafe(32)}"))

    assert "unknown API token" in body["enote"]


def test_a_bad_token_is_refused_before_the_body_is_read(alice):
    response = Client().post(
        "/tasks", "{not json", content_type="application/json", HTTP_AUTHORIZATION=secrets.token_urlsafe(32)
    )

    unauthorized(response)
    assert not Task.objects.exists()


def test_a_bad_token_writes_nothing(alice):
    response = Client().post(
        "/tasks", task_body(), content_type="application/json", HTTP_AUTHORIZATION=secrets.token_urlsafe(32)
    )

    unauthorized(response)
    assert not Task.objects.exists()


def test_token_of_an_inactive_user_is_401(alice):
    get_user_model().objects.filter(pk=alice.user.pk).update(is_active=False)

    unauthorized(alice.get("/tasks"))


def test_a_revoked_token_is_401(alice):
    ApiToken.objects.filter(user=alice.user).delete()

    unauthorized(alice.get("/tasks"))


def test_another_users_token_hash_is_not_a_token(alice):
    stored = ApiToken.objects.get(user=alice.user)

    unauthorized(call("get", "/tasks", HTTP_AUTHORIZATION=stored.key_hash))


def test_a_logged_in_user_acts_in_their_first_project(alice):
    alice.post("/tasks", task_body(vchans=0, task_name="alice's"))
    client = Client()
    client.force_login(alice.user)

    body = client.get("/tasks").json()

    assert body["ecode"] == 200
    assert [t["task_name"] for t in body["list_data"]] == ["alice's"]


def test_a_logged_in_user_without_a_project_is_403(db):
    user = get_user_model().objects.create_user(username="carol")
    client = Client()
    client.force_login(user)

    response = client.get("/tasks")

    body = response.json()
    assert response.status_code == 403, body
    assert body["ecode"] == 403
    assert "project" in body["enote"]


def test_last_used_at_is_written_at_most_every_ten_minutes(alice):
    token = ApiToken.objects.get(user=alice.user)
    assert token.last_used_at is None

    alice.get("/tasks")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    alice.get("/tasks")
    second = ApiToken.objects.get(pk=token.pk).last_used_at
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=11))
    alice.get("/tasks")
    third = ApiToken.objects.get(pk=token.pk).last_used_at

    assert first is not None
    assert second == first
    assert third > first
