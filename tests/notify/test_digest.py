"""edi.notify.digest through the real sender loop and a real SMTP server: one digest per sender per day, once the
day is over, with every notification of that day that was not sent at once (FixedClock sets the days)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edi.notify.digest import digest_body, digest_subject
from edi.notify.outbox import Mail
from edi.notify.policy import policy_for
from edi.notify.send import send_due
from edi.runner import run_batch
from edi.store import WORKSPACE_ID, open_store
from tests.conftest import FLOWS, FixedClock, Workspace
from tests.notify.conftest import invoice_ref, status_ack
from tests.smtp_server import SmtpServer


def next_day(moment: datetime, hours: float = 1) -> datetime:
    """``hours`` into the UTC day after ``moment``'s."""
    midnight = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    return midnight + timedelta(hours=hours)


def test_one_digest_per_sender_per_day(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """Accepted invoices (200) and a recipient's 204 of day 1 make one digest for acme and one for opdemat, sent once
    day 1 is over and not before; day 2's invoice waits for day 2's digest; nothing is sent twice."""
    ws = notify_workspace()
    ws.drop("acme", "01-ubl-invoice.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    ws.drop("opdemat", "01-initech-cii-basic.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes())
    run_batch(ws.settings, clock=clock)
    store = open_store(ws.settings.workspace.layout())
    try:
        invoice = next(iter(store.db.query("SELECT flow_id FROM documents WHERE invoice_number = 'FA-2026-0001'")))
        store.notifications = policy_for(ws.settings, store.meta(WORKSPACE_ID))
        ack = status_ack("S1", "mairie", [{"status": "204", "invoice": invoice_ref(invoice["flow_id"], 1, "acme")}])
        store.record_outcomes([ack], clock.now())  # a status flow, as the contract shapes its acknowledgement
    finally:
        store.close()
    day1 = clock.now().date().isoformat()
    assert send_due(ws.settings, clock=clock, digests=True).digests == 0  # the day is not over
    clock.moment = next_day(clock.now())
    ws.drop("acme", "02-ubl-creditnote.xml", (FLOWS / "acme" / "02-ubl-creditnote.xml").read_bytes())
    run_batch(ws.settings, clock=clock)
    report = send_due(ws.settings, clock=clock, digests=True)
    assert (report.digests, report.sent) == (2, 2)
    mails = {str(r.message["Subject"]): r for r in smtp.received}
    assert set(mails) == {f"[edi] acme: 2 invoice statuses of {day1}", f"[edi] opdemat: 1 invoice status of {day1}"}
    acme = mails[f"[edi] acme: 2 invoice statuses of {day1}"]
    assert acme.rcpt_tos == ["factures@acme.example", "compta@acme.example"]
    assert "FA-2026-0001" in acme.body and "204 Prise en charge" in acme.body and "200 Déposée" in acme.body
    assert "Set by:      mairie" in acme.body
    assert "AV-2026-0001" not in acme.body  # day 2
    assert mails[f"[edi] opdemat: 1 invoice status of {day1}"].rcpt_tos == ["ops@opdemat.example"]
    assert send_due(ws.settings, clock=clock, digests=True).sent == 0
    clock.moment = next_day(clock.now())
    report = send_due(ws.settings, clock=clock, digests=True)
    assert (report.digests, report.sent) == (1, 1)
    assert "AV-2026-0001" in smtp.received[-1].body and len(smtp.received) == 3
    ids = {str(r.message["Message-ID"]).strip() for r in smtp.received}
    assert len(ids) == 3


def test_the_digest_counts_by_status_and_escapes_what_it_shows() -> None:
    """The body counts the day's notifications by status, then lists each; a value with a line break stays on its
    line."""
    event = {
        "kind": "decision",
        "status": "200",
        "sender": "acme",
        "flow_id": "F1",
        "idx": 1,
        "queued_at": "2026-12-05T10:00:00.000Z",
        "invoice_number": "A\nForged: line",
        "detail": {"file_name": "f.xml", "invoice_number": "A\nForged: line", "flow_status": "IN_INTEGRE"},
    }
    mail = Mail(
        "digest:acme:2026-12-05:1",
        "<m@x>",
        "acme",
        ("a@acme.example",),
        "digest",
        "2026-12-05",
        1,
        datetime(2026, 12, 6, tzinfo=UTC),
        (event, event | {"status": "204", "kind": "status"}),
    )
    assert digest_subject(mail) == "[edi] acme: 2 invoice statuses of 2026-12-05"
    body = digest_body(mail)
    assert "      1  200 Déposée\n      1  204 Prise en charge\n" in body
    assert "A\\nForged: line" in body and "\nForged" not in body
