"""The edi command through CliRunner: help, init, batch exit codes and summary, flows, show, requeue, config errors."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.invoices import nameless_invoice, templates
from edi.cli import main, parse_since
from edi.clock import iso
from edi.runner import GC_YOUNG_OBJECTS
from edi.text import printable
from edi.tracking import Tracking
from tests.conftest import DEFAULT_CONFIG, FLOWS, UNSAFE, Workspace, assert_inert, intra_community_supply


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    "command",
    [[], ["init"], ["batch"], ["flows"], ["show"], ["invoices"], ["requeue"], ["store"], ["store", "rebuild"]],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    """`--help` works without a configuration file and teaches by example."""
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output or "Typical session" in result.output


def test_init_creates_the_workspace_the_config_names(make_workspace) -> None:
    """`edi init` makes per-sender inboxes and acks, the queues of the directory, and says so."""
    ws = make_workspace(init=False)
    result = run("--config", str(ws.config), "init")
    assert result.exit_code == 0, result.output
    assert "senders: acme, opdemat" in result.output
    for path in ["inbox/acme", "inbox/opdemat", "acks/acme", "spool/active", "queues/dupont/new", "archive", "failed"]:
        assert (ws.root / path).is_dir(), path
    assert (ws.root / "tracking.sqlite").is_file()
    assert run("--config", str(ws.config), "init").exit_code == 0  # idempotent


def test_config_is_also_read_from_edi_config(make_workspace) -> None:
    """EDI_CONFIG names the configuration when --config is not given."""
    ws = make_workspace(init=False)
    assert run("init", env={"EDI_CONFIG": str(ws.config)}).exit_code == 0
    assert (ws.root / "inbox" / "acme").is_dir()


def test_bad_configuration_is_one_line_naming_the_key_and_exit_2(tmp_path) -> None:
    """An unknown key or a bad value stops with exit status 2 and a one-line message, no traceback."""
    config = tmp_path / "config.toml"
    config.write_text("[intake]\nmin_age_second = 2\n")
    result = run("--config", str(config), "batch")
    assert result.exit_code == 2
    assert "unknown key 'intake.min_age_second'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    config.write_text("[intake]\nmin_age_seconds = 'soon'\n")
    assert "intake.min_age_seconds" in run("--config", str(config), "batch").output


MISTAKES = {
    "queue": (
        '[[routing.rules]]\nrecipient = "ville-exemple"\nservice = "VOIRIE"\nqueue = "ville-exemple-voirei"\n',
        'routing.rules[1] (recipient = "ville-exemple", service = "VOIRIE", queue = "ville-exemple-voirei"): unknown '
        "queue 'ville-exemple-voirei'; known queues: ch-exemple, dupont, ville-exemple, ville-exemple-voirie (",
    ),
    "cron": (
        '[schedule]\n[[schedule.jobs]]\njob = "report"\ncron = "0 25 * * *"\n',
        "schedule.jobs[0]: job 'report': cron '0 25 * * *': hour 25 is not between 0 and 23",
    ),
    "timezone": (
        '[schedule]\ntimezone = "Europe/Pariss"\n[[schedule.jobs]]\njob = "batch"\nevery_seconds = 60\n',
        "'schedule.timezone': unknown time zone 'Europe/Pariss'",
    ),
}
COMMANDS = [
    ["init"],
    ["batch"],
    ["recover"],
    ["requeue", "--failed"],
    ["flows"],
    ["show", "2026"],
    ["report"],
    ["schedule", "--list"],
    ["schedule"],
]


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_configuration_mistake(make_workspace, command: list[str], mistake: str) -> None:
    """Every command that reads the configuration checks all of it: a mistake anywhere (a routing rule's queue, a
    cron line, a time zone) is exit 2 with one line naming it, whatever the command would do with the rest."""
    ws = make_workspace()
    text, message = MISTAKES[mistake]
    ws.config.write_text(ws.config.read_text(encoding="utf-8") + text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(ws.config), *command])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {ws.config}: ") and message in result.output, result.output
    assert len(result.output.splitlines()) == 1, result.output


@pytest.mark.parametrize("mistake", MISTAKES)
def test_watch_refuses_a_configuration_mistake_before_watching(make_workspace, mistake: str) -> None:
    """`edi watch` (the real command) exits 2 at once on a configuration mistake instead of watching."""
    ws = make_workspace()
    text, message = MISTAKES[mistake]
    ws.config.write_text(ws.config.read_text(encoding="utf-8") + text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(ws.config), "watch"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_validate_reads_no_configuration(tmp_path) -> None:
    """`edi validate` is offline: a configuration with a mistake in it does not stop it."""
    config = tmp_path / "config.toml"
    config.write_text(MISTAKES["cron"][0], encoding="utf-8")
    result = run("--config", str(config), "validate", str(FLOWS / "acme" / "01-ubl-invoice.xml"))
    assert result.exit_code == 0 and ": valid " in result.output, result.output


def test_missing_configuration_file_is_exit_2(tmp_path) -> None:
    """A configuration file that does not exist is named, with how to point at another one."""
    result = run("--config", str(tmp_path / "nope.toml"), "batch")
    assert result.exit_code == 2 and "EDI_CONFIG" in result.output


def test_batch_on_an_uninitialised_workspace_exits_1(make_workspace) -> None:
    """Running batch before init fails clearly (the processor cannot work), exit status 1."""
    ws = make_workspace(init=False)
    result = run("--config", str(ws.config), "batch")
    assert result.exit_code == 1 and "edi init" in result.output


def test_batch_prints_the_summary_and_exits_0_with_rejections(workspace: Workspace) -> None:
    """Rejected flows are a normal outcome: exit 0, and the summary counts flows, documents and outcomes."""
    for name in ["01-ubl-invoice.xml", "05-unknown-recipient.xml", "12-empty.xml"]:
        workspace.drop("acme", name, (FLOWS / "acme" / name).read_bytes())
    result = run("--config", str(workspace.config), "batch")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "3 flows, 2 documents: 1 integrated, 0 partially integrated, 2 rejected, 0 failed"
    )


def test_a_command_runs_the_cycle_collector_only_every_so_many_objects(workspace: Workspace) -> None:
    """The command line sets Python's cycle collector to run once GC_YOUNG_OBJECTS more container objects were made
    than freed (not every 700: a flow's objects live for its group and are freed by reference counting)."""
    before = gc.get_threshold()  # put back after the test (conftest)
    assert run("--config", str(workspace.config), "batch").exit_code == 0
    assert gc.get_threshold() == (GC_YOUNG_OBJECTS, *before[1:])


BUDGET_CONFIG = (
    DEFAULT_CONFIG
    + """
[limits]
validate_seconds = 1

[validation]
rules = ["xsd", "en16931"]
"""
)


def test_batch_rejects_a_document_past_the_validation_budget_and_goes_on(make_workspace) -> None:
    """`edi batch` with limits.validate_seconds = 1: the invoice whose rules outrun it is rejected within moments of
    the budget, its acknowledgement naming each layer not run and the budget (LAYER_NOT_RUN, VALIDATE_TIMEOUT); the
    run goes on and accepts the next invoice."""
    ws = make_workspace(BUDGET_CONFIG)
    ws.drop("acme", "slow.xml", nameless_invoice(templates()[0], 1, 8000), age=30)
    ws.drop("acme", "01.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), age=20)
    started = time.monotonic()
    result = run("--config", str(ws.config), "batch")
    assert time.monotonic() - started < 15  # the slow invoice alone takes longer than that without a budget
    assert result.exit_code == 0, result.output
    assert (
        result.output.splitlines()[0]
        == "2 flows, 2 documents: 1 integrated, 0 partially integrated, 1 rejected, 0 failed"
    )
    acks = {ack["file_name"]: ack for ack in (json.loads(p.read_text()) for p in ws.acks("acme"))}
    (slow,) = acks["slow.xml"]["documents"]
    assert slow["layers"] == ["xsd", "en16931", "br-fr"] and slow["status"] == "213"  # its recipient asks for br-fr
    en, fr = [f for f in slow["findings"] if f["code"] == "LAYER_NOT_RUN"]
    assert (en["layer"], en["rule"], en["severity"]) == ("en16931", "VALIDATE_TIMEOUT", "fatal")
    assert "en16931 rules did not run" in en["message"] and "within the 1 s" in en["message"]
    assert "(limits.validate_seconds)" in en["message"]
    assert (fr["layer"], fr["rule"], fr["severity"]) == ("br-fr", "VALIDATE_TIMEOUT", "fatal")
    assert "were spent by the en16931 rules" in fr["message"]
    assert acks["01.xml"]["documents"][0]["findings"] == []


def test_batch_exits_1_when_a_flow_fails_internally(workspace: Workspace, inject) -> None:
    """A flow that fails for our own reason makes the run exit 1 and tells the operator what to do."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    inject("pipeline.after_decide=raise")
    result = run("--config", str(workspace.config), "batch")
    inject("")
    assert result.exit_code == 1
    assert "1 failed" in result.output and "edi requeue" in result.output
    failed = run("--config", str(workspace.config), "flows", "--status", "IN_EN_ATTENTE_RETRAITEMENT", "--json")
    (row,) = [json.loads(line) for line in failed.output.splitlines()]
    result = run("--config", str(workspace.config), "requeue", "--failed")
    assert result.exit_code == 0 and row["flow_id"] in result.output
    result = run("--config", str(workspace.config), "batch")
    assert result.exit_code == 0 and "1 integrated" in result.output and "1 recovered" in result.output


@pytest.fixture
def processed(workspace: Workspace) -> Workspace:
    """A workspace where acme and opdemat each had flows processed."""
    workspace.drop("acme", "01.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), age=30)
    workspace.drop("acme", "10.xml", (FLOWS / "acme" / "10-schema-invalid.xml").read_bytes(), age=20)
    workspace.drop("opdemat", "o1.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes(), age=10)
    assert run("--config", str(workspace.config), "batch").exit_code == 0
    return workspace


def test_flows_lists_newest_first_with_filters(processed: Workspace) -> None:
    """`edi flows` lists newest first; --sender, --status, --since and --json filter and format."""
    config = str(processed.config)
    lines = run("--config", config, "flows").output.splitlines()
    assert lines[0].startswith("FLOW") and [line.split()[-1] for line in lines[1:]] == ["o1.xml", "10.xml", "01.xml"]
    rows = [
        json.loads(line) for line in run("--config", config, "flows", "--sender", "acme", "--json").output.splitlines()
    ]
    assert [r["file_name"] for r in rows] == ["10.xml", "01.xml"]
    rejected = run("--config", config, "flows", "--status", "IN_REJETE", "--json").output.splitlines()
    assert [json.loads(line)["file_name"] for line in rejected] == ["10.xml"]
    assert len(run("--config", config, "flows", "--since", "1h", "--json").output.splitlines()) == 3
    assert run("--config", config, "flows", "--since", "2999-01-01").output.strip() == "no flows"
    assert run("--config", config, "flows", "--since", "yesterday").exit_code == 2


def test_show_gives_documents_findings_and_history_by_prefix(processed: Workspace) -> None:
    """`edi show` accepts a unique prefix and shows every finding with its location, and the history."""
    config = str(processed.config)
    rows = [json.loads(line) for line in run("--config", config, "flows", "--json").output.splitlines()]
    invalid = next(r for r in rows if r["file_name"] == "10.xml")
    prefix = invalid["flow_id"][:-3]
    text = run("--config", config, "show", prefix).output
    assert invalid["flow_id"] in text and "status 501 IRR_SYNTAX" in text
    assert text.count("fatal IRR_SYNTAX") == 3 and "line 9" in text and "/*/cbc:IssueDate" in text
    assert "IN_RECU" in text and "IN_REJETE" in text
    record = json.loads(run("--config", config, "show", invalid["flow_id"], "--json").output)
    assert record["documents"][0]["findings"][0]["xpath"] == "/*/cbc:IssueDate"


def test_show_gives_the_cen_rule_with_the_assert_id_beside_it(make_workspace) -> None:
    """`edi show` names a broken CEN rule and, beside it, the id the Factur-X XSLT gives its assert (text and JSON)."""
    workspace = make_workspace(DEFAULT_CONFIG + '\n[validation]\nrules = ["xsd", "en16931"]\n')
    workspace.drop("opdemat", "ic.xml", intra_community_supply())
    config = str(workspace.config)
    assert run("--config", config, "batch").exit_code == 0
    (row,) = [json.loads(line) for line in run("--config", config, "flows", "--json").output.splitlines()]
    text = run("--config", config, "show", row["flow_id"]).output
    assert "  - fatal REJ_SEMAN [BR-IC-11, assert FX-SCH-A-000144] en16931: [BR-IC-11]-In an Invoice" in text
    assert "  - fatal REJ_SEMAN [BR-IC-12, assert FX-SCH-A-000145] en16931: [BR-IC-12]-In an Invoice" in text
    record = json.loads(run("--config", config, "show", row["flow_id"], "--json").output)
    fatal = [(f["rule"], f["assert_id"]) for f in record["documents"][0]["findings"] if f["severity"] == "fatal"]
    assert fatal == [("BR-IC-11", "FX-SCH-A-000144"), ("BR-IC-12", "FX-SCH-A-000145")]


def test_show_unknown_flow_exits_1(processed: Workspace) -> None:
    """An unknown flow id is a one-line error."""
    result = run("--config", str(processed.config), "show", "19990101")
    assert result.exit_code == 1 and "no flow" in result.output


def test_requeue_needs_ids_or_failed(workspace: Workspace) -> None:
    """`edi requeue` with nothing to requeue is a usage error."""
    assert run("--config", str(workspace.config), "requeue").exit_code == 2


def test_parse_since_accepts_durations_and_dates() -> None:
    """--since takes 30m / 2h / 3d / 1w, or an ISO date (UTC unless it says otherwise)."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert parse_since("1w", now) == datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)


# -- edi validate ------------------------------------------------------------------------------------------------


def test_validate_needs_no_workspace_and_exits_with_the_number_of_invalid_files(tmp_path) -> None:
    """`edi validate` works without any configuration and exits with how many files are not valid."""
    files = [FLOWS / "acme" / n for n in ("01-ubl-invoice.xml", "10-schema-invalid.xml", "16-business-rule-broken.xml")]
    result = run("--config", str(tmp_path / "absent.toml"), "validate", *map(str, files))
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("01-ubl-invoice.xml: valid  UBL Invoice (en16931)  [xsd, en16931]")
    assert "NOT VALID" in result.output and "[BR-CO-16] en16931" in result.output
    assert "[SCHEMAV_CVC_DATATYPE_VALID_1_2_1] xsd" in result.output


def test_validate_json_gives_one_object_per_file(tmp_path) -> None:
    """--json prints one line per file with file, valid and findings shaped as in acknowledgements."""
    pdf = FLOWS / "acme" / "15-facturx-invoice.pdf"
    broken = FLOWS / "acme" / "16-business-rule-broken.xml"
    result = run("validate", "--json", "--rules", "xsd,en16931,br-fr", str(pdf), str(broken))
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert (first["file"], first["valid"], first["layers"]) == (str(pdf), True, ["xsd", "en16931", "br-fr"])
    assert second["valid"] is False and result.exit_code == 1
    (rule,) = [f for f in second["findings"] if f["severity"] == "fatal"]
    assert set(rule) >= {"code", "rule", "layer", "severity", "line", "xpath", "message", "rule_set_sha256"}
    assert (rule["rule"], rule["layer"], rule["line"]) == ("BR-CO-16", "en16931", 91)


def test_validate_shows_the_cen_rule_with_the_assert_id_beside_it(tmp_path) -> None:
    """`edi validate` names a broken CEN rule with the Factur-X XSLT's assert id beside it, and only the rule when
    the two are the same; --json carries both."""
    basic, basicwl = tmp_path / "ic-basic.xml", tmp_path / "ic-basicwl.xml"
    basic.write_bytes(intra_community_supply("basic"))
    basicwl.write_bytes(intra_community_supply("basicwl"))
    result = run("--config", str(tmp_path / "absent.toml"), "validate", str(basic), str(basicwl))
    assert result.exit_code == 2, result.output
    assert "  fatal REJ_SEMAN [BR-IC-11, assert FX-SCH-A-000144] en16931: [BR-IC-11]-In an Invoice" in result.output
    assert "  warning REJ_SEMAN [PEPPOL-EN16931-R008, assert FX-SCH-A-000372] en16931:" in result.output
    assert "  fatal REJ_SEMAN [BR-IC-12] en16931: [BR-IC-12]-In an Invoice" in result.output  # BASIC WL's own id
    first, second = (
        json.loads(line) for line in run("validate", "--json", str(basic), str(basicwl)).output.splitlines()
    )
    assert [(f["rule"], f["assert_id"]) for f in first["findings"] if f["severity"] == "fatal"] == [
        ("BR-IC-11", "FX-SCH-A-000144"),
        ("BR-IC-12", "FX-SCH-A-000145"),
    ]
    assert [(f["rule"], f["assert_id"]) for f in second["findings"]] == [
        ("BR-IC-11", "BR-IC-11"),
        ("BR-IC-12", "BR-IC-12"),
    ]


def test_validate_one_layer_alone_checks_fragments(tmp_path) -> None:
    """--rules en16931 runs that layer only: a schema-invalid fragment is judged on its business rules."""
    fragment = tmp_path / "fragment.xml"
    fragment.write_text(
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
        'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        "<cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID></Invoice>",
        encoding="utf-8",
    )
    out = json.loads(run("validate", "--json", "--rules", "en16931", str(fragment)).output)
    assert out["layers"] == ["en16931"]
    assert all(f["layer"] == "en16931" for f in out["findings"])
    assert "BR-02" in {f["rule"] for f in out["findings"]}  # an invoice shall have an invoice number


def test_validate_refuses_an_unknown_layer_and_reports_unreadable_files(tmp_path) -> None:
    """A bad --rules value is a usage error; a missing or non-invoice file is a finding, not a crash."""
    assert run("validate", "--rules", "xsd,magic", str(FLOWS / "acme" / "01-ubl-invoice.xml")).exit_code == 2
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02")
    result = run("validate", "--json", str(junk), str(tmp_path / "missing.xml"))
    assert result.exit_code == 2
    codes = [json.loads(line)["findings"][0]["code"] for line in result.output.splitlines()]
    assert codes == ["IRR_TYPE_F", "IRR_TYPE_F"]


# -- what a sender controls is shown, never obeyed ---------------------------------------------------------------

HOSTILE = [  # file names as a sender can make them (any byte but "/" and NUL)
    "evil.xml\n20261206T000000000000-000000  2026-12-06T00:00:00.000Z acme  IN_INTEGRE  1\u22151  fake.xml".encode(),
    b"\xc2\x9b31mred.xml",  # U+009B, the 8-bit CSI
    "invoice\u202elmx.exe".encode(),  # RLO: reads "invoiceexe.xml"
    b"caf\xe9.xml",  # Latin-1, not UTF-8
]


def json_lines(text: str) -> list[dict[str, object]]:
    """One JSON object per line (split on line feeds only: a value may hold U+0085 or U+2028, JSON lets it)."""
    return [json.loads(line) for line in text.split("\n") if line]


def invoice(number: str = "N1", issue_date: str | None = None) -> bytes:
    """The sample UBL invoice with another number (XML text: character references allowed) and issue date."""
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    data = re.sub(rb"<cbc:ID>[^<]*</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>".encode(), data, count=1)
    if issue_date is not None:
        data = re.sub(rb"<cbc:IssueDate>[^<]*<", f"<cbc:IssueDate>{issue_date}<".encode(), data, count=1)
    return data


def test_names_and_values_a_sender_controls_are_escaped_one_flow_one_row(workspace: Workspace, inject) -> None:
    """File names holding a line feed (a forged row), the 8-bit CSI, an RLO or bytes that are not UTF-8, and an
    invoice number holding controls: flows, show and report print one row per flow, escaped; --json stays exact."""
    config = str(workspace.config)
    for age, name in enumerate([*HOSTILE, b"plain.xml"]):
        workspace.drop("acme", name, invoice(f"N{age}"), age=60 - age)
    workspace.drop("acme", "number.xml", invoice("A&#x9b;B&#x202e;C&#x2028;D"), age=30)
    assert run("--config", config, "batch").exit_code == 0
    workspace.drop("acme", b"stuck\x1b[2J\n.xml", invoice("N9"))  # fails: listed by the report as needing an operator
    inject("pipeline.after_decide=raise")
    assert run("--config", config, "batch").exit_code == 1
    inject("")

    table = run("--config", config, "flows").output
    rows = json_lines(run("--config", config, "flows", "--json").output)
    assert_inert(table)
    lines = table.splitlines()
    assert len(lines) == 1 + len(rows) == 1 + len(HOSTILE) + 3
    names = [name.decode("utf-8", "backslashreplace") for name in HOSTILE]  # as the store and the ack hold them
    assert {r["file_name"] for r in rows} >= {*names, "stuck\x1b[2J\n.xml"}  # the JSON keeps the exact text
    for row, line in zip(rows, lines[1:], strict=True):
        assert line.startswith(f"{row['flow_id']} ") and line.endswith(printable(row["file_name"]))
    assert "  evil.xml\\n20261206T000000000000-000000  2026-12-06T00:00:00.000Z acme" in table
    assert "\\x9b31mred.xml" in table and "invoice\\u202elmx.exe" in table and "caf\\xe9.xml" in table

    by_name = {r["file_name"]: r["flow_id"] for r in rows}
    plain = run("--config", config, "show", by_name["plain.xml"]).output
    for name in names:
        shown = run("--config", config, "show", by_name[name]).output
        assert_inert(shown)
        assert len(shown.splitlines()) == len(plain.splitlines())
        assert f"file      {printable(name)} (" in shown
    shown = run("--config", config, "show", by_name["number.xml"]).output
    assert_inert(shown)
    assert "  invoice A\\x9bB\\u202eC\\u2028D  date " in shown
    record = json.loads(run("--config", config, "show", by_name["number.xml"], "--json").output)
    assert record["documents"][0]["invoice_number"] == "A\x9bB\u202eC\u2028D"

    day = rows[0]["received_at"][:10]
    report = run("--config", config, "report", "--day", day).output
    assert_inert(report)
    stuck = by_name["stuck\x1b[2J\n.xml"]
    assert f"  {stuck}  acme         IN_EN_ATTENTE_RETRAITEMENT   stuck\\x1b[2J\\n.xml\n" in report
    written = workspace.root / "reports" / f"flows-{day}.json"
    assert_inert(written.with_suffix(".txt").read_text(encoding="utf-8"))
    content = json.loads(written.read_text(encoding="utf-8"))
    assert [r["file_name"] for r in content["needing_attention"]] == ["stuck\x1b[2J\n.xml"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.text(st.characters(exclude_categories=("Cs",)), min_size=1), st.text(min_size=1, max_size=20)),
        min_size=1,
        max_size=6,
    )
)
def test_flows_prints_one_row_per_flow_whatever_its_name_and_sender(
    workspace: Workspace, flows: list[tuple[str, str]]
) -> None:
    """For any file names and senders in the store, `edi flows` prints a header and one inert row per flow, and
    --json gives every name back exactly."""
    now = datetime.now(UTC)
    ids = [f"{now:%Y%m%dT%H%M%S}{n:06d}-{n:06x}" for n in range(len(flows))]
    store = Tracking(workspace.settings.workspace.layout().database)
    try:
        rows = [
            {"flow_id": i, "sender": s, "file_name": f, "received_at": iso(now)}
            for i, (f, s) in zip(ids, flows, strict=True)
        ]
        store.record_claims(rows, now)
        table = run("--config", str(workspace.config), "flows").output
        exact = run("--config", str(workspace.config), "flows", "--json").output
    finally:
        store.forget(ids)
        store.close()
    assert_inert(table)
    assert len(table.splitlines()) == 1 + len(flows)
    assert sorted(row["file_name"] for row in json_lines(exact)) == sorted(f for f, _ in flows)


def test_validate_shows_a_hostile_path_and_its_findings_escaped(tmp_path) -> None:
    """`edi validate` prints one line per file and per finding, the path and the messages escaped; --json exact."""
    path = tmp_path / "a\nb\u202e\x9b.xml"
    path.write_bytes(invoice(issue_date="2026&#x9b;&#x202e;&#10;x"))
    result = run("validate", "--rules", "xsd", str(path))
    assert result.exit_code == 1
    assert_inert(result.output)
    first, *findings = result.output.splitlines()
    assert first.startswith(f"{printable(str(path))}: NOT VALID")
    assert findings and all(line.startswith("  fatal ") for line in findings)
    assert "2026\\x9b\\u202e\\nx" in result.output
    (exact,) = json_lines(run("validate", "--rules", "xsd", "--json", str(path)).output)
    assert exact["file"] == str(path) and any("2026\x9b\u202e\nx" in f["message"] for f in exact["findings"])


# -- every error is one line -------------------------------------------------------------------------------------


def error_lines(stderr: str) -> list[str]:
    """What a command said on stderr besides log lines (JSON objects)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["flows", "--since", "99999999999d"], 2, "Invalid value for '--since'"),
        (["flows", "--since", "9999-12-31T23:00-05:00"], 2, "Invalid value for '--since'"),
        (["flows", "--since", "0001-01-01T00:00+01:00"], 2, "Invalid value for '--since'"),
        (["flows", "--limit", "99999999999999999999"], 2, "Invalid value for '--limit'"),
        (["report", "--day", "9999-12-31"], 2, "the last day a report can cover is 9999-12-30"),
        (["show", ""], 1, "an empty flow id names no flow"),
        (["show"], 2, "Missing argument 'FLOW_ID'"),
        (["flows", "--status", "\x9b[2J"], 2, "Invalid value for '--status'"),
        (["floes"], 2, "No such command 'floes'"),
        (["batch", "--workers", "99999999999999999999"], 2, "Invalid value for '--workers'"),
    ],
    ids=[
        "since-days",
        "since-date-past-9999",
        "since-before-year-1",
        "limit",
        "day",
        "show-empty",
        "show-none",
        "status",
        "command",
        "workers",
    ],
)
def test_out_of_range_arguments_are_one_line_errors(
    processed: Workspace, args: list[str], code: int, says: str
) -> None:
    """Arguments out of range (or empty, or unknown) end in one line on stderr with the documented exit code."""
    result = run("--config", str(processed.config), *args)
    assert result.exit_code == code
    assert "Traceback" not in result.output
    (line,) = error_lines(result.stderr)
    assert line.startswith("Error: ") and says in line
    assert_inert(line)


def test_an_empty_flow_id_names_no_flow_even_when_the_store_holds_one(workspace: Workspace, inject) -> None:
    """`edi show ''` and `edi requeue ''` name no flow, even in a store holding a single (failed) flow, of which
    '' is a prefix: nothing is shown, nothing requeued."""
    workspace.drop("acme", "inv.xml", invoice())
    inject("pipeline.after_decide=raise")
    assert run("--config", str(workspace.config), "batch").exit_code == 1
    inject("")
    failed = sorted((workspace.root / "failed").iterdir())
    shown = run("--config", str(workspace.config), "show", "")
    assert shown.exit_code == 1 and error_lines(shown.stderr) == [
        "Error: an empty flow id names no flow: give the id, or the start of it"
    ]
    requeued = run("--config", str(workspace.config), "requeue", "")
    assert requeued.exit_code == 1 and "no failed flow ''" in requeued.stderr, requeued.output
    assert len(failed) == 1 and sorted((workspace.root / "failed").iterdir()) == failed


def test_an_unexpected_error_is_one_line_and_vv_shows_where(workspace: Workspace, inject) -> None:
    """An exception nobody expected (a bug) ends in one line and exit 1; with -vv a short traceback comes first."""
    workspace.drop("acme", "inv.xml", invoice())
    inject("archive.after_rename=bug")
    quiet = run("--config", str(workspace.config), "batch")
    workspace.drop("acme", "inv2.xml", invoice("N2"))
    loud = run("--config", str(workspace.config), "-vv", "batch")
    inject("")
    assert quiet.exit_code == loud.exit_code == 1
    (line,) = error_lines(quiet.stderr)
    assert line.startswith("Error: unexpected error: RuntimeError: injected bug at archive.after_rename")
    assert "-vv" in line and "Traceback" not in quiet.output
    said = error_lines(loud.stderr)
    assert said[-1].startswith("Error: unexpected error: RuntimeError") and "traceback above" in said[-1]
    assert any(line.strip().startswith('File "') and line.endswith(", in archive") for line in said)
    assert said[-2] == "RuntimeError: injected bug at archive.after_rename"


# -- no traceback, ever ------------------------------------------------------------------------------------------

EDI = Path(sys.executable).with_name("edi")
ARGUMENTS = {  # what each command is run with: a sensible call first, then absurd ones
    "init": [[]],
    "batch": [[], ["--workers", "0"], ["--workers", "99999999999999999999"]],
    "watch": [[], ["--workers", "-1"]],
    "schedule": [["--list"], []],
    "flows": [
        [],
        ["--since", "99999999999d"],
        ["--since", "9999-12-31T23:00-05:00"],
        ["--since", "0001-01-01T00:00+01:00"],
        ["--since", "9" * 5000 + "d"],
        ["--limit", "99999999999999999999"],
        ["--limit", "0"],
        ["--status", "\x9b"],
        ["--sender", "a\nb\u202e"],
    ],
    "show": [["2"], [""], ["\x1b[2J\u202e\udcff"], ["9" * 10_000]],
    "report": [[], ["--day", "9999-12-31"], ["--day", "0001-01-01"], ["--day", "2026-02-30"]],
    "validate": [[str(FLOWS / "acme" / "01-ubl-invoice.xml")], ["/nonexistent/\n\u202e.xml"], ["--rules", "", "x"]],
    "requeue": [["--failed"], [""], ["\udcff\n"], []],
    "recover": [[]],
    "status": [
        ["set", "FA-2026-0001", "204"],
        ["set", "\x1b[2J\u202e\udcff", "210", "--reason", "\n"],
        ["set", "9" * 10_000, "2" * 5000, "--text", "\udcff" * 3],
        ["set", "20261126T204626~99999999", "204"],
    ],
}
EVERYWHERE = [["--no-such-option"], ["\x1b[2J"]]  # with absurd arguments, given to every command, new ones too


def edi_executable(config: Path, args: list[str], seconds: float = 8) -> tuple[int, str, str]:
    """Run the real `edi` executable; one still running after ``seconds`` (watch) is sent SIGTERM."""
    command = [str(EDI)] if EDI.is_file() else [sys.executable, "-m", "edi"]
    process = subprocess.Popen(
        [*command, "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "EDI_FAULTS": ""},
    )
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, err = process.communicate(timeout=120)
    return process.returncode, out.decode("utf-8"), err.decode("utf-8")


def damage_pages(store: Path) -> None:
    """Overwrite the pages holding the flows, documents, findings and events of a store that still opens."""
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        roots = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    data = bytearray(store.read_bytes())
    for page in roots[1:]:  # the first is meta, read when the store is opened
        data[(page - 1) * size : page * size] = b"\xa5" * size
    store.write_bytes(data)


@pytest.mark.parametrize(
    "broken",
    ["not-a-database", "empty-store", "damaged-store", "unwritable-workspace", "immutable-spool", "absurd-arguments"],
)
def test_no_command_ever_prints_a_traceback(processed: Workspace, immutable, broken: str) -> None:
    """Every command (main.commands: a new one is covered too), against a store that is not a database, a 0-byte
    or damaged store, an unwritable workspace, or with absurd arguments, prints at most one line of error (no
    traceback) and exits with a documented code."""
    store = processed.root / "tracking.sqlite"
    processed.drop("acme", "waiting.xml", invoice("N7"))  # something to claim
    if broken == "not-a-database":
        store.write_bytes(b"this is not a database\n" * 100)
    elif broken == "empty-store":
        store.write_bytes(b"")
    elif broken == "damaged-store":
        damage_pages(store)
    elif broken == "unwritable-workspace":
        for path in sorted(processed.root.rglob("*"), reverse=True):
            immutable.set(path)
        immutable.set(processed.root)
    elif broken == "immutable-spool":
        immutable.set(processed.root / "spool" / "active")
    if broken in ("not-a-database", "empty-store", "damaged-store"):
        for extra in ("tracking.sqlite-wal", "tracking.sqlite-shm"):
            (processed.root / extra).unlink(missing_ok=True)
    calls = [
        [name, *args]
        for name in sorted(main.commands)
        for args in (
            ARGUMENTS.get(name, [[]]) + EVERYWHERE if broken == "absurd-arguments" else ARGUMENTS.get(name, [[]])[:1]
        )
    ]
    offences = []
    for call in calls:
        code, out, err = edi_executable(processed.config, call)
        said = error_lines(err)
        allowed = range(101) if call[0] == "validate" else (0, 1, 2, 3, 75)  # as cli.py documents them
        if (
            "Traceback" in out + err
            or len(said) > 1
            or code not in allowed
            or (said and not said[0].startswith("Error: "))
        ):
            offences.append((call, code, err[-2000:]))
        for line in said:
            if UNSAFE.search(line):
                offences.append((call, code, f"unescaped: {line!r}"))
    assert not offences, "\n".join(map(repr, offences))


def test_edi_notifications_errors_are_one_line(make_workspace, tmp_path: Path) -> None:
    """`edi notifications --send` with notifications off is a usage error; on a workspace never initialised, a one-line
    error naming `edi init`; neither prints a traceback."""
    ws = make_workspace()
    off = CliRunner().invoke(main, ["--config", str(ws.config), "notifications", "--send"])
    assert off.exit_code == 2 and "notifications are off" in off.output and "Traceback" not in off.output
    fresh = make_workspace(init=False)
    shutil.rmtree(fresh.root, ignore_errors=True)
    missing = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(fresh.config), "notifications"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "edi init" in missing.stderr
