"""Console accounts, the audit trail of console actions, and the key that signs console sessions.

Reads and writes the tracking store's ``users``, ``actions``, ``ended_sessions`` and ``meta`` tables through
:class:`edi.tracking.Tracking` (its write transactions). Passwords are hashed with Argon2id (argon2-cffi); a hash is
never shown. Raises :class:`AccountError` for a bad name, role, sender or password, an unknown account or one that
exists already.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edi.clock import iso
from edi.errors import EdiError
from edi.tracking import Tracking

ROLES = ("operator", "sender")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # Argon2 takes any length; a megabyte "password" would only cost CPU
_HASHER = PasswordHasher()  # Argon2id, argon2-cffi's defaults (RFC 9106's second recommendation)


class AccountError(EdiError):
    """A console account cannot be made, changed or found as asked."""


@dataclass(frozen=True, slots=True)
class User:
    """A console account: an operator sees everything, a sender account only its sender's flows."""

    name: str
    role: str
    sender: str | None
    created_at: str
    sessions_since: str | None

    @property
    def scope(self) -> str | None:
        """The sender whose flows this account sees; None for all of them (an operator)."""
        return self.sender if self.role == "sender" else None

    @property
    def operator(self) -> bool:
        """Whether this account may act (requeue) and see every sender."""
        return self.role == "operator"


def check_password(password: str) -> str:
    """The password, if acceptable: 8 to 1,024 characters, not only spaces."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")
    if not password.strip():
        raise AccountError("the password is only spaces")
    return password


def add_user(store: Tracking, name: str, role: str, password: str, at: datetime, *, sender: str | None = None) -> User:
    """Create an account; a sender account names its sender, an operator account none."""
    if not USER_NAME.match(name):
        raise AccountError(
            f"{name!r} is not a valid account name: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    if role not in ROLES:
        raise AccountError(f"{role!r} is not a role: {' or '.join(ROLES)}")
    if role == "sender" and not sender:
        raise AccountError("a sender account needs --sender: the sender whose flows it sees")
    if role == "operator" and sender:
        raise AccountError("an operator sees every sender: --sender is only for --role sender")
    digest = _HASHER.hash(check_password(password))
    with store.transaction():
        if _row(store, name) is not None:
            raise AccountError(f"account {name!r} exists already (`edi users passwd {name}` sets a new password)")
        store.db.conn.execute(
            "INSERT INTO users (name, role, sender, password_hash, created_at, sessions_since) "
            "VALUES (?, ?, ?, ?, ?, NULL)",
            [name, role, sender, digest, iso(at)],
        )
        _record(store, at, "edi users", "users.add", name, f"role {role}" + (f", sender {sender}" if sender else ""))
    found = find_user(store, name)
    assert found is not None  # just written
    return found


def remove_user(store: Tracking, name: str, at: datetime) -> None:
    """Delete an account; its open sessions end with it."""
    with store.transaction():
        if _row(store, name) is None:
            raise AccountError(f"no account {name!r} (`edi users list` shows them)")
        store.db.conn.execute("DELETE FROM users WHERE name = ?", [name])
        _record(store, at, "edi users", "users.remove", name, "")


def set_password(store: Tracking, name: str, password: str, at: datetime) -> None:
    """Give an account a new password; every session opened before it ends."""
    digest = _HASHER.hash(check_password(password))
    with store.transaction():
        if _row(store, name) is None:
            raise AccountError(f"no account {name!r} (`edi users list` shows them)")
        store.db.conn.execute(
            "UPDATE users SET password_hash = ?, sessions_since = ? WHERE name = ?", [digest, iso(at), name]
        )
        _record(store, at, "edi users", "users.passwd", name, "")


def list_users(store: Tracking) -> list[User]:
    """Every account, by name."""
    return [_user(r) for r in store.db.query("SELECT * FROM users ORDER BY name")]


def find_user(store: Tracking, name: str) -> User | None:
    """The account of this name, None if there is none."""
    row = _row(store, name)
    return _user(row) if row is not None else None


def authenticate(store: Tracking, name: str, password: str) -> User | None:
    """The account if ``password`` is its password, else None (an unknown name costs the same time)."""
    row = _row(store, name) if USER_NAME.match(name) else None
    digest = row["password_hash"] if row is not None else _nobody()
    try:
        _HASHER.verify(digest, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return _user(row) if row is not None else None


def record_action(store: Tracking, at: datetime, user: str, action: str, target: str, detail: str = "") -> None:
    """Append one console action to the audit trail (who, when, what, on what)."""
    with store.transaction():
        _record(store, at, user, action, target, detail)


def actions(store: Tracking, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest recorded actions, newest first (on one target if given)."""
    where, args = ("WHERE target = ?", [target]) if target else ("", [])
    return list(store.db.query(f"SELECT * FROM actions {where} ORDER BY id DESC LIMIT {int(limit)}", args))


def end_session(store: Tracking, session: str, at: datetime) -> None:
    """Note that a console session was logged out: its cookie is refused from now on."""
    with store.transaction():
        store.db.conn.execute("INSERT OR IGNORE INTO ended_sessions VALUES (?, ?)", [session, iso(at)])


def session_key(store: Tracking) -> bytes:
    """The workspace's key for signing console sessions (made once, kept in the store's meta table)."""
    with store.transaction():
        store.db.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('console_session_key', ?)", [secrets.token_hex(32)]
        )
    row = store.db.conn.execute("SELECT value FROM meta WHERE key = 'console_session_key'").fetchone()
    return bytes.fromhex(str(row[0]))


@functools.cache
def _nobody() -> str:
    """A hash of a password nobody has, verified when the name is unknown: a failed login takes as long either way
    (made on first use: an Argon2 hash costs 64 MiB and tens of milliseconds, not for every edi command)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _record(store: Tracking, at: datetime, user: str, action: str, target: str, detail: str) -> None:
    store.db.conn.execute(
        "INSERT INTO actions (at, user, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        [iso(at), user, action, target, detail],
    )


def _row(store: Tracking, name: str) -> dict[str, Any] | None:
    return next(iter(store.db.query("SELECT * FROM users WHERE name = ?", [name])), None)


def _user(row: dict[str, Any]) -> User:
    return User(row["name"], row["role"], row["sender"], row["created_at"], row["sessions_since"])
