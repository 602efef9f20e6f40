"""The deposit API's Starlette applications: the Flow Service under ``[api] base_path`` and the OAuth2 token
endpoint under ``/oauth2``, both mounted by the console's app (:func:`edi.web.app.create_app`) for ``edi serve``.

Every answer of the Flow Service is JSON in the standard's shapes; a refusal is its ``Error`` body (``errorCode``,
``errorMessage``), never an HTML page or a traceback: an :class:`ApiError` says its own status, an unknown path 404
``MISSING_RESOURCE``, an unreadable store 503 ``RESOURCE_ERROR``, a bug a bare 500 ``INTERNAL_ERROR`` (logged). The
``Request-Id`` a client sends is echoed in the answer and logged with the request's line (one per request: method,
path, status, time, client). Every route but the health check needs a token (``Authorization: Bearer``) that
:mod:`edi.api.clients` knows; console accounts do not open it. :mod:`edi.api.limits` counts each client's requests
and each address's failed authentications (429), bounds every request body (413) and cuts silent clients (408).

Reads the store through a read-only :class:`edi.browse.Reader`; writes (tokens) through :func:`edi.store.open_store`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import anyio
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edi.api import clients, deposit, read
from edi.api.clients import ApiClient
from edi.api.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    INVALID_TOKEN,
    MISSING_RESOURCE,
    MISSING_TOKEN,
    RESOURCE_ERROR,
    ApiError,
)
from edi.api.limits import (
    FORM_BYTES,
    JSON_BYTES,
    BodyLimit,
    BodyTooLarge,
    Limits,
    ReadTimeout,
    TooManyRequests,
    address_of,
)
from edi.browse import Reader
from edi.clock import Clock, SystemClock
from edi.config import Settings
from edi.errors import StoreError, WorkspaceError
from edi.store import open_store
from edi.tracking import Tracking

log = structlog.get_logger()

REQUEST_ID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")  # the standard's format: a UUID
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="edi"'}


class Api:
    """What every route of the API needs: the settings, the clock, the store (read-only, and for writes), the
    limits (shared by the Flow Service and the token endpoint of one server)."""

    def __init__(self, settings: Settings, clock: Clock | None = None, limits: Limits | None = None) -> None:
        self.settings = settings
        self.layout = settings.workspace.layout()
        self.clock: Clock = clock or SystemClock()
        self.reader = Reader(self.layout.database)
        self.limits = limits or Limits(settings.api)
        self._local = threading.local()  # each thread's open store (see store())

    def now(self) -> datetime:
        """The current time."""
        return self.clock.now()

    @contextlib.contextmanager
    def store(self) -> Iterator[Tracking]:
        """The store read-write, for a write. Each thread keeps its own open between writes: opening one (its checks,
        its schema statements, each taking the writers' turn) costs ~8 ms and made concurrent deposits wait on each
        other. It is opened again when the file is no longer the one it holds (``edi store rebuild`` renamed a new
        store into place: writing to the old one would lose the row) and after a write that failed."""
        held: tuple[Tracking, int] | None = getattr(self._local, "store", None)
        try:
            current = self.layout.database.stat().st_ino
        except OSError:
            current = -1  # gone: open_store says what is wrong
        if held is not None and held[1] != current:
            held[0].close()
            held = self._local.store = None
        if held is None:
            opened = open_store(self.layout)
            held = self._local.store = (opened, self.layout.database.stat().st_ino)
        try:
            yield held[0]
        except BaseException:
            self._local.store = None
            held[0].close()
            raise

    def client(self, request: Request) -> ApiClient:
        """The client whose valid token the request carries (blocking: call it off the event loop), its request
        counted; raises :class:`ApiError` 401 without one, 429 past the client's rate (or, for a bad token, past
        the address's)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, MISSING_TOKEN, "send a token: Authorization: Bearer <token>", CHALLENGE)
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, MISSING_TOKEN, "the Authorization header is not 'Bearer <token>'", CHALLENGE)
        with self.reader.reading():
            found = clients.client_of_token(self.reader.connection(), token.strip(), self.now())
        if found is None:
            self.limits.guess(address_of(request))
            raise ApiError(401, INVALID_TOKEN, "the token is unknown, expired or revoked", CHALLENGE)
        request.state.client = found
        self.limits.charge(found.client_id)
        return found


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers)


def error(exc: ApiError) -> JSONResponse:
    """The standard's Error body for a refusal."""
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def install_errors(app: Starlette) -> None:
    """Map what a route raises to the standard's Error body: never a page, never a traceback."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        said = {404: (MISSING_RESOURCE, "there is nothing at this address"), 405: ("METHOD_NOT_ALLOWED", "")}
        code, message = said.get(exc.status_code, (HTTPStatus(exc.status_code).name, str(exc.detail)))
        if exc.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        return error(ApiError(exc.status_code, code, message, dict(exc.headers or {})))

    async def unusable(request: Request, exc: Exception) -> Response:
        log.error("api store", error=str(exc), path=request.url.path)
        return error(ApiError(503, RESOURCE_ERROR, "the service cannot use its store now; try again later"))

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("api bug", error=f"{type(exc).__name__}: {exc}", path=request.url.path, exc_info=exc)
        return error(ApiError(500, INTERNAL_ERROR, "internal error: the service's log says what happened"))

    app.add_exception_handler(ApiError, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StoreError, unusable)
    app.add_exception_handler(WorkspaceError, unusable)
    app.add_exception_handler(Exception, bug)


class RequestLog:
    """Echoes the request's ``Request-Id`` in the answer, binds it to the log, and logs one line per request (with
    the remote address when no client authenticated: a 401 or a 429 says who)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        raw = dict(scope["headers"]).get(b"request-id")
        given = raw.decode("latin-1") if raw is not None else None
        request_id = given if given is not None and REQUEST_ID.fullmatch(given) else None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id is not None:
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"request-id", request_id.encode())],
                    }
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if given is not None and request_id is None:  # sent, but not what the standard says it is
                    said = "Request-Id is a UUID (e.g. 8c1b7f0e-3f0a-4b7e-9c1d-0e6c1e2a9b11), or leave it out"
                    refusal = ApiError(400, INVALID_REQUEST, said, {"Connection": "close"})
                    await error(refusal)(scope, receive, send_with_id)
                    return
                await self.app(scope, receive, send_with_id)
            finally:
                client = scope.get("state", {}).get("client")
                peer = scope.get("client")
                log.info(
                    "api request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round((time.perf_counter() - start) * 1000, 1),
                    client=client.name if client is not None else None,
                    # who failed to authenticate (a guesser, a misconfigured client): the remote address
                    address=peer[0] if client is None and peer else None,
                )


Endpoint = Callable[[Request], Awaitable[Response]]


def threaded(call: Callable[[Request], Response]) -> Endpoint:
    """An endpoint that runs ``call(request)`` off the event loop (the store and Argon2 block)."""

    async def endpoint(request: Request) -> Response:
        result: Response = await run_in_threadpool(call, request)
        return result

    return endpoint


def healthcheck(api: Api) -> Endpoint:
    """``GET /v1/healthcheck``: 200 while the store can be read, else 503."""

    def call(request: Request) -> Response:
        with api.reader.reading():
            api.reader.connection().execute("SELECT 1 FROM flows LIMIT 1").fetchall()
        return Response(status_code=200)

    return threaded(call)


def routes(api: Api) -> list[BaseRoute]:
    """The Flow Service's routes, under the base path."""
    from edi.api import webhooks  # here: it imports this module

    return [
        Route("/v1/healthcheck", healthcheck(api), methods=["GET"]),
        *deposit.routes(api),
        *read.routes(api),
        *webhooks.routes(api),
    ]


def create_api(settings: Settings, clock: Clock | None = None, limits: Limits | None = None) -> Starlette:
    """The Flow Service of the workspace ``settings`` names, to mount at ``[api] base_path`` (``limits``: shared
    with :func:`create_oauth`'s)."""
    api = Api(settings, clock, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        api.reader.close()

    app = Starlette(routes=routes(api), lifespan=lifespan)
    app.state.api = api
    install_errors(app)
    app.add_middleware(BodyLimit, max_bytes=JSON_BYTES, read_timeout=api.limits.read_timeout)
    app.add_middleware(RequestLog)
    return app


# -- OAuth2 (RFC 6749 §4.4: client credentials) ------------------------------------------------------------------


class OAuthError(Exception):
    """A token request refused as RFC 6749 §5.2 says: ``{"error": code, "error_description": ...}``."""

    def __init__(self, code: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status
        self.headers = headers or {}


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """The client id and secret: from the Basic header (RFC 6749 §2.3.1, form-encoded then base64), else the form;
    never both."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if header and scheme.lower() == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "give the client's credentials once: the Basic header or the form")
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "the Basic header is not base64 of 'id:secret'", 401) from None
        if not sep:
            raise OAuthError("invalid_client", "the Basic header is not base64 of 'id:secret'", 401)
        return unquote(user), unquote(password)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id or secret is None:
        raise OAuthError(
            "invalid_client", "send the client id and secret (Basic header, or client_id and client_secret)", 401
        )
    return client_id, secret


def token_endpoint(api: Api) -> Endpoint:
    """``POST /oauth2/token``: an access token for a client's id and secret (``grant_type=client_credentials``)."""

    async def endpoint(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "send the form as application/x-www-form-urlencoded")
            try:
                await request.body()  # at most FORM_BYTES (the BodyLimit around this app)
            except (BodyTooLarge, ReadTimeout) as exc:
                raise OAuthError("invalid_request", exc.message, exc.status, exc.headers) from None
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            if form.get("grant_type") != "client_credentials":
                raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
            client_id, secret = _credentials(request, form)
            address = address_of(request)
            try:
                api.limits.guess(address)  # taken before Argon2 runs, given back if the secret is right
                issued = await anyio.to_thread.run_sync(
                    _issue, api, address, client_id, secret, limiter=api.limits.argon2
                )
            except TooManyRequests as exc:
                raise OAuthError("too_many_requests", exc.message, 429, exc.headers) from None
            if issued is None:
                raise OAuthError("invalid_client", "unknown client id, or wrong secret", 401)
        except OAuthError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="edi"'} if exc.status == 401 else {}
            body = {"error": exc.code, "error_description": exc.description}
            return answer(body, exc.status, headers | exc.headers | NO_STORE)
        token, client = issued
        request.state.client = client
        seconds = int(api.settings.api.token_seconds)
        return answer({"access_token": token, "token_type": "Bearer", "expires_in": seconds}, 200, NO_STORE)

    return endpoint


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


def _issue(api: Api, address: str, client_id: str, secret: str) -> tuple[str, ApiClient] | None:
    """A token for a proven client (its address's guess given back, the request counted against its rate)."""
    with api.store() as store:
        client = clients.verify_client(store, client_id, secret)
        if client is None:
            return None
        api.limits.proven(address)
        api.limits.charge(client.client_id)
        return clients.new_access_token(store, client, api.now(), api.settings.api.token_seconds), client


def create_oauth(settings: Settings, clock: Clock | None = None, limits: Limits | None = None) -> Starlette:
    """The OAuth2 token endpoint, to mount at ``/oauth2`` (``limits``: shared with :func:`create_api`'s)."""
    api = Api(settings, clock, limits)
    app = Starlette(routes=[Route("/token", token_endpoint(api), methods=["POST"])])
    install_errors(app)
    app.add_middleware(BodyLimit, max_bytes=FORM_BYTES, read_timeout=api.limits.read_timeout)
    app.add_middleware(RequestLog)
    return app
