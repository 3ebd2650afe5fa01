"""Assertions on the native envelope shared by the API tests."""

from __future__ import annotations

from typing import Any


def ok(response, status: int = 200) -> dict[str, Any]:
    """The body of a successful answer, after checking its status and envelope."""
    body = response.json()
    assert response.status_code == status, body
    assert (body["ecode"], body["enote"]) == (200, "OK")
    return body


def error(response, status: int) -> dict[str, Any]:
    """The body of an error answer: ecode is the status and enote says something."""
    body = response.json()
    assert response.status_code == status, body
    assert body["ecode"] == status
    assert isinstance(body["enote"], str) and body["enote"] and body["enote"] != "OK"
    return body
