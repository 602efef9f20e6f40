"""API clients and their tokens (edi.api.clients): made, listed, removed; secrets and tokens kept only hashed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from edi.api import clients
from edi.api.clients import ClientError
from edi.store import open_store
from edi.tracking import Tracking
from tests.conftest import Workspace

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Tracking]:
    opened = open_store(workspace.settings.workspace.layout())
    yield opened
    opened.close()


def test_a_client_is_made_listed_and_removed(store: Tracking) -> None:
    """add_client gives a client of its sender and a secret; list_clients shows it; remove_client deletes it."""
    made, secret = clients.add_client(store, "erp-acme", "acme", NOW)
    assert made.sender == "acme" and len(made.client_id) == 24 and len(secret) >= 40
    assert [c.name for c in clients.list_clients(store)] == ["erp-acme"]
    assert clients.remove_client(store, "erp-acme", NOW).client_id == made.client_id
    assert clients.list_clients(store) == []


def test_the_secret_and_tokens_are_kept_hashed(store: Tracking) -> None:
    """Neither the secret nor a token is in the store: an Argon2id hash and a SHA-256."""
    made, secret = clients.add_client(store, "erp-acme", "acme", NOW)
    issued = clients.issue_access_token(store, made.client_id, secret, NOW, 3600)
    assert issued is not None
    token, _ = issued
    dump = "\n".join(store.db.conn.iterdump())
    assert secret not in dump and token not in dump
    assert clients.token_hash(token) in dump and "$argon2id$" in dump


def test_a_name_is_checked_and_unique(store: Tracking) -> None:
    """A bad name and a second client of the same name are refused with one line."""
    with pytest.raises(ClientError, match="not a valid client name"):
        clients.add_client(store, "../x", "acme", NOW)
    clients.add_client(store, "erp", "acme", NOW)
    with pytest.raises(ClientError, match="exists already"):
        clients.add_client(store, "erp", "bolt", NOW)
    with pytest.raises(ClientError, match="no client 'nope'"):
        clients.remove_client(store, "nope", NOW)


def test_a_token_needs_the_right_secret(store: Tracking) -> None:
    """A wrong secret or an unknown id gets no token."""
    made, secret = clients.add_client(store, "erp", "acme", NOW)
    assert clients.issue_access_token(store, made.client_id, secret + "x", NOW, 3600) is None
    assert clients.issue_access_token(store, "0" * 24, secret, NOW, 3600) is None


def test_a_token_expires(store: Tracking) -> None:
    """An access token opens the client until its end, not after."""
    made, secret = clients.add_client(store, "erp", "acme", NOW)
    issued = clients.issue_access_token(store, made.client_id, secret, NOW, 60)
    assert issued is not None
    token = issued[0]
    assert clients.client_of_token(store.db.conn, token, NOW + timedelta(seconds=59)) == made
    assert clients.client_of_token(store.db.conn, token, NOW + timedelta(seconds=60)) is None
    assert clients.client_of_token(store.db.conn, token + "x", NOW) is None


def test_a_long_lived_token_and_removal(store: Tracking) -> None:
    """A long-lived token lasts its days; removing the client ends every token it had."""
    made, _ = clients.add_client(store, "erp", "acme", NOW)
    token, until = clients.issue_bearer_token(store, "erp", NOW, 365)
    assert token.startswith(clients.BEARER_PREFIX) and until == NOW + timedelta(days=365)
    assert clients.client_of_token(store.db.conn, token, NOW + timedelta(days=364)) == made
    clients.remove_client(store, "erp", NOW)
    assert clients.client_of_token(store.db.conn, token, NOW) is None
    assert store.db.conn.execute("SELECT COUNT(*) FROM api_tokens").fetchone()[0] == 0
