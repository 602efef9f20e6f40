"""Tests for edi.jobs: retention (delete or move old finished flows, never the others) and the daily flow report."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from edi import faults
from edi.cli import main
from edi.clock import iso
from edi.config import ReportSettings, RetentionSettings, Settings, load_settings
from edi.jobs import day_report, render_report, retention
from edi.model import FlowStatus
from edi.runner import init_workspace, run_batch
from edi.tracking import Tracking
from tests.conftest import DEFAULT_CONFIG, FLOWS, FixedClock, Workspace, assert_inert

OLD = [  # processed on day 0
    ("acme", "01-ubl-invoice.xml"),  # IN_INTEGRE
    ("acme", "05-unknown-recipient.xml"),  # IN_REJETE, 213 DEST_INC
    ("acme", "10-schema-invalid.xml"),  # IN_REJETE, 501 IRR_SYNTAX (3 XSD errors)
    ("opdemat", "03-batch-partial.zip"),  # IN_INTEGRE_PARTIEL: 200, 200, 501 IRR_SYNTAX
]
FAILED = ("acme", "02-ubl-creditnote.xml")  # day 0, fails for our own reason: failed/, IN_EN_ATTENTE_RETRAITEMENT
NEW = [  # processed on day 5
    ("acme", "03-cii-invoice.xml"),  # IN_INTEGRE
    ("acme", "04-duplicate-of-01.xml"),  # IN_REJETE, DOUBLON
    ("acme", "09-not-well-formed.xml"),  # IN_REJETE, 501 IRR_SYNTAX
    ("opdemat", "04-batch.tar.gz"),  # IN_INTEGRE, two documents
]
RECEIVED = ("opdemat", "01-initech-cii-basic.xml")  # claimed, then the processor was killed: IN_RECU in the spool
TABLES = ("flows", "documents", "findings", "events")


@dataclass(frozen=True)
class Template:
    """A workspace with flows of every kind, built once for the module and copied for each test."""

    folder: Path
    day0: datetime
    old: dict[str, tuple[str, str]]  # flow id -> (sender, file name)
    new: dict[str, tuple[str, str]]
    failed: str
    received: str


def drop(ws: Workspace, files: list[tuple[str, str]]) -> None:
    for position, (sender, name) in enumerate(files):
        ws.drop(sender, name, (FLOWS / sender / name).read_bytes(), age=600 - position)


def batch(ws: Workspace, files: list[tuple[str, str]], clock: FixedClock) -> dict[str, tuple[str, str]]:
    drop(ws, files)
    report = run_batch(ws.settings, clock=clock)
    return {o.flow_id: (o.sender, o.file_name) for o in report.outcomes}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Day 0: four flows finish and one fails; day 5: four more finish; then a processor dies holding a fifth."""
    folder = tmp_path_factory.mktemp("template")
    config = folder / "config.toml"
    config.write_text(DEFAULT_CONFIG.format(directory=FLOWS / "directory.toml"), encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    clock = FixedClock()
    day0 = clock.now()

    old = batch(ws, OLD, clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDI_FAULTS", "pipeline.after_decide=raise")
        faults._faults.cache_clear()
        (failed,) = batch(ws, [FAILED], clock)
    faults._faults.cache_clear()
    clock.advance(5 * 86400)
    new = batch(ws, NEW, clock)

    drop(ws, [RECEIVED])
    env = {**os.environ, "EDI_FAULTS": "pipeline.after_received=crash"}
    command = [sys.executable, "-m", "edi", "--config", str(config), "batch"]
    crashed = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert crashed.returncode == -9, crashed.stderr
    store = Tracking(settings.workspace.layout().database)
    try:
        (received,) = [row["flow_id"] for row in store.flows(status=str(FlowStatus.RECEIVED))]
        statuses = {row["flow_id"]: row["status"] for row in store.flows(limit=None)}
    finally:
        store.close()
    assert len(old) == len(OLD) and len(new) == len(NEW)
    assert set(statuses) == {*old, *new, failed, received}
    assert statuses[failed] == "IN_EN_ATTENTE_RETRAITEMENT"
    assert all(FlowStatus(statuses[i]).final for i in [*old, *new])
    return Template(folder, day0, old, new, failed, received)


@pytest.fixture
def ws(template: Template, tmp_path: Path) -> Workspace:
    """A copy of the template workspace of its own."""
    folder = tmp_path / "copy"
    shutil.copytree(template.folder, folder, symlinks=True)
    config = folder / "config.toml"
    return Workspace(config, load_settings(config))


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """The CLI configures structlog for its run: put back what the other tests use."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def keeping(ws: Workspace, days: int, action: str = "delete", move_to: Path | None = None) -> Settings:
    return replace(ws.settings, retention=RetentionSettings(days=days, action=action, move_to=move_to))


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but the SQLite store) by relative path, with the SHA-256 of its bytes."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("tracking.sqlite"):
            found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def rows(ws: Workspace) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the tracking tables about flows."""
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    try:
        return {table: set(conn.execute(f"SELECT * FROM {table}").fetchall()) for table in TABLES}
    finally:
        conn.close()


def without(table_rows: dict[str, set[tuple[Any, ...]]], ids: set[str]) -> dict[str, set[tuple[Any, ...]]]:
    """The rows not about these flows (every table has flow_id as its first or second column)."""
    return {t: {r for r in rs if not ids & {r[0], r[1]}} for t, rs in table_rows.items()}


def flow_files(ws: Workspace, ids: set[str]) -> set[str]:
    """The files retention keeps for these flows: their archived bytes (archive/Y/M/D/<flow_id>_<name>), their
    two acks and their CDAR messages (<flow_id>.<index>.cdar.xml)."""
    return {
        rel
        for rel in files(ws.root)
        if (rel.startswith("archive/") and rel.split("/")[4].split("_", 1)[0] in ids)
        or (rel.startswith("acks/") and rel.split("/")[2].split(".", 1)[0] in ids)
    }


def records(ws: Workspace, ids: set[str]) -> dict[str, Any]:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return {i: json.loads(json.dumps(store.flow(i))) for i in ids}
    finally:
        store.close()


# -- retention -------------------------------------------------------------------------------------------------------


def test_retention_deletes_old_finished_flows_and_nothing_else(template: Template, ws: Workspace) -> None:
    """Finished flows older than retention.days lose their archived bytes, two acks, CDAR messages and every tracking
    row;
    newer flows, failed and received flows, queues and everything else stay as they were."""
    old = set(template.old)
    doomed = flow_files(ws, old)
    cdars = {rel for rel in doomed if rel.endswith(".cdar.xml")}
    assert len(cdars) >= len(old) and len(doomed - cdars) == 3 * len(old)  # one archive, two acks, 1+ messages each
    files_before, rows_before = files(ws.root), rows(ws)
    clock = FixedClock(template.day0 + timedelta(days=5, hours=1))

    report = retention(keeping(ws, days=3), clock)

    assert (report.flows, report.action, report.cutoff) == (len(old), "delete", clock.now() - timedelta(days=3))
    assert files(ws.root) == {rel: h for rel, h in files_before.items() if rel not in doomed}
    assert rows(ws) == without(rows_before, old)
    assert all(not list((ws.root / "archive").rglob(f"{flow_id}_*")) for flow_id in old)
    assert len(ws.queue("ville-exemple")) == 1  # what was delivered is the recipients' business, never touched


def test_failed_and_received_flows_are_never_touched_whatever_their_age(template: Template, ws: Workspace) -> None:
    """Ten years on, every finished flow is gone, but the failed flow (in failed/) and the received one (in the
    spool) keep their folders and rows."""
    finished = set(template.old) | set(template.new)
    pending = {template.failed, template.received}
    files_before, rows_before = files(ws.root), rows(ws)

    report = retention(keeping(ws, days=1), FixedClock(template.day0 + timedelta(days=3650)))

    assert report.flows == len(finished)
    after = files(ws.root)
    for flow_id, folder in ((template.failed, "failed"), (template.received, "spool/active")):
        # failed/<flow_id>/payload; spool/active/<hand of the crashed process>/<flow_id>
        theirs = {rel: h for rel, h in files_before.items() if rel.startswith(f"{folder}/") and flow_id in rel}
        assert theirs and {rel: after[rel] for rel in theirs} == theirs
    assert rows(ws) == without(rows_before, finished)
    assert {row[0] for row in rows(ws)["flows"]} == pending
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        assert store.status(template.failed) == "IN_EN_ATTENTE_RETRAITEMENT"
        assert store.status(template.received) == "IN_RECU"
    finally:
        store.close()


def test_retention_moves_files_and_rows_out_under_move_to(template: Template, ws: Workspace, tmp_path: Path) -> None:
    """action = "move": archived bytes and acks go under move_to at the same relative paths, byte for byte, and
    the tracking rows are written there as one JSON line per flow; the workspace ends as with delete."""
    attic = tmp_path / "attic"
    old = set(template.old)
    moved = flow_files(ws, old)
    files_before, rows_before, kept = files(ws.root), rows(ws), records(ws, old)
    clock = FixedClock(template.day0 + timedelta(days=5, hours=1))

    report = retention(keeping(ws, days=3, action="move", move_to=attic), clock)

    assert (report.flows, report.action) == (len(old), "move")
    assert files(ws.root) == {rel: h for rel, h in files_before.items() if rel not in moved}
    assert rows(ws) == without(rows_before, old)
    export = f"tracking/flows-{clock.now():%Y%m%dT%H%M%S}-{min(old)}.jsonl"  # named after its first flow too
    assert files(attic) == {rel: files_before[rel] for rel in moved} | {export: files(attic)[export]}
    lines = (attic / export).read_text(encoding="utf-8").splitlines()
    exported = {record["flow_id"]: record for record in map(json.loads, lines)}
    assert len(lines) == len(old) and exported == kept
    assert all(record["documents"] and record["events"] for record in exported.values())


def test_retention_moves_to_another_filesystem(template: Template, ws: Workspace, tmp_path: Path) -> None:
    """move_to on another filesystem (tmpfs): files are copied there, then removed here; no partial copy left."""
    if not Path("/dev/shm").is_dir() or Path("/dev/shm").stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    attic = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="edi-retention-"))
    try:
        old = set(template.old)
        moved = flow_files(ws, old)
        files_before = files(ws.root)

        report = retention(
            keeping(ws, days=3, action="move", move_to=attic), FixedClock(template.day0 + timedelta(days=6))
        )

        assert report.flows == len(old)
        assert files(ws.root) == {rel: h for rel, h in files_before.items() if rel not in moved}
        landed = files(attic)
        assert {rel: landed[rel] for rel in moved} == {rel: files_before[rel] for rel in moved}
        assert not [rel for rel in landed if ".partial" in rel]
        assert len([rel for rel in landed if rel.startswith("tracking/")]) == 1
    finally:
        shutil.rmtree(attic)


def test_retention_with_nothing_old_does_nothing_and_running_it_twice_is_harmless(
    template: Template, ws: Workspace, tmp_path: Path
) -> None:
    """Nothing older than the cutoff: no file, row or export changes; a second run after a real one finds
    nothing more to do."""
    attic = tmp_path / "attic"
    settings = keeping(ws, days=3, action="move", move_to=attic)
    files_before, rows_before = files(ws.root), rows(ws)

    assert retention(settings, FixedClock(template.day0 + timedelta(hours=1))).flows == 0
    assert (files(ws.root), rows(ws)) == (files_before, rows_before)
    assert not attic.exists()

    clock = FixedClock(template.day0 + timedelta(days=5, hours=1))
    assert retention(settings, clock).flows == len(template.old)
    state = files(ws.root), rows(ws), files(attic)
    clock.advance(60)
    assert retention(settings, clock).flows == 0
    assert (files(ws.root), rows(ws), files(attic)) == state


def test_retention_deletes_acks_kept_outside_the_workspace(template: Template, ws: Workspace, tmp_path: Path) -> None:
    """With workspace.acks elsewhere (an SFTP chroot), delete removes an old flow's acks and CDAR messages there
    too."""
    outside = tmp_path / "sftp-acks"
    shutil.move(ws.root / "acks", outside)
    settings = keeping(ws, days=3)
    settings = replace(settings, workspace=replace(settings.workspace, acks=outside))
    before = files(outside)

    assert retention(settings, FixedClock(template.day0 + timedelta(days=5, hours=1))).flows == len(template.old)

    assert files(outside) == {
        rel: h for rel, h in before.items() if rel.split("/")[1].split(".", 1)[0] not in template.old
    }
    left = {rel for rel in files(outside) if not rel.endswith(".cdar.xml")}
    assert len(left) == 2 * len(template.new)
    assert all(rel.split("/")[1].split(".", 1)[0] in template.new for rel in files(outside))


def test_retention_moves_acks_kept_outside_the_workspace(template: Template, ws: Workspace, tmp_path: Path) -> None:
    """With workspace.acks elsewhere, move takes an old flow's acks and CDAR messages under move_to too, and forgets
    its rows."""
    outside, attic = tmp_path / "sftp-acks", tmp_path / "attic"
    shutil.move(ws.root / "acks", outside)
    settings = keeping(ws, days=3, action="move", move_to=attic)
    settings = replace(settings, workspace=replace(settings.workspace, acks=outside))

    assert retention(settings, FixedClock(template.day0 + timedelta(days=5, hours=1))).flows == len(template.old)

    assert all(rel.split("/")[1].split(".", 1)[0] in template.new for rel in files(outside))
    assert len({rel for rel in files(outside) if not rel.endswith(".cdar.xml")}) == 2 * len(template.new)
    landed = {p.name for p in attic.rglob("*") if p.is_file()}
    assert {f"{flow_id}.{ext}" for flow_id in template.old for ext in ("json", "xml")} <= landed
    assert {f"{flow_id}.0001.cdar.xml" for flow_id in template.old} <= landed
    assert {row[0] for row in rows(ws)["flows"]} == set(template.new) | {template.failed, template.received}


def test_two_retention_runs_in_the_same_second_keep_both_exports(
    template: Template, ws: Workspace, tmp_path: Path
) -> None:
    """Every flow moved out has its rows in an export, even when two runs share a second (retention.days was
    lowered between them)."""
    attic = tmp_path / "attic"
    clock = FixedClock(template.day0 + timedelta(days=6, hours=1))
    assert retention(keeping(ws, days=4, action="move", move_to=attic), clock).flows == len(template.old)
    assert retention(keeping(ws, days=1, action="move", move_to=attic), clock).flows == len(template.new)

    exported = [json.loads(line)["flow_id"] for p in (attic / "tracking").iterdir() for line in p.open()]
    assert sorted(exported) == sorted([*template.old, *template.new])


# -- day report ------------------------------------------------------------------------------------------------------


def fatal_rules(ws: Workspace, ids: set[str]) -> Counter[tuple[str, str]]:
    """Fatal findings with a rule, per (layer, rule), as the final acknowledgements of these flows state them."""
    counted: Counter[tuple[str, str]] = Counter()
    for path in (ws.root / "acks").rglob("*.json"):
        ack = json.loads(path.read_text(encoding="utf-8"))
        if ack["flow_id"] in ids:
            for finding in [*ack["findings"], *(f for d in ack["documents"] for f in d["findings"])]:
                if finding["severity"] == "fatal" and finding["rule"]:
                    counted[(finding["layer"], finding["rule"])] += 1
    return counted


def received_day(ws: Workspace, flow_id: str) -> date:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return datetime.fromisoformat(store.flow(flow_id)["received_at"]).astimezone(UTC).date()
    finally:
        store.close()


def test_day_report_counts_a_day_of_mixed_outcomes(template: Template, ws: Workspace) -> None:
    """Day 0: counts per status and per sender, refusal reasons, top rules, and the flows needing an operator."""
    day = template.day0.date()
    recu_same_day = received_day(ws, template.received) == day  # the killed run used the real clock
    clock = FixedClock(template.day0 + timedelta(days=1))

    path, content = day_report(ws.settings, day, clock)

    assert path == ws.root / "reports" / f"flows-{day.isoformat()}.json"
    assert content["day"] == day.isoformat() and content["generated_at"] == iso(clock.now())
    expected_status = {"IN_INTEGRE": 1, "IN_REJETE": 2, "IN_INTEGRE_PARTIEL": 1, "IN_EN_ATTENTE_RETRAITEMENT": 1}
    if recu_same_day:
        expected_status["IN_RECU"] = 1
    assert content["by_status"] == expected_status
    assert content["flows"] == sum(expected_status.values())
    by_sender = [
        {"sender": "acme", "status": "IN_EN_ATTENTE_RETRAITEMENT", "flows": 1, "documents": 0, "accepted": 0},
        {"sender": "acme", "status": "IN_INTEGRE", "flows": 1, "documents": 1, "accepted": 1},
        {"sender": "acme", "status": "IN_REJETE", "flows": 2, "documents": 2, "accepted": 0},
        {"sender": "opdemat", "status": "IN_INTEGRE_PARTIEL", "flows": 1, "documents": 3, "accepted": 2},
    ]
    if recu_same_day:
        by_sender.append({"sender": "opdemat", "status": "IN_RECU", "flows": 1, "documents": 0, "accepted": 0})
    assert content["by_sender"] == by_sender
    assert content["reasons"] == [{"reason": "IRR_SYNTAX", "documents": 2}, {"reason": "DEST_INC", "documents": 1}]
    top = content["top_rules"]
    assert {(r["layer"], r["rule"]): r["findings"] for r in top} == fatal_rules(ws, set(template.old))
    assert [(-r["findings"], r["rule"]) for r in top] == sorted((-r["findings"], r["rule"]) for r in top)
    attention = content["needing_attention"]
    assert [(r["flow_id"], r["status"]) for r in attention] == [
        (template.failed, "IN_EN_ATTENTE_RETRAITEMENT"),
        (template.received, "IN_RECU"),
    ]
    assert [(r["sender"], r["file_name"]) for r in attention] == [FAILED, RECEIVED]
    assert json.loads(path.read_text(encoding="utf-8")) == content


def test_day_report_text_says_the_same_for_people(template: Template, ws: Workspace) -> None:
    """The .txt beside the JSON renders it: totals, per-sender lines, reasons, rules, flows needing an operator."""
    path, content = day_report(ws.settings, template.day0.date(), FixedClock(template.day0 + timedelta(days=1)))
    text = path.with_suffix(".txt").read_text(encoding="utf-8")
    assert text == render_report(content)
    lines = text.splitlines()
    assert lines[0].startswith(f"edi flow report for {template.day0.date().isoformat()} (UTC), generated ")
    assert f"flows received: {content['flows']}" in lines
    assert f"  {'IN_REJETE':28} 2" in lines
    assert f"  {'opdemat':16} {'IN_INTEGRE_PARTIEL':28} {1:>6} flows {2:>6}/3 documents accepted" in lines
    assert f"  {'IRR_SYNTAX':16} 2" in lines and f"  {'DEST_INC':16} 1" in lines
    assert "most broken rules:" in lines
    assert "needing an operator (failed, or still in the spool): 2" in lines
    assert any(line.startswith(f"  {template.failed}  acme") for line in lines)
    assert any(line.startswith(f"  {template.received}  opdemat") for line in lines)


def test_day_report_of_another_day_counts_only_that_day(template: Template, ws: Workspace) -> None:
    """Day 5 counts the four flows received that day (a duplicate among them); the flows still needing an
    operator are listed whatever day they came."""
    day = (template.day0 + timedelta(days=5)).date()
    _, content = day_report(ws.settings, day, FixedClock(template.day0 + timedelta(days=6)))
    assert content["by_status"] == {"IN_INTEGRE": 2, "IN_REJETE": 2}
    assert content["by_sender"] == [
        {"sender": "acme", "status": "IN_INTEGRE", "flows": 1, "documents": 1, "accepted": 1},
        {"sender": "acme", "status": "IN_REJETE", "flows": 2, "documents": 1, "accepted": 0},
        {"sender": "opdemat", "status": "IN_INTEGRE", "flows": 1, "documents": 2, "accepted": 2},
    ]
    assert content["reasons"] == [{"reason": "IRR_SYNTAX", "documents": 1}]
    rules = {(r["layer"], r["rule"]): r["findings"] for r in content["top_rules"]}
    assert rules == fatal_rules(ws, set(template.new))
    assert rules[("intake", "DUPLICATE_FLOW")] == 1
    assert [r["flow_id"] for r in content["needing_attention"]] == [template.failed, template.received]


def test_day_report_of_a_day_without_flows_is_zeros(template: Template, ws: Workspace, workspace: Workspace) -> None:
    """A day nobody sent anything gives zeros (and, in a workspace with nothing pending, nobody to call)."""
    _, content = day_report(ws.settings, date(2001, 1, 1), FixedClock())
    assert (content["flows"], content["by_status"], content["by_sender"]) == (0, {}, [])
    assert (content["reasons"], content["top_rules"]) == ([], [])

    path, empty = day_report(workspace.settings, date(2001, 1, 1), FixedClock())
    assert (empty["flows"], empty["by_status"], empty["needing_attention"]) == (0, {}, [])
    text = path.with_suffix(".txt").read_text(encoding="utf-8")
    assert "flows received: 0" in text and "needing an operator (failed, or still in the spool): 0" in text
    assert "per sender:" not in text and "documents refused" not in text


def test_day_report_defaults_to_yesterday_utc(template: Template, ws: Workspace) -> None:
    """Without a day, the report is about yesterday (UTC) by the clock."""
    clock = FixedClock(datetime.combine(template.day0.date() + timedelta(days=1), datetime.min.time(), UTC))
    clock.advance(60)  # 00:01 UTC the next day
    path, content = day_report(ws.settings, clock=clock)
    assert content["day"] == template.day0.date().isoformat()
    assert path.name == f"flows-{template.day0.date().isoformat()}.json"


def test_day_report_goes_to_the_configured_folder(template: Template, ws: Workspace, tmp_path: Path) -> None:
    """report.folder puts the two files elsewhere (created if need be)."""
    folder = tmp_path / "elsewhere" / "reports"
    settings = replace(ws.settings, report=ReportSettings(folder=folder))
    path, _ = day_report(settings, template.day0.date(), FixedClock())
    assert path.parent == folder
    assert sorted(p.name for p in folder.iterdir()) == [path.name, path.with_suffix(".txt").name]


def test_edi_report_prints_the_day_and_writes_both_files(template: Template, ws: Workspace) -> None:
    """`edi report --day YYYY-MM-DD` prints the text report, says where it wrote it, and writes JSON and text."""
    day = template.day0.date().isoformat()
    _, content = day_report(ws.settings, template.day0.date(), FixedClock())

    result = CliRunner().invoke(main, ["--config", str(ws.config), "report", "--day", day], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    path = ws.root / "reports" / f"flows-{day}.json"
    written = json.loads(path.read_text(encoding="utf-8"))
    assert {k: v for k, v in written.items() if k != "generated_at"} == {
        k: v for k, v in content.items() if k != "generated_at"
    }
    assert result.output == render_report(written) + f"written to {path} (and flows-{day}.txt)\n"
    assert path.with_suffix(".txt").read_text(encoding="utf-8") == render_report(written)


def test_edi_report_outside_a_workspace_fails_with_one_line(make_workspace) -> None:
    """`edi report` on a workspace never initialised exits 1 and says to run `edi init`."""
    ws = make_workspace(init=False)
    result = CliRunner().invoke(main, ["--config", str(ws.config), "report", "--day", "2026-01-01"])
    assert result.exit_code == 1
    assert "run `edi init` first" in result.output and "Traceback" not in result.output


def test_day_report_text_escapes_what_a_sender_controls(workspace: Workspace) -> None:
    """A failed flow whose name holds a line feed, the CSI and an RLO is one escaped line of the .txt (and of
    what `edi report` prints); the JSON keeps the exact name."""
    name = "x.xml\n  20260101T000000000000-000000  acme  IN_INTEGRE  \x9b2J\u202elmx.exe"
    now = datetime.now(UTC)
    store = Tracking(workspace.settings.workspace.layout().database)
    try:
        store.record_failed(
            {"flow_id": "20260101T000000000001-aaaaaa", "sender": "acme", "file_name": name, "received_at": iso(now)},
            now,
            "OSError: disk full",
        )
    finally:
        store.close()
    path, content = day_report(workspace.settings, now.date(), FixedClock(now))
    text = path.with_suffix(".txt").read_text(encoding="utf-8")
    assert_inert(text)
    attention = text.split("needing an operator (failed, or still in the spool): 1\n")[1]
    assert attention == (
        "  20260101T000000000001-aaaaaa  acme         IN_EN_ATTENTE_RETRAITEMENT   "
        "x.xml\\n  20260101T000000000000-000000  acme  IN_INTEGRE  \\x9b2J\\u202elmx.exe\n"
    )
    assert [r["file_name"] for r in content["needing_attention"]] == [name]
    assert json.loads(path.read_text(encoding="utf-8"))["needing_attention"][0]["file_name"] == name
