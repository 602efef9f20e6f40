"""API clients and their tokens (edi.api.clients): made, listed, removed; secrets and tokens kept only hashed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import Response
from starlette.testclient import TestClient

from edi import accounts
from edi.api import clients
from edi.api.clients import ClientError
from edi.store import open_store
from edi.tracking import Tracking
from edi.web import auth
from edi.web.app import create_app
from tests.api.conftest import PROBE, Service, add_probe
from tests.conftest import FixedClock, Workspace

PASSWORD = "console-pass-1"

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


def test_revoking_ends_every_live_token_and_keeps_the_secret(store: Tracking) -> None:
    """revoke_tokens sets revoked_at on the client's live tokens (access and long-lived), not another client's;
    the secret still gets a new token."""
    made, secret = clients.add_client(store, "erp", "acme", NOW)
    other, _ = clients.add_client(store, "other", "acme", NOW)
    bearer, _ = clients.issue_bearer_token(store, "erp", NOW, 30)
    access = clients.new_access_token(store, made, NOW, 3600)
    kept = clients.new_access_token(store, other, NOW, 3600)
    assert clients.revoke_tokens(store, "erp", NOW + timedelta(seconds=1)) == 2
    later = NOW + timedelta(seconds=2)
    assert clients.client_of_token(store.db.conn, bearer, later) is None
    assert clients.client_of_token(store.db.conn, access, later) is None
    assert clients.client_of_token(store.db.conn, kept, later) == other
    assert clients.issue_access_token(store, made.client_id, secret, later, 60) is not None
    assert clients.revoke_tokens(store, "erp", later) == 1  # the new one; revoked ones are not counted again
    with pytest.raises(ClientError, match="no client 'nope'"):
        clients.revoke_tokens(store, "nope", NOW)


def test_a_new_secret_ends_the_old_and_its_access_tokens(store: Tracking) -> None:
    """new_secret gives a different secret; the old one stops working, access tokens end, long-lived ones stay."""
    made, old = clients.add_client(store, "erp", "acme", NOW)
    access = clients.new_access_token(store, made, NOW, 3600)
    bearer, _ = clients.issue_bearer_token(store, "erp", NOW, 30)
    new = clients.new_secret(store, "erp", NOW)
    assert new != old
    assert clients.verify_client(store, made.client_id, old) is None
    assert clients.verify_client(store, made.client_id, new) == made
    assert clients.client_of_token(store.db.conn, access, NOW) is None
    assert clients.client_of_token(store.db.conn, bearer, NOW) == made
    with pytest.raises(ClientError, match="no client 'nope'"):
        clients.new_secret(store, "nope", NOW)


def test_live_tokens_counts_by_kind_and_ended_ones_are_pruned(store: Tracking) -> None:
    """live_tokens counts a client's unexpired, unrevoked tokens by kind; a new token of the client deletes its
    tokens that ended over a day before."""
    made, _ = clients.add_client(store, "erp", "acme", NOW)
    clients.new_access_token(store, made, NOW, 60)
    clients.issue_bearer_token(store, "erp", NOW, 30)
    assert clients.live_tokens(store, NOW) == {made.client_id: {"access": 1, "bearer": 1}}
    assert clients.live_tokens(store, NOW + timedelta(seconds=61)) == {made.client_id: {"access": 0, "bearer": 1}}
    clients.new_access_token(store, made, NOW + timedelta(days=1, seconds=59), 60)
    assert store.db.conn.execute("SELECT COUNT(*) FROM api_tokens").fetchone()[0] == 3
    clients.new_access_token(store, made, NOW + timedelta(days=1, seconds=61), 60)
    assert store.db.conn.execute("SELECT COUNT(*) FROM api_tokens").fetchone()[0] == 3  # the first one went


def test_every_change_is_audited(store: Tracking) -> None:
    """Adding, a long-lived token, revoking, a new secret and removing each leave one action naming the client,
    never the secret or a token."""
    _, secret = clients.add_client(store, "erp", "acme", NOW)
    token, _ = clients.issue_bearer_token(store, "erp", NOW, 1)
    clients.revoke_tokens(store, "erp", NOW)
    new = clients.new_secret(store, "erp", NOW)
    clients.remove_client(store, "erp", NOW)
    done = accounts.actions(store, target="erp")
    assert [a["action"] for a in reversed(done)] == [
        "clients.add",
        "clients.token",
        "clients.revoke",
        "clients.secret",
        "clients.remove",
    ]
    text = repr(done)
    assert secret not in text and token not in text and new not in text


# -- tokens through the app ----------------------------------------------------------------------------------------


@pytest.fixture
def timed(workspace: Workspace, clock: FixedClock) -> Iterator[Service]:
    """The real app (with the probe route) on a clock the test moves."""
    app = create_app(workspace.settings, clock)
    add_probe(app)
    with TestClient(app) as http:
        yield Service(workspace, http)


def _refused(answer: Response, code: str = "INVALID_TOKEN") -> bool:
    """The answer is the standard's 401 Error body with this code and a Bearer challenge."""
    body = answer.json()
    return (
        answer.status_code == 401
        and body["errorCode"] == code
        and isinstance(body["errorMessage"], str)
        and answer.headers["www-authenticate"].startswith("Bearer")
    )


def test_an_access_token_opens_the_api_until_it_expires(timed: Service, clock: FixedClock) -> None:
    """An access token opens the API for [api] token_seconds, then is 401 INVALID_TOKEN (the standard's body)."""
    erp = timed.add_client("erp")
    headers = timed.headers(erp)
    assert timed.http.get(PROBE, headers=headers).json() == {"client": "erp"}
    clock.advance(timed.workspace.settings.api.token_seconds - 1)
    assert timed.http.get(PROBE, headers=headers).status_code == 200
    clock.advance(1)
    assert _refused(timed.http.get(PROBE, headers=headers))


def test_a_revoked_token_and_a_removed_clients_are_refused(timed: Service, clock: FixedClock) -> None:
    """After `revoke` a client's access and long-lived tokens are 401; it gets a new one with its secret; after
    `remove` that one is 401 too, and its secret gets none."""
    erp = timed.add_client("erp")
    store = open_store(timed.workspace.settings.workspace.layout())
    try:
        bearer, _ = clients.issue_bearer_token(store, "erp", clock.now(), 30)
        access = timed.headers(erp)
        assert timed.http.get(PROBE, headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
        clients.revoke_tokens(store, "erp", clock.now())
        assert _refused(timed.http.get(PROBE, headers={"Authorization": f"Bearer {bearer}"}))
        assert _refused(timed.http.get(PROBE, headers=access))
        fresh = timed.headers(erp)
        assert timed.http.get(PROBE, headers=fresh).status_code == 200
        clients.remove_client(store, "erp", clock.now())
    finally:
        store.close()
    assert _refused(timed.http.get(PROBE, headers=fresh))
    again = timed.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(erp.client_id, erp.secret)
    )
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"


def test_a_console_session_does_not_open_the_api(timed: Service, clock: FixedClock) -> None:
    """An operator logged in to the console (its session cookie on the same client) is 401 MISSING_TOKEN on the
    API, and a session cookie given as a Bearer token is 401 INVALID_TOKEN."""
    store = open_store(timed.workspace.settings.workspace.layout())
    try:
        accounts.add_user(store, "alice", "operator", PASSWORD, clock.now())
    finally:
        store.close()
    form = timed.http.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    logged = timed.http.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf.group(1)}, follow_redirects=False
    )
    assert logged.status_code == 303
    cookie = timed.http.cookies.get(auth.SESSION_COOKIE)
    assert cookie and timed.http.get("/flows.json").status_code == 200  # the console lets it in
    assert _refused(timed.http.get(PROBE), "MISSING_TOKEN")
    assert _refused(timed.http.get(PROBE, headers={"Authorization": f"Bearer {cookie}"}))
