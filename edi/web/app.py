"""The console's Starlette application: sessions and access rules, error pages, security headers, and the routes.

:func:`create_app` builds the app for one workspace. Pages read the store through :mod:`edi.browse` (read-only);
the few actions (log in and out, requeue) write through :mod:`edi.accounts` and :mod:`edi.requeue`, each recorded
with who and when. Every page needs a login except ``/login``, ``/healthz`` and the stylesheet: an HTML page sends
the browser to ``/login``, a JSON or CSV twin answers 401. A request never sees a traceback: bad input is a 400
with what is wrong, an unknown (or not visible) flow a 404, an unreadable store a 503, a bug a bare 500.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edi import accounts
from edi.accounts import User
from edi.browse import Reader
from edi.browse.lifecycle import Counted
from edi.clock import Clock, SystemClock
from edi.config import Settings
from edi.errors import BadQuery, EdiError, UnknownFlowError, WorkspaceError
from edi.store import open_store
from edi.text import printable
from edi.tracking import Tracking
from edi.web import auth, render
from edi.workspace import Layout

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
TWINS = (".json", ".csv")


class LoginRequired(Exception):
    """The request needs a logged-in account (a redirect to /login, or 401 for a twin)."""


class Forbidden(Exception):
    """The account may not do this (a sender account acting), or a form came without its CSRF token."""


@dataclass
class Visitor:
    """Who is asking: the account and its session."""

    user: User
    session: auth.Session

    @property
    def scope(self) -> str | None:
        """The sender this account sees, None for every sender."""
        return self.user.scope


class Console:
    """What every page needs: settings, the read-only store, the session key, the clock, templates."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.layout = settings.workspace.layout()
        self.clock: Clock = clock or SystemClock()
        self.reader = Reader(self.layout.database)
        self.waiting_invoices = Counted(settings.console.waiting_days)  # the dashboard's, kept a few minutes
        self.env = render.environment()
        self.brake = auth.LoginBrake()
        with self.store() as store:  # refuses a lost store, as every command does
            self.key = accounts.session_key(store)

    def store(self) -> _Store:
        """The store for writing (an action), opened for that one action."""
        return _Store(self.layout)

    def now(self) -> datetime:
        """The current time."""
        return self.clock.now()

    def visitor(self, request: Request) -> Visitor | None:
        """The account whose valid session the request carries, None without one."""
        now = self.now().timestamp()
        session = auth.read_session(
            self.key, request.cookies.get(auth.SESSION_COOKIE), now, self.settings.console.idle_minutes * 60
        )
        if session is None:
            return None
        row = self.reader.one("SELECT * FROM users WHERE name = ?", [session.user])
        if row is None:
            return None
        # a session begun before the account was made (a removed account's, made again) or before its password
        # changed is over; the store keeps milliseconds, so a session of the password's millisecond ends too (the
        # account's own first millisecond is its own: no session of an earlier account can have been opened in it
        # after that account was removed)
        if session.issued < _moment(row["created_at"]):
            return None
        if row["sessions_since"] and session.issued < _moment(row["sessions_since"]) + 0.001:
            return None
        if self.reader.one("SELECT 1 AS ended FROM ended_sessions WHERE session = ?", [session.sid]):
            return None
        user = User(row["name"], row["role"], row["sender"], row["created_at"], row["sessions_since"])
        return Visitor(user, session)

    def require(self, request: Request, *, operator: bool = False) -> Visitor:
        """The logged-in account; raises LoginRequired, or Forbidden when ``operator`` and it is a sender's."""
        visitor = self.visitor(request)
        if visitor is None:
            raise LoginRequired
        if operator and not visitor.user.operator:
            raise Forbidden("only an operator account may do this")
        request.state.visitor = visitor
        return visitor

    def check_csrf(self, request: Request, visitor: Visitor, token: str | None) -> None:
        """Refuse a form posted without this session's CSRF token."""
        if not auth.csrf_ok(self.key, visitor.session.sid, token):
            raise Forbidden("the form's security token is missing or stale: reload the page and try again")

    def page(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        """An HTML page with what every page shows (the account, its CSRF token, the navigation)."""
        visitor: Visitor | None = getattr(request.state, "visitor", None)
        base = {
            "visitor": visitor,
            "csrf": auth.csrf_token(self.key, visitor.session.sid) if visitor else "",
            "path": request.url.path,
            "now": self.now(),
        }
        return render.html(self.env, template, base | context, status)


def _moment(text: str) -> float:
    """A time the store wrote (ISO 8601), as a POSIX timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Store:
    """``with console.store() as store``: the store opened read-write for one action, then closed."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.store: Tracking | None = None

    def __enter__(self) -> Tracking:
        self.store = open_store(self.layout)
        return self.store

    def __exit__(self, *exc: object) -> None:
        if self.store is not None:
            self.store.close()


def check_query(request: Request) -> None:
    """Refuse a query string whose percent-encoded bytes are not UTF-8 text (Starlette would quietly replace
    them, and a filter would search for what nobody typed)."""
    for part in request.scope.get("query_string", b"").split(b"&"):
        try:
            unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            name = printable(unquote_to_bytes(part.partition(b"=")[0]).decode("utf-8", "replace"))[:40]
            raise BadQuery(f"{name}: the value is not UTF-8 text (percent-encode the UTF-8 bytes)") from None


def twin(request: Request) -> str | None:
    """``.json`` or ``.csv`` when the request is for a page's twin, None for the HTML page."""
    return next((t for t in TWINS if request.url.path.endswith(t)), None)


def error_response(console: Console, request: Request, status: int, message: str) -> Response:
    """An error as the page's twin would say it (JSON for a twin) or as an HTML page."""
    if twin(request) is not None or request.url.path.startswith("/metrics"):
        return render.as_json({"error": message, "status": status}, status)
    return console.page(request, "error.html", {"status": status, "message": message}, status)


def install_errors(app: Starlette, console: Console) -> None:
    """Map what a page raises to an answer: never a traceback."""

    async def login_required(request: Request, exc: Exception) -> Response:
        if twin(request) is not None:
            return render.as_json({"error": "log in first (POST /login)", "status": 401}, 401)
        if request.method not in ("GET", "HEAD"):  # back after login would be a GET of an action: 405
            return RedirectResponse("/login", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        return error_response(console, request, 403, str(exc))

    async def bad_query(request: Request, exc: Exception) -> Response:
        return error_response(console, request, 400, str(exc))

    async def unknown(request: Request, exc: Exception) -> Response:
        return error_response(console, request, 404, str(exc))

    async def unusable(request: Request, exc: Exception) -> Response:
        log.error("console store", error=str(exc), path=request.url.path)
        return error_response(console, request, 503, f"the workspace cannot be read now: {exc}")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if twin(request) is None and not hasattr(request.state, "visitor"):  # routing's own 404 / 405: the page
            with contextlib.suppress(EdiError):  # still shows who is logged in, and the navigation
                request.state.visitor = await in_thread(console.visitor, request)
        message = str(exc.detail)
        if message == HTTPStatus(exc.status_code).phrase:  # Starlette's bare "Not Found": say it for people
            said = {404: "There is no page at this address.", 405: "This address does not take that method."}
            message = said.get(exc.status_code, message)
        return error_response(console, request, exc.status_code, message)

    async def bug(request: Request, exc: Exception) -> Response:
        log.error("console bug", error=f"{type(exc).__name__}: {exc}", path=request.url.path, exc_info=exc)
        return PlainTextResponse("internal error: the console's log says what happened", status_code=500)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(BadQuery, bad_query)
    app.add_exception_handler(UnknownFlowError, unknown)
    app.add_exception_handler(WorkspaceError, unusable)
    app.add_exception_handler(EdiError, bad_query)  # an account error and the like: what the user asked is wrong
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)


class SecurityHeaders:
    """Adds the security headers to every answer and logs one line per request (method, path, status, time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names and not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            log.info(
                "console request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
            )


Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(settings: Settings, clock: Clock | None = None) -> Starlette:
    """The console of the workspace ``settings`` names (its store must exist: ``edi init``)."""
    from edi.web import pages  # the routes need the Console class above

    console = Console(settings, clock)
    routes = [
        Route("/login", pages.login_form(console), methods=["GET"]),
        Route("/login", pages.login(console), methods=["POST"]),
        Route("/logout", pages.logout(console), methods=["POST"]),
        Route("/healthz", pages.healthz(console), methods=["GET"]),
        *pages.routes(console),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    if settings.api.enabled:  # the deposit API beside the console: its own tokens, errors and answers
        from edi.api.app import create_api, create_oauth
        from edi.api.limits import Limits

        limits = Limits(settings.api)  # one count per client and address for both
        routes += [
            whole_mount(settings.api.base_path, create_api(settings, clock, limits)),
            whole_mount("/oauth2", create_oauth(settings, clock, limits)),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        console.reader.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    install_errors(app, console)
    app.add_middleware(SecurityHeaders)
    return app


def whole_mount(prefix: str, app: ASGIApp) -> Mount:
    """A mount that takes every path under ``prefix``: Starlette's own pattern (``.*``) stops at a line break, and a
    path with an encoded one (``%0A``) would fall through to the console's HTML 404 instead of the API's answer."""
    mount = Mount(prefix, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


async def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking work (SQLite, Argon2, files) off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)


def threaded(call: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that runs ``call(request)`` off the event loop."""

    async def endpoint(request: Request) -> Response:
        result: Response = await in_thread(call, request)
        return result

    return endpoint
