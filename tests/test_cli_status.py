"""`edi status set` (edi.cli_status, edi.lifecycle.deposit): a recipient's status for a delivered invoice is written
as the CDAR message its platform would send, valid against the official artefacts, into the partner's inbox, whole;
what cannot be recorded is refused in one line and nothing is deposited."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from edi.cli import main
from edi.lifecycle.validate import check
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace

PARTNER = """
[[senders]]
id = "ville-pa"
sellers = []
recipients = ["ville-exemple"]
"""
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"


@pytest.fixture
def delivered(make_workspace: Callable[..., Workspace]) -> Workspace:
    """A workspace where acme's invoice FA-2026-0001 (to ville-exemple) and credit note AV-2026-0001 (to dupont) were
    accepted and delivered by a real batch, and where ville-pa speaks for ville-exemple."""
    ws = make_workspace(DEFAULT_CONFIG + PARTNER)
    for name in ("01-ubl-invoice.xml", "02-ubl-creditnote.xml", "06-missing-service-code.xml"):
        ws.drop("acme", name, (FLOWS / "acme" / name).read_bytes())
    result = CliRunner().invoke(main, ["--config", str(ws.config), "batch"])
    assert result.exit_code == 0, result.output
    return ws


def edi(ws: Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(ws.config), *args])
    return result.exit_code, result.output


def deposited(ws: Workspace) -> list[Path]:
    folder = ws.inbox("ville-pa")
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_status_is_deposited_as_a_valid_cdar_message_in_the_partners_inbox(delivered: Workspace) -> None:
    """210 with its reason and words: one whole message in inbox/ville-pa/, passing the official XSD and BR-FR-CDV,
    naming the invoice (BT-1, seller, date, type), the status, the reason and the words; the action is audited."""
    code, out = edi(delivered, "status", "set", "FA-2026-0001", "210", "--reason", "CMD_ERR", "--text", "Inconnue <b>")
    assert code == 0, out
    assert "status 210 (Refusée) for invoice FA-2026-0001" in out and "ville-pa" in out
    [path] = deposited(delivered)
    assert path.name.endswith(".xml") and not path.name.startswith(".")
    message = path.read_bytes()
    assert [f for f in check(message) if f.fatal] == []
    tree = etree.fromstring(message)
    text = {tag: tree.findtext(f".//{{{RAM}}}{tag}") for tag in ("IssuerAssignedID", "ProcessConditionCode")}
    assert text == {"IssuerAssignedID": "FA-2026-0001", "ProcessConditionCode": "210"}
    assert (
        tree.findtext(f".//{{{RAM}}}ReasonCode") == "CMD_ERR" and tree.findtext(f".//{{{RAM}}}Reason") == "Inconnue <b>"
    )
    assert tree.findtext(f".//{{{RAM}}}ReferenceReferencedDocument/{{{RAM}}}IssuerTradeParty/{{{RAM}}}GlobalID") == (
        "123456782"
    )
    code, out = edi(delivered, "status", "set", "FA-2026-0001", "211", "--json")
    assert code == 0 and json.loads(out)["partner"] == "ville-pa" and len(deposited(delivered)) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["FA-2026-0001", "200"], "is not a status a recipient may set"),
        (["FA-2026-0001", "213"], "is not a status a recipient may set"),
        (["FA-2026-0001", "299"], "is not a status a recipient may set"),
        (["FA-2026-0001", "207"], "needs a reason code"),
        (["FA-2026-0001", "210", "--reason", "cmd err"], "is not allowed for status 210"),
        (["FA-2026-0001", "204", "--text", ""], "--text"),
        (["NOPE-1", "204"], "no accepted invoice numbered 'NOPE-1'"),
        (["FA-2026-0006", "204"], "no accepted invoice"),  # rejected: never delivered
        (["AV-2026-0001", "204"], "no partner speaks for recipient 'dupont'"),
        (["FA-2026-0001", "204", "--partner", "acme"], "does not speak for recipient 'ville-exemple'"),
        (["", "204"], "give the invoice"),
    ],
)
def test_what_cannot_be_recorded_is_refused_in_one_line_and_nothing_is_deposited(
    delivered: Workspace, args: list[str], says: str
) -> None:
    """Each refusal is one line naming the problem, exit 1, and the partner's inbox stays empty."""
    code, out = edi(delivered, "status", "set", *args)
    assert code == 1, out
    assert out.count("\n") == 1 and says in out, out
    assert deposited(delivered) == []


def test_an_invoice_is_named_by_its_console_key_or_its_flow(delivered: Workspace) -> None:
    """`<flow_id>~<index>` and a flow id's start (a flow of one document) name the same invoice as its number; a
    rejected document named by its key is refused as not delivered."""
    flows = [json.loads(line) for line in edi(delivered, "flows", "--json")[1].splitlines()]
    by_file = {f["file_name"]: f["flow_id"] for f in flows}
    first = by_file["01-ubl-invoice.xml"]
    for ref in (f"{first}~1", f"{first}/1", first[:24]):
        code, out = edi(delivered, "status", "set", ref, "204", "--json")
        assert code == 0, out
        assert json.loads(out)["invoice"] == f"{first}~1"
    code, out = edi(delivered, "status", "set", f"{by_file['06-missing-service-code.xml']}~1", "204")
    assert code == 1 and "was not delivered" in out


def test_a_deposited_status_is_processed_recorded_and_relayed_then_the_order_rules_refuse_before_depositing(
    delivered: Workspace,
) -> None:
    """`edi status set ... 210` then `edi batch`: the partner's status flow is integrated, the status is in the
    invoice's history and relayed to acme as a valid CDAR message; after it, a 204 is refused in one line (210 is
    terminal) and a 210 again as already known, nothing deposited."""
    code, out = edi(delivered, "status", "set", "FA-2026-0001", "210", "--reason", "CMD_ERR")
    assert code == 0, out
    code, out = edi(delivered, "batch")
    assert code == 0 and "1 flows, 1 documents: 1 integrated" in out, out
    [ack_path] = delivered.acks("ville-pa")
    ack = json.loads(ack_path.read_text())
    lifecycle = ack["documents"][0]["lifecycle"]
    assert lifecycle["status"] == "210" and lifecycle["reason"] == "CMD_ERR" and not lifecycle["known"]
    relay = delivered.root / "acks" / "acme" / lifecycle["relay"]
    assert [f for f in check(relay.read_bytes()) if f.fatal] == []
    for args, says in ((["204"], "was refused (210, terminal)"), (["210", "--reason", "CMD_ERR"], "already")):
        code, out = edi(delivered, "status", "set", "FA-2026-0001", *args)
        assert code == 1 and out.count("\n") == 1 and says in out, out
    assert deposited(delivered) == []
