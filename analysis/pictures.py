"""Pictures pushed by clients (`push_pic_files` tasks): POST /tasks/{task_id}/pictures.

The endpoint checks the picture (size cap, must decode as an image), then queues its bytes on a
Redis list of the running subtask with the shortest queue. The subtask's job pops pictures and
analyses each like a frame. Queues are bounded: a full one answers 503 rather than growing.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import numpy as np
from django.conf import settings
from django.utils.translation import gettext as _

from analysis import control
from subtasks.choices import State
from tasks.choices import SourceType
from tasks.models import Task
from vias.lib.errors import Conflict, Invalid, ServiceError, TooLarge

# A picture waits under this name; the list holds "<picture id>\n<bytes>".
SEPARATOR = b"\n"


class QueueFull(ServiceError):
    status = 503


def _key(subtask_id: int) -> str:
    return f"{settings.VIAS_CONTROL_PREFIX}:pics:{subtask_id}"


def decode_picture(data: bytes) -> np.ndarray:
    """The picture as a BGR frame (analysis.sources decodes it); the API's errors otherwise."""
    from analysis.sources import NotAnImage
    from analysis.sources import decode_picture as decode

    if len(data) > settings.VIAS_MAX_PICTURE_BYTES:
        raise TooLarge(
            _("a picture may be at most %(n)d bytes") % {"n": settings.VIAS_MAX_PICTURE_BYTES},
            field="picture",
        )
    try:
        return decode(data, settings.VIAS_MAX_PICTURE_BYTES)
    except NotAnImage:
        raise Invalid(_("not an image (JPEG, PNG, BMP or WebP expected)"), field="picture") from None


def queue_picture(task: Task, data: bytes) -> dict[str, Any]:
    """Check a pushed picture and queue it for one of the task's running subtasks."""
    if task.source_type != SourceType.PUSH_PIC_FILES:
        raise Invalid(_("only push_pic_files tasks take pushed pictures"), field="task_id")
    decode_picture(data)
    running = list(task.subtasks.filter(state=State.RUNNING).values_list("pk", flat=True))
    if not running:
        raise Conflict(_("the task is not running; start it before pushing pictures"))
    redis_client = control.client()
    lengths = [redis_client.llen(_key(pk)) for pk in running]
    shortest = min(range(len(running)), key=lengths.__getitem__)
    if lengths[shortest] >= settings.VIAS_PICTURE_QUEUE:
        raise QueueFull(_("too many pictures are waiting; try again shortly"))
    picture_id = uuid.uuid4().hex
    redis_client.rpush(_key(running[shortest]), picture_id.encode() + SEPARATOR + data)
    return {"picture_id": picture_id, "subtask_id": running[shortest], "queued": lengths[shortest] + 1}


def pop_picture(subtask_id: int, timeout: float = 0.2) -> tuple[str, np.ndarray] | None:
    """The next pushed picture for a subtask, waiting at most `timeout` seconds."""
    popped = control.client().blpop([_key(subtask_id)], timeout=timeout)
    if popped is None:
        return None
    picture_id, _sep, data = cast(bytes, popped[1]).partition(SEPARATOR)  # the client answers bytes
    return picture_id.decode(), decode_picture(data)
