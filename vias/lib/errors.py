"""Errors the core raises; each dialect renders them in its own envelope.

Service functions raise these (or Django's ValidationError from model validation); they
never build HTTP responses, so the native, VCS, v2 and websocket edges can all share them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class ServiceError(Exception):
    """A request the core refuses. `status` is the HTTP status that fits."""

    status = 400
    kind = "invalid"

    def __init__(self, message: Any, *, field: str | None = None, params: dict[str, Any] | None = None):
        super().__init__(str(message))
        self.message = str(message)
        self.field = field
        self.params = params or {}


class Invalid(ServiceError):
    status = 400
    kind = "invalid"


class Unauthorized(ServiceError):
    status = 401
    kind = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    kind = "forbidden"


class NotFound(ServiceError):
    status = 404
    kind = "not_found"


class Conflict(ServiceError):
    status = 409
    kind = "conflict"


class TooLarge(ServiceError):
    status = 413
    kind = "too_large"


class Unavailable(ServiceError):
    """A dependency (the message broker) is unreachable: try again shortly; nothing was changed."""

    status = 503
    kind = "unavailable"


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested error structures (DRF details, Django error dicts) as {"a.b[0].c": [messages]}."""
    flat: dict[str, list[str]] = {}
    _flatten_into(flat, detail, prefix)
    return flat


def _flatten_into(flat: dict[str, list[str]], detail: Any, path: str) -> None:
    if isinstance(detail, ValidationError):
        if hasattr(detail, "error_dict"):
            _flatten_into(flat, detail.error_dict, path)
        else:
            flat.setdefault(path, []).extend(str(m) for m in detail.messages)
    elif isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("__all__", "non_field_errors"):
                key_path = path
            elif isinstance(key, int):  # DRF reports list items by index
                key_path = f"{path}[{key}]"
            else:
                key_path = _join(path, str(key))
            _flatten_into(flat, value, key_path)
    elif isinstance(detail, list | tuple):
        if all(isinstance(item, str) for item in detail):
            flat.setdefault(path, []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                if item:  # DRF lists per-item errors with {} for items that were fine
                    _flatten_into(flat, item, f"{path}[{index}]" if not _is_plain(item) else path)
    else:
        flat.setdefault(path, []).append(str(detail))


def _is_plain(item: Any) -> bool:
    return isinstance(item, str) or (isinstance(item, ValidationError) and not hasattr(item, "error_dict"))


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def summary(flat: dict[str, list[str]]) -> str:
    """One line for people: the first problem, with where it is."""
    for path, messages in flat.items():
        if messages:
            return f"{path}: {messages[0]}" if path else messages[0]
    return ""


def prefix_validation_error(exc: ValidationError, prefix: str) -> ValidationError:
    """The same error with every field path put under `prefix` (e.g. "mtasks[0].scenes[1]")."""
    flat = flatten_errors(exc)
    return ValidationError({_join(prefix, path) if path else prefix: msgs for path, msgs in flat.items()})


def clean(instance: Any, path: str, exclude: list[str] | None = None) -> None:
    """A model's own validation without per-row queries; errors carry where in the request they are."""
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise prefix_validation_error(exc, path) if path else exc from None
