"""The console's pages: log in and out, the flows list and its twins, a flow, its downloads, requeue, health.

Each page is one function that returns the page's data; the HTML, JSON and CSV answers are renderings of it
(:mod:`edi.web.render`). Reads through :mod:`edi.browse`; the requeue action goes through :mod:`edi.requeue` and is
recorded in the audit trail (:func:`edi.accounts.record_action`). Raises what :mod:`edi.web.app` maps to answers.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from edi import accounts
from edi.browse import flows as browse
from edi.errors import BadQuery, UnknownFlowError, WorkspaceError
from edi.requeue import requeue
from edi.web import auth, render
from edi.web.app import Console, Forbidden, Visitor, check_query, in_thread, threaded, twin

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Visitor], Response]
FLOW_CSV_COLUMNS = (*browse.LIST_COLUMNS, "invoices", "reasons")
MAX_FORM_FIELD = 4096
MAX_EXPORT = 100_000_000


def protected(console: Console, handler: Handler, *, operator: bool = False) -> Endpoint:
    """An endpoint that needs a login (an operator's, if ``operator``), run off the event loop; a session in use
    gets a fresh cookie now and then, so that only idleness ends it."""

    def call(request: Request) -> Response:
        visitor = console.require(request, operator=operator)
        check_query(request)
        response = handler(request, visitor)
        now = console.now().timestamp()
        if now - visitor.session.used >= auth.REFRESH_SECONDS:
            fresh = auth.Session(visitor.session.user, visitor.session.sid, visitor.session.issued, now)
            set_session_cookie(console, response, auth.session_cookie(console.key, fresh))
        return response

    return threaded(call)


def posted(call: Callable[[Request, dict[str, str]], Response]) -> Endpoint:
    """An endpoint for a posted form: the form read on the event loop, ``call(request, form)`` off it."""

    async def endpoint(request: Request) -> Response:
        form = await form_of(request)
        result: Response = await in_thread(call, request, form)
        return result

    return endpoint


def set_session_cookie(console: Console, response: Response, value: str) -> None:
    """The session cookie: signed, HttpOnly, SameSite=Strict, Secure when the console is served over TLS."""
    response.set_cookie(
        auth.SESSION_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=console.settings.console.secure_cookies,
        path="/",
    )


async def form_of(request: Request) -> dict[str, str]:
    """A posted form's text fields (a field too long is refused)."""
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception as exc:  # Starlette raises its own errors for a malformed body
        raise BadQuery(f"the form could not be read: {exc}") from None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if any(len(v) > MAX_FORM_FIELD for v in fields.values()):
        raise BadQuery("a form field is too long")
    return fields


LOCAL_PATH = re.compile(r"/(?![/\\])[^\\\s\x00-\x1f\x7f]*")  # no "//", no backslash, no blank or control


def _local(target: str | None) -> str:
    """Where to go after logging in: a path of this console only, never another site (a browser drops tabs and line
    feeds from a URL and reads a backslash as a slash: a slash, a tab and a slash would be two slashes, another
    host)."""
    if target and LOCAL_PATH.fullmatch(target):
        return target
    return "/"


# -- log in, log out, health -----------------------------------------------------------------------------------


def login_form(console: Console) -> Endpoint:
    """GET /login: the form (``username``, ``password``, and hidden ``csrf`` and ``next``)."""

    def call(request: Request) -> Response:
        if console.visitor(request) is not None:
            return RedirectResponse(_local(request.query_params.get("next")), status_code=303)
        return _login_page(console, request, "", 200)

    return threaded(call)


def _login_page(console: Console, request: Request, message: str, status: int, name: str = "") -> Response:
    binding = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_urlsafe(18)
    response = console.page(
        request,
        "login.html",
        {
            "message": message,
            "login_csrf": auth.csrf_token(console.key, binding),
            "next": _local(request.query_params.get("next")),
            "username": name,
        },
        status,
    )
    response.set_cookie(
        auth.LOGIN_COOKIE, binding, httponly=True, samesite="strict", secure=console.settings.console.secure_cookies
    )
    return response


def login(console: Console) -> Endpoint:
    """POST /login: check the form's token, the brake, then the password; a session cookie on success."""

    def call(request: Request, form: dict[str, str]) -> Response:
        if not auth.csrf_ok(console.key, request.cookies.get(auth.LOGIN_COOKIE), form.get("csrf")):
            raise Forbidden("the login form's security token is missing or stale: reload the page and log in again")
        name = form.get("username", "").strip()
        address = request.client.host if request.client else "unknown"
        keys = (f"user:{name.lower()}", f"address:{address}")
        now = console.now()
        wait = console.brake.wait(keys, now.timestamp())
        if wait > 0:
            response = _login_page(
                console, request, f"Too many failed logins: wait {int(wait) + 1} s and try again.", 429, name
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        with console.store() as store:
            user = accounts.authenticate(store, name, form.get("password", ""))
            if user is None:
                console.brake.failed(keys, now.timestamp())
                return _login_page(console, request, "Wrong user name or password.", 401, name)
            console.brake.succeeded(keys[0])
            _, cookie = auth.new_session(console.key, user.name, now.timestamp())
            accounts.record_action(store, now, user.name, "login", f"user:{user.name}", f"from {address}")
        target = _local(form.get("next") or request.query_params.get("next"))
        response = RedirectResponse(target, status_code=303)
        set_session_cookie(console, response, cookie)
        response.delete_cookie(auth.LOGIN_COOKIE)
        return response

    return posted(call)


def logout(console: Console) -> Endpoint:
    """POST /logout: the session ends here and its cookie is refused from now on."""

    def call(request: Request, form: dict[str, str]) -> Response:
        visitor = console.visitor(request)
        if visitor is not None:
            console.check_csrf(request, visitor, form.get("csrf"))
            now = console.now()
            with console.store() as store:
                accounts.end_session(store, visitor.session.sid, now)
                accounts.record_action(store, now, visitor.user.name, "logout", f"user:{visitor.user.name}")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    return posted(call)


def healthz(console: Console) -> Endpoint:
    """GET /healthz: 200 ``ok`` when the store can be read, 503 otherwise (for load balancers; no login)."""

    def call(request: Request) -> Response:
        try:
            console.reader.one("SELECT count(*) AS n FROM meta")
        except WorkspaceError as exc:
            return render.as_json({"status": "unavailable", "error": str(exc)}, 503)
        return render.as_json({"status": "ok"})

    return threaded(call)


# -- flows -----------------------------------------------------------------------------------------------------


def encode_cursor(console: Console, key: str | None, kind: str = "flows") -> str | None:
    """The next page's cursor: the key of the last row shown (a flow id for the flows list), signed for one kind of
    list (a cursor made up, altered or taken from another list is refused)."""
    if key is None:
        return None
    return f"{key}.{_cursor_mac(console, kind, key)}"


def decode_cursor(
    console: Console, cursor: str | None, kind: str = "flows", shape: re.Pattern[str] = browse.FLOW_ID
) -> str | None:
    """The key a cursor holds (it must match ``shape``); raises BadQuery for one this console did not make for
    this kind of list."""
    if not cursor:
        return None
    key, _, mac = cursor.rpartition(".")
    if not shape.match(key) or not hmac.compare_digest(mac, _cursor_mac(console, kind, key)):
        raise BadQuery("cursor: not a page cursor of this console (it was altered, or cut short)")
    return key


def _cursor_mac(console: Console, kind: str, key: str) -> str:
    purpose = "cursor" if kind == "flows" else f"cursor:{kind}"  # the flows list's cursors as they always were
    return auth.sign(console.key, purpose, key.encode())[:16]


def page_limit(console: Console, request: Request) -> int:
    """``?limit=`` or the configured page size."""
    value = request.query_params.get("limit")
    if not value:
        return console.settings.console.page_size
    if not value.isdigit() or not 1 <= int(value) <= browse.MAX_LIMIT:
        raise BadQuery(f"limit: give a number of flows from 1 to {browse.MAX_LIMIT}")
    return int(value)


def export_limit(value: str | None) -> int | None:
    """A CSV export's ``?limit=``: at most this many rows (none: every row that matches)."""
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_EXPORT:
        raise BadQuery(f"limit: give a number of rows from 1 to {MAX_EXPORT:,}, or none for every matching row")
    return int(value)


def flows_list(console: Console) -> Handler:
    """GET /flows, /flows.json, /flows.csv: the same filters, the same rows."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = dict(request.query_params)
        filters = browse.parse_filters(params, console.now())
        before = decode_cursor(console, params.get("cursor"))
        kind = twin(request)
        if kind == ".csv":
            limit = export_limit(params.get("limit"))
            every = browse.iter_flows(console.reader, visitor.scope, filters, before=before, limit=limit)
            return render.csv_stream(FLOW_CSV_COLUMNS, every, "flows.csv")
        rows, last = browse.flows_page(
            console.reader, visitor.scope, filters, before=before, limit=page_limit(console, request)
        )
        cursor = encode_cursor(console, last)
        if kind == ".json":
            return render.as_json({"flows": rows, "next": cursor})
        query = filters.query()
        if params.get("limit"):
            query["limit"] = params["limit"]
        return console.page(
            request,
            "flows.html",
            {
                "flows": rows,
                "next": cursor,
                "query": query,
                "params": params,
                "statuses": STATUSES,
                "senders": [] if visitor.scope else [s.id for s in console.settings.senders],
                "first_page": before is None,
            },
        )

    return handler


STATUSES = ("IN_INTEGRE", "IN_INTEGRE_PARTIEL", "IN_REJETE", "IN_EN_ATTENTE_RETRAITEMENT", "IN_RECU")


def flow_page(console: Console) -> Handler:
    """GET /flows/{flow_id}: documents, findings with the document's lines around them, history, downloads."""

    def handler(request: Request, visitor: Visitor) -> Response:
        flow = browse.flow(console.reader, visitor.scope, request.path_params["flow_id"])
        original = browse.original_path(console.layout, flow)
        for doc in flow["documents"]:
            lines = [int(f["line"]) for f in doc["findings"] if f["line"]]
            shown = browse.excerpts(original, doc, lines) if original and lines else {}
            for finding in doc["findings"]:
                finding["excerpt"] = shown.get(int(finding["line"])) if finding["line"] else None
        context = {
            "flow": flow,
            "original": original is not None,
            "ack_json": browse.ack_path(console.layout, flow, "json") is not None,
            "ack_xml": browse.ack_path(console.layout, flow, "xml") is not None,
            "requeued": request.query_params.get("done") == "requeued",
            "can_requeue": visitor.user.operator and flow["status"] == "IN_EN_ATTENTE_RETRAITEMENT",
        }
        return console.page(request, "flow.html", context)

    return handler


def flow_ack(console: Console) -> Handler:
    """GET /flows/{flow_id}.json: the flow's acknowledgement (404 while it has none)."""

    def handler(request: Request, visitor: Visitor) -> Response:
        flow = browse.flow(console.reader, visitor.scope, request.path_params["flow_id"])
        path = browse.ack_path(console.layout, flow, "json")
        if path is None:
            raise UnknownFlowError(f"flow {flow['flow_id']} has no acknowledgement yet (status {flow['status']})")
        return render.file_json(path)

    return handler


def flow_download(console: Console, what: str) -> Handler:
    """GET /flows/{flow_id}/original, /ack.json, /ack.xml: a file as an attachment with a safe name."""

    def handler(request: Request, visitor: Visitor) -> Response:
        flow = browse.flow(console.reader, visitor.scope, request.path_params["flow_id"])
        if what == "original":
            path = browse.original_path(console.layout, flow)
            if path is None:
                raise UnknownFlowError(f"the file of flow {flow['flow_id']} is not kept any more (or is in process)")
            return render.download(path, f"{flow['flow_id']}_{flow['file_name']}", "application/octet-stream")
        extension = what.rsplit(".", 1)[-1]
        path = browse.ack_path(console.layout, flow, extension)
        if path is None:
            raise UnknownFlowError(f"flow {flow['flow_id']} has no acknowledgement yet (status {flow['status']})")
        media = "application/json" if extension == "json" else "application/xml"
        return render.download(path, f"{flow['flow_id']}.{extension}", media)

    return handler


def flow_requeue(console: Console) -> Endpoint:
    """POST /flows/{flow_id}/requeue (operators, with the CSRF token): back to the spool, recorded as done by whom."""

    def call(request: Request, form: dict[str, str]) -> Response:
        visitor = console.require(request)
        console.check_csrf(request, visitor, form.get("csrf"))
        if not visitor.user.operator:
            raise Forbidden("only an operator account may requeue a flow")
        flow = browse.flow(console.reader, visitor.scope, request.path_params["flow_id"])
        now = console.now()
        try:
            done = requeue(console.settings, [flow["flow_id"]], clock=console.clock)
        except WorkspaceError as exc:
            return _conflict(console, request, str(exc))
        with console.store() as store:
            accounts.record_action(store, now, visitor.user.name, "requeue", flow["flow_id"], ", ".join(done))
        return RedirectResponse(f"/flows/{flow['flow_id']}?done=requeued", status_code=303)

    return posted(call)


def _conflict(console: Console, request: Request, message: str) -> Response:
    return console.page(request, "error.html", {"status": 409, "message": message}, 409)


def routes(console: Console) -> list[BaseRoute]:
    """Every page that needs a login."""
    from edi.web import dashboard, invoices, metrics, rules  # each page in its own module, with its twins

    flows = protected(console, flows_list(console))
    return [
        *dashboard.routes(console),
        *invoices.routes(console),
        *rules.routes(console),
        *metrics.routes(console),
        Route("/flows", flows),
        Route("/flows.json", flows),
        Route("/flows.csv", flows),
        Route("/flows/{flow_id}.json", protected(console, flow_ack(console))),
        Route("/flows/{flow_id}/original", protected(console, flow_download(console, "original"))),
        Route("/flows/{flow_id}/ack.json", protected(console, flow_download(console, "ack.json"))),
        Route("/flows/{flow_id}/ack.xml", protected(console, flow_download(console, "ack.xml"))),
        Route("/flows/{flow_id}/requeue", flow_requeue(console), methods=["POST"]),
        Route("/flows/{flow_id}", protected(console, flow_page(console))),
    ]
