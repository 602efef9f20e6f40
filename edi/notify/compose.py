"""The mail of one immediate notification: plain text, UTF-8, for a sender's contacts.

The subject names the status, the invoice number (or, for a file refused whole, the file) and the flow id; the body
says the reason, the findings (rule, line, location, message) or who set the status, and where the CDAR message is.
Every value a sender or a partner controls (invoice numbers, file names, findings, texts) goes through
:func:`edi.text.printable` first, so it is one line of visible characters: it can never add a header (no CR or LF
reaches one) nor a line of the body; the body is quoted-printable (long lines, any character). Headers are set
through :class:`email.message.EmailMessage`, which refuses a line break in a header outright.

Pure: reads and writes nothing; raises nothing for any stored value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from edi.lifecycle.labels import LABELS
from edi.text import printable

SUBJECT_VALUE = 80  # characters of an untrusted value kept in a subject


def label(status: str) -> str:
    """A status with its label, e.g. ``213 Rejetée``."""
    name = LABELS.get(status)
    return f"{status} {name}" if name else status


def text(value: Any, limit: int | None = None) -> str:
    """A stored value as one line of visible characters (cut to ``limit`` characters)."""
    shown = printable(str(value)) if value is not None else ""
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


def subject(event: Mapping[str, Any]) -> str:
    """The subject of an immediate notification: status, invoice (or file) and flow id."""
    detail = event["detail"]
    number = event.get("invoice_number")
    if number:
        what = f"invoice {text(number, SUBJECT_VALUE)}"
    else:
        what = f"file {text(detail.get('file_name'), SUBJECT_VALUE)}"
    return f"[edi] {label(event['status'])}: {what} (flow {text(event['flow_id'])})"


def message(
    *,
    subject_line: str,
    body: str,
    from_address: str,
    recipients: tuple[str, ...],
    message_id: str,
    at: datetime,
) -> EmailMessage:
    """A plain-text UTF-8 mail with these headers (the addresses and the Message-ID are edi's own)."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = from_address
    mail["To"] = ", ".join(recipients)
    mail["Subject"] = subject_line
    mail["Date"] = format_datetime(at)
    mail["Message-ID"] = message_id
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-reply should answer it
    mail.set_content(body, charset="utf-8", cte="quoted-printable")
    return mail


def compose(event: Mapping[str, Any], *, from_address: str, recipients: tuple[str, ...], message_id: str,
            at: datetime) -> EmailMessage:  # fmt: skip
    """The mail of one immediate notification (a row of the outbox, its ``detail`` decoded)."""
    return message(
        subject_line=subject(event),
        body="\n".join(body_lines(event)) + "\n",
        from_address=from_address,
        recipients=recipients,
        message_id=message_id,
        at=at,
    )


def body_lines(event: Mapping[str, Any]) -> list[str]:
    """What one notification says, as lines (an immediate mail's body; a digest's entry)."""
    if event["kind"] == "status":
        return _status_lines(event)
    return _decision_lines(event)


def _decision_lines(event: Mapping[str, Any]) -> list[str]:
    detail, status = event["detail"], event["status"]
    verdict = {"200": "accepted", "213": "rejected", "501": "could not read"}.get(status, "decided on")
    lines = [f"edi {verdict} a document that {text(event['sender'])} deposited.", ""]
    lines += _facts(
        [
            ("Status", label(status)),
            ("Reason", detail.get("reason")),
            ("Invoice", _invoice(detail)),
            ("Seller", " ".join(text(v) for v in (detail.get("seller_id"), detail.get("seller_name")) if v)),
            ("Buyer", detail.get("buyer_name")),
            ("File", _file(detail, int(event.get("idx") or 0))),
            ("Flow", f"{text(event['flow_id'])} ({text(detail.get('flow_status'))})"),
            ("CDAR", detail.get("cdar") and f"acks/{text(event['sender'])}/{text(detail['cdar'])}"),
        ]
    )
    findings = detail.get("findings") or []
    if findings:
        total = int(detail.get("findings_total") or len(findings))
        lines += ["", f"Findings ({total}" + (f", the first {len(findings)}" if total > len(findings) else "") + "):"]
        for finding in findings:
            head = text(finding.get("code"))
            if finding.get("rule") and finding.get("rule") != finding.get("code"):
                head += f" [{text(finding['rule'])}]"
            if finding.get("line"):
                head += f" line {text(finding['line'])}"
            lines.append(f"  - {head}: {text(finding.get('message'))}")
            if finding.get("xpath"):
                lines.append(f"    at {text(finding['xpath'])}")
    return lines


def _status_lines(event: Mapping[str, Any]) -> list[str]:
    detail = event["detail"]
    lines = [f"A recipient set a status on an invoice that {text(event['sender'])} deposited.", ""]
    lines += _facts(
        [
            ("Status", label(event["status"])),
            ("Reason", detail.get("reason")),
            ("Text", detail.get("text")),
            ("Set by", detail.get("set_by")),
            ("Set at", detail.get("set_at")),
            ("Invoice", _invoice(detail)),
            ("Seller", detail.get("seller_id")),
            ("Deposited", f"flow {text(event['flow_id'])}, document {text(event.get('idx'))}"),
            ("Status flow", f"{text(detail.get('status_flow'))}, document {text(detail.get('status_index'))}"),
            ("CDAR", detail.get("relay") and f"acks/{text(event['sender'])}/{text(detail['relay'])}"),
        ]
    )
    return lines


def _facts(pairs: list[tuple[str, Any]]) -> list[str]:
    return [f"{name + ':':12} {text(value)}" for name, value in pairs if value]


def _invoice(detail: Mapping[str, Any]) -> str | None:
    number = detail.get("invoice_number")
    if not number:
        return None
    date = detail.get("issue_date")
    return text(number) + (f" of {text(date)}" if date else "")


def _file(detail: Mapping[str, Any], index: int) -> str:
    name, member = text(detail.get("file_name")), detail.get("name")
    if index and member and member != detail.get("file_name"):
        return f"{name}, document {index}: {text(member)}"
    return name + (f", document {index}" if index else "")
