"""The daily digest: one mail per sender and day with every notification of that day that was not sent at once
(by default every status but 213, 501 and 210), counted by status, then one entry each.

A digest is formed once its day has ended in the digests' time zone (:func:`edi.notify.outbox.form_digests`): the
rows of a day are recorded during that day, so the digest of a day that has ended is complete. Pure: reads and writes
nothing; every untrusted value goes through :mod:`edi.notify.compose`'s escaping.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from email.message import EmailMessage

from edi.notify.compose import body_lines, label, message, text
from edi.notify.outbox import Mail


def digest_subject(mail: Mail) -> str:
    """``[edi] acme: 12 invoice statuses of 2026-12-05``."""
    count = len(mail.events)
    noun = "invoice status" if count == 1 else "invoice statuses"
    return f"[edi] {text(mail.sender)}: {count} {noun} of {text(mail.day)}"


def digest_body(mail: Mail) -> str:
    """The counts by status, then each notification (oldest first), separated by a rule."""
    by_status = Counter(str(e["status"]) for e in mail.events)
    lines = [f"What happened on {text(mail.day)} to the invoices {text(mail.sender)} deposited:", ""]
    lines += [f"  {n:5}  {label(status)}" for status, n in sorted(by_status.items())]
    for event in mail.events:
        lines += ["", "-" * 72, f"Recorded at {text(event.get('queued_at'))}"]
        lines += body_lines(event)
    return "\n".join(lines) + "\n"


def compose_digest(mail: Mail, *, from_address: str, at: datetime) -> EmailMessage:
    """The digest mail of a sender's day."""
    return message(
        subject_line=digest_subject(mail),
        body=digest_body(mail),
        from_address=from_address,
        recipients=mail.recipients,
        message_id=mail.message_id,
        at=at,
    )
