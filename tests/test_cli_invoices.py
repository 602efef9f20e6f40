"""`edi invoices` (edi.cli_invoices) through CliRunner and the real executable: each invoice with its current
status, newest first, every filter, JSON lines, one-line errors, escaped output; and `edi show`'s lifecycle."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from edi.cli import main
from tests.conftest import FLOWS, UNSAFE, Workspace, assert_inert
from tests.lifecycle_rows import add_status

HOSTILE = "<script>alert(1)</script>\u202e\x1b[31m\nforged line"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@dataclass
class Lived:
    """A workspace the real batch processed, whose invoices lived on: statuses recorded after edi's decision."""

    ws: Workspace
    refused: str  # acme's 01.xml (FA-2026-0001): 204, then 210 DOUBLON with hostile words; a 211 held
    paid: str  # opdemat's o1.xml (IN-2026-0042): 211 set by an operator
    rejected: str  # acme's 05.xml: edi's 213 DEST_INC

    def invoices(self, *args: str) -> list[dict[str, Any]]:
        """`edi invoices --json ARGS`, read back."""
        result = run("--config", str(self.ws.config), "invoices", "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]


@pytest.fixture
def lived(workspace: Workspace) -> Lived:
    """Four flows through `edi batch` (three of acme's, one of opdemat's), then lifecycle rows in the contract's
    shape on two invoices, and a held one."""
    for age, (sender, name, sample) in enumerate(
        [
            ("opdemat", "o1.xml", "opdemat/01-initech-cii-basic.xml"),
            ("acme", "05.xml", "acme/05-unknown-recipient.xml"),
            ("acme", "02.xml", "acme/02-ubl-creditnote.xml"),
            ("acme", "01.xml", "acme/01-ubl-invoice.xml"),
        ]
    ):
        workspace.drop(sender, name, (FLOWS / sample).read_bytes(), age=50 - 10 * age)  # claimed oldest first
    assert run("--config", str(workspace.config), "batch").exit_code == 0
    flows = {
        json.loads(line)["file_name"]: json.loads(line)["flow_id"]
        for line in run("--config", str(workspace.config), "flows", "--json").output.splitlines()
    }
    database = workspace.settings.workspace.layout().database
    add_status(database, flows["01.xml"], 1, "204")
    add_status(database, flows["01.xml"], 1, "210", reason="DOUBLON", text=HOSTILE)
    add_status(database, flows["01.xml"], 1, "211", state="held")
    add_status(database, flows["o1.xml"], 1, "211", set_by="operator:alice")
    return Lived(workspace, flows["01.xml"], flows["o1.xml"], flows["05.xml"])


def test_each_invoice_with_its_current_status_newest_first(lived: Lived) -> None:
    """Every invoice, newest flow first, with its current status: the latest recorded one (a held one is not), else
    edi's decision."""
    rows = lived.invoices()
    assert [(r["invoice_number"], r["current_status"], r["current_label"]) for r in rows] == [
        ("FA-2026-0001", "210", "Refusée"),
        ("AV-2026-0001", "200", "Déposée"),
        ("FA-2026-0005", "213", "Rejetée"),
        ("IN-2026-0042", "211", "Paiement transmis"),
    ]
    assert rows[0]["status"] == "200" and rows[0]["current_by"] == "ville-partner"
    assert rows[1]["current_by"] == "edi" and rows[3]["current_by"] == "operator:alice"


@pytest.mark.parametrize(
    ("args", "numbers"),
    [
        (["--status", "210"], ["FA-2026-0001"]),
        (["--status", "211"], ["IN-2026-0042"]),
        (["--status", "204"], []),
        (["--status", "200"], ["AV-2026-0001"]),
        (["--status", "213"], ["FA-2026-0005"]),
        (["--sender", "opdemat"], ["IN-2026-0042"]),
        (["--seller", "987654324"], ["IN-2026-0042"]),
        (["--buyer", "404040404"], ["AV-2026-0001", "IN-2026-0042"]),
        (["--recipient", "ville-exemple"], ["FA-2026-0001"]),
        (["--number", "FA-2026-0005"], ["FA-2026-0005"]),
        (["--since", "1h"], ["FA-2026-0001", "AV-2026-0001", "FA-2026-0005", "IN-2026-0042"]),
        (["--since", "2999-01-01"], []),
        (["--until", "2000-01-01"], []),
        (["--sender", "acme", "--status", "211"], []),
        (["--limit", "2"], ["FA-2026-0001", "AV-2026-0001"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("--") else None,
)
def test_each_filter_keeps_exactly_its_invoices(lived: Lived, args: list[str], numbers: list[str]) -> None:
    """Current status, sender, seller, buyer, recipient, number, reception period and the limit each narrow."""
    assert [r["invoice_number"] for r in lived.invoices(*args)] == numbers


def test_the_human_listing_is_escaped_one_line_per_invoice(lived: Lived) -> None:
    """The table gives each invoice's current status with its label on one line, whatever its values hold."""
    database = lived.ws.settings.workspace.layout().database
    with sqlite3.connect(database) as conn:
        conn.execute(
            "UPDATE documents SET invoice_number = ? WHERE flow_id = ?", ["F\u202e1\x1b[2J\nX", lived.rejected]
        )
    conn.close()
    result = run("--config", str(lived.ws.config), "invoices")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["RECEIVED", "SENDER", "INVOICE", "ISSUED", "SELLER", "STATUS", "DOCUMENT"]
    assert len(lines) == 5 and "210 Refusée" in lines[1] and f"{lived.refused}/1" in lines[1]
    assert "213 Rejetée" in lines[3] and "F\\u202e1\\x1b[2J\\nX" in lines[3]
    assert not UNSAFE.search(result.output.replace("\n", ""))
    assert run("--config", str(lived.ws.config), "invoices", "--since", "2999-01-01").output == "no invoices\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--status", "999"], "'999' is not one of"),
        (["--since", "yesterday"], "use a duration"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "not after its start"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_options_are_one_line_usage_errors(lived: Lived, args: list[str], says: str) -> None:
    """A bad status, period or limit exits 2 with a one-line error naming it, never a traceback."""
    result = run("--config", str(lived.ws.config), "invoices", *args)
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output


def test_a_workspace_without_a_store_is_one_line(make_workspace: Any) -> None:
    """`edi invoices` in a workspace never initialised says so in one line (exit 1)."""
    ws = make_workspace(init=False)
    result = run("--config", str(ws.config), "invoices")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "edi init" in result.output


def test_the_real_executable_lists_invoices_as_json_lines(lived: Lived) -> None:
    """`python -m edi invoices --json` (a process of its own) prints one JSON object per invoice, exact values."""
    done = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(lived.ws.config), "invoices", "--json", "--status", "210"],
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["flow_id"] == lived.refused and row["current_status"] == "210"


def test_show_prints_each_documents_lifecycle(lived: Lived) -> None:
    """`edi show` gives each document's timeline (edi's decision, then each recorded status: time, code, label,
    who, reason and text, escaped); --json gains documents[].lifecycle; a held status is in neither."""
    config = str(lived.ws.config)
    text = run("--config", config, "show", lived.refused).output
    block = text[text.index("  lifecycle\n") : text.index("history\n")].splitlines()[1:]
    assert [line.split()[1:3] for line in block] == [["200", "Déposée"], ["204", "Prise"], ["210", "Refusée"]]
    assert block[0].split()[-1] == "edi" and "ville-partner" in block[2] and "DOUBLON: <script>" in block[2]
    assert "\\u202e\\x1b[31m\\nforged line" in block[2]
    assert_inert(text)
    record = json.loads(run("--config", config, "show", lived.refused, "--json").output)
    steps = record["documents"][0]["lifecycle"]
    assert [(s["status"], s["by"], s["reason"], s["text"]) for s in steps] == [
        ("200", "edi", None, None),
        ("204", "ville-partner", None, None),
        ("210", "ville-partner", "DOUBLON", HOSTILE),
    ]
    rejected = json.loads(run("--config", config, "show", lived.rejected, "--json").output)
    assert [(s["status"], s["reason"]) for s in rejected["documents"][0]["lifecycle"]] == [("213", "DEST_INC")]
