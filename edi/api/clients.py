"""The deposit API's clients and their tokens: who may call the API, for which sender.

A client (``edi clients add NAME --sender ID``) acts for exactly one sender. It proves itself with its client id and
secret (OAuth2 client credentials, RFC 6749 §4.4) to get a short-lived access token, or carries a long-lived token an
operator made for it. The secret is shown once and kept only as an Argon2id hash; a token is kept only as its
SHA-256 (a token is 256 random bits: a fast hash is enough, and a lookup by it costs one index probe).

Reads and writes the tracking store's ``api_clients`` and ``api_tokens`` tables (through
:class:`edi.tracking.Tracking`'s write transactions; :func:`client_of_token` reads through any connection). Raises
:class:`ClientError` for a bad name or sender, an unknown client or one that exists already. Every change an
operator makes (add, remove, long-lived token, revocation, new secret) is audited in ``actions``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edi.accounts import record_action
from edi.clock import iso
from edi.errors import EdiError
from edi.tracking import Tracking

CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
ACCESS, BEARER = "access", "bearer"
ACCESS_PREFIX, BEARER_PREFIX = "edi_at_", "edi_bt_"  # a token says what it is (and secret scanners can find it)
MAX_SECRET = 256
_HASHER = PasswordHasher()


class ClientError(EdiError):
    """An API client cannot be made, found or given a token as asked."""


@dataclass(frozen=True, slots=True)
class ApiClient:
    """An API client: it sees, and deposits for, its sender only."""

    client_id: str
    name: str
    sender: str
    created_at: str


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def add_client(store: Tracking, name: str, sender: str, at: datetime) -> tuple[ApiClient, str]:
    """Create a client for ``sender``; returns it with its secret (the only time the secret is known)."""
    if not CLIENT_NAME.match(name):
        raise ClientError(
            f"{name!r} is not a valid client name: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    client_id, secret = secrets.token_hex(12), secrets.token_urlsafe(32)
    digest = _HASHER.hash(secret)
    with store.transaction():
        if _row_by_name(store.db.conn, name) is not None:
            raise ClientError(f"client {name!r} exists already (`edi clients list` shows them)")
        store.db.conn.execute(
            "INSERT INTO api_clients (client_id, name, sender, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            [client_id, name, sender, digest, iso(at)],
        )
    record_action(store, at, "edi clients", "clients.add", name, f"sender {sender}, client id {client_id}")
    return ApiClient(client_id, name, sender, iso(at)), secret


def remove_client(store: Tracking, name: str, at: datetime) -> ApiClient:
    """Delete a client and every token it holds: its next request is refused."""
    with store.transaction():
        row = _row_by_name(store.db.conn, name)
        if row is None:
            raise ClientError(f"no client {name!r} (`edi clients list` shows them)")
        store.db.conn.execute("DELETE FROM api_tokens WHERE client_id = ?", [row["client_id"]])
        store.db.conn.execute("DELETE FROM api_clients WHERE client_id = ?", [row["client_id"]])
    record_action(store, at, "edi clients", "clients.remove", name, f"client id {row['client_id']}")
    return _client(row)


def list_clients(store: Tracking) -> list[ApiClient]:
    """Every client, by name."""
    return [_client(dict(r)) for r in store.db.query("SELECT * FROM api_clients ORDER BY name")]


def find_client(store: Tracking, name: str) -> ApiClient | None:
    """The client of this name, None if there is none."""
    row = _row_by_name(store.db.conn, name)
    return _client(row) if row is not None else None


def verify_client(store: Tracking, client_id: str, secret: str) -> ApiClient | None:
    """The client whose id and secret these are, None when they are not a client's (Argon2: an unknown id costs the
    same time as a wrong secret)."""
    found = _row(store.db.conn, "client_id", client_id[:64])
    digest = found["secret_hash"] if found is not None else _nobody()
    try:
        _HASHER.verify(digest, secret[:MAX_SECRET])
    except (VerificationError, InvalidHashError):
        return None
    return _client(found) if found is not None else None


def new_access_token(store: Tracking, client: ApiClient, at: datetime, seconds: float) -> str:
    """A new access token for ``client``, valid ``seconds`` from ``at``."""
    token = ACCESS_PREFIX + secrets.token_urlsafe(32)
    _insert_token(store, token, client.client_id, ACCESS, at, at + timedelta(seconds=seconds))
    return token


def issue_access_token(
    store: Tracking, client_id: str, secret: str, at: datetime, seconds: float
) -> tuple[str, ApiClient] | None:
    """A new access token for the client whose id and secret these are, valid ``seconds``; None when they are not
    a client's (an unknown id costs the same time as a wrong secret)."""
    client = verify_client(store, client_id, secret)
    if client is None:
        return None
    return new_access_token(store, client, at, seconds), client


def issue_bearer_token(store: Tracking, name: str, at: datetime, days: float) -> tuple[str, datetime]:
    """A new long-lived token for the client ``name``, valid ``days``; returns it with its end."""
    client = find_client(store, name)
    if client is None:
        raise ClientError(f"no client {name!r} (`edi clients list` shows them)")
    token, until = BEARER_PREFIX + secrets.token_urlsafe(32), at + timedelta(days=days)
    _insert_token(store, token, client.client_id, BEARER, at, until)
    record_action(store, at, "edi clients", "clients.token", name, f"long-lived token until {iso(until)}")
    return token, until


def revoke_tokens(store: Tracking, name: str, at: datetime) -> int:
    """End every token of the client ``name`` now (``api_tokens.revoked_at``); its secret still gets new ones.
    Returns how many were still valid."""
    with store.transaction():
        row = _row_by_name(store.db.conn, name)
        if row is None:
            raise ClientError(f"no client {name!r} (`edi clients list` shows them)")
        ended = store.db.conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ?",
            [iso(at), row["client_id"], iso(at)],
        ).rowcount
    record_action(store, at, "edi clients", "clients.revoke", name, f"{ended} token(s) revoked")
    return ended


def new_secret(store: Tracking, name: str, at: datetime) -> str:
    """Give the client ``name`` a new secret (returned: the only time it is known); the old one stops working and
    the access tokens got with it end now. Long-lived tokens stay (``revoke_tokens`` ends them)."""
    secret = secrets.token_urlsafe(32)
    digest = _HASHER.hash(secret)
    with store.transaction():
        row = _row_by_name(store.db.conn, name)
        if row is None:
            raise ClientError(f"no client {name!r} (`edi clients list` shows them)")
        store.db.conn.execute("UPDATE api_clients SET secret_hash = ? WHERE client_id = ?", [digest, row["client_id"]])
        ended = store.db.conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE client_id = ? AND kind = ? AND revoked_at IS NULL "
            "AND expires_at > ?",
            [iso(at), row["client_id"], ACCESS, iso(at)],
        ).rowcount
    record_action(store, at, "edi clients", "clients.secret", name, f"new secret, {ended} access token(s) revoked")
    return secret


def live_tokens(store: Tracking, at: datetime) -> dict[str, dict[str, int]]:
    """How many tokens of each kind each client holds that are neither expired nor revoked at ``at``:
    ``{client_id: {"access": n, "bearer": n}}`` (clients without any are absent)."""
    counts: dict[str, dict[str, int]] = {}
    for client_id, kind, n in store.db.conn.execute(
        "SELECT client_id, kind, COUNT(*) FROM api_tokens WHERE revoked_at IS NULL AND expires_at > ? "
        "GROUP BY client_id, kind",
        [iso(at)],
    ):
        counts.setdefault(client_id, {ACCESS: 0, BEARER: 0})[kind] = n
    return counts


def client_of_token(conn: sqlite3.Connection, token: str, now: datetime) -> ApiClient | None:
    """The client a token belongs to, if the token is known, unexpired and not revoked."""
    row = conn.execute(
        "SELECT c.client_id, c.name, c.sender, c.created_at FROM api_tokens t JOIN api_clients c "
        "ON c.client_id = t.client_id WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > ?",
        [token_hash(token), iso(now)],
    ).fetchone()
    return ApiClient(*row) if row is not None else None


def _insert_token(store: Tracking, token: str, client_id: str, kind: str, at: datetime, until: datetime) -> None:
    """Keep a new token's hash; the client's tokens that ended over a day ago go (an hourly access token would
    otherwise leave 8,760 rows a year)."""
    before = iso(at - timedelta(days=1))
    with store.transaction():
        store.db.conn.execute(
            "DELETE FROM api_tokens WHERE client_id = ? AND (expires_at < ? OR revoked_at < ?)",
            [client_id, before, before],
        )
        store.db.conn.execute(
            "INSERT INTO api_tokens (token_hash, client_id, kind, issued_at, expires_at, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            [token_hash(token), client_id, kind, iso(at), iso(until)],
        )


@functools.cache
def _nobody() -> str:
    """A hash of a secret nobody has, verified for an unknown client id (made on first use)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _row_by_name(conn: sqlite3.Connection, name: str) -> dict[str, str] | None:
    return _row(conn, "name", name)


def _row(conn: sqlite3.Connection, column: str, value: str) -> dict[str, str] | None:
    assert column in ("client_id", "name")
    cursor = conn.execute(f"SELECT * FROM api_clients WHERE {column} = ?", [value])  # noqa: S608 (a column of ours)
    row = cursor.fetchone()
    return dict(zip([c[0] for c in cursor.description], row, strict=True)) if row is not None else None


def _client(row: dict[str, str]) -> ApiClient:
    return ApiClient(str(row["client_id"]), str(row["name"]), str(row["sender"]), str(row["created_at"]))
