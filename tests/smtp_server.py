"""A real SMTP server for the notification tests: aiosmtpd on 127.0.0.1, a free port, optionally with STARTTLS or
TLS from a self-signed certificate that ``openssl`` makes, answering each DATA as the test scripts it (``451``, then
``250``, ...) and keeping every message it accepts, as bytes, with its envelope."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")


@dataclass
class Mailbox:
    """The handler: scripted answers to DATA first (each used once), then 250 and the message kept."""

    replies: deque[str] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.replies:
            self.refused += 1
            return self.replies.popleft()
        data = envelope.original_content or envelope.content
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data)))
        return "250 2.0.0 OK"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1:``port``: plain, with STARTTLS offered (``starttls``), or TLS from the first
    byte (``tls``). Stop it with :meth:`stop`."""

    def __init__(self, port: int, security: str = "none", cert: tuple[Path, Path] | None = None) -> None:
        self.port = port
        self.mailbox = Mailbox()
        kwargs: dict[str, Any] = {}
        if security != "none":
            assert cert is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            if security == "starttls":
                kwargs = {"tls_context": context, "require_starttls": True}
            else:
                kwargs = {"ssl_context": context}
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=port, **kwargs)
        self.controller.start()

    @property
    def received(self) -> list[Received]:
        return self.mailbox.received

    def stop(self) -> None:
        self.controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path] | None:
    """A certificate and key for 127.0.0.1 made by openssl (None when openssl is missing)."""
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
