"""Test infrastructure: the Redis the suite talks to. Domain fixtures live in tests/conftest.py.

VIAS_DATA_DIR is already a fresh temporary directory here (scripts/vias_pytest_env.py).
On the embedded default (no REDIS_URL) the bundled Redis is started on the socket inside it;
with REDIS_URL (scripts/run_tests.py picks db 9 of a local server) that database is flushed first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings

from vias.lib.bundled_redis import BundledRedis

# Only this database is flushed unasked; it is the one scripts/run_tests.py chooses.
TEST_REDIS_DB = 9

_bundled: BundledRedis | None = None
_warnings: list[str] = []


def _deleting_sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False) -> list[str]:
    """PostgreSQL's flush as DELETEs in one transaction (the foreign keys Django makes are
    deferred to its commit) instead of one TRUNCATE of every table: a transactional test's
    teardown empties the same tables, with a fraction of TRUNCATE's fixed cost per table
    (0.35 s against 0.1 s per test, post_migrate included, ~230 such tests)."""
    if not tables or reset_sequences:
        return _truncating_sql_flush(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    deletes = [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(t))};" for t in tables]
    return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]


if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    from django.db.backends.postgresql.operations import DatabaseOperations

    _truncating_sql_flush = DatabaseOperations.sql_flush
    DatabaseOperations.sql_flush = _deleting_sql_flush  # type: ignore[method-assign]


def pytest_sessionstart(session: pytest.Session) -> None:
    global _bundled
    if settings.USE_BUNDLED_REDIS:
        _bundled = BundledRedis(Path(settings.REDIS_SOCKET), Path(settings.DATA_DIR), persist=False)
        _bundled.start()
    else:
        _flush_test_db(settings.REDIS_URL)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _bundled
    if _bundled is not None:
        _bundled.stop()
        _bundled = None


@pytest.fixture
def bundled_redis() -> Iterator[BundledRedis]:
    """The suite's own Redis server, for tests that kill and restart it (an outage). Restarted
    at the end whatever the test did, so the tests after it find Redis where it was."""
    if _bundled is None:
        pytest.skip("needs the bundled Redis (embedded default): an external REDIS_URL is not ours to kill")
    yield _bundled
    if _bundled.exit_code() is not None or _bundled.process is None:
        _bundled.restart()


def pytest_report_header(config: pytest.Config) -> list[str]:
    redis_kind = "bundled" if settings.USE_BUNDLED_REDIS else "external"
    return [
        f"vias: database {settings.DATABASES['default']['ENGINE']}, redis {redis_kind} {_safe(settings.REDIS_URL)}",
        f"vias: data dir {settings.DATA_DIR}",
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for warning in _warnings:
        terminalreporter.write_line(f"vias: {warning}", yellow=True)


def _flush_test_db(url: str) -> None:
    """Start from an empty Redis, but never flush a database other than the test one."""
    client = redis.Redis.from_url(url)
    try:
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        if db == TEST_REDIS_DB:
            client.flushdb()
        else:
            _warnings.append(
                f"REDIS_URL selects database {db}, not {TEST_REDIS_DB}: not flushed before the tests"
            )
    finally:
        client.close()


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
