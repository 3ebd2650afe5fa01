"""Assertions on the native envelope, and body edits, shared by the API tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
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


# A value for `edit` that removes the key instead of setting it.
DELETE = object()


def edit(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A change to a valid body: `path` is dotted ("datasources.devices.0.videoId"); DELETE removes."""

    def apply(body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        *parents, last = path.split(".")
        target: Any = body
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        key = int(last) if isinstance(target, list) else last
        if value is DELETE:
            del target[key]
        else:
            target[key] = value
        return body

    return apply
