"""Recipients' CDAR status flows through the real intake (edi/lifecycle/intake.py, wired by edi.pipeline and
edi.processor): real folders, real SQLite, the official CDAR XSD and BR-FR-CDV Schematron."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edi.ack import from_xml
from edi.lifecycle.cdar import RAM, file_name
from edi.lifecycle.validate import check
from edi.rebuild import rebuild
from edi.runner import run_batch
from edi.workspace import Layout
from tests.conftest import DEFAULT_CONFIG, FLOWS, REPO, FixedClock, Workspace
from tests.lifecycle.statuses import status_message

ACK_XSD = etree.XMLSchema(etree.parse(str(REPO / "schemas" / "acknowledgement.xsd")))
PARTNERS = """
[[senders]]
id = "dupont-pa"
sellers = []
recipients = ["dupont"]

[[senders]]
id = "ville-pa"
sellers = []
recipients = ["ville-exemple"]
"""


@dataclass
class Statuses:
    """A workspace in which opdemat's invoice IN-2026-0042 was accepted for the recipient dupont."""

    ws: Workspace
    clock: FixedClock
    invoice: tuple[str, int]  # its flow id and document index

    def send(self, message: bytes, sender: str = "dupont-pa", name: str = "status.xml") -> dict[str, Any]:
        """Drop ``message`` in ``sender``'s inbox, run a batch; the acknowledgement of that flow (its JSON)."""
        before = set(self.ws.acks(sender))
        self.clock.advance(10)
        self.ws.drop(sender, name, message)
        run_batch(self.ws.settings, clock=self.clock)
        (path,) = set(self.ws.acks(sender)) - before
        ack: dict[str, Any] = json.loads(path.read_bytes())
        xml = path.with_suffix(".xml").read_bytes()
        ACK_XSD.assertValid(etree.fromstring(xml))
        assert from_xml(xml) == ack
        return ack

    def relays(self) -> set[Path]:
        """Every CDAR message in the invoice's sender's folder but edi's own 200 for the invoice."""
        own = file_name(*self.invoice)
        return {p for p in (self.ws.root / "acks" / "opdemat").glob("*.cdar.xml") if p.name != own}

    def rows(self) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.ws.root / "tracking.sqlite")
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM lifecycle ORDER BY id")]
        finally:
            conn.close()


@pytest.fixture
def statuses(make_workspace: Callable[..., Workspace]) -> Statuses:
    ws = make_workspace(DEFAULT_CONFIG + PARTNERS)
    clock = FixedClock()
    ws.drop("opdemat", "invoice.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes())
    run_batch(ws.settings, clock=clock)
    (ack,) = [json.loads(p.read_bytes()) for p in ws.acks("opdemat")]
    assert ack["status"] == "IN_INTEGRE" and ack["documents"][0]["recipient"] == "dupont"
    return Statuses(ws, clock, (ack["flow_id"], 1))


def status_in(message: bytes) -> tuple[str, str | None]:
    root = etree.fromstring(message)
    (code,) = root.iter(f"{{{RAM}}}ProcessConditionCode")
    reasons = [r.text for r in root.iter(f"{{{RAM}}}ReasonCode")]
    return str(code.text), reasons[0] if reasons else None


def codes(ack: dict[str, Any]) -> list[str]:
    return [f["code"] for d in ack["documents"] for f in d["findings"] if f["severity"] == "fatal"]


def test_an_accepted_204_is_relayed_to_the_invoices_sender_valid_and_recorded(statuses: Statuses) -> None:
    """A 204 from the partner that speaks for dupont: its flow is IN_INTEGRE, the document 200 with its lifecycle
    object naming the invoice; one CDAR message relayed to opdemat, valid against the XSD and BR-FR-CDV, phase 23,
    the buyer as issuer; one recorded row; no edi 200/213 message of its own in the partner's folder."""
    ack = statuses.send(status_message("204"))
    assert ack["status"] == "IN_INTEGRE"
    (doc,) = ack["documents"]
    assert doc["status"] == "200" and doc["syntax"] == "CDAR" and doc["layers"] == ["cdar"] and doc["cdar"] is None
    lifecycle = doc["lifecycle"]
    assert lifecycle["status"] == "204" and lifecycle["known"] is False
    assert lifecycle["set_at"] == "2026-12-01T10:00:00.000Z"
    assert lifecycle["invoice"] == {
        "flow_id": statuses.invoice[0],
        "index": 1,
        "sender": "opdemat",
        "invoice_number": "IN-2026-0042",
        "seller_id": "987654324",
        "issue_date": "2026-11-16",
        "type_code": "380",
    }
    assert lifecycle["relay"] == file_name(ack["flow_id"], 1)
    (relay,) = statuses.relays()
    assert relay.name == lifecycle["relay"]
    message = relay.read_bytes()
    assert [f for f in check(message) if f.fatal] == []
    assert status_in(message) == ("204", None)
    assert b"<ram:TypeCode>23</ram:TypeCode>" in message and b">404040404<" in message
    assert list((statuses.ws.root / "acks" / "dupont-pa").glob("*.cdar.xml")) == []
    (row,) = statuses.rows()
    assert (row["flow_id"], row["idx"], row["status"], row["state"]) == (*statuses.invoice, "204", "recorded")
    assert (row["source_flow_id"], row["source_idx"], row["relay"], row["set_by"]) == (
        ack["flow_id"],
        1,
        relay.name,
        "dupont-pa",
    )
    assert row["recorded_at"] == ack["processed_at"]


def test_a_212_carries_the_amount_cashed_into_its_relay(statuses: Statuses) -> None:
    """A 211 then a 212 with its amount cashed (MEN): both relayed; the 212's relay carries the amount and VAT rate
    BR-FR-CDV-14 requires, and passes."""
    statuses.send(status_message("211"))
    ack = statuses.send(status_message("212", cashed="1858.80", message_id="STATUS-2"))
    assert codes(ack) == []
    relay = statuses.ws.root / "acks" / "opdemat" / ack["documents"][0]["lifecycle"]["relay"]
    message = relay.read_bytes()
    assert b'currencyID="EUR">1858.80<' in message and [f for f in check(message) if f.fatal] == []
    assert [r["status"] for r in statuses.rows()] == ["211", "212"]


def test_a_210_with_its_reason_is_terminal(statuses: Statuses) -> None:
    """210 with reason DOUBLON and words: relayed with both; a 211 after it is refused (STATUS_ORDER), not relayed,
    not recorded; a 210 again is known."""
    ack = statuses.send(status_message("210", "DOUBLON", "déjà payée par ailleurs"))
    assert codes(ack) == [] and ack["documents"][0]["lifecycle"]["reason"] == "DOUBLON"
    (relay,) = statuses.relays()
    assert status_in(relay.read_bytes()) == ("210", "DOUBLON") and "déjà payée".encode() in relay.read_bytes()
    after = statuses.send(status_message("211", message_id="STATUS-2"))
    assert after["status"] == "IN_REJETE" and codes(after) == ["STATUS_ORDER"]
    (doc,) = after["documents"]
    assert doc["status"] == "213" and doc["lifecycle"]["relay"] is None
    again = statuses.send(status_message("210", "DOUBLON", message_id="STATUS-3"))
    assert again["status"] == "IN_INTEGRE" and again["documents"][0]["lifecycle"]["known"] is True
    assert len(statuses.relays()) == 1 and [r["status"] for r in statuses.rows()] == ["210"]


def test_209_only_after_208(statuses: Statuses) -> None:
    """209 without a 208 is refused (STATUS_ORDER); after 208 (with its reason) it is accepted and relayed."""
    assert codes(statuses.send(status_message("209"))) == ["STATUS_ORDER"]
    assert codes(statuses.send(status_message("208", "JUSTIF_ABS", message_id="S2"))) == []
    assert codes(statuses.send(status_message("209", message_id="S3"))) == []
    assert [r["status"] for r in statuses.rows()] == ["208", "209"] and len(statuses.relays()) == 2


def test_a_repeated_204_is_known_and_not_relayed_again(statuses: Statuses) -> None:
    """The same status twice (another message): the second is accepted as known, gets no relay and no row."""
    statuses.send(status_message("204"))
    ack = statuses.send(status_message("204", message_id="STATUS-2"), name="again.xml")
    assert ack["status"] == "IN_INTEGRE"
    lifecycle = ack["documents"][0]["lifecycle"]
    assert lifecycle["known"] is True and lifecycle["relay"] is None
    assert len(statuses.relays()) == 1 and len(statuses.rows()) == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (status_message("204", number="IN-2026-9999"), "STATUS_UNKNOWN_INVOICE"),
        (status_message("204", issued="20261117"), "STATUS_UNKNOWN_INVOICE"),
        (status_message("204", type_code="381"), "STATUS_UNKNOWN_INVOICE"),
        (status_message("200"), "STATUS_NOT_ALLOWED"),
        (status_message("213", "REJ_SEMAN"), "STATUS_NOT_ALLOWED"),
        (status_message("207", "AUTRE"), None),
    ],
    ids=["unknown-number", "other-date", "other-type", "status-200", "status-213", "allowed-207"],
)
def test_statuses_a_recipient_may_not_set_or_for_no_invoice_are_refused(
    statuses: Statuses, message: bytes, code: str | None
) -> None:
    """Another number, date or type names no accepted invoice (the invoice left null); 200 and 213 are edi's own;
    207 with a reason of its list passes."""
    ack = statuses.send(message)
    assert codes(ack) == ([code] if code else [])
    if code == "STATUS_UNKNOWN_INVOICE":
        assert ack["documents"][0]["lifecycle"]["invoice"] is None
    assert len(statuses.relays()) == (0 if code else 1)


def test_another_partners_invoice_is_refused_without_naming_it(statuses: Statuses) -> None:
    """The partner that speaks for ville-exemple sets a status on dupont's invoice: STATUS_OTHER_PARTNER, with no
    invoice (neither its flow nor its sender) in its acknowledgement, nothing relayed."""
    ack = statuses.send(status_message("204"), sender="ville-pa")
    assert codes(ack) == ["STATUS_OTHER_PARTNER"]
    assert ack["documents"][0]["lifecycle"]["invoice"] is None
    assert statuses.invoice[0] not in json.dumps(ack) and statuses.relays() == set() and statuses.rows() == []


def test_a_sender_that_speaks_for_no_recipient_is_refused(statuses: Statuses) -> None:
    """acme (sellers only) deposits a status message: STATUS_NOT_A_RECIPIENT."""
    assert codes(statuses.send(status_message("204"), sender="acme")) == ["STATUS_NOT_A_RECIPIENT"]
    assert statuses.relays() == set()


def test_a_missing_reason_is_refused_by_br_fr_cdv_15(statuses: Statuses) -> None:
    """210 without a reason fails the fatal rule BR-FR-CDV-15 (REJ_SEMAN, with its rule id and XPath)."""
    ack = statuses.send(status_message("210"))
    ((finding,),) = [d["findings"] for d in ack["documents"]]
    assert (finding["code"], finding["rule"], finding["layer"]) == ("REJ_SEMAN", "BR-FR-CDV-15_MDT-113", "cdar")
    assert "ProcessConditionCode" in finding["xpath"] and ack["documents"][0]["status"] == "213"


def test_an_xsd_invalid_message_is_refused_with_its_rule_and_location(statuses: Statuses) -> None:
    """Elements out of the XSD's order: 501 IRR_SYNTAX with the XSD's rule, the XPath and the line."""
    ack = statuses.send(status_message("204", xsd_invalid=True))
    (doc,) = ack["documents"]
    assert doc["status"] == "501" and doc["reason"] == "IRR_SYNTAX"
    finding = doc["findings"][0]
    assert finding["rule"] == "SCHEMAV_ELEMENT_CONTENT" and finding["line"] and finding["xpath"]
    assert statuses.relays() == set() and statuses.rows() == []


def test_a_message_about_two_invoices_is_refused(statuses: Statuses) -> None:
    """Two ReferenceReferencedDocument in one message: STATUS_SEVERAL_INVOICES (one invoice per message)."""
    assert "STATUS_SEVERAL_INVOICES" in codes(statuses.send(status_message("204", references=2)))
    assert statuses.relays() == set()


def test_a_store_rebuilt_from_the_acks_has_the_recorded_statuses(statuses: Statuses) -> None:
    """`edi store rebuild` restores each relayed status from its status flow's ack: same invoice, status, reason,
    source and relay, recorded; a known or refused one leaves no row."""
    statuses.send(status_message("208", "JUSTIF_ABS"))
    statuses.send(status_message("208", "JUSTIF_ABS", message_id="S2"))
    statuses.send(status_message("211", message_id="S3"))
    statuses.send(status_message("209", message_id="S4"))
    before = statuses.rows()
    assert [r["status"] for r in before] == ["208", "211", "209"]
    rebuild(Layout(statuses.ws.root), force=True)
    after = statuses.rows()
    keep = ("flow_id", "idx", "status", "reason", "set_by", "set_at", "source_flow_id", "source_idx", "relay", "state")
    assert [{k: r[k] for k in keep} for r in after] == [{k: r[k] for k in keep} for r in before]
