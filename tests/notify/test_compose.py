"""edi.notify.compose: what an immediate mail says, and that nothing a sender or partner controls can add a header,
a recipient or a line to it."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from edi.notify.compose import compose, subject

AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
HOSTILE = "A-1\r\nBcc: evil@attacker.example\r\n\r\n.\r\nMAIL FROM:<x@y>\x1b[31m\u202e"


def event(**detail: Any) -> dict[str, Any]:
    base = {
        "file_name": "batch.zip",
        "flow_status": "IN_REJETE",
        "name": "inner.xml",
        "reason": "REJ_SEMAN",
        "invoice_number": "F-1",
        "issue_date": "2026-11-20",
        "findings": [{"code": "REJ_SEMAN", "rule": "BR-CO-10", "message": "sum of lines", "line": 42, "xpath": "/x"}],
        "findings_total": 1,
        "cdar": "F1.0002.cdar.xml",
    }
    merged = base | detail
    return {
        "kind": "decision",
        "status": "213",
        "sender": "acme",
        "flow_id": "F1",
        "idx": 2,
        "invoice_number": merged["invoice_number"],
        "detail": merged,
    }


def parsed(mail: EmailMessage) -> EmailMessage:
    message = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_mail_says_status_invoice_flow_reason_and_findings() -> None:
    """Subject: status, invoice number, flow id; body: the reason, each finding with rule, line and location, the
    file and the CDAR message's path; headers: the stable Message-ID, Auto-Submitted."""
    mail = parsed(
        compose(
            event(), from_address="edi@p.example", recipients=("a@acme.example",), message_id="<m1@p.example>", at=AT
        )
    )
    assert mail["Subject"] == "[edi] 213 Rejetée: invoice F-1 (flow F1)"
    assert mail["Message-ID"] == "<m1@p.example>" and mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_body(("plain",))
    assert body is not None
    text = str(body.get_content()).replace("\r\n", "\n")
    assert "Reason:      REJ_SEMAN\n" in text
    assert "  - REJ_SEMAN [BR-CO-10] line 42: sum of lines\n    at /x\n" in text
    assert "File:        batch.zip, document 2: inner.xml\n" in text
    assert "CDAR:        acks/acme/F1.0002.cdar.xml\n" in text


def test_hostile_values_add_no_header_no_recipient_and_no_line() -> None:
    """CR, LF, a lone dot, an escape sequence and a bidi control in the invoice number, the file name, a finding and
    its location are shown escaped: the headers are exactly edi's, the subject one line, the body as many lines as
    for harmless values, every wire line within 78 characters."""
    hostile = event(
        invoice_number=HOSTILE,
        file_name=HOSTILE,
        name=HOSTILE,
        reason=HOSTILE,
        findings=[{"code": "REJ_SEMAN", "rule": HOSTILE, "message": HOSTILE * 50, "xpath": HOSTILE}],
    )
    harmless = event(
        invoice_number="x",
        file_name="x",
        name="y",
        reason="x",
        findings=[{"code": "REJ_SEMAN", "rule": "x", "message": "x", "xpath": "x"}],
    )
    made = compose(hostile, from_address="edi@p.example", recipients=("a@acme.example",), message_id="<m@p>", at=AT)
    wire = made.as_bytes()
    assert all(len(line) <= 78 for line in wire.split(b"\r\n"))
    mail = parsed(made)
    assert sorted(mail.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
        ]
    )
    assert mail["To"] == "a@acme.example" and mail["Bcc"] is None
    assert "\n" not in str(mail["Subject"]) and "A-1\\r\\nBcc: evil@attacker.example" in str(mail["Subject"])
    body = mail.get_body(("plain",))
    assert body is not None
    text = str(body.get_content()).replace("\r\n", "\n")
    plain = parsed(
        compose(harmless, from_address="e@p.example", recipients=("a@acme.example",), message_id="<m@p>", at=AT)
    ).get_body(("plain",))
    assert plain is not None
    assert len(text.split("\n")) == len(str(plain.get_content()).replace("\r\n", "\n").split("\n"))
    assert "\x1b" not in text and "\u202e" not in text and "\nBcc" not in text and "\n.\n" not in text


def test_a_file_refused_whole_is_named_in_the_subject() -> None:
    """Without an invoice number (a file that could not be read), the subject names the file, cut to 80 characters."""
    refused = event(invoice_number=None, file_name="f" * 200) | {"status": "501", "idx": 0}
    assert subject(refused) == f"[edi] 501 Irrecevable: file {'f' * 77}... (flow F1)"


def test_a_status_mail_says_who_set_it_and_why() -> None:
    """A recipient's status: its label, reason, text, who set it and when, the invoice, the relayed CDAR message."""
    status = {
        "kind": "status",
        "status": "210",
        "sender": "acme",
        "flow_id": "F1",
        "idx": 2,
        "invoice_number": "F-2",
        "detail": {
            "set_by": "mairie",
            "set_at": "2026-12-05T09:00:00.000Z",
            "reason": "CMD_ERR",
            "text": "no order",
            "invoice_number": "F-2",
            "issue_date": "2026-11-20",
            "status_flow": "S1",
            "status_index": 1,
            "relay": "S1.0001.cdar.xml",
        },
    }
    mail = parsed(
        compose(status, from_address="e@p.example", recipients=("a@acme.example",), message_id="<m@p>", at=AT)
    )
    assert mail["Subject"] == "[edi] 210 Refusée: invoice F-2 (flow F1)"
    body = mail.get_body(("plain",))
    assert body is not None
    text = str(body.get_content()).replace("\r\n", "\n")
    for line in (
        "Reason:      CMD_ERR",
        "Text:        no order",
        "Set by:      mairie",
        "Invoice:     F-2 of 2026-11-20",
        "CDAR:        acks/acme/S1.0001.cdar.xml",
    ):
        assert line in text
