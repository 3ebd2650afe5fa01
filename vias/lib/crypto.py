"""Secrets VIAS must give back in the clear (a dome camera's ONVIF password: the camera needs it for
its WS-Security digest) are stored encrypted: Fernet (AES-128-CBC + HMAC-SHA256, the
`cryptography` package) with a key derived by HKDF-SHA256 from settings.SECRET_KEY, which is the
data directory's own key file (`data/secret-key.txt`) unless SECRET_KEY is set. Keys in
SECRET_KEY_FALLBACKS still decrypt (rotation); a new value is always encrypted with the current one.

`EncryptedCharField` stores `fernet:<token>` and reads back the plain text; a value without the
prefix (a row written before the field was encrypted) reads as it is, until it is saved again.
Machines sharing a database (nodes) share SECRET_KEY already (README), so they all decrypt.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models

log = logging.getLogger(__name__)

PREFIX = "fernet:"
INFO = b"vias stored secrets v1"


def _fernet_key(secret: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(derived)


def _fernet() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(plain: str) -> str:
    """The stored form of `plain` ("" stays "": nothing to hide)."""
    if not plain:
        return ""
    return PREFIX + _fernet().encrypt(plain.encode()).decode("ascii")


def decrypt(stored: str) -> str:
    """The plain text of a stored value; "" (logged) when no key of this machine opens it."""
    if not is_encrypted(stored):
        return stored
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, ValueError):
        log.warning("a stored secret cannot be decrypted with SECRET_KEY (was it changed?)")
        return ""


class EncryptedCharField(models.CharField):
    """A CharField kept encrypted at rest (see above). `plain_max_length` bounds the plain text;
    the column is wide enough for its token."""

    def __init__(self, *args: Any, plain_max_length: int = 128, **kwargs: Any) -> None:
        self.plain_max_length = plain_max_length
        # Fernet: 57 bytes of overhead, the UTF-8 text (4 bytes a character at most) padded to 16
        # bytes, base64 (4/3), plus the prefix.
        padded = 16 * (4 * plain_max_length // 16 + 1)
        kwargs.setdefault("max_length", len(PREFIX) + 4 * ((57 + padded + 2) // 3))
        super().__init__(*args, **kwargs)
        self.validators.append(MaxLengthValidator(plain_max_length))

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["plain_max_length"] = self.plain_max_length
        return name, path, args, kwargs

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return value if value is None else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or is_encrypted(value):
            return value
        return encrypt(value)
