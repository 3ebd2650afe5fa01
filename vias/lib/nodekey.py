"""The key a node shows the web host to download model files (`fetch_models --from`).

Every machine of one installation shares SECRET_KEY (README: adding a GPU node), so the key is
derived from it: a node needs nothing else, and nobody without the secret can fetch the files.
Sent as the `X-Vias-Node-Key` header.
"""

from __future__ import annotations

from django.utils.crypto import constant_time_compare, salted_hmac

HEADER = "X-Vias-Node-Key"


def node_key() -> str:
    return salted_hmac("vias.lib.nodekey", "model files").hexdigest()


def is_node_key(value: str | None) -> bool:
    return bool(value) and constant_time_compare(value or "", node_key())
