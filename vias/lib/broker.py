"""Is the message broker (Redis: django-q2's queues, the control channel, the channel layer) there?

Operations that must reach a running subtask or put work on a queue ask first, so that during an
outage they are refused with 503 before anything is written, rather than half done.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from django.utils.translation import gettext as _

from vias.lib.errors import Unavailable

# What redis-py raises when Redis cannot be reached (it wraps the socket errors).
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
PROBE_TIMEOUT = 2.0


@cache
def _probe_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)


def reachable() -> bool:
    try:
        return bool(_probe_client(settings.REDIS_URL).ping())
    except (redis.RedisError, OSError):
        return False


def unreachable_message() -> str:
    return _("the message broker (Redis) is unreachable; nothing was changed, try again shortly")


def require_broker() -> None:
    """Raise Unavailable (503 in every dialect) unless Redis answers a PING."""
    if not reachable():
        raise Unavailable(unreachable_message())
