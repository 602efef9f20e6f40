"""The API's limits (edi.api.limits): token buckets per client and per address, request bodies refused past their
route's limit while they stream, silent clients answered 408 and cut off, on the real app and on a live
`edi serve`."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import anyio
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message

from edi import logs
from edi.api import clients, limits
from edi.api.errors import FILE_SIZE_EXCEEDED, ApiError
from edi.api.limits import BodyLimit, RateLimiter
from edi.config import ApiSettings
from edi.store import open_store
from edi.web.app import create_app
from tests.api.conftest import BASE, PROBE, Client, Service, add_probe
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace
from tests.test_serve import ready_url, start

GUESS_BURST, GUESSES_PER_MINUTE = ApiSettings().guess_burst, ApiSettings().guesses_per_minute
TIGHT = DEFAULT_CONFIG + "\n[api]\nrate_per_minute = 6\nrate_burst = 3\nread_timeout_seconds = 1\n"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _service(ws: Workspace) -> Iterator[Service]:
    app = create_app(ws.settings)
    add_probe(app)
    with TestClient(app) as http:
        yield Service(ws, http)


@pytest.fixture
def tight(make_workspace: Callable[..., Workspace]) -> Iterator[Service]:
    """The real app (with the probe route) of a workspace whose clients may make 3 requests at once, then 6 a
    minute."""
    yield from _service(make_workspace(TIGHT))


@pytest.fixture
def probed(workspace: Workspace) -> Iterator[Service]:
    """The real app (with the probe route) of a workspace with the shipped limits."""
    yield from _service(workspace)


def test_a_bucket_gives_its_burst_then_says_honestly_when_to_retry() -> None:
    """A bucket gives `burst` tokens at once, then refuses with the whole seconds until the next one, and gives
    it exactly then, not before."""
    ticks = Ticks()
    bucket = RateLimiter(per_minute=6, burst=3, monotonic=ticks)
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 0]
    assert bucket.take("a") == 10  # 6 a minute: one every 10 s
    assert bucket.take("b") == 0  # each key has its own bucket
    ticks.now += 9.9
    assert bucket.take("a") == 1
    ticks.now += 0.1
    assert bucket.take("a") == 0
    assert bucket.take("a") == 10


def test_a_bucket_refills_to_its_burst_and_no_more() -> None:
    """An idle bucket fills up to its burst, never beyond; a token given back never overfills it."""
    ticks = Ticks()
    bucket = RateLimiter(per_minute=60, burst=2, monotonic=ticks)
    bucket.take("a")
    bucket.give_back("a")
    bucket.give_back("a")
    ticks.now += 3600
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 1]


def test_a_bucket_keeps_a_bounded_number_of_keys() -> None:
    """Past `kept` keys the least recently used bucket is forgotten (memory stays bounded whatever the addresses)."""
    bucket = RateLimiter(per_minute=1, burst=1, monotonic=Ticks(), kept=2)
    for key in ("a", "b", "c"):
        assert bucket.take(key) == 0
    assert bucket.take("c") > 0 and bucket.take("b") > 0
    assert bucket.take("a") == 0  # forgotten: a full bucket again


def test_an_ipv6_address_counts_by_its_64() -> None:
    """Two IPv6 addresses of one /64 share a bucket; an IPv4-mapped address counts as its IPv4 one."""

    def request(host: str) -> Request:
        return Request({"type": "http", "client": (host, 1234), "headers": []})

    assert limits.address_of(request("2001:db8:1:2::1")) == limits.address_of(request("2001:db8:1:2:ffff::9"))
    assert limits.address_of(request("2001:db8:1:3::1")) != limits.address_of(request("2001:db8:1:2::1"))
    assert limits.address_of(request("::ffff:192.0.2.7")) == "192.0.2.7"
    assert limits.address_of(request("192.0.2.7")) == "192.0.2.7"


def _bearer(service: Service, client: Client) -> dict[str, str]:
    """A long-lived token's header for `client` (made without the token endpoint)."""
    store = open_store(service.workspace.settings.workspace.layout())
    try:
        token, _ = clients.issue_bearer_token(store, client.name, datetime.now(UTC), 1)
    finally:
        store.close()
    return {"Authorization": f"Bearer {token}"}


def test_a_client_over_its_rate_gets_429_with_retry_after(tight: Service) -> None:
    """Past its burst a client's requests are 429 TOO_MANY_REQUESTS with Retry-After (seconds until its next
    request may pass); another client is not slowed down by it."""
    erp, other = tight.add_client("erp"), tight.add_client("other", "opdemat")
    headers = _bearer(tight, erp)
    answers = [tight.http.get(PROBE, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert tight.http.get(PROBE, headers=_bearer(tight, other)).json() == {"client": "other"}


def test_token_requests_count_against_the_client(tight: Service) -> None:
    """A client's token requests use its rate too: past it, /oauth2/token answers 429 with Retry-After (and an
    OAuth2 error body)."""
    erp = tight.add_client("erp")
    answers = [
        tight.http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(erp.client_id, erp.secret))
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["error"] == "too_many_requests" and int(answers[3].headers["retry-after"]) >= 1


def test_wrong_secrets_from_one_address_are_braked_before_argon2(service: Service) -> None:
    """After [api] guess_burst wrong secrets an address gets 429 without its secret being checked (a right secret
    from it is refused too until the bucket refills); right secrets never use the address's budget up."""
    erp = service.add_client("erp")
    for _ in range(GUESS_BURST + 5):
        assert service.token(erp)  # successes give their guess back
    for _ in range(GUESS_BURST):
        wrong = service.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(erp.client_id, "wrong")
        )
        assert wrong.status_code == 401
    braked = service.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(erp.client_id, erp.secret)
    )
    assert braked.status_code == 429 and braked.json()["error"] == "too_many_requests"
    assert 1 <= int(braked.headers["retry-after"]) <= 60 // GUESSES_PER_MINUTE


def test_bad_tokens_from_one_address_are_braked_but_good_ones_pass(probed: Service) -> None:
    """Unknown tokens from one address are 401 up to [api] guess_burst, then 429 with Retry-After; a valid token from
    that address still opens the API (a token is checked by one index probe, no Argon2)."""
    erp = probed.add_client("erp")
    bad = {"Authorization": "Bearer edi_at_not-a-token"}
    statuses = [probed.http.get(PROBE, headers=bad).status_code for _ in range(GUESS_BURST)]
    assert statuses == [401] * GUESS_BURST
    over = probed.http.get(PROBE, headers=bad)
    assert over.status_code == 429 and over.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(over.headers["retry-after"]) <= 60 // GUESSES_PER_MINUTE
    assert probed.http.get(PROBE, headers=_bearer(probed, erp)).json() == {"client": "erp"}


# -- bodies, on a small app of its own: the routes that take bodies are other modules' ----------------------------


def _body_app(read_timeout: float = 5.0) -> Starlette:
    """An app like the Flow Service: BodyLimit of 16 bytes around a JSON route and a route that allows 100."""

    async def small(request: Request) -> Response:
        return JSONResponse({"read": len(await request.body())})

    async def big(request: Request) -> Response:
        limits.allow_body(request, 100, FILE_SIZE_EXCEEDED)
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return JSONResponse({"read": size})

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    app = Starlette(routes=[Route("/small", small, methods=["POST"]), Route("/big", big, methods=["POST"])])
    app.add_exception_handler(ApiError, refused)
    app.add_middleware(BodyLimit, max_bytes=16, read_timeout=read_timeout)
    return app


def test_a_body_within_its_routes_limit_is_read() -> None:
    """A body up to the default limit, and up to a route's own larger one, is read whole."""
    with TestClient(_body_app()) as http:
        assert http.post("/small", content=b"x" * 16).json() == {"read": 16}
        assert http.post("/big", content=b"x" * 100).json() == {"read": 100}


def test_a_content_length_over_the_limit_is_refused_before_reading() -> None:
    """A Content-Length over the route's limit is 413 with the route's code and Connection: close, and not a byte
    of the body is asked for."""
    asked: list[str] = []

    async def body_never_read(scope: dict[str, object], receive: object, send: object) -> None:
        async def receive_counted() -> dict[str, object]:
            asked.append("receive")
            return {"type": "http.request", "body": b"x" * 200, "more_body": False}

        http = scope["type"] == "http"
        await _body_app()(scope, receive_counted if http else receive, send)  # type: ignore[arg-type]

    with TestClient(body_never_read) as http:  # type: ignore[arg-type]
        answer = http.post("/big", content=b"x" * 200)
        small = http.post("/small", content=b"x" * 17)
    assert answer.status_code == 413 and answer.json()["errorCode"] == "FILE_SIZE_EXCEEDED"
    assert answer.headers["connection"] == "close"
    assert small.status_code == 413 and small.json()["errorCode"] == "PAYLOAD_TOO_LARGE"
    assert asked == []


def test_a_chunked_body_is_cut_at_the_limit_while_streaming() -> None:
    """A body without Content-Length is counted as it comes: 413 once past the limit, the rest never asked for
    (the app driven directly, as a server does, one 10-byte part at a time)."""
    asked: list[int] = []
    sent: list[Message] = []

    async def receive() -> Message:
        asked.append(10)
        return {"type": "http.request", "body": b"x" * 10, "more_body": len(asked) < 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/big",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked")],
    }
    anyio.run(_body_app(), scope, receive, send)
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["errorCode"] == "FILE_SIZE_EXCEEDED"
    assert sum(asked) == 110  # the part that went past 100 bytes, and nothing after it


def test_allow_body_needs_the_middleware_and_comes_before_reading() -> None:
    """allow_body without BodyLimit around the app, or after the body was read, is a bug said plainly."""

    async def late(request: Request) -> Response:
        await request.body()
        limits.allow_body(request, 100)
        return Response()

    app = Starlette(routes=[Route("/late", late, methods=["POST"])])
    with TestClient(app) as http, pytest.raises(RuntimeError, match="BodyLimit"):
        http.post("/late", content=b"x")
    with TestClient(BodyLimit(app, 16, 5.0)) as http, pytest.raises(RuntimeError, match="before the body"):
        http.post("/late", content=b"x")


def test_the_token_endpoint_refuses_a_large_form(service: Service) -> None:
    """/oauth2/token takes at most FORM_BYTES of body: past it, 413 with an OAuth2 error body, connection closed."""
    form = service.http.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials&pad=" + b"x" * limits.FORM_BYTES,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413 and form.json()["error"] == "invalid_request"
    assert form.headers["connection"] == "close"


def test_an_answer_before_the_body_was_read_closes_the_connection(probed: Service) -> None:
    """A request refused before its body was read (here 401: a bad token) is answered with Connection: close, so
    the unread body cannot keep the connection; an answer after the whole body keeps it."""
    refused = probed.http.post(PROBE, content=b"x" * 1000, headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.headers["connection"] == "close"
    healthy = probed.http.get(f"{PROBE[: -len('probe')]}healthcheck")
    assert healthy.status_code == 200 and "connection" not in healthy.headers


# -- slow clients on a live server ---------------------------------------------------------------------------------


@pytest.fixture
def live(make_workspace: Callable[..., Workspace]) -> Iterator[tuple[Workspace, str, int]]:
    """A live `edi serve --port 0` (the real executable) whose read timeout is 1 s: its workspace, URL and port."""
    ws = make_workspace(TIGHT)
    process = start(ws, "--port", "0")
    try:
        url = ready_url(process)
        yield ws, url, int(url.rsplit(":", 1)[1].strip("/"))
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except Exception:
            process.kill()
            process.communicate()


def _read_all(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends until it closes the connection (fails if it does not within `seconds`)."""
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_client_silent_while_its_body_is_expected_gets_408_and_is_cut_off(
    live: tuple[Workspace, str, int],
) -> None:
    """A token request that announces a body and sends half of it, then nothing, is answered 408 after
    read_timeout_seconds and its connection closed; meanwhile the server answers others at once."""
    _, _, port = live
    with socket.create_connection(("127.0.0.1", port)) as stuck:
        stuck.sendall(
            b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\ngrant_type="
        )
        began = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as other:
            other.sendall(b"GET /afnor-flow/v1/healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(other, 5).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - began < 0.9
        answer = _read_all(stuck, 10)
        waited = time.monotonic() - began
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "invalid_request"
    assert 0.9 <= waited < 5


def test_a_silent_body_is_408_with_the_error_body_and_connection_close() -> None:
    """A route waiting for a body that stops coming answers 408 REQUEST_TIMEOUT (the standard's Error body) after
    the read timeout, with Connection: close (the app driven directly, as a server does)."""
    sent: list[Message] = []
    parts = [{"type": "http.request", "body": b"x" * 10, "more_body": True}]

    async def receive() -> Message:
        if parts:
            return parts.pop()
        await anyio.sleep(60)  # the client says nothing more
        raise AssertionError("the read timeout did not fire")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/big", "root_path": "", "query_string": b"", "headers": []}
    began = time.monotonic()
    anyio.run(_body_app(read_timeout=0.3), scope, receive, send)
    assert 0.3 <= time.monotonic() - began < 5
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["errorCode"] == "REQUEST_TIMEOUT"


def test_the_address_brake_follows_its_settings(make_workspace: Callable[..., Workspace]) -> None:
    """[api] guess_burst and guesses_per_minute set the address brake: with 2 and 1, the third bad token is 429 and
    Retry-After says up to a minute."""
    ws = make_workspace(DEFAULT_CONFIG + "\n[api]\nguess_burst = 2\nguesses_per_minute = 1\n")
    app = create_app(ws.settings)
    add_probe(app)
    with TestClient(app) as http:
        answers = [http.get(PROBE, headers={"Authorization": "Bearer nope"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert 50 <= int(answers[2].headers["retry-after"]) <= 60


def test_a_huge_upload_is_refused_at_once_on_a_live_server(live: tuple[Workspace, str, int]) -> None:
    """On a live `edi serve`, a token request announcing 5 GB is answered 413 before it sends a byte of its body,
    and one whose chunked body goes past the limit is answered 413 without the server waiting for the rest; both
    connections are closed."""
    _, _, port = live
    head = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    with socket.create_connection(("127.0.0.1", port)) as announced:
        announced.sendall(head + b"Content-Length: 5000000000\r\n\r\n")
        answer = _read_all(announced, 5)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()
    with socket.create_connection(("127.0.0.1", port)) as chunked:
        chunked.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        chunked.sendall((b"400\r\n" + b"x" * 1024 + b"\r\n") * (limits.FORM_BYTES // 1024 + 1))  # 1 KiB past it
        answer = _read_all(chunked, 5)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()


def test_a_refused_authentication_is_logged_with_its_address(probed: Service) -> None:
    """The request's log line names the remote address when no client authenticated (a bad token), and the
    client, not the address, when one did."""
    erp = probed.add_client("erp")
    saved, level = structlog.get_config(), logs.current_level()
    out = io.StringIO()
    logs.configure_logging("info", out)  # as edi serve does, JSON lines (the stream is no terminal)
    try:
        probed.http.get(PROBE, headers={"Authorization": "Bearer nope"})
        probed.http.get(PROBE, headers=_bearer(probed, erp))
    finally:
        structlog.configure(**saved)
        logs._level = level
    lines = [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == "api request"]
    assert [(e["status"], e["client"], e["address"]) for e in lines] == [(401, None, "testclient"), (200, "erp", None)]


# -- the deposit route's own limit (edi.api.deposit calls allow_body) -----------------------------------------------

UBL = FLOWS / "acme" / "01-ubl-invoice.xml"


def test_a_deposit_takes_more_than_the_json_limit(service: Service) -> None:
    """POST /v1/flows allows its file's limit (not the 64 KiB of JSON routes): a 200 KB invoice is taken (202)."""
    erp = service.add_client("erp")
    data = UBL.read_bytes() + b" " * 200_000  # whitespace after the root element: still the same UBL invoice
    assert len(data) > 3 * limits.JSON_BYTES
    answer = service.http.post(
        f"{BASE}/v1/flows",
        headers=service.headers(erp),
        files={
            "flowInfo": (None, json.dumps({"name": "big.xml", "flowSyntax": "UBL"}), "application/json"),
            "file": ("big.xml", data, "application/xml"),
        },
    )
    assert answer.status_code == 202, answer.text


def test_a_deposit_announcing_5_gb_is_413_before_its_body_on_a_live_server(live: tuple[Workspace, str, int]) -> None:
    """On a live `edi serve`, a deposit whose Content-Length is over the file's limit (and the multipart framing's
    slack) is answered 413 FILE_SIZE_EXCEEDED before it sends a byte of its body, and the connection closed."""
    ws, _, port = live
    store = open_store(ws.settings.workspace.layout())
    try:
        clients.add_client(store, "erp", "acme", datetime.now(UTC))
        token, _ = clients.issue_bearer_token(store, "erp", datetime.now(UTC), 1)
    finally:
        store.close()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"POST {BASE}/v1/flows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000000000\r\n\r\n".encode()
        )
        answer = _read_all(sock, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower()
    assert json.loads(body)["errorCode"] == "FILE_SIZE_EXCEEDED"
