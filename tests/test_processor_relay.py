"""The relay of recipients' statuses in the processing path (edi/processor.py): each accepted status relayed once,
whole and valid, to the invoice's sender, before its status flow's acknowledgement, with one recorded row, across
crashes; a relay failing the official checks fails its flow with nothing sent."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edi.lifecycle.validate import check
from edi.runner import run_batch
from tests.conftest import DEFAULT_CONFIG, FLOWS, FixedClock, Workspace
from tests.lifecycle.statuses import status_message
from tests.lifecycle.test_intake import PARTNERS
from tests.test_processor_cdar import edi


@pytest.fixture
def accepted(make_workspace: Callable[..., Workspace]) -> tuple[Workspace, str]:
    """A workspace where opdemat's invoice IN-2026-0042 was accepted for dupont; its flow id."""
    ws = make_workspace(DEFAULT_CONFIG + PARTNERS)
    ws.drop("opdemat", "invoice.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes())
    run_batch(ws.settings, clock=FixedClock())
    (ack,) = [json.loads(p.read_bytes()) for p in ws.acks("opdemat")]
    return ws, ack["flow_id"]


def relays(ws: Workspace, invoice_flow: str) -> list[Path]:
    return sorted(p for p in (ws.root / "acks" / "opdemat").glob("*.cdar.xml") if not p.name.startswith(invoice_flow))


def rows(ws: Workspace) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    try:
        return list(conn.execute("SELECT status, state, relay FROM lifecycle ORDER BY id"))
    finally:
        conn.close()


def assert_one_relay_recorded(ws: Workspace, invoice_flow: str) -> None:
    """The status flow is answered once, IN_INTEGRE; exactly one relay, whole and valid, the one its ack and its one
    recorded row name; no temporary file left."""
    (ack_path,) = ws.acks("dupont-pa")
    ack = json.loads(ack_path.read_bytes())
    assert ack["status"] == "IN_INTEGRE"
    name = ack["documents"][0]["lifecycle"]["relay"]
    (relay,) = relays(ws, invoice_flow)
    assert relay.name == name and [f for f in check(relay.read_bytes()) if f.fatal] == []
    assert rows(ws) == [("204", "recorded", name)]
    assert not [p for p in (ws.root / "acks").rglob(".*") if p.is_file()]
    assert list((ws.root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    "point",
    ["write.relay", "relay.before_rename", "ack.json.before_rename", "pipeline.after_ack", "pipeline.after_record"],
)
def test_a_crash_around_the_relay_then_recover_leaves_one_relay_and_one_recorded_row(
    accepted: tuple[Workspace, str], point: str
) -> None:
    """SIGKILL while the relay is written, before it is renamed into place, after it is (before the ack), after the
    ack, after the record; then `edi recover`: exactly one relay, whole and valid, one recorded row."""
    ws, invoice_flow = accepted
    ws.drop("dupont-pa", "status.xml", status_message("204"))
    crashed = edi(ws, "batch", faults=f"{point}=crash")
    assert crashed.returncode == -9, crashed.stderr
    recovered = edi(ws, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert_one_relay_recorded(ws, invoice_flow)


def test_a_relay_failing_the_official_checks_fails_its_flow_and_nothing_is_sent(
    accepted: tuple[Workspace, str],
) -> None:
    """A relay whose bytes fail BR-FR-CDV (injected `relay.built=corrupt`): the status flow goes to failed/, no ack,
    no relay, no lifecycle row; requeued without the fault, it is answered once with its relay."""
    ws, invoice_flow = accepted
    ws.drop("dupont-pa", "status.xml", status_message("204"))
    run = edi(ws, "batch", faults="relay.built=corrupt")
    assert "CDAR message fails" in run.stdout + run.stderr
    assert ws.acks("dupont-pa") == [] and relays(ws, invoice_flow) == [] and rows(ws) == []
    assert edi(ws, "requeue", "--failed").returncode == 0
    assert edi(ws, "batch").returncode == 0
    assert_one_relay_recorded(ws, invoice_flow)


def test_a_stale_relay_is_withdrawn_when_the_status_is_refused_on_a_second_decision(
    accepted: tuple[Workspace, str],
) -> None:
    """A status flow crashed after its relay was published; before it is decided again, its partner is no longer
    allowed to speak for dupont: the flow is refused, the relay of the first decision withdrawn, no row left."""
    ws, invoice_flow = accepted
    ws.drop("dupont-pa", "status.xml", status_message("204"))
    assert edi(ws, "batch", faults="ack.json.before_rename=crash").returncode == -9
    assert len(relays(ws, invoice_flow)) == 1
    ws.config.write_text(ws.config.read_text().replace('recipients = ["dupont"]', 'recipients = ["ch-exemple"]'))
    assert edi(ws, "recover").returncode == 0
    (ack_path,) = ws.acks("dupont-pa")
    assert json.loads(ack_path.read_bytes())["status"] == "IN_REJETE"
    assert relays(ws, invoice_flow) == [] and rows(ws) == []


def test_two_batches_racing_210_and_211_on_each_invoice_keep_exactly_one_order(
    make_workspace: Callable[..., Workspace],
) -> None:
    """With `exclusive = false`, two `edi batch` processes started together on a 210 and a 211 about each of eight
    accepted invoices: every status flow is answered once, and for each invoice exactly one order holds: 210 alone
    (the 211 refused STATUS_ORDER) or 211 then 210; each recorded status has its one relay."""
    text = DEFAULT_CONFIG.replace('root = "ws"', 'root = "ws"\nexclusive = false') + PARTNERS
    ws = make_workspace(text)
    sample = (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes()
    numbers = [f"IN-2026-0042-{i}" for i in range(8)]
    for number in numbers:
        ws.drop("opdemat", f"{number}.xml", sample.replace(b"IN-2026-0042", number.encode()))
    run_batch(ws.settings, clock=FixedClock())
    for number in numbers:
        ws.drop("dupont-pa", f"{number}-210.xml", status_message("210", "DOUBLON", number=number, message_id="A"))
        ws.drop("dupont-pa", f"{number}-211.xml", status_message("211", number=number, message_id="B"))
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), "batch"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    acks = [json.loads(p.read_bytes()) for p in ws.acks("dupont-pa")]
    assert sorted(a["file_name"] for a in acks) == sorted(f"{n}-{s}.xml" for n in numbers for s in ("210", "211"))
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    try:
        recorded = list(
            conn.execute(
                "SELECT d.invoice_number, l.status, l.relay FROM lifecycle l JOIN documents d "
                "ON d.flow_id = l.flow_id AND d.idx = l.idx WHERE l.state = 'recorded' ORDER BY l.id"
            )
        )
    finally:
        conn.close()
    for number in numbers:
        statuses = [status for invoice, status, _ in recorded if invoice == number]
        assert statuses in (["210"], ["211", "210"]), (number, statuses)
        (refused,) = [a for a in acks if a["file_name"] == f"{number}-211.xml"]
        assert (refused["status"] == "IN_REJETE") is (statuses == ["210"])
        if statuses == ["210"]:
            assert [f["code"] for f in refused["documents"][0]["findings"]] == ["STATUS_ORDER"]
    invoices = {json.loads(p.read_bytes())["flow_id"] for p in ws.acks("opdemat")}
    messages = (ws.root / "acks" / "opdemat").glob("*.cdar.xml")
    relayed = {p.name for p in messages if p.name.split(".")[0] not in invoices}
    assert relayed == {relay for _, _, relay in recorded}
