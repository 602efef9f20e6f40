"""Console accounts, the audit trail and the session key (edi/accounts.py) on a real tracking store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from edi import accounts
from edi.accounts import AccountError
from edi.store import open_store
from edi.tracking import Tracking
from tests.conftest import Workspace

AT = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
PASSWORD = "secret-pass-1"


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Tracking]:
    opened = open_store(workspace.settings.workspace.layout())
    yield opened
    opened.close()


def test_an_account_authenticates_with_its_password_only(store: Tracking) -> None:
    """authenticate() gives the account for its password, None for a wrong one, an unknown or a malformed name."""
    made = accounts.add_user(store, "acme-ops", "sender", PASSWORD, AT, sender="acme")
    assert (made.name, made.role, made.sender, made.scope, made.operator) == (
        "acme-ops",
        "sender",
        "acme",
        "acme",
        False,
    )
    assert accounts.authenticate(store, "acme-ops", PASSWORD) == made
    assert accounts.authenticate(store, "acme-ops", PASSWORD + "x") is None
    assert accounts.authenticate(store, "ACME-OPS", PASSWORD) is None
    assert accounts.authenticate(store, "ghost", PASSWORD) is None
    assert accounts.authenticate(store, "' OR 1=1 --", PASSWORD) is None


def test_an_operator_sees_every_sender(store: Tracking) -> None:
    """An operator account has no scope (every sender) and may act."""
    made = accounts.add_user(store, "alice", "operator", PASSWORD, AT)
    assert made.scope is None and made.operator


@pytest.mark.parametrize(
    ("name", "role", "sender", "password", "says"),
    [
        ("", "operator", None, PASSWORD, "not a valid account name"),
        ("a/b", "operator", None, PASSWORD, "not a valid account name"),
        ("alice", "admin", None, PASSWORD, "is not a role"),
        ("alice", "sender", None, PASSWORD, "needs --sender"),
        ("alice", "operator", "acme", PASSWORD, "only for --role sender"),
        ("alice", "operator", None, "1234567", "too short"),
        ("alice", "operator", None, "x" * 1025, "too long"),
        ("alice", "operator", None, "         ", "only spaces"),
    ],
)
def test_a_bad_account_is_refused_and_nothing_is_stored(
    store: Tracking, name: str, role: str, sender: str | None, password: str, says: str
) -> None:
    """A bad name, role, sender or password raises AccountError saying what is wrong; no account is made."""
    with pytest.raises(AccountError, match=says):
        accounts.add_user(store, name, role, password, AT, sender=sender)
    assert accounts.list_users(store) == []


def test_set_password_replaces_the_hash_and_marks_when_sessions_end(store: Tracking) -> None:
    """A new password replaces the old one and records the moment from which older sessions are over."""
    accounts.add_user(store, "alice", "operator", PASSWORD, AT)
    accounts.set_password(store, "alice", "another-pass-2", AT + timedelta(hours=1))
    assert accounts.authenticate(store, "alice", PASSWORD) is None
    user = accounts.authenticate(store, "alice", "another-pass-2")
    assert user is not None and user.sessions_since == "2026-11-26T21:00:00.000Z"
    with pytest.raises(AccountError, match="no account 'bob'"):
        accounts.set_password(store, "bob", "another-pass-2", AT)


def test_remove_deletes_the_account(store: Tracking) -> None:
    """remove_user deletes the account (it can no longer log in); an unknown name raises AccountError."""
    accounts.add_user(store, "alice", "operator", PASSWORD, AT)
    accounts.remove_user(store, "alice", AT)
    assert accounts.find_user(store, "alice") is None and accounts.authenticate(store, "alice", PASSWORD) is None
    with pytest.raises(AccountError, match="no account 'alice'"):
        accounts.remove_user(store, "alice", AT)


def test_the_audit_trail_records_who_when_what_newest_first(store: Tracking) -> None:
    """record_action appends who, when, what and on what; actions() lists them newest first, per target too."""
    accounts.record_action(store, AT, "alice", "requeue", "F1", "F1")
    accounts.record_action(store, AT + timedelta(seconds=1), "bob", "requeue", "F2")
    rows = accounts.actions(store)
    assert [(r["user"], r["target"], r["at"]) for r in rows] == [
        ("bob", "F2", "2026-11-26T20:00:01.000Z"),
        ("alice", "F1", "2026-11-26T20:00:00.000Z"),
    ]
    assert [r["user"] for r in accounts.actions(store, "F1")] == ["alice"]


def test_the_session_key_is_made_once_and_kept(workspace: Workspace, store: Tracking) -> None:
    """The signing key is 32 random bytes, the same every time the store is opened again."""
    key = accounts.session_key(store)
    again = open_store(workspace.settings.workspace.layout())
    try:
        assert len(key) == 32 and accounts.session_key(again) == key
    finally:
        again.close()


def test_an_ended_session_is_recorded_once(store: Tracking) -> None:
    """end_session records a session id as over; ending it again changes nothing."""
    accounts.end_session(store, "sid-1", AT)
    accounts.end_session(store, "sid-1", AT + timedelta(hours=1))
    assert list(store.db.query("SELECT * FROM ended_sessions")) == [
        {"session": "sid-1", "ended_at": "2026-11-26T20:00:00.000Z"}
    ]
