"""The live view: a running subtask's annotated frames, about 2 a second, only while someone watches.

A viewer (the admin's live image, analysis/console views) refreshes a viewer key with a short TTL
each time it asks for a frame. The node looks for that key at most once a second; only while it
exists does it draw and encode a frame and store the latest JPEG under a key that expires on its
own. Nobody watching costs one EXISTS a second per subtask, and no drawing or encoding.

Redis keys (prefix settings.VIAS_CONTROL_PREFIX):
  <p>:viewers:<subtask_id>   set by viewers, expires after VIEWER_TTL
  <p>:frame:<subtask_id>     the latest annotated JPEG, expires after FRAME_TTL
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from analysis import control
from analysis.outage import SOFT_ERRORS

VIEWER_TTL = 10
FRAME_TTL = 5
PUBLISH_INTERVAL = 0.5  # about 2 fps
CHECK_INTERVAL = 1.0


def _key(kind: str, subtask_id: int) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:{kind}:{subtask_id}"


def watch(subtask_id: int) -> bytes | None:
    """A viewer's request: say someone watches, and return the latest frame (None before the first)."""
    redis_client = control.client()
    pipe = redis_client.pipeline()
    pipe.set(_key("viewers", subtask_id), "1", ex=VIEWER_TTL)
    pipe.get(_key("frame", subtask_id))
    return pipe.execute()[1]


class LivePublisher:
    """Runs inside a subtask's job: publishes a frame now and then, only while a viewer key exists."""

    def __init__(self, subtask_id: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.subtask_id = subtask_id
        self.clock = clock
        self.watched = False
        self.published = 0
        self._checked_at = -CHECK_INTERVAL
        self._published_at = -PUBLISH_INTERVAL

    def due(self) -> bool:
        """True when a frame should be published now (someone watches and the last one is old)."""
        now = self.clock()
        if now - self._checked_at >= CHECK_INTERVAL:
            self._checked_at = now
            try:
                self.watched = bool(control.client().exists(_key("viewers", self.subtask_id)))
            except SOFT_ERRORS:  # Redis away: nobody can watch; the analysis goes on (outage.py)
                self.watched = False
        return self.watched and now - self._published_at >= PUBLISH_INTERVAL

    def publish(self, jpeg: bytes) -> None:
        self._published_at = self.clock()
        try:
            control.client().set(_key("frame", self.subtask_id), jpeg, ex=FRAME_TTL)
        except SOFT_ERRORS:
            return
        self.published += 1
