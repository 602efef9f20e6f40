"""A real HTTP server on 127.0.0.1 in a thread, for the webhook tests: it records every request it gets and answers
what the test scripts (a status per request, then 200), like tests/smtp_server.py for the notifications."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Call:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookServer:
    """The server: its port, what it got, and the statuses it answers next (each used once; then 200)."""

    port: int = 0
    calls: list[Call] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    location: str = ""  # the Location header of a 3xx answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    tls: bool = False

    def url(self, path: str = "/hook") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def got(self, path: str | None = None) -> list[Call]:
        """The requests it got (on ``path``, if given)."""
        with self.lock:
            return [c for c in self.calls if path is None or c.path == path]


def serve(tls: ssl.SSLContext | None = None) -> Iterator[HookServer]:
    """Run a server (HTTPS with ``tls``, a server context) until the generator is closed (a fixture's body)."""
    state = HookServer(tls=tls is not None)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.calls.append(Call("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
