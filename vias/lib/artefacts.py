"""Event artefacts (snapshots, clips) through Django's storage API: the `artefacts` storage.

By default `STORAGES["artefacts"]` is a FileSystemStorage under MEDIA_ROOT (one machine). With
`VIAS_ARTEFACTS_S3_BUCKET` set it is django-storages' S3Storage (any S3-compatible store), so a
node writes an event's snapshot and clip where the web host, on another machine, reads it
(README "Artefacts on many hosts"). Names are relative (`events/<task>/<subtask>/<frame>-<key>.jpg`),
stored in Event.snapshot / Event.clip; a name is deterministic, so writing it again overwrites.
"""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from typing import IO, Any

from django.core.exceptions import SuspiciousOperation
from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage, storages

log = logging.getLogger(__name__)

ALIAS = "artefacts"


def storage() -> Storage:
    return storages[ALIAS]


def save_bytes(name: str, content: bytes) -> str:
    """Write `content` at `name` (overwriting); the name it is stored under."""
    return storage().save(name, ContentFile(content))


def save_file(name: str, local_path: str | os.PathLike[str]) -> str:
    """Upload a local file (a clip OpenCV wrote to a temporary path) to `name`."""
    with open(local_path, "rb") as handle:
        return storage().save(name, File(handle))


def open_artefact(name: str) -> IO[Any] | None:
    """The stored artefact opened for reading, or None when there is none (or the name is unsafe)."""
    if not name:
        return None
    try:
        handle = storage().open(name, "rb")
    except (FileNotFoundError, IsADirectoryError, SuspiciousOperation, ValueError):
        return None  # SuspiciousOperation: a name leading outside the storage's root
    except OSError as exc:
        log.info("artefact %s not readable: %s", name, exc)
        return None
    except Exception as exc:
        # An object store's other client errors (botocore's ClientError: 403, ...) are not OSError.
        if type(exc).__name__ == "ClientError":
            log.warning("artefact %s not readable: %s", name, exc)
            return None
        raise
    return handle


def read_bytes(name: str) -> bytes | None:
    handle = open_artefact(name)
    if handle is None:
        return None
    with handle:
        return handle.read()


def delete(name: str) -> None:
    if name:
        with suppress(FileNotFoundError, SuspiciousOperation):
            storage().delete(name)
