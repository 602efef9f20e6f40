"""One connection to the SMTP server ``[notifications]`` names, and what its answers mean for a mail.

``security = "starttls"``: plain connection, then STARTTLS, which the server must offer (nothing is ever sent in
clear when it does not); ``"tls"``: TLS from the first byte (SMTPS); ``"none"``: no encryption (a local relay; no
login then). Certificates are checked against the system's CAs, or ``ca_file``. Every wait is bounded by
``timeout_seconds``.

What goes wrong is one of three exceptions, each with a one-line ``str``: :class:`Unreachable` (no mail can be sent
now: the server is down, refuses the connection, lacks STARTTLS or TLS, fails the handshake or the login),
:class:`Temporary` (a 4xx answer to this mail) and :class:`Permanent` (a 5xx answer to this mail). Reads nothing;
talks to the network.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from types import TracebackType

from edi.config import NotificationSettings


class SmtpError(Exception):
    """A mail could not be sent (the message says why, in one line)."""


class Unreachable(SmtpError):
    """No mail can be sent now: the server, the connection, TLS or the login failed."""


class Temporary(SmtpError):
    """The server answered this mail with a temporary error (4xx)."""


class Permanent(SmtpError):
    """The server refused this mail for good (5xx)."""


class Connection:
    """An open, greeted (and, as configured, encrypted and logged-in) SMTP session. Use it as a context manager."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        host, port, timeout = settings.smtp_host, settings.port, settings.timeout_seconds
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise Unreachable(f"cannot load ca_file {settings.ca_file}: {_one_line(exc)}") from None
        self.smtp: smtplib.SMTP | None = None
        try:
            if settings.security == "tls":
                self.smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                self.smtp = smtplib.SMTP(host, port, timeout=timeout)
            self.smtp.ehlo()
            if settings.security == "starttls":
                if not self.smtp.has_extn("starttls"):
                    raise Unreachable(f"{host}:{port} does not offer STARTTLS: nothing is sent in clear")
                self.smtp.starttls(context=context)
                self.smtp.ehlo()
            if settings.username is not None and settings.password is not None:
                self.smtp.login(settings.username, settings.password)
        except Unreachable:
            self.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, TLS, greeting or login refused
            self.close()
            raise Unreachable(f"{host}:{port}: {_one_line(exc)}") from None

    def send(self, mail: EmailMessage, from_address: str, recipients: tuple[str, ...]) -> dict[str, str]:
        """Send one mail; return the recipients the server refused while taking it for the others."""
        assert self.smtp is not None
        try:
            refused = self.smtp.send_message(mail, from_address, list(recipients))
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused: temporary if any was
            answers = {addr: (int(code), _text(raw)) for addr, (code, raw) in exc.recipients.items()}
            said = "; ".join(f"{addr}: {code} {why}" for addr, (code, why) in answers.items())
            if any(400 <= code < 500 for code, _ in answers.values()):
                raise Temporary(f"recipients refused: {said}") from None
            raise Permanent(f"recipients refused: {said}") from None
        except smtplib.SMTPResponseException as exc:  # MAIL FROM or DATA answered with an error
            said = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if 500 <= exc.smtp_code < 600:
                raise Permanent(said) from None
            if 400 <= exc.smtp_code < 500:
                raise Temporary(said) from None
            raise Unreachable(said) from None
        except (OSError, smtplib.SMTPException) as exc:  # the connection dropped: nothing is known to be sent
            raise Unreachable(_one_line(exc)) from None
        return {addr: f"{code} {_text(raw)}" for addr, (code, raw) in refused.items()}

    def close(self) -> None:
        """Say QUIT (or just close, if the server is gone)."""
        if self.smtp is None:
            return
        smtp, self.smtp = self.smtp, None
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _text(raw: bytes | str) -> str:
    return _one_line(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) or type(value).__name__
