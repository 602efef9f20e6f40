"""edi.notify.send against a real SMTP server (aiosmtpd on 127.0.0.1): each event mailed once, whatever the server
does meanwhile (down, 4xx, 5xx, no STARTTLS, no TLS), and ``edi batch`` neither failed nor held up by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from edi.cli import main
from edi.config import load_settings
from edi.notify.policy import policy_for
from edi.notify.send import send_due
from edi.runner import run_batch
from edi.store import WORKSPACE_ID, open_store
from tests.conftest import FLOWS, REPO, FixedClock, Workspace
from tests.notify.conftest import NOTIFY_CONFIG, invoice_ref, status_ack
from tests.smtp_server import SmtpServer

EDI = Path(sys.executable).with_name("edi")
REJECTED = (FLOWS / "acme" / "05-unknown-recipient.xml").read_bytes()  # 213 DEST_INC, invoice FA-2026-0005
ACCEPTED = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()


def edi(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(EDI)] if EDI.is_file() else [sys.executable, "-m", "edi"]
    return subprocess.run(
        [*command, "--config", str(ws.config), *args], capture_output=True, text=True, timeout=120, check=False
    )


def listed(ws: Workspace, *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(main, ["--config", str(ws.config), "notifications", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def rejected_flow(ws: Workspace) -> str:
    for path in ws.acks("acme"):
        ack = json.loads(path.read_text(encoding="utf-8"))
        if ack["status"] == "IN_REJETE":
            return str(ack["flow_id"])
    raise AssertionError("no rejected flow")


def test_edi_batch_mails_a_rejected_invoice_once(notify_workspace: Callable[..., Workspace], smtp: SmtpServer) -> None:
    """A real `edi batch` sends the 213 before it exits, to every address of the sender, with the status, invoice
    number and flow id in the subject and the reason and finding in the body; the accepted invoice waits for the
    digest; a second run sends nothing again."""
    ws = notify_workspace()
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    ws.drop("acme", "01-ubl-invoice.xml", ACCEPTED)
    result = edi(ws, "batch")
    assert result.returncode == 0, result.stderr
    assert "notifications: 1 sent" in result.stdout
    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert got.mail_from == "edi@platform.example"
    assert got.rcpt_tos == ["factures@acme.example", "compta@acme.example"]
    flow_id = rejected_flow(ws)
    message = got.message
    assert message["Subject"] == f"[edi] 213 Rejetée: invoice FA-2026-0005 (flow {flow_id})"
    assert message["To"] == "factures@acme.example, compta@acme.example"
    assert message.get_content_type() == "text/plain" and message.get_content_charset() == "utf-8"
    assert "Reason:      DEST_INC" in got.body and "  - DEST_INC" in got.body
    assert f"CDAR:        acks/acme/{flow_id}.0001.cdar.xml" in got.body
    rows = listed(ws)
    assert [(r["status"], r["mode"], r["state"]) for r in rows] == [
        ("200", "digest", "queued"),
        ("213", "immediate", "sent"),
    ]
    assert message["Message-ID"].strip() == rows[1]["message_id"]  # folded onto its own line when long
    assert edi(ws, "batch").returncode == 0
    assert len(smtp.received) == 1


def test_hostile_names_and_numbers_cannot_add_a_header(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer
) -> None:
    """An invoice number carrying CR LF and a Bcc header (XSD-valid: whitespace is normalised for validation), and a
    file name carrying them (a file refused whole: its name is in the subject), stay inside their subject: no Bcc, no
    extra recipient."""
    ws = notify_workspace()
    hostile = REJECTED.replace(b"<cbc:ID>FA-2026-0005<", b"<cbc:ID>FA-9&#13;&#10;Bcc: evil@attacker.example<", 1)
    ws.drop("acme", "hostile.xml", hostile)
    ws.drop("acme", "x\r\nBcc: evil@attacker.example\r\n.xml", b"not xml at all")
    assert edi(ws, "batch").returncode == 0
    assert len(smtp.received) == 2
    subjects = sorted(str(got.message["Subject"]) for got in smtp.received)
    assert "invoice FA-9 Bcc: evil@attacker.example (flow" in subjects[0]
    assert "file x\\r\\nBcc: evil@attacker.example\\r\\n.xml (flow" in subjects[1]
    for got in smtp.received:
        assert got.rcpt_tos == ["factures@acme.example", "compta@acme.example"]
        assert got.message["Bcc"] is None
        assert b"\nBcc:" not in got.data


def test_a_down_server_neither_fails_nor_holds_up_edi_batch(notify_workspace: Callable[..., Workspace]) -> None:
    """With nothing listening on the port, `edi batch` processes, exits 0 at once and says the mail waits; the
    notification stays queued with the error, due after retry_seconds."""
    ws = notify_workspace()
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    started = time.monotonic()
    result = edi(ws, "batch")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert "1 integrated" not in result.stdout and "1 rejected" in result.stdout
    assert "notifications: 0 sent, 1 to retry (last error: 127.0.0.1:" in result.stdout
    (row,) = listed(ws)
    assert row["state"] == "queued" and row["attempts"] == 1 and "127.0.0.1" in str(row["last_error"])


def test_a_server_down_then_up_gets_every_mail_once(
    notify_workspace: Callable[..., Workspace], port: int, clock: FixedClock
) -> None:
    """Mails queued while the server is down are all sent, once each, at their next attempt after it is up."""
    ws = notify_workspace()
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    ws.drop("acme", "hostile.xml", REJECTED.replace(b">FA-2026-0005<", b">FA-2026-0006<", 1))
    run_batch(ws.settings, clock=clock)
    down = send_due(ws.settings, clock=clock)
    assert (down.sent, down.retrying) == (0, 2)
    server = SmtpServer(port)
    try:
        assert send_due(ws.settings, clock=clock).sent == 0  # not due again yet
        clock.advance(60)
        assert send_due(ws.settings, clock=clock).sent == 2
        clock.advance(3600)
        assert send_due(ws.settings, clock=clock).sent == 0
        numbers = sorted(str(r.message["Subject"]).split()[4] for r in server.received)
        assert numbers == ["FA-2026-0005", "FA-2026-0006"]
    finally:
        server.stop()


def test_a_mail_due_when_the_store_is_replaced_with_force_is_sent_once_after(
    notify_workspace: Callable[..., Workspace], port: int, clock: FixedClock
) -> None:
    """`edi store rebuild --force` keeps the notifications: the mail queued while the server was down is sent once
    when it is up, not lost with the old store, and not sent again."""
    ws = notify_workspace()
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    assert send_due(ws.settings, clock=clock).retrying == 1
    rebuilt = CliRunner().invoke(main, ["--config", str(ws.config), "store", "rebuild", "--force"])
    assert rebuilt.exit_code == 0 and "notifications 1" in rebuilt.output, rebuilt.output
    server = SmtpServer(port)
    try:
        clock.advance(60)
        assert send_due(ws.settings, clock=clock).sent == 1
        clock.advance(3600)
        assert send_due(ws.settings, clock=clock).sent == 0
        assert [str(r.message["Subject"]).split()[4] for r in server.received] == ["FA-2026-0005"]
    finally:
        server.stop()


def test_a_temporary_error_then_success_sends_it_once(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """A 451 answer leaves the mail queued with the answer; the next attempt, after the back-off, delivers it once."""
    ws = notify_workspace()
    smtp.mailbox.replies.append("451 4.3.0 try again later")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    first = send_due(ws.settings, clock=clock)
    assert (first.sent, first.retrying, smtp.mailbox.refused, len(smtp.received)) == (0, 1, 1, 0)
    (row,) = listed(ws)
    assert row["state"] == "queued" and "451 4.3.0 try again later" in str(row["last_error"])
    clock.advance(60)
    assert send_due(ws.settings, clock=clock).sent == 1
    clock.advance(86400)
    assert send_due(ws.settings, clock=clock).sent == 0
    assert len(smtp.received) == 1


def test_a_permanent_error_fails_at_once_for_the_operator_to_see(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """A 554 answer fails the mail at once (never tried again); `edi notifications --state failed` shows it with the
    server's answer."""
    ws = notify_workspace()
    smtp.mailbox.replies.append("554 5.7.1 rejected by policy")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    assert send_due(ws.settings, clock=clock).failed == 1
    clock.advance(86400)
    assert send_due(ws.settings, clock=clock).sent == 0
    assert smtp.received == [] and smtp.mailbox.refused == 1
    result = CliRunner().invoke(main, ["--config", str(ws.config), "notifications", "--state", "failed"])
    assert result.exit_code == 0
    assert "554 5.7.1 rejected by policy" in result.output and "FA-2026-0005" in result.output


def test_a_server_down_for_too_long_is_given_up(notify_workspace: Callable[..., Workspace], clock: FixedClock) -> None:
    """Past give_up_seconds since it was due, a mail the server never took is failed, with the last error."""
    ws = notify_workspace(extra="give_up_seconds = 600\n")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    assert send_due(ws.settings, clock=clock).retrying == 1
    clock.advance(600)
    assert send_due(ws.settings, clock=clock).failed == 1
    (row,) = listed(ws, "--state", "failed")
    assert "given up after" in str(row["last_error"])


def test_starttls_missing_is_refused_without_sending_in_clear(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """security = starttls against a server that does not offer it: nothing is sent; the mail waits, saying why."""
    ws = notify_workspace(security="starttls")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    report = send_due(ws.settings, clock=clock)
    assert (report.sent, report.retrying) == (0, 1)
    assert "does not offer STARTTLS" in str(report.error)
    assert smtp.received == []


def test_tls_to_a_plain_server_is_refused_cleanly(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """security = tls against a server that speaks plain SMTP: the handshake fails, nothing is sent, the mail
    waits."""
    ws = notify_workspace(security="tls")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings, clock=clock)
    report = send_due(ws.settings, clock=clock)
    assert (report.sent, report.retrying) == (0, 1) and smtp.received == []


def test_starttls_and_tls_deliver_with_the_configured_ca(
    notify_workspace: Callable[..., Workspace], port: int, clock: FixedClock, certificate: tuple[Path, Path]
) -> None:
    """With ca_file naming the server's certificate, STARTTLS and TLS connections are verified and deliver; a
    login is only ever sent over them."""
    for security in ("starttls", "tls"):
        server = SmtpServer(port, security, certificate)
        try:
            ws = notify_workspace(security=security, extra=f'ca_file = "{certificate[0]}"\n')
            ws.drop("acme", f"{security}.xml", REJECTED.replace(b">FA-2026-0005<", f">FA-{security}<".encode(), 1))
            run_batch(ws.settings, clock=clock)
            assert send_due(ws.settings, clock=clock).sent == 1
            assert len(server.received) == 1
        finally:
            server.stop()


def test_an_untrusted_certificate_is_refused(
    notify_workspace: Callable[..., Workspace], port: int, clock: FixedClock, certificate: tuple[Path, Path]
) -> None:
    """Without ca_file, a self-signed certificate fails verification: nothing is sent."""
    server = SmtpServer(port, "starttls", certificate)
    try:
        ws = notify_workspace(security="starttls")
        ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
        run_batch(ws.settings, clock=clock)
        report = send_due(ws.settings, clock=clock)
        assert (report.sent, report.retrying) == (0, 1) and "CERTIFICATE_VERIFY_FAILED" in str(report.error)
        assert server.received == []
    finally:
        server.stop()


def test_a_refusal_from_a_recipient_is_mailed_at_once_to_the_invoice_sender(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer, clock: FixedClock
) -> None:
    """A status flow's new 210 (its acknowledgement shaped as the contract says) queued with its outcome goes to the
    invoice's sender at the next pass, naming the invoice's flow; the partner who sent it is not mailed."""
    ws = notify_workspace()
    ws.drop("acme", "01-ubl-invoice.xml", ACCEPTED)
    run_batch(ws.settings, clock=clock)
    store = open_store(ws.settings.workspace.layout())
    try:
        store.notifications = policy_for(ws.settings, store.meta(WORKSPACE_ID))
        invoice = next(iter(store.db.query("SELECT flow_id FROM documents WHERE invoice_number = 'FA-2026-0001'")))
        ref = invoice_ref(invoice["flow_id"], 1, "acme", "FA-2026-0001")
        ack = status_ack("S1", "mairie", [{"status": "210", "reason": "CMD_ERR", "text": "no order", "invoice": ref}])
        store.record_outcomes([ack], clock.now())
    finally:
        store.close()
    assert send_due(ws.settings, clock=clock).sent == 1
    (got,) = smtp.received
    assert got.rcpt_tos == ["factures@acme.example", "compta@acme.example"]
    assert got.message["Subject"] == f"[edi] 210 Refusée: invoice FA-2026-0001 (flow {invoice['flow_id']})"
    assert "Reason:      CMD_ERR" in got.body and "Set by:      mairie" in got.body


def test_off_by_default_nothing_is_queued(make_workspace: Callable[..., Workspace], port: int) -> None:
    """A workspace without [notifications] (its senders have addresses) processes a rejected invoice and queues
    nothing; `edi notifications` says so."""
    text = NOTIFY_CONFIG[: NOTIFY_CONFIG.index("[notifications]")]
    ws = make_workspace(text)
    assert ws.settings.sender("acme") is not None and ws.settings.notifications.enabled is False
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    result = edi(ws, "batch")
    assert result.returncode == 0 and "notifications" not in result.stdout
    assert listed(ws) == []
    shown = CliRunner().invoke(main, ["--config", str(ws.config), "notifications"])
    assert shown.exit_code == 0 and shown.output == "no notifications\n"


def test_a_crash_after_the_server_took_a_mail_sends_it_again_with_the_same_message_id(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer
) -> None:
    """The at-least-once window: `edi notifications --send` killed (SIGKILL) after the server took the mail and before
    its outcome was recorded leaves it queued and claimed; once the claim's lease is over the next pass sends it again,
    with the same Message-ID; nothing is lost, and it is then recorded sent."""
    ws = notify_workspace(extra="send_seconds = 1\ntimeout_seconds = 1\n")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    run_batch(ws.settings)
    command = [str(EDI)] if EDI.is_file() else [sys.executable, "-m", "edi"]
    killed = subprocess.run(
        [*command, "--config", str(ws.config), "notifications", "--send"],
        env={**os.environ, "EDI_FAULTS": "notify.after_send=crash"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9
    (row,) = listed(ws)
    assert row["state"] == "queued" and row["attempts"] == 1 and len(smtp.received) == 1
    assert send_due(ws.settings).sent == 0  # its lease (send_seconds + 2 timeouts + 60 s) still holds it
    later = FixedClock(datetime.now(UTC) + timedelta(seconds=64))
    assert send_due(ws.settings, clock=later).sent == 1
    first, second = smtp.received
    assert str(first.message["Message-ID"]).strip() == str(second.message["Message-ID"]).strip() == row["message_id"]
    assert listed(ws)[0]["state"] == "sent"


def test_failed_notifications_can_be_queued_again_by_the_operator(
    notify_workspace: Callable[..., Workspace], smtp: SmtpServer
) -> None:
    """`edi notifications --retry --send` queues the failed ones again (after the operator fixed the cause) and sends
    them."""
    ws = notify_workspace()
    smtp.mailbox.replies.append("550 5.1.1 no such mailbox")
    ws.drop("acme", "05-unknown-recipient.xml", REJECTED)
    assert edi(ws, "batch").returncode == 0
    assert [r["state"] for r in listed(ws)] == ["failed"]
    result = CliRunner().invoke(main, ["--config", str(ws.config), "notifications", "--retry", "--send"])
    assert result.exit_code == 0, result.output
    assert "1 failed notifications queued again" in result.output and "notifications: 1 sent" in result.output
    assert len(smtp.received) == 1 and [r["state"] for r in listed(ws)] == ["sent"]


def test_the_demo_s_statuses_reach_the_invoices_senders(tmp_path: Path, port: int, smtp: SmtpServer) -> None:
    """The demo's flows and its recipients' platform's statuses (flows/later/exemple-pa), through two real `edi batch`
    runs with the shipped config.toml pointed at a real SMTP server: every 213 / 501 of the first run is mailed once
    to its sender; of the six statuses, the 210 refusal is mailed at once to the invoice's sender (opdemat), the
    accepted 204 and 211 wait for acme's digest, and the three refused statuses mail nobody."""
    from flows.drop import LATER, LEFT_LONG_AGO, drop

    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('directory = "flows/directory.toml"', f'directory = "{FLOWS / "directory.toml"}"', 1)
    text = text.replace('sellers = ["*"]\n', 'sellers = ["*"]\nemail = ["ops@opdemat.example"]\n', 1)
    text = text.replace('smtp_host = ""', f'smtp_host = "127.0.0.1"\nsmtp_port = {port}', 1)
    text = text.replace('security = "starttls" ', 'security = "none"     ', 1)
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    ws = Workspace(tmp_path / "config.toml", load_settings(tmp_path / "config.toml"))
    assert edi(ws, "init").returncode == 0

    def dropped(flows: Path) -> None:
        for path in drop(tmp_path / "var" / "inbox", flows):
            if (path.parent.name, path.name) not in LEFT_LONG_AGO:
                stamp = time.time() - 60  # finished arriving (min_age_seconds)
                os.utime(path, (stamp, stamp))

    dropped(FLOWS)
    assert edi(ws, "batch").returncode == 0
    rows = listed(ws, "--limit", "1000")
    immediate = [r for r in rows if r["mode"] == "immediate"]
    assert immediate and all(r["state"] == "sent" for r in immediate)
    assert {r["status"] for r in immediate} == {"213", "501"}
    assert len(smtp.received) == len(immediate)
    assert {tuple(m.rcpt_tos) for m in smtp.received} == {("factures@acme.example",), ("ops@opdemat.example",)}
    first = len(smtp.received)

    dropped(LATER)
    assert edi(ws, "batch").returncode == 0
    assert len(smtp.received) == first + 1
    refusal = smtp.received[-1]
    assert refusal.rcpt_tos == ["ops@opdemat.example"]
    assert str(refusal.message["Subject"]).strip().startswith("[edi] 210 Refusée: invoice ")
    assert "Set by:      exemple-pa" in refusal.body
    statuses = [(r["sender"], r["status"], r["mode"], r["state"]) for r in listed(ws) if r["kind"] == "status"]
    assert sorted(statuses) == [
        ("acme", "204", "digest", "queued"),
        ("acme", "211", "digest", "queued"),
        ("opdemat", "210", "immediate", "sent"),
    ]
