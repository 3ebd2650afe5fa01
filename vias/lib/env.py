"""Small typed readers for settings that come from environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from exc


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


SECRET_KEY_FILE = "secret-key.txt"


def persistent_secret_key(data_dir: Path) -> str:
    """The data directory's own SECRET_KEY: generated at random the first time (as the admin
    password is) and kept, readable by its owner only, in `data_dir/secret-key.txt`. Every process
    on that data directory (web, nodes, commands) reads the same key; several starting at once
    agree, since the file appears complete or not at all (written aside, then hard-linked)."""
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        key = secrets.token_urlsafe(50)
        fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".secret-key-")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp creates it with mode 0600
                handle.write(key + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: use its key
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key (under 32 characters); delete it to get a new one")
    return key


def proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER for a header name such as "X-Forwarded-Proto" (value "https")."""
    name = name.strip()
    if not name:
        return None
    return "HTTP_" + name.upper().replace("-", "_"), "https"
