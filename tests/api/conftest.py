"""Shared fixtures of the deposit API's tests: a real workspace, the real app (console and API) in a TestClient,
and API clients made through :mod:`edi.api.clients`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from edi.api import clients
from edi.api.app import Api, answer, threaded
from edi.store import open_store
from edi.web.app import create_app
from tests.conftest import DEFAULT_CONFIG, Workspace
from tests.hook_server import HookServer, serve

BASE = "/afnor-flow"


@dataclass
class Client:
    """An API client made in the workspace: its name, sender, id and secret."""

    name: str
    sender: str
    client_id: str
    secret: str


@dataclass
class Service:
    """The app of a workspace, and a way to make API clients in it."""

    workspace: Workspace
    http: TestClient

    def add_client(self, name: str, sender: str = "acme") -> Client:
        """Make an API client for ``sender`` (as ``edi clients add`` does)."""
        store = open_store(self.workspace.settings.workspace.layout())
        try:
            made, secret = clients.add_client(store, name, sender, datetime.now(UTC))
        finally:
            store.close()
        return Client(name, sender, made.client_id, secret)

    def token(self, client: Client) -> str:
        """An access token for ``client``, from POST /oauth2/token."""
        answer = self.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret)
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def headers(self, client: Client) -> dict[str, str]:
        """The Authorization header of a fresh token of ``client``."""
        return {"Authorization": f"Bearer {self.token(client)}"}


@pytest.fixture
def service(workspace: Workspace) -> Iterator[Service]:
    """The real app of a fresh workspace."""
    with TestClient(create_app(workspace.settings)) as http:
        yield Service(workspace, http)


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    """A real HTTP server on 127.0.0.1 that records the webhook calls it gets."""
    yield from serve()


@pytest.fixture
def make_hooked(make_workspace: Callable[..., Workspace], hooks: HookServer) -> Iterator[Callable[..., Service]]:
    """Make the real app of a workspace (the default senders, then ``extra`` TOML) whose [api] allows callbacks to
    the ``hooks`` server (a call waits 5 s at most, a retry 30 s first)."""
    with contextlib.ExitStack() as stack:

        def make(extra: str = "", retry_seconds: float = 30) -> Service:
            workspace = make_workspace(
                DEFAULT_CONFIG
                + extra
                + f"""
[api]
webhook_allowed_hosts = ["127.0.0.1:{hooks.port}"]
webhook_timeout_seconds = 5
webhook_retry_seconds = {retry_seconds}
webhook_give_up_seconds = 3600
"""
            )
            return Service(workspace, stack.enter_context(TestClient(create_app(workspace.settings))))

        yield make


@pytest.fixture
def hooked(make_hooked: Callable[..., Service]) -> Service:
    """The real app of a workspace whose [api] allows callbacks to the ``hooks`` server."""
    return make_hooked()


PROBE = f"{BASE}/v1/probe"


def add_probe(app: Starlette) -> None:
    """Add GET and POST {BASE}/v1/probe to the API of a console app (before its first request): it answers
    ``{"client": name}`` for a request ``Api.client`` lets in, as every route of the API starts, and reads no body."""
    mounted = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == BASE)
    assert isinstance(mounted, Starlette)
    api: Api = mounted.state.api
    mounted.router.routes.append(
        Route(
            "/v1/probe", threaded(lambda request: answer({"client": api.client(request).name})), methods=["GET", "POST"]
        )
    )
