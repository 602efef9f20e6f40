"""The edi command through CliRunner: help, init, batch exit codes and summary, flows, show, requeue, config errors."""

from __future__ import annotations

import gc
import json
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from benchmarks.invoices import nameless_invoice, templates
from edi.cli import main, parse_since
from edi.runner import GC_YOUNG_OBJECTS
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["init"], ["batch"], ["flows"], ["show"], ["requeue"]])
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
