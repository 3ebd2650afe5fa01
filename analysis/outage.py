"""Redis is allowed to blink: a running job's Redis calls go through a `RedisGrace`.

A failed call is skipped (its default is returned) and not tried again until a back-off has
passed, so a job keeps analysing frames at full speed during an outage instead of paying a
connection attempt per frame. Only an outage longer than VIAS_REDIS_GRACE seconds is fatal
(`RedisGone`). The database is the source of truth, so what a job does with Redis (its control
inbox, its live key, the draining flag, channel-layer announcements, outputs) can wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from django.conf import settings

log = logging.getLogger(__name__)

T = TypeVar("T")
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
# Errors that mean "Redis is not there right now" (socket errors are wrapped by redis-py, not always).
SOFT_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisGone(Exception):
    """Redis stayed unreachable for longer than the grace period."""


class RedisGrace:
    """Tracks one outage: when it began, when to try again, when to give up."""

    def __init__(
        self,
        grace_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        what: str = "a job",
    ) -> None:
        self.grace_s = float(settings.VIAS_REDIS_GRACE if grace_s is None else grace_s)
        self.clock = clock
        self.what = what
        self.down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST
        self.recoveries = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def call(self, action: Callable[[], T], default: T) -> T:
        """`action()`, or `default` while Redis is down (skipped until the back-off passed)."""
        now = self.clock()
        if self.down_since is not None and now < self._retry_at:
            self._check_grace(now)
            return default
        try:
            result = action()
        except SOFT_ERRORS as exc:
            self._failed(now, exc)
            return default
        if self.down_since is not None:
            log.warning("%s: Redis is back after %.1f s", self.what, now - self.down_since)
            self.down_since = None
            self._backoff = BACKOFF_FIRST
            self.recoveries += 1
        return result

    def _failed(self, now: float, exc: BaseException) -> None:
        if self.down_since is None:
            log.warning(
                "%s: Redis unreachable (%s); carrying on for up to %.0f s", self.what, exc, self.grace_s
            )
            self.down_since = now
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self._check_grace(now)

    def _check_grace(self, now: float) -> None:
        if self.down_since is not None and now - self.down_since > self.grace_s:
            raise RedisGone(f"Redis unreachable for more than {self.grace_s:.0f} s")
