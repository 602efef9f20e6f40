"""End to end through run_batch: the samples, safe pickup, duplicates, failures, requeue and crash recovery."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edi.config import load_settings
from edi.errors import ConfigError, UnknownFlowError, WorkspaceError
from edi.model import FlowStatus
from edi.runner import init_workspace, requeue, run_batch
from edi.tracking import Tracking
from edi.validate.catalogue import load_catalogue
from flows.drop import drop
from tests.conftest import DEFAULT_CONFIG, EXPECTED, FLOWS, REPO, FixedClock, Workspace, assert_expected_answer

SAMPLES = [(sender, name) for sender, files in EXPECTED.items() for name in files]


def repo_config_workspace(make_workspace: Callable[..., Workspace]) -> Workspace:
    """A workspace configured by the repository's own config.toml (only the root and the directory's path changed:
    intake waits as the demo's does)."""
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace('root = "var"', 'root = "ws"')
    text = text.replace('directory = "flows/directory.toml"', 'directory = "{directory}"')
    return make_workspace(text.replace("{", "{{").replace("}", "}}").replace("{{directory}}", "{directory}"))


def drop_samples(ws: Workspace) -> None:
    """Drop every sample in its sender's inbox as ./demo.sh does (flows/drop.py)."""
    assert sorted((p.parent.name, p.name) for p in drop(ws.root / "inbox")) == sorted(SAMPLES)


def acks_by_name(ws: Workspace) -> dict[tuple[str, str], dict]:
    found = {}
    for sender in EXPECTED:
        for path in ws.acks(sender):
            ack = json.loads(path.read_text(encoding="utf-8"))
            found[(sender, ack["file_name"])] = ack
    return found


def run_samples(tmp: Path) -> tuple[Workspace, object]:
    """A workspace in ``tmp`` with the repository's configuration, every sample dropped, and one real batch over
    them (as ./demo.sh runs it, once min_age_seconds is waited out); its report."""

    def make(text: str) -> Workspace:
        config = tmp / "config.toml"
        config.write_text(text.format(directory=FLOWS / "directory.toml"), encoding="utf-8")
        settings = load_settings(config)
        init_workspace(settings)
        return Workspace(config, settings)

    ws = repo_config_workspace(make)
    drop_samples(ws)
    clock = FixedClock()
    clock.advance(ws.settings.intake.min_age_seconds + 1)  # ./demo.sh waits out min_age_seconds, then runs
    return ws, run_batch(ws.settings, clock=clock)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict, object]:
    """Run one batch over all samples with the repository's configuration."""
    ws, report = run_samples(tmp_path_factory.mktemp("samples"))
    return ws, acks_by_name(ws), report


@pytest.mark.parametrize(("sender", "name"), SAMPLES, ids=[f"{s}/{n}" for s, n in SAMPLES])
def test_sample_gets_its_expected_answer(sample_run, sender: str, name: str) -> None:
    """Each sample flow ends with the status, reason, codes and queue that flows/expected.toml gives."""
    _, acks, _ = sample_run
    assert_expected_answer(acks[(sender, name)], EXPECTED[sender][name])


def test_samples_leave_nothing_behind_and_everything_accounted_for(sample_run) -> None:
    """After the run: inbox and spool empty, one ack pair per flow, accepted documents in their queues exactly once."""
    ws, acks, report = sample_run
    assert len(report.outcomes) == len(SAMPLES) and report.failed == 0
    assert (report.young, report.incomplete, report.skipped) == (0, 0, [])  # nothing left waiting
    assert not [p for p in (ws.root / "inbox").rglob("*") if p.is_file()]
    assert not any((ws.root / "spool" / "active").iterdir())
    for sender in EXPECTED:
        jsons = ws.acks(sender)
        xmls = sorted(p for p in (ws.root / "acks" / sender).glob("*.xml") if not p.name.endswith(".cdar.xml"))
        assert [p.stem for p in jsons] == [p.stem for p in xmls] and len(jsons) == len(EXPECTED[sender])
    delivered = sorted(p.name for p in (ws.root / "queues").glob("*/new/*"))
    expected = sorted(name for a in acks.values() for d in a["documents"] for name in d["delivered_as"])
    assert delivered == expected and len(delivered) == 13  # 9 XML invoices, and 2 PDFs each with its XML beside
    assert not list((ws.root / "tmp").iterdir())


def test_samples_archive_keeps_the_original_bytes(sample_run) -> None:
    """Every flow's original bytes are in archive/YYYY/MM/DD/<flow_id>_<name>, byte for byte."""
    ws, acks, _ = sample_run
    for (sender, name), ack in acks.items():
        day = ack["received_at"][:10].replace("-", "/")
        archived = ws.root / "archive" / day / f"{ack['flow_id']}_{name}"
        assert archived.read_bytes() == (FLOWS / sender / name).read_bytes()


def test_samples_tracking_agrees_with_the_acknowledgements(sample_run) -> None:
    """The store holds each flow with the status, documents and findings its acknowledgement gives."""
    ws, acks, _ = sample_run
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        for ack in acks.values():
            flow = store.flow(ack["flow_id"])
            assert flow["status"] == ack["status"]
            assert [d["status"] for d in flow["documents"]] == [d["status"] for d in ack["documents"]]
            assert [f["code"] for d in flow["documents"] for f in d["findings"]] == [
                f["code"] for d in ack["documents"] for f in d["findings"]
            ]
            assert [e["status"] for e in flow["events"] if e["idx"] is None] == ["IN_RECU", ack["status"]]
    finally:
        store.close()


def test_duplicate_flow_names_the_earlier_flow(sample_run) -> None:
    """A file whose bytes the sender already deposited is rejected DOUBLON and its ack names the first flow."""
    _, acks, _ = sample_run
    first = acks[("acme", "01-ubl-invoice.xml")]
    duplicate = acks[("acme", "04-duplicate-of-01.xml")]
    assert duplicate["duplicate_of"] == first["flow_id"]
    assert first["flow_id"] in duplicate["findings"][0]["message"]


def test_same_bytes_from_another_sender_is_not_a_duplicate_flow(workspace: Workspace, clock) -> None:
    """Duplicate flows are per sender; the invoice inside is still the same invoice, so it is a duplicate invoice."""
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    workspace.drop("acme", "a.xml", data, age=20)
    workspace.drop("opdemat", "b.xml", data, age=10)
    report = run_batch(workspace.settings, clock=clock)
    assert [o.status for o in report.outcomes] == [FlowStatus.INTEGRATED, FlowStatus.REJECTED]
    (ack,) = [json.loads(p.read_text()) for p in workspace.acks("opdemat")]
    assert ack["findings"] == [] and ack["duplicate_of"] is None
    (finding,) = ack["documents"][0]["findings"]
    assert (finding["code"], finding["rule"]) == ("DOUBLON", "DUPLICATE_INVOICE")
    assert report.outcomes[0].flow_id in finding["message"]


def test_young_and_in_progress_files_are_left_for_the_next_run(make_workspace, clock) -> None:
    """Files younger than min_age_seconds and names like *.part are not touched; they are taken once finished."""
    ws = make_workspace(
        "[workspace]\nroot = 'ws'\n[intake]\nmin_age_seconds = 30\n[[senders]]\nid = 'acme'\nsellers = ['*']\n"
    )
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    ws.drop("acme", "young.xml", data, age=1)
    ws.drop("acme", "upload.xml.part", data, age=3600)
    ws.drop("acme", ".hidden.xml", data, age=3600)
    report = run_batch(ws.settings, clock=clock)
    assert report.outcomes == [] and report.young == 1
    assert sorted(p.name for p in ws.inbox("acme").iterdir()) == [".hidden.xml", "upload.xml.part", "young.xml"]
    clock.advance(60)
    report = run_batch(ws.settings, clock=clock)
    assert [o.file_name for o in report.outcomes] == ["young.xml"]


def test_links_fifos_sockets_and_folders_are_skipped_not_processed(workspace: Workspace, clock, tmp_path) -> None:
    """Symlinks are never followed; FIFOs, sockets and sub-folders are reported and left where they are."""
    target = tmp_path / "outside.xml"
    target.write_bytes((FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    inbox = workspace.inbox("acme")
    (inbox / "link.xml").symlink_to(target)
    os.mkfifo(inbox / "pipe.xml")
    (inbox / "folder").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(inbox / "sock"))
    try:
        report = run_batch(workspace.settings, clock=clock)
    finally:
        server.close()
    assert report.outcomes == []
    assert sorted(s.path.name for s in report.skipped) == ["folder", "link.xml", "pipe.xml", "sock"]
    assert target.exists() and (inbox / "link.xml").is_symlink()


def test_folder_of_an_undeclared_sender_is_reported_and_left(workspace: Workspace, clock) -> None:
    """Files under inbox/<unknown>/ are not processed (no sender to answer) and the folder is reported."""
    workspace.drop("stranger", "x.xml", b"<a/>")
    report = run_batch(workspace.settings, clock=clock)
    assert report.outcomes == [] and [s.path.name for s in report.skipped] == ["stranger"]
    assert (workspace.inbox("stranger") / "x.xml").exists()


def test_non_utf8_and_long_file_names_are_processed_and_archived_as_they_were(workspace: Workspace, clock) -> None:
    """A file name that is not UTF-8 is shown with \\x escapes and archived under its exact bytes (after the flow
    id), a long one too."""
    raw = b"facture-\xe9t\xe9 n\xb01.xml"
    long = "é" * 100 + ".xml"
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    workspace.drop("acme", raw, data, age=20)
    workspace.drop("acme", long, (FLOWS / "acme" / "02-ubl-creditnote.xml").read_bytes(), age=10)
    report = run_batch(workspace.settings, clock=clock)
    assert [o.file_name for o in report.outcomes] == ["facture-\\xe9t\\xe9 n\\xb01.xml", long]
    archived = {o.file_name: (workspace.root / "archive").rglob(f"{o.flow_id}_*") for o in report.outcomes}
    first, second = (next(found) for found in archived.values())
    assert first.name.split("_", 1)[1] == os.fsdecode(raw)
    assert second.name.split("_", 1)[1] == long


def test_batch_refuses_a_workspace_that_was_not_initialised(make_workspace, clock) -> None:
    """Running before `edi init` is a clear WorkspaceError, not a half-created workspace."""
    ws = make_workspace(init=False)
    with pytest.raises(WorkspaceError, match="edi init"):
        run_batch(ws.settings, clock=clock)
    assert not ws.root.exists()


def test_a_rule_naming_an_unknown_queue_stops_the_run_before_any_file_is_taken(workspace: Workspace, clock) -> None:
    """A typo in a routing rule's queue is a ConfigError when a batch (or init) starts: the invoice is not delivered
    to a folder nobody reads, its sender is not told IN_INTEGRE; the file waits in the inbox for a fixed config."""
    text = workspace.config.read_text(encoding="utf-8")
    workspace.config.write_text(text.replace('queue = "ville-exemple-voirie"', 'queue = "ville-exemple-voirei"'))
    settings = load_settings(workspace.config)
    dropped = workspace.drop("opdemat", "voirie.xml", (FLOWS / "opdemat" / "02-initech-ubl-voirie.xml").read_bytes())
    for start in (lambda: run_batch(settings, clock=clock), lambda: init_workspace(settings)):
        with pytest.raises(ConfigError, match=re.escape('routing.rules[0] (recipient = "ville-exemple", service')):
            start()
    assert dropped.exists() and not workspace.acks("opdemat")
    assert not (workspace.root / "queues" / "ville-exemple-voirei").exists()


@pytest.mark.parametrize(
    "point", ["pipeline.after_decide", "pipeline.after_deliver", "ack.xml.before_rename", "pipeline.after_record"]
)
def test_internal_failure_parks_the_flow_then_requeue_finishes_it(workspace: Workspace, clock, inject, point) -> None:
    """A flow that fails for our own reason goes to failed/ without an ack; requeued, it ends once, delivered once."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    inject(f"{point}=raise")
    report = run_batch(workspace.settings, clock=clock)
    (outcome,) = report.outcomes
    assert outcome.status is FlowStatus.FAILED and report.failed == 1
    assert (workspace.root / "failed" / outcome.flow_id / "payload").exists()
    assert workspace.acks("acme") == [] and not list((workspace.root / "acks" / "acme").glob("*.xml"))
    store = Tracking(workspace.root / "tracking.sqlite")
    flow = store.flow(outcome.flow_id)
    store.close()
    assert flow["status"] == "IN_EN_ATTENTE_RETRAITEMENT"
    assert "InjectedFault" in flow["events"][-1]["detail"]

    inject("")
    assert requeue(workspace.settings, [outcome.flow_id[:20]], clock=clock) == [outcome.flow_id]
    report = run_batch(workspace.settings, clock=clock)
    assert [o.status for o in report.outcomes] == [FlowStatus.INTEGRATED] and report.recovered == 1
    assert len(workspace.acks("acme")) == 1 and len(workspace.queue("ville-exemple")) == 1
    assert not (workspace.root / "failed" / outcome.flow_id).exists()


def test_requeue_of_a_flow_that_did_not_fail_is_refused(sample_run) -> None:
    """Requeue names what is wrong: an unknown id, or a flow that is not in failed/."""
    ws, acks, _ = sample_run
    with pytest.raises(UnknownFlowError):
        requeue(ws.settings, ["nope"])
    with pytest.raises(WorkspaceError, match="not in failed"):
        requeue(ws.settings, [acks[("acme", "01-ubl-invoice.xml")]["flow_id"]])


CRASH_POINTS = [
    "claim.before_rename",
    "claim.after_rename",
    "pipeline.after_received",
    "pipeline.after_deliver",
    "deliver.before_rename",
    "ack.json.before_rename",
    "pipeline.after_ack",
    "pipeline.after_record",
    "archive.after_rename",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_anywhere_is_recovered_by_the_next_run_without_duplicate_delivery(workspace: Workspace, point) -> None:
    """SIGKILL at any step between claim and archive: the next run ends the flow once, delivered once, and leaves no
    temporary file of the killed process behind."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    workspace.drop("acme", "dup.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), age=30)
    env = {**os.environ, "EDI_FAULTS": f"{point}=crash"}
    command = [sys.executable, "-m", "edi", "--config", str(workspace.config), "batch"]
    crashed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert crashed.returncode == -9, crashed.stderr

    env.pop("EDI_FAULTS")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr

    acks = [json.loads(p.read_text()) for p in workspace.acks("acme")]
    assert sorted(a["file_name"] for a in acks) == ["dup.xml", "inv.xml"]
    assert sorted(a["status"] for a in acks) == ["IN_INTEGRE", "IN_REJETE"]
    assert len(workspace.queue("ville-exemple")) == 1
    assert list(workspace.inbox("acme").iterdir()) == []
    assert list((workspace.root / "spool" / "active").iterdir()) == []
    assert list((workspace.root / "tmp").iterdir()) == []  # what the killed process staged went with its hand
    assert len(list((workspace.root / "archive").rglob("*.xml"))) == 2
    store = Tracking(workspace.root / "tracking.sqlite")
    try:
        assert sorted(r["status"] for r in store.flows()) == ["IN_INTEGRE", "IN_REJETE"]
    finally:
        store.close()


def test_a_factur_x_invoice_is_delivered_as_its_pdf_with_its_xml_beside(sample_run) -> None:
    """The recipient gets the PDF exactly as sent, and beside it the invoice XML it embeds."""
    from edi.ingest.pdf import read_pdf

    ws, acks, _ = sample_run
    (doc,) = acks[("acme", "15-facturx-invoice.pdf")]["documents"]
    xml_name, pdf_name = doc["delivered_as"]
    queue = ws.root / "queues" / doc["queue"] / "new"
    sent = (FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes()
    assert (queue / pdf_name).read_bytes() == sent
    assert (queue / xml_name).read_bytes() == read_pdf(sent, max_xml_bytes=1 << 20).xml
    assert doc["attachments"] == ["bon-de-livraison.txt"] and doc["embedded_name"] == "factur-x.xml"


def test_layers_follow_the_sender_and_the_recipient(make_workspace, clock) -> None:
    """A sender's own rules replace the configured ones; a recipient's rules add to them."""
    ws = make_workspace(
        """
        [workspace]
        root = "ws"
        [intake]
        min_age_seconds = 0
        [[senders]]
        id = "acme"
        sellers = ["123456782"]
        [[senders]]
        id = "lenient"
        sellers = ["*"]
        rules = ["xsd"]
        [routing]
        directory = "{directory}"
        [validation]
        rules = ["xsd", "en16931"]
        """
    )
    broken = (FLOWS / "acme" / "16-business-rule-broken.xml").read_bytes()
    credit_note = (FLOWS / "acme" / "02-ubl-creditnote.xml").read_bytes()
    no_notes = re.sub(rb"\s*<cbc:Note>#(PMT|PMD|AAB)#[^<]*</cbc:Note>", b"", credit_note)
    to_ville = (FLOWS / "opdemat" / "05-grace-br-fr.xml").read_bytes()
    ws.drop("acme", "broken.xml", broken, age=50)
    ws.drop("lenient", "broken.xml", broken.replace(b"FA-2026-0016", b"FA-2026-0116"), age=40)
    ws.drop("acme", "no-notes-to-dupont.xml", no_notes, age=30)
    ws.drop("lenient", "no-notes-to-ville.xml", to_ville, age=20)
    outcomes = run_batch(ws.settings, clock=clock).outcomes
    acks = {(o.sender, o.file_name): json.loads((ws.root / "acks" / o.sender / f"{o.flow_id}.json").read_text())
            for o in outcomes}  # fmt: skip
    strict, lenient = acks[("acme", "broken.xml")], acks[("lenient", "broken.xml")]
    # Both go to Ville d'Exemple, which adds BR-FR; only the sender's own rules skip EN 16931 (and BR-CO-16).
    assert strict["status"] == "IN_REJETE" and strict["documents"][0]["layers"] == ["xsd", "en16931", "br-fr"]
    assert lenient["status"] == "IN_INTEGRE" and lenient["documents"][0]["layers"] == ["xsd", "br-fr"]
    dupont = acks[("acme", "no-notes-to-dupont.xml")]["documents"][0]
    assert dupont["status"] == "200" and dupont["layers"] == ["xsd", "en16931"]  # Dupont requires no BR-FR
    ville = acks[("lenient", "no-notes-to-ville.xml")]["documents"][0]
    assert ville["layers"] == ["xsd", "br-fr"] and ville["status"] == "213"  # Ville adds BR-FR; no grace here
    assert {f["rule"][:9] for f in ville["findings"] if f["severity"] == "fatal"} == {"BR-FR-05_"}


def test_a_parked_flow_whose_failure_went_unrecorded_is_recorded_by_the_next_run(workspace: Workspace) -> None:
    """A flow in failed/ that the store still shows as received (its failure could not be recorded: a full disk)
    is recorded as failed by the next run's recovery, so operators find it by status."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    command = [sys.executable, "-m", "edi", "--config", str(workspace.config), "batch"]
    env = {**os.environ, "EDI_FAULTS": "write.ack=eio"}
    failed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert failed.returncode == 1, failed.stderr
    (flow_id,) = [p.name for p in (workspace.root / "failed").iterdir()]
    store = Tracking(workspace.root / "tracking.sqlite")
    try:
        store.db.execute("UPDATE flows SET status = 'IN_RECU' WHERE flow_id = ?", [flow_id])
    finally:
        store.close()
    env.pop("EDI_FAULTS")
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    store = Tracking(workspace.root / "tracking.sqlite")
    try:
        assert store.status(flow_id) == "IN_EN_ATTENTE_RETRAITEMENT"
    finally:
        store.close()
    assert [p.name for p in (workspace.root / "failed").iterdir()] == [flow_id] and workspace.acks("acme") == []


def test_a_pipelined_session_answers_a_group_once_the_next_one_is_decided(workspace: Workspace, clock) -> None:
    """In the main process a group's barrier runs while the next group is decided: claim_and_process returns the
    previous group's outcomes (its acknowledgements then in place, its payloads archived one barrier later), flush
    the last group's; every flow is answered exactly once."""
    from edi.ingest.scan import Ready
    from edi.runner import Session

    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    names = [f"{n}.xml" for n in range(6)]
    for n, name in enumerate(names):
        workspace.drop("acme", name, data.replace(b"FA-2026-0001", f"FA-2026-0001-{n}".encode()), age=60)
    inbox = workspace.inbox("acme")
    ready = [("acme", Ready(inbox / name, (inbox / name).stat().st_size, 0.0)) for name in names]
    with Session(workspace.settings, clock) as session:
        assert session.claim_and_process(ready[:3]) == []
        first = session.claim_and_process(ready[3:])
        assert sorted(o.file_name for o in first) == names[:3]
        assert len(workspace.acks("acme")) == 3 and list((workspace.root / "archive").rglob("*.xml")) == []
        last = session.processor.flush()
        assert sorted(o.file_name for o in last) == names[3:]
    assert len(workspace.acks("acme")) == 6 and len(list((workspace.root / "archive").rglob("*.xml"))) == 6
    assert len(workspace.queue("ville-exemple")) == 6


@pytest.mark.parametrize("senders", [("acme",), ("acme", "opdemat")])
def test_a_look_takes_the_oldest_files_across_the_inboxes_then_by_sender_then_by_name(
    workspace: Workspace, clock, senders: tuple[str, ...]
) -> None:
    """`_scan` keeps the `limit` oldest ready files of all the inboxes, oldest first, then by sender, then by name
    (with one inbox holding files, as it came from that inbox), and counts the others for the next look."""
    from edi import runner

    ages = [500, 100, 300, 300, 200, 400, 100]  # two pairs of files of the same age
    now = clock.now().timestamp()
    dropped = []
    for number, age in enumerate(ages):
        sender = senders[number % len(senders)]
        dropped.append((sender, f"f{6 - number}.xml", age))  # names in the opposite order of the drops
        path = workspace.drop(sender, f"f{6 - number}.xml", b"<x/>")
        os.utime(path, (now - age, now - age))  # the same age to the nanosecond for a pair
    wanted = sorted(dropped, key=lambda d: (-d[2], d[0], d[1]))
    layout = workspace.settings.workspace.layout()
    cutoff = clock.now().timestamp() + 3600
    found = runner._scan(workspace.settings, layout, clock, (), (), 5, cutoff, ())
    assert [(sender, item.path.name) for sender, item in found.ready] == [(s, n) for s, n, _ in wanted[:5]]
    assert found.more == 2


def test_a_file_dated_in_the_future_is_answered_by_one_cron_run(make_workspace, tmp_path) -> None:
    """`edi batch` with min_age_seconds = 2 and a file dated a year ahead (a sender's clock): the run looks again
    once the file had 2 s to change, takes it with a warning naming it, and answers every file; nothing is left."""
    ws = make_workspace(
        DEFAULT_CONFIG.replace("min_age_seconds = 0", "min_age_seconds = 2").replace(
            "incomplete_grace_seconds = 0", "incomplete_grace_seconds = 900"
        )
    )
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    ws.drop("acme", "today.xml", data.replace(b"FA-2026-0001", b"FA-2026-0801"))
    skewed = ws.drop("acme", "next-year.xml", data.replace(b"FA-2026-0001", b"FA-2026-0802"), age=-365 * 86400)
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), "batch"]
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("2 flows"), run.stdout
    assert "still arriving" not in run.stdout, run.stdout
    assert "file dated in the future" in run.stderr and str(skewed) in run.stderr, run.stderr
    assert list(ws.inbox("acme").iterdir()) == []
    assert sorted(json.loads(p.read_text())["status"] for p in ws.acks("acme")) == ["IN_INTEGRE", "IN_INTEGRE"]


RULES_CONFIG = DEFAULT_CONFIG + '\n[validation]\nrules = ["xsd", "en16931"]\n[limits]\nvalidate_seconds = {seconds}\n'


def rules_children() -> set[int]:
    """The rules processes this process started that still run (its children, from /proc)."""
    children = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            children.update(int(pid) for pid in (task / "children").read_text().split())
    running = set()
    for pid in children:
        with contextlib.suppress(FileNotFoundError):
            if b"edi.validate.rules_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                running.add(pid)
    return running


def test_a_run_with_files_starts_its_rules_processes_at_once_and_one_without_starts_none(make_workspace) -> None:
    """A session whose inboxes hold files starts its rules processes (one per syntax: UBL, CII) as it opens, to
    compile ahead; one that finds its inboxes empty starts none (a cron run with nothing to do compiles nothing)."""
    from edi.runner import Session

    ws = make_workspace(RULES_CONFIG.replace("{seconds}", "29.75"))  # a budget of its own: a runner of its own
    before = rules_children()
    with Session(ws.settings) as session:
        assert rules_children() == before
        assert session.run_once().flows == 0
        assert rules_children() == before
    drop_samples(ws)
    with Session(ws.settings):
        started = time.monotonic()
        while len(rules_children() - before) < 2 and time.monotonic() - started < 10:
            time.sleep(0.05)  # a child just forked shows the command of its parent until it has exec'd
        assert len(rules_children() - before) == 2


def test_a_run_compiles_ahead_what_the_last_one_ran_and_writes_down_what_it_ran(make_workspace) -> None:
    """rules-used.json in the workspace names the XSLTs a pass ran; the next run compiles those ahead, even one its
    documents turn out not to need (the Factur-X BASIC one here), and then names only what it ran itself."""
    ws = make_workspace(RULES_CONFIG.replace("{seconds}", "30"))
    hint = ws.root / "rules-used.json"
    shutil.copyfile(FLOWS / "acme" / "01-ubl-invoice.xml", ws.inbox("acme") / "ubl.xml")
    edi = [sys.executable, "-m", "edi", "-v", "--config", str(ws.config), "batch"]
    subprocess.run(edi, check=True, capture_output=True)
    first = json.loads(hint.read_text())
    assert "EN16931-UBL-validation.xslt" in {Path(p).name for p in first}
    assert {Path(p).name for p in first} <= {"EN16931-UBL-validation.xslt", "BR-FR-Flux2-Schematron-UBL.xslt"}
    basic = next(e.xslt for e in load_catalogue().rules if e.xslt.name == "Factur-X_1.09_BASIC.xsl")
    hint.write_text(json.dumps([str(basic), *first]))
    shutil.copyfile(FLOWS / "acme" / "03-cii-invoice.xml", ws.inbox("acme") / "cii.xml")
    done = subprocess.run(edi, check=True, capture_output=True, text=True)
    compiled = [json.loads(line)["xslt"] for line in done.stderr.splitlines() if '"stylesheet compiled"' in line]
    assert "Factur-X_1.09_BASIC.xsl" in compiled, done.stderr
    assert "FACTUR-X_EN16931.xslt" in (then := {Path(p).name for p in json.loads(hint.read_text())})
    assert not then & {"Factur-X_1.09_BASIC.xsl", "EN16931-UBL-validation.xslt"}


def deposited(workspace: Workspace, flow_id: str, name: str = "F-1.xml") -> Path:
    """A file in acme's inbox as the API leaves it (edi.api.deposit), with its api_deposits row."""
    from tests.test_tracking import deposit_row

    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    path = workspace.drop("acme", f"{flow_id}_{name}", data)
    store = Tracking(workspace.root / "tracking.sqlite")
    try:
        store.record_deposit(deposit_row(flow_id, inbox_name=path.name) | {"name": name})
    finally:
        store.close()
    return path


def test_a_deposit_another_process_is_claiming_is_left_to_it(workspace: Workspace, clock) -> None:
    """When the deposit's flow id is recorded already (another process claimed the file first, under that id), this
    process neither renames the file nor forgets that process's claim: the file is left, and left out of the pass."""
    from edi.ingest.scan import Ready
    from edi.runner import Session

    flow_id = "20261206T120000000000-abcdef"
    path = deposited(workspace, flow_id)
    with Session(workspace.settings, clock) as session:
        other = {"flow_id": flow_id, "sender": "acme", "claimed_by": "99999-aaaaaa"}
        session.tracking.record_claims([other], clock.now())
        leave: set[Path] = set()
        assert session.claim_and_process([("acme", Ready(path, path.stat().st_size, 0.0))], leave) == []
        assert leave == {path} and path.exists()
        claimed = session.tracking.claimed(flow_id)
        assert claimed is not None and claimed["claimed_by"] == "99999-aaaaaa"


def test_a_dead_processs_claim_of_a_deposit_is_forgotten_and_the_file_taken_under_its_id(
    workspace: Workspace,
) -> None:
    """A process that recorded its claim of a deposited file and died before the rename: the next batch forgets
    that claim, then claims the file under the deposit's flow id and answers it once, named as the client named
    it."""
    flow_id = "20261206T120000000000-abcdef"
    deposited(workspace, flow_id)
    dead = workspace.root / "spool" / "active" / "99999-aaaaaa"
    dead.mkdir(parents=True)
    (dead / "lock").write_bytes(b"")
    store = Tracking(workspace.root / "tracking.sqlite")
    try:
        store.record_claims([{"flow_id": flow_id, "sender": "acme", "claimed_by": dead.name}], FixedClock().now())
    finally:
        store.close()
    report = run_batch(workspace.settings)
    assert [(o.flow_id, o.file_name, o.status) for o in report.outcomes] == [
        (flow_id, "F-1.xml", FlowStatus.INTEGRATED)
    ]
    (ack,) = [json.loads(p.read_bytes()) for p in workspace.acks("acme")]
    assert ack["flow_id"] == flow_id and list(workspace.inbox("acme").iterdir()) == []
