"""The webhooks' signing keys and signatures, as XP Z12-013 Annex A (createWebhook) says.

A webhook's ``signingKey`` (256 bits, base64 in the API) is never stored: it is HMAC-SHA-256 of the webhook's id
under the workspace's webhook key, 256 random bits in ``<workspace>/webhooks.key`` (made once, mode 0600, on the
first webhook). A copy of the store (a backup, a read-only reader) holds no key that can sign; deleting the key file
changes every webhook's key (their clients then make them again). A callback's ``Afnor-Signature`` is the base64 of
HMAC-SHA-256, keyed with the 32 bytes the ``signingKey`` decodes to, over ``<body as sent>@<epoch seconds>``; the
epoch is sent as ``Afnor-Signature-Timestamp``.

Reads (and makes once, through :meth:`edi.spool.Spool.write_once`) the key file; raises :class:`OSError` when it
cannot be read or made, :class:`SigningError` when it is not a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from edi.errors import EdiError
from edi.spool import Spool
from edi.workspace import Layout

KEY_FILE = "webhooks.key"
KEY_BYTES = 32
_LABEL = b"edi webhook signing key\x00"


class SigningError(EdiError):
    """The workspace's webhook key file is not one edi made."""


def key_path(layout: Layout) -> Path:
    """Where the workspace's webhook key is."""
    return layout.root / KEY_FILE


def workspace_key(layout: Layout, *, make: bool = False) -> bytes | None:
    """The workspace's webhook key; with ``make``, made when there is none yet (else None)."""
    path = key_path(layout)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not make:
            return None
        layout.tmp.mkdir(parents=True, exist_ok=True)
        key = Spool(layout).write_once(path, secrets.token_bytes(KEY_BYTES), 0o600)
    if len(key) != KEY_BYTES:
        raise SigningError(f"{path} is not a webhook key ({len(key)} bytes, not {KEY_BYTES}): move it away")
    return key


def signing_key(master: bytes, webhook_id: str) -> bytes:
    """The signing key of a webhook: the same every time for its id and the workspace's key."""
    return hmac.new(master, _LABEL + webhook_id.encode("ascii"), hashlib.sha256).digest()


def signature(key: bytes, payload: bytes, timestamp: int) -> str:
    """``Afnor-Signature``: base64 of HMAC-SHA-256 under ``key`` over ``payload@timestamp``."""
    mac = hmac.new(key, payload + b"@" + str(timestamp).encode("ascii"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def encoded(key: bytes) -> str:
    """The key as the API gives it (``signingKey``, OpenAPI ``format: byte``): base64."""
    return base64.b64encode(key).decode("ascii")
