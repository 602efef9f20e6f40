"""The notifications outbox: the store's ``notifications`` table (made by :mod:`edi.tracking`, filled by
:mod:`edi.notify.policy` in the transaction that records each status) as mails to send.

A mail is the rows that share its ``mail`` key: one row for an immediate notification, a sender's day of the others
for a digest (formed once the day has ended, :func:`form_digests`). A mail is due when it is queued and its
``next_attempt_at`` has come. :func:`claim_due` takes due mails for one sending pass, in one write transaction, by
moving their next attempt past a lease: two processes never send the same mail at once, and a mail whose sender
died mid-way is due again once the lease is over (at least once: the same Message-ID each time). Its outcome is then
recorded: sent, retried later (back-off), or failed (a permanent refusal, or given up after ``give_up_seconds``).

Reads and writes the tracking store (through :class:`edi.tracking.Tracking`'s connection and write transactions);
the reads for people (:func:`listing`, :func:`counts`) take any connection, a read-only one included (edi.browse).
Raises sqlite3 errors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from edi.clock import iso
from edi.config import NotificationSettings
from edi.notify.policy import message_id
from edi.tracking import Tracking

STATES = ("queued", "sent", "failed")
MAX_ERROR = 500  # characters of a server's answer kept


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail to send, claimed for a pass: its key, Message-ID, who it goes to, and the events it tells of."""

    key: str
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    mode: str  # immediate | digest
    day: str | None
    attempts: int  # this one included
    due_at: datetime
    events: tuple[dict[str, Any], ...]  # its rows, oldest first, ``detail`` decoded


def form_digests(store: Tracking, now: datetime, zone: ZoneInfo, workspace: str, domain: str) -> int:
    """Gather the digest rows of each sender's days that have ended (in ``zone``) into one mail per sender and day,
    due now; return how many digests were formed. Rows recorded for a day after its digest was formed (a clock
    stepped back) make a second digest of that day, with its own Message-ID."""
    today = now.astimezone(zone).date().isoformat()
    conn, when = store.db.conn, iso(now)
    formed = 0
    with store.transaction():
        groups = conn.execute(
            "SELECT sender, day FROM notifications WHERE mail IS NULL AND day < ? GROUP BY sender, day ORDER BY day",
            [today],
        ).fetchall()
        for sender, day in groups:
            prefix = f"digest:{sender}:{day}:"
            (earlier,) = conn.execute(
                "SELECT count(DISTINCT mail) FROM notifications WHERE mail >= ? AND mail < ?",
                [prefix, prefix[:-1] + ";"],  # ";" follows ":": the keys starting with the prefix
            ).fetchone()
            key = f"{prefix}{earlier + 1}"
            conn.execute(
                "UPDATE notifications SET mail = ?, message_id = ?, due_at = ?, next_attempt_at = ? "
                "WHERE mail IS NULL AND sender = ? AND day = ?",
                [key, message_id(key, workspace, domain), when, when, sender, day],
            )
            formed += 1
    return formed


def has_due(conn: sqlite3.Connection, now: datetime) -> bool:
    """Whether some mail is due (a read, no transaction: what a pass of ``edi watch`` asks first)."""
    row = conn.execute(
        "SELECT 1 FROM notifications WHERE state = 'queued' AND next_attempt_at <= ? LIMIT 1", [iso(now)]
    ).fetchone()
    return row is not None


def claim_due(store: Tracking, now: datetime, lease_until: datetime, limit: int) -> list[Mail]:
    """Take up to ``limit`` due mails, oldest due first, for a sending pass: each counts one more attempt and is not
    due again before ``lease_until`` unless its outcome is recorded (or it is released) first."""
    conn = store.db.conn
    mails: list[Mail] = []
    with store.transaction():
        keys = [
            str(r[0])
            for r in conn.execute(
                "SELECT mail FROM notifications WHERE state = 'queued' AND next_attempt_at <= ? "
                "GROUP BY mail ORDER BY min(next_attempt_at), min(id) LIMIT ?",
                [iso(now), limit],
            )
        ]
        for key in keys:
            conn.execute(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ? WHERE mail = ? AND state = ?",
                [iso(lease_until), key, "queued"],
            )
            rows = list(store.db.query("SELECT * FROM notifications WHERE mail = ? ORDER BY id", [key]))
            mails.append(_mail(key, rows))
    return mails


def _mail(key: str, rows: list[dict[str, Any]]) -> Mail:
    recipients: list[str] = []
    for row in rows:  # a digest's rows may have been queued under different addresses: all of them are told
        recipients += [a for a in json.loads(row["recipients"] or "[]") if a not in recipients]
    first = rows[0]
    return Mail(
        key=key,
        message_id=str(first["message_id"]),
        sender=str(first["sender"]),
        recipients=tuple(recipients),
        mode=str(first["mode"]),
        day=first["day"],
        attempts=max(int(r["attempts"] or 0) for r in rows),
        due_at=_instant(first["due_at"] or first["queued_at"]),
        events=tuple({**r, "detail": json.loads(r["detail"] or "{}")} for r in rows),
    )


def record_sent(store: Tracking, mail: Mail, at: datetime, note: str | None = None) -> None:
    """The server took the mail (``note``: the addresses it refused, if it refused some)."""
    with store.transaction():
        store.db.conn.execute(
            "UPDATE notifications SET state = 'sent', sent_at = ?, last_error = ? WHERE mail = ?",
            [iso(at), _cut(note), mail.key],
        )


def record_failed(store: Tracking, mails: Sequence[Mail], at: datetime, error: str) -> None:
    """These mails will not be sent: refused for good, or given up."""
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE notifications SET state = 'failed', next_attempt_at = NULL, last_error = ? WHERE mail = ?",
            [[_cut(f"{iso(at)}: {error}"), m.key] for m in mails],
        )


def record_retry(
    store: Tracking, mails: Sequence[Mail], at: datetime, error: str, settings: NotificationSettings
) -> tuple[int, int]:
    """These mails could not be sent now (the server is down, or answered a temporary error): each is tried again
    after its back-off, or given up once ``give_up_seconds`` have passed since it was due. Returns (to retry, given
    up)."""
    retry, give_up = [], []
    for mail in mails:
        if (at - mail.due_at).total_seconds() >= settings.give_up_seconds:
            give_up.append(mail)
        else:
            retry.append([iso(at + timedelta(seconds=backoff(mail.attempts, settings))), _cut(error), mail.key])
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE notifications SET next_attempt_at = ?, last_error = ? WHERE mail = ? AND state = 'queued'", retry
        )
    if give_up:
        hours = settings.give_up_seconds / 3600
        record_failed(store, give_up, at, f"given up after {hours:g} h; last error: {error}")
    return len(retry), len(give_up)


def release(store: Tracking, mails: Sequence[Mail], at: datetime) -> None:
    """Give back mails claimed but not tried (the pass ran out of time): due at once, the attempt not counted."""
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE notifications SET attempts = attempts - 1, next_attempt_at = ? WHERE mail = ? AND state = 'queued'",
            [[iso(at), m.key] for m in mails],
        )


def retry_failed(store: Tracking, at: datetime, sender: str | None = None) -> int:
    """Queue the failed notifications (of ``sender``, or all) again, due now with a new give-up time, attempts counted
    from 0 (an operator fixed what made them fail); return how many rows."""
    where, args = "state = 'failed'", [iso(at), iso(at)]
    if sender:
        where += " AND sender = ?"
        args.append(sender)
    with store.transaction():
        cursor = store.db.conn.execute(
            f"UPDATE notifications SET state = 'queued', attempts = 0, due_at = ?, next_attempt_at = ? WHERE {where}",
            args,
        )
    return int(cursor.rowcount)


def prune(store: Tracking, cutoff: datetime) -> int:
    """Delete the notifications sent or failed that were queued before ``cutoff`` (retention); never a queued one.
    Returns how many went."""
    with store.transaction():
        cursor = store.db.conn.execute(
            "DELETE FROM notifications WHERE state IN ('sent', 'failed') AND queued_at < ?", [iso(cutoff)]
        )
    return int(cursor.rowcount)


def backoff(attempts: int, settings: NotificationSettings) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``retry_seconds``, doubling, at most
    ``retry_max_seconds``."""
    return float(min(settings.retry_seconds * 2 ** min(max(attempts - 1, 0), 30), settings.retry_max_seconds))


def listing(
    conn: sqlite3.Connection, *, state: str | None = None, sender: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Notifications, newest first (the ``detail`` decoded), filtered by state and sender: what ``edi notifications``
    shows (and the console may)."""
    where, args = [], []
    if state:
        where.append("state = ?")
        args.append(state)
    if sender:
        where.append("sender = ?")
        args.append(sender)
    sql = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
    cursor = conn.execute(f"{sql} LIMIT ?", [*args, limit])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor]
    for row in rows:
        row["detail"] = json.loads(row["detail"] or "{}")
        row["recipients"] = json.loads(row["recipients"] or "[]")
    return rows


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many notifications are in each state (every state named, 0 included)."""
    found = dict(conn.execute("SELECT state, count(*) FROM notifications GROUP BY state").fetchall())
    return {state: int(found.get(state, 0)) for state in STATES}


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
