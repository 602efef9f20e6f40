"""The one sender loop: send the notification mails that are due, within a time budget, and record each outcome.

:func:`send_due` is what ``edi batch`` runs before it exits, ``edi watch`` between passes, the scheduled ``batch``,
``notify`` and ``digest`` jobs (``digest`` first forms the digests of the days that ended) and ``edi notifications
--send``. It runs in the calling thread (no thread of its own: edi's processes stay single-threaded), only after
processing, and never raises for the server: a server that is down costs one refused connection (or
``timeout_seconds`` when it does not answer), and the mails wait for their next attempt. One connection per pass;
mails oldest due first, claimed in turns of :data:`CLAIM` so that two processes never send the same one at once.

Outcomes: the server took it (sent); 4xx, or the server could not be reached or refused the session (STARTTLS
missing, TLS, login) -> tried again after ``retry_seconds``, doubling up to ``retry_max_seconds``, and given up
(failed) once ``give_up_seconds`` have passed since it was due; 5xx -> failed at once. A mail whose sending process
dies after the server took it and before its outcome is recorded is sent again once its claim's lease is over, with
the same Message-ID (at least once).

Reads the settings and the tracking store; writes the outbox's rows; raises what opening the store raises
(:class:`edi.errors.EdiError`) and sqlite3 errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import structlog

from edi.clock import Clock, SystemClock
from edi.config import Settings
from edi.faults import fault_point
from edi.notify.compose import compose
from edi.notify.digest import compose_digest
from edi.notify.outbox import (
    Mail,
    claim_due,
    form_digests,
    has_due,
    record_failed,
    record_retry,
    record_sent,
    release,
)
from edi.notify.smtp import Connection, Permanent, Temporary, Unreachable
from edi.store import WORKSPACE_ID, open_store
from edi.tracking import Tracking

log = structlog.get_logger()

CLAIM = 50  # mails claimed at a time


@dataclass(slots=True)
class SendReport:
    """What one sending pass did."""

    digests: int = 0  # digests formed
    sent: int = 0
    retrying: int = 0  # tried, to be tried again later
    failed: int = 0  # refused for good, or given up
    left: int = 0  # due, not tried: the pass ran out of time
    error: str | None = None  # the last error met

    @property
    def tried(self) -> bool:
        """Whether the pass did anything."""
        return bool(self.digests or self.sent or self.retrying or self.failed or self.left)

    def summary(self) -> str:
        """One line for an operator."""
        parts = [f"{self.sent} sent"]
        if self.digests:
            parts.insert(0, f"{self.digests} digests formed")
        if self.retrying:
            parts.append(f"{self.retrying} to retry")
        if self.failed:
            parts.append(f"{self.failed} failed (see `edi notifications --state failed`)")
        if self.left:
            parts.append(f"{self.left} left for the next pass")
        line = "notifications: " + ", ".join(parts)
        return line + (f" (last error: {self.error})" if self.error else "")


def send_due(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Tracking | None = None,
    digests: bool = False,
    budget: float | None = None,
) -> SendReport:
    """Send what is due (with ``digests``, first the digests of the days that ended), for at most ``budget``
    seconds (default ``notifications.send_seconds``); nothing when notifications are off. ``store``: the caller's
    open store (else the workspace's is opened and closed)."""
    report = SendReport()
    notifications = settings.notifications
    if not notifications.enabled:
        return report
    clock = clock or SystemClock()
    own = store is None
    store = store or open_store(settings.workspace.layout())
    try:
        now = clock.now()
        if digests:
            assert notifications.from_address is not None  # required with a host
            report.digests = form_digests(
                store,
                now,
                ZoneInfo(settings.digest_timezone),
                store.meta(WORKSPACE_ID) or "workspace",
                notifications.from_address.rpartition("@")[2],
            )
        if has_due(store.db.conn, now):
            _send(settings, store, clock, budget or notifications.send_seconds, report)
    finally:
        if own:
            store.close()
    if report.tried:
        log.info("notifications", sent=report.sent, retrying=report.retrying, failed=report.failed, left=report.left)
    return report


def _send(settings: Settings, store: Tracking, clock: Clock, budget: float, report: SendReport) -> None:
    notifications = settings.notifications
    deadline = time.monotonic() + budget
    lease = timedelta(seconds=budget + 2 * notifications.timeout_seconds + 60)  # past this pass, however it ends
    while time.monotonic() < deadline:
        now = clock.now()
        mails = claim_due(store, now, now + lease, CLAIM)
        if not mails or not _send_claimed(settings, store, clock, mails, deadline, report):
            return


def _send_claimed(
    settings: Settings, store: Tracking, clock: Clock, mails: list[Mail], deadline: float, report: SendReport
) -> bool:
    """Send claimed mails over one connection; False when the pass must stop (time is up, the server is
    unreachable)."""
    notifications = settings.notifications
    assert notifications.from_address is not None
    connection: Connection | None = None
    try:
        for i, mail in enumerate(mails):
            if time.monotonic() >= deadline:
                release(store, mails[i:], clock.now())
                report.left += len(mails) - i
                return False
            try:
                message = (
                    compose_digest(mail, from_address=notifications.from_address, at=clock.now())
                    if mail.mode == "digest"
                    else compose(
                        mail.events[0],
                        from_address=notifications.from_address,
                        recipients=mail.recipients,
                        message_id=mail.message_id,
                        at=clock.now(),
                    )
                )
            except (ValueError, TypeError) as exc:  # a bug: the mail can never be made; the others go on
                _failed(store, mail, clock, f"cannot be composed: {exc}", report)
                continue
            try:
                if connection is None:
                    connection = Connection(notifications)
                refused = connection.send(message, notifications.from_address, mail.recipients)
            except Unreachable as exc:  # no mail can go now: every one claimed waits for its next attempt
                retrying, given_up = record_retry(store, mails[i:], clock.now(), str(exc), notifications)
                report.retrying += retrying
                report.failed += given_up
                report.error = str(exc)
                log.warning("notifications: the SMTP server cannot be used now", error=str(exc), waiting=retrying)
                return False
            except Temporary as exc:
                retrying, given_up = record_retry(store, [mail], clock.now(), str(exc), notifications)
                report.retrying += retrying
                report.failed += given_up
                report.error = str(exc)
                log.warning("notification deferred", mail=mail.key, error=str(exc))
            except Permanent as exc:
                _failed(store, mail, clock, str(exc), report)
            else:
                fault_point("notify.after_send")  # the crash window: the server has it, the store does not know
                note = "; ".join(f"refused {a}: {why}" for a, why in refused.items()) or None
                record_sent(store, mail, clock.now(), note)
                report.sent += 1
                log.info("notification sent", mail=mail.key, message_id=mail.message_id, to=len(mail.recipients))
    finally:
        if connection is not None:
            connection.close()
    return True


def _failed(store: Tracking, mail: Mail, clock: Clock, error: str, report: SendReport) -> None:
    record_failed(store, [mail], clock.now(), error)
    report.failed += 1
    report.error = error
    log.error("notification failed", mail=mail.key, error=error)
