"""The API's limits: requests per client, guesses per remote address, body size, and silent clients.

- Rate: a token bucket per client (``[api] rate_per_minute``, ``rate_burst``), in the server process; past it a
  request is refused 429 ``TOO_MANY_REQUESTS`` with an honest ``Retry-After`` (the whole seconds until the bucket
  holds a token again).
- Guesses: what costs the server without proving who asks (an unknown, expired or revoked token; a request to
  ``/oauth2/token``, which runs Argon2) takes a token from a small bucket of the remote address (an IPv6 address
  counts by its /64): ``[api] guess_burst`` at once, then ``guesses_per_minute``. A token request that proves
  its secret gives its token back, so a client that gets tokens never runs out; a guesser does. At most
  :data:`ARGON2_AT_ONCE` Argon2 checks run at a time, whoever asks.
- Body: :class:`BodyLimit` wraps the app's ``receive``: a request whose ``Content-Length`` is over its route's
  limit is refused 413 before a byte of the body is read; a body (chunked or not) is counted as it streams and
  refused 413 once past the limit (never buffered whole); a client that sends nothing for ``[api]
  read_timeout_seconds`` while its body is expected is answered 408. Each such answer, and any answer sent before
  the request's body was all read, closes the connection. A route takes another limit with :func:`allow_body`.

Reads the request's headers and body as they arrive; writes nothing; raises :class:`TooManyRequests`,
:class:`BodyTooLarge` and :class:`ReadTimeout` (each an :class:`edi.api.errors.ApiError`).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edi.api.errors import PAYLOAD_TOO_LARGE, REQUEST_TIMEOUT, TOO_MANY_REQUESTS, ApiError
from edi.config import ApiSettings

ARGON2_AT_ONCE = 2  # Argon2 checks running at a time (each takes ~64 MiB and a core for tens of milliseconds)
JSON_BYTES = 64 * 1024  # a request body of the Flow Service unless its route allows more (search, webhooks: JSON)
FORM_BYTES = 4 * 1024  # a request body of /oauth2/token
KEYS_KEPT = 10_000  # buckets kept per limiter; past it the least recently used go (a full one first)
CLOSE = {"Connection": "close"}
_BODY = "edi.body"  # the scope key of a request's Body


class TooManyRequests(ApiError):
    """Over a rate limit: 429 with ``Retry-After``."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(429, TOO_MANY_REQUESTS, message, {"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class BodyTooLarge(ApiError):
    """A request body over its route's limit: 413, and the connection is closed."""

    def __init__(self, limit: int, code: str = PAYLOAD_TOO_LARGE) -> None:
        super().__init__(413, code, f"the request body is over this route's limit of {limit} bytes", CLOSE)
        self.limit = limit


class ReadTimeout(ApiError):
    """A client silent too long while its body is expected: 408, and the connection is closed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, REQUEST_TIMEOUT, f"nothing of the request body came for {seconds:g} seconds", CLOSE)


# -- token buckets ------------------------------------------------------------------------------------------------


class RateLimiter:
    """Token buckets by key: each holds up to ``burst`` tokens and gains ``per_minute`` a minute. Thread-safe (the
    API checks tokens in worker threads); keeps at most ``kept`` keys."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        kept: int = KEYS_KEPT,
    ) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.monotonic = monotonic
        self.kept = kept
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Take a token from ``key``'s bucket: 0 when there was one, else the whole seconds until there is
        (nothing is taken)."""
        with self._lock:
            tokens = self._level(key)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0)
                return 0
            self._store(key, tokens)
            return max(1, math.ceil((1.0 - tokens) / self.rate))

    def give_back(self, key: str) -> None:
        """Return a token taken from ``key``'s bucket (up to its burst)."""
        with self._lock:
            self._store(key, min(self.burst, self._level(key) + 1.0))

    def _level(self, key: str) -> float:
        now = self.monotonic()
        tokens, then = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - then) * self.rate)

    def _store(self, key: str, tokens: float) -> None:
        self._buckets[key] = (tokens, self.monotonic())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.kept:  # the least recently used go (a full bucket loses nothing)
            self._buckets.popitem(last=False)


def address_of(request: Request) -> str:
    """The remote address a request counts against: its IP (the proxy's ``X-Forwarded-For`` when uvicorn trusts
    the proxy, see ``FORWARDED_ALLOW_IPS``), an IPv6 one by its /64 network."""
    host = request.client.host if request.client is not None else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Limits:
    """The rate limits of one server process: per client and per remote address."""

    def __init__(self, settings: ApiSettings, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.clients = RateLimiter(settings.rate_per_minute, settings.rate_burst, monotonic)
        self.guesses = RateLimiter(settings.guesses_per_minute, settings.guess_burst, monotonic)
        self.read_timeout = settings.read_timeout_seconds
        self._argon2: anyio.CapacityLimiter | None = None

    def charge(self, client_id: str) -> None:
        """Count one request of a client; raises :class:`TooManyRequests` past its rate."""
        wait = self.clients.take(client_id)
        if wait:
            raise TooManyRequests(wait, f"this client is over its rate of requests: try again in {wait} s")

    def guess(self, address: str) -> None:
        """Count one unproven authentication from an address; raises :class:`TooManyRequests` past its rate."""
        wait = self.guesses.take(address)
        if wait:
            raise TooManyRequests(wait, f"too many failed authentications from this address: try again in {wait} s")

    def proven(self, address: str) -> None:
        """An authentication counted by :meth:`guess` proved right: give its token back."""
        self.guesses.give_back(address)

    @property
    def argon2(self) -> anyio.CapacityLimiter:
        """The limiter Argon2 checks run under (made in the server's event loop, on first use)."""
        if self._argon2 is None:
            self._argon2 = anyio.CapacityLimiter(ARGON2_AT_ONCE)
        return self._argon2


# -- request bodies -----------------------------------------------------------------------------------------------


@dataclass
class Body:
    """What one request may send and has sent."""

    limit: int
    code: str
    length: int | None  # its Content-Length, if it gave one
    expected: bool  # it has a body (a Content-Length above 0, or chunked)
    received: int = 0
    started: bool = False  # the app asked for the body
    done: bool = False  # the last part came

    def check_length(self) -> None:
        """Refuse a declared length over the limit, before reading."""
        if self.length is not None and self.length > self.limit:
            raise BodyTooLarge(self.limit, self.code)


def allow_body(request: Request, max_bytes: int, code: str = PAYLOAD_TOO_LARGE) -> None:
    """Let this request's body be up to ``max_bytes`` (refused 413 ``code`` past it): call it before reading the
    body. Raises :class:`BodyTooLarge` at once when the ``Content-Length`` says more."""
    body = request.scope.get(_BODY)
    if not isinstance(body, Body):
        raise RuntimeError("allow_body needs the BodyLimit middleware around the app")
    if body.started:
        raise RuntimeError("allow_body must be called before the body is read")
    body.limit, body.code = max_bytes, code
    body.check_length()


class BodyLimit:
    """ASGI middleware: the body limit, the read timeout, and ``Connection: close`` on an answer sent before the
    request's body was all read (the rest is never read, so the connection cannot serve another request)."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = _length(headers.get(b"content-length"))
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        body = Body(self.max_bytes, PAYLOAD_TOO_LARGE, length, bool(length) or chunked)
        scope[_BODY] = body
        timeout = self.read_timeout

        async def limited() -> Message:
            if body.done:  # after the body: the app waits for the client to leave, as long as it likes
                return await receive()
            if not body.started:
                body.started = True
                body.check_length()
            try:
                with anyio.fail_after(timeout):
                    message = await receive()
            except TimeoutError:
                raise ReadTimeout(timeout) from None
            if message["type"] != "http.request":
                body.done = True
                return message
            body.received += len(message.get("body", b""))
            if body.received > body.limit:
                raise BodyTooLarge(body.limit, body.code)
            if not message.get("more_body", False):
                body.done = True
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and body.expected and not body.done:
                sent = list(message.get("headers", []))
                if not any(k.lower() == b"connection" for k, _ in sent):
                    message = {**message, "headers": [*sent, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited, closing)


def _length(value: bytes | None) -> int | None:
    """A Content-Length header's value (the server checked its form), None without one."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
