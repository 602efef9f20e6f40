"""``edi serve``: the web console under uvicorn, until SIGTERM or SIGINT.

Binds the listening socket itself first, so that a port in use or a bad address is one clear error
(:class:`ServeError`) rather than uvicorn's exit; builds the app (which refuses a lost store, like every command);
then serves. SIGTERM and SIGINT stop it cleanly: uvicorn finishes the requests in progress, and the call returns.

Slow clients: a connection must send a whole request line and headers within :data:`HEADER_SECONDS` (or ``[api]
read_timeout_seconds`` if shorter) of opening or of its previous answer, else it is closed (slowloris: uvicorn
itself waits for headers forever); an idle kept-alive connection is closed after :data:`KEEP_ALIVE_SECONDS`; a body
that stops coming is the API's 408 (:mod:`edi.api.limits`). The event loop serves everyone else meanwhile.

While it serves, with the API's webhooks allowed somewhere, a thread of its own delivers their due events every
:data:`DELIVER_EVERY` seconds (:func:`edi.api.deliver.deliver_due`), so that a retry waits for no batch.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edi.config import Settings
from edi.errors import ServeError
from edi.web.app import create_app

log = structlog.get_logger()
GRACEFUL_SECONDS = 10
DELIVER_EVERY = 5.0  # seconds between two webhook delivery passes while serving
HEADER_SECONDS = 10.0  # longest a request's line and headers may take to arrive
KEEP_ALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this (uvicorn's default, said here)


class HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on the request line and headers: counted from the connection's
    opening, then from each answer; a connection that has not sent them all by then is closed."""

    header_seconds = HEADER_SECONDS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start counting at once: a client that connects and says nothing is closed too."""
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        self._awaiting: object = None
        self._arm()

    def handle_events(self) -> None:
        """A new request's headers came (uvicorn starts a new cycle for it): stop counting."""
        super().handle_events()
        if self._deadline is not None and self.cycle is not self._awaiting:
            self._deadline.cancel()
            self._deadline = None

    def on_response_complete(self) -> None:
        """An answer went: the next request's headers have the deadline again (unless one already came)."""
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop counting."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._awaiting = self.cycle
        self._deadline = self.loop.call_later(self.header_seconds, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.cycle is self._awaiting and not self.transport.is_closing():
            log.info("slow request headers: connection closed", client=self.client, seconds=self.header_seconds)
            self.transport.close()


def protocol(header_seconds: float) -> type[HeaderDeadline]:
    """The HTTP protocol class with this header deadline."""
    return type("HeaderDeadline", (HeaderDeadline,), {"header_seconds": header_seconds})


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host is an IPv6 address). Made with the TCP protocol
    number, as asyncio makes its own: only then does asyncio set TCP_NODELAY on each connection (without it, a
    kept-alive connection waits ~40 ms on every answer sent in two writes, Nagle against delayed ACKs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        raise ServeError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, host: str, port: int, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the console of the workspace ``settings`` names until SIGTERM or SIGINT."""
    app = create_app(settings)
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/"
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
        http=protocol(min(HEADER_SECONDS, settings.api.read_timeout_seconds)),
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    stopped: list[int] = []

    def quiet(signum: int, frame: FrameType | None) -> None:  # what uvicorn hands the signal back to, once stopped
        stopped.append(signum)

    previous = {s: signal.signal(s, quiet) for s in (signal.SIGINT, signal.SIGTERM)}
    done = threading.Event()
    deliverer = None
    if settings.api.webhooks:
        deliverer = threading.Thread(target=deliver_while, args=(settings, done), name="webhooks", daemon=True)
        deliverer.start()
    try:
        if on_ready is not None:
            on_ready(url)
        log.info("console listening", url=url)
        server.run(sockets=[sock])
    finally:
        done.set()
        if deliverer is not None:
            deliverer.join(timeout=GRACEFUL_SECONDS)
        sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not server.started:
        raise ServeError(f"the console could not start on {url}: see the log above")
    log.info("console stopped", signal=stopped[0] if stopped else None)


def deliver_while(settings: Settings, done: threading.Event) -> None:
    """Deliver the webhooks' due events every :data:`DELIVER_EVERY` seconds until ``done`` (a pass that fails is
    logged; the next one tries again)."""
    from edi.api.deliver import deliver_due  # here: a console without webhooks never loads http.client

    while not done.wait(DELIVER_EVERY):
        try:
            deliver_due(settings, budget=DELIVER_EVERY * 2)
        except Exception as exc:  # the store or a bug: serving goes on
            log.error("webhooks not delivered", error=f"{type(exc).__name__}: {exc}")
