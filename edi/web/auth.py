"""Console sessions, CSRF tokens and the brake on failed logins. Pure: reads and writes nothing, raises nothing.

A session is a cookie holding who logged in, a random session id, when, and when it was last used, signed with
HMAC-SHA-256 under the workspace's key (:func:`edi.accounts.session_key`); a cookie that was altered, signed with
another key or idle longer than the idle timeout is no session. Logging out records the session id in the store so
the same cookie is refused from then on. A form's CSRF token is an HMAC of the session id (or, on the login page, of
a random pre-login cookie): a page of another site cannot know it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

SESSION_COOKIE = "edi_session"
LOGIN_COOKIE = "edi_login"  # a random value set with the login form: its CSRF token is made from it
REFRESH_SECONDS = 60  # a session's last-use time is rewritten (a new cookie) at most this often
FAILURES_FREE = 5  # failed logins per account and per address before they are slowed down
BRAKE_FIRST_SECONDS = 2.0  # then each further failure waits twice as long as the one before ...
BRAKE_MAX_SECONDS = 900.0  # ... up to this
FAILURES_FORGOTTEN_SECONDS = 3600.0  # failures older than this no longer count


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid session cookie says."""

    user: str
    sid: str
    issued: float
    used: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, purpose: str, payload: bytes) -> str:
    """An HMAC-SHA-256 of ``payload`` for one purpose (a session is never a CSRF token, nor the reverse)."""
    return _b64(hmac.new(key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest())


def new_session(key: bytes, user: str, now: float) -> tuple[Session, str]:
    """A new session for ``user`` and its cookie value."""
    session = Session(user, secrets.token_urlsafe(18), now, now)
    return session, session_cookie(key, session)


def session_cookie(key: bytes, session: Session) -> str:
    """The signed cookie value of a session."""
    body = json.dumps([session.user, session.sid, session.issued, session.used], separators=(",", ":")).encode()
    return f"{_b64(body)}.{sign(key, 'session', body)}"


def read_session(key: bytes, value: str | None, now: float, idle_seconds: float) -> Session | None:
    """The session a cookie holds, None if it holds none: absent, malformed, altered or idle too long."""
    if not value or value.count(".") != 1 or len(value) > 4096:
        return None
    body_text, mac = value.split(".")
    try:
        body = _unb64(body_text)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, sign(key, "session", body)):
        return None
    try:
        user, sid, issued, used = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not (isinstance(user, str) and isinstance(sid, str) and _number(issued) and _number(used)):
        return None
    if now - used > idle_seconds or used - now > REFRESH_SECONDS:  # idle, or "used" in the future
        return None
    return Session(user, sid, float(issued), float(used))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def csrf_token(key: bytes, binding: str) -> str:
    """The CSRF token of forms posted within a session (``binding`` = its id) or from the login page (the
    pre-login cookie's value)."""
    return sign(key, "csrf", binding.encode())


def csrf_ok(key: bytes, binding: str | None, token: str | None) -> bool:
    """Whether a posted token is the one this session (or pre-login cookie) was given."""
    if not binding or not token:
        return False
    return hmac.compare_digest(token, csrf_token(key, binding))


class LoginBrake:
    """Slows down guessing: past :data:`FAILURES_FREE` failed logins for an account or from an address, each
    further try must wait (2 s, 4 s, 8 s, ... up to 15 min) after the last failure. In memory: a restart forgets."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, time of the last one)
        self._lock = threading.Lock()

    def wait(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds left before these keys (an account, an address) may try again; 0 if they may now."""
        with self._lock:
            return max((self._wait(key, now) for key in keys), default=0.0)

    def _wait(self, key: str, now: float) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        if count < FAILURES_FREE or now - last > FAILURES_FORGOTTEN_SECONDS:
            return 0.0
        delay = min(BRAKE_FIRST_SECONDS * 2.0 ** (count - FAILURES_FREE), BRAKE_MAX_SECONDS)
        return max(0.0, last + delay - now)

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        """Count a failed login against each key."""
        with self._lock:
            if len(self._failures) > 100_000:  # a flood of made-up names: keep the memory bounded
                self._failures = {k: v for k, v in self._failures.items() if now - v[1] <= FAILURES_FORGOTTEN_SECONDS}
            for key in keys:
                count, last = self._failures.get(key, (0, 0.0))
                if now - last > FAILURES_FORGOTTEN_SECONDS:
                    count = 0
                self._failures[key] = (count + 1, now)

    def succeeded(self, key: str) -> None:
        """Forget the failures of an account that logged in."""
        with self._lock:
            self._failures.pop(key, None)
