"""edi's CDAR lifecycle messages in the processing path (edi/processor.py): one checked message per document beside
the flow's acknowledgement, linked from it, published atomically with it, never partial, doubled or stale after a
crash, and never sent when it fails the official artefacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edi.ack import from_xml
from edi.lifecycle.cdar import RAM, file_name
from edi.lifecycle.validate import artefacts, check
from tests.conftest import FLOWS, REPO, Workspace
from tests.test_runner import SAMPLES, run_samples

ACK_XSD = etree.XMLSchema(etree.parse(str(REPO / "schemas" / "acknowledgement.xsd")))
BATCH = ("opdemat", "04-batch.tar.gz")  # several documents in one flow


def edi(ws: Workspace, *args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    """Run `edi --config <ws> ARGS` in a new process, with EDI_FAULTS set to ``faults`` (none when empty)."""
    env = {**os.environ, "EDI_FAULTS": faults}
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)


def all_acks(ws: Workspace) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, json.loads(p.read_bytes())) for p in sorted((ws.root / "acks").glob("*/*.json"))]


def cdar_files(ws: Workspace) -> set[Path]:
    return set((ws.root / "acks").glob("*/*.cdar.xml"))


def status_of(message: bytes) -> str:
    (code,) = etree.fromstring(message).iter(f"{{{RAM}}}ProcessConditionCode")
    return str(code.text)


def expected_messages(ack_path: Path, ack: dict[str, Any]) -> dict[Path, str]:
    """The messages an acknowledgement links, with the status each must carry: a flow with no document has one for
    its file, 501 when it was unreadable, 213 when refused for a business reason (a file deposited twice)."""
    if not ack["documents"]:
        unreadable = any(f["reason"].startswith("IRR_") for f in ack["findings"])
        return {ack_path.parent / ack["cdar"]: "501" if unreadable else "213"}
    return {ack_path.parent / d["cdar"]: d["status"] for d in ack["documents"]}


def assert_exactly_the_messages(ws: Workspace) -> int:
    """Every acknowledgement links one message per document (one for a flow refused whole), named from its flow id
    and index, each whole and valid with the status the ack gives; no other .cdar.xml exists. Returns the count."""
    wanted: dict[Path, str] = {}
    for path, ack in all_acks(ws):
        links = expected_messages(path, ack)
        indexes = [d["index"] for d in ack["documents"]] or [0]
        assert sorted(p.name for p in links) == sorted(file_name(ack["flow_id"], i) for i in indexes)
        wanted |= links
    assert cdar_files(ws) == set(wanted)
    for path, status in wanted.items():
        message = path.read_bytes()
        assert not [f for f in check(message) if f.fatal], path
        assert status_of(message) == status
    return len(wanted)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One real batch over every sample flow, with the repository's configuration, plus an empty file."""
    return run_samples(tmp_path_factory.mktemp("cdar-samples"))[0]


def test_every_sample_flow_gets_one_valid_message_per_document(sample_run: Workspace) -> None:
    """Each sample's acknowledgement links one message per document, valid against the official XSD and BR-FR-CDV
    rules, carrying 200/213/501 as the ack says; nothing else is in acks/."""
    acks = all_acks(sample_run)
    assert len(acks) == len(SAMPLES)
    count = assert_exactly_the_messages(sample_run)
    assert count == sum(max(1, len(a["documents"])) for _, a in acks)
    statuses = {status_of(p.read_bytes()) for p in cdar_files(sample_run)}
    assert statuses == {"200", "213", "501"}


def test_the_acknowledgement_names_the_artefacts_and_stays_valid(sample_run: Workspace) -> None:
    """Both acknowledgements name the CDAR XSD and BR-FR-CDV XSLT with their versions and SHA-256, the XML one is
    valid against schemas/acknowledgement.xsd, and it reads back to the JSON, links included."""
    named = [{"name": a.name, "version": a.version, "sha256": a.sha256} for a in artefacts()]
    for path, ack in all_acks(sample_run):
        assert ack["cdar_artefacts"] == named
        xml = path.with_suffix(".xml").read_bytes()
        ACK_XSD.assertValid(etree.fromstring(xml))
        assert from_xml(xml) == ack


def test_a_flow_refused_whole_gets_one_501_for_its_file(workspace: Workspace) -> None:
    """An empty file (no document read) gets one 501 message, index 0, linked at flow level, with its IRR reason."""
    workspace.drop("acme", "empty.xml", b"")
    assert edi(workspace, "batch").returncode == 0
    ((path, ack),) = all_acks(workspace)
    assert ack["documents"] == [] and ack["cdar"] == file_name(ack["flow_id"], 0)
    message = (path.parent / ack["cdar"]).read_bytes()
    assert status_of(message) == "501" and b"IRR_VIDE_F" in message
    assert assert_exactly_the_messages(workspace) == 1


def drop_mixed(ws: Workspace) -> None:
    ws.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), age=90)
    ws.drop("acme", "bad.xml", (FLOWS / "acme" / "06-missing-service-code.xml").read_bytes(), age=80)
    ws.drop(BATCH[0], BATCH[1], (FLOWS / BATCH[0] / BATCH[1]).read_bytes(), age=70)


@pytest.mark.parametrize(
    "point",
    [
        "write.cdar",
        "cdar.before_rename",
        "cdar.before_rename=crash@2",  # between two messages of one flow: some published, not all
        "cdar.before_rename=crash@4",
        "pipeline.after_deliver",
        "ack.json.before_rename",
        "pipeline.after_ack",
    ],
)
def test_a_crash_around_the_messages_then_recover_leaves_exactly_one_each(workspace: Workspace, point: str) -> None:
    """SIGKILL while the messages are staged or half published, then `edi recover`: each document has exactly one
    message, whole and valid, none doubled or left over, no temporary file remains."""
    drop_mixed(workspace)
    crashed = edi(workspace, "batch", faults=point if "=" in point else f"{point}=crash")
    assert crashed.returncode == -9, crashed.stderr
    recovered = edi(workspace, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert len(all_acks(workspace)) == 3
    assert assert_exactly_the_messages(workspace) >= 4
    assert not [p for p in (workspace.root / "acks").rglob(".*") if p.is_file()]
    assert list((workspace.root / "tmp").iterdir()) == []


def test_a_stale_message_of_an_earlier_decision_is_removed_when_the_flow_is_decided_again(
    workspace: Workspace,
) -> None:
    """A message for an index the new decision does not have (left by an earlier decision of the same flow) is
    removed before the acknowledgement is published again."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    assert edi(workspace, "batch", faults="ack.json.before_rename=crash").returncode == -9
    ((flow_id, *_),) = [p.name.split(".") for p in cdar_files(workspace)]
    folder = workspace.root / "acks" / "acme"
    for index in (0, 2):
        (folder / file_name(flow_id, index)).write_bytes((folder / file_name(flow_id, 1)).read_bytes())
    assert edi(workspace, "recover").returncode == 0
    assert {p.name for p in cdar_files(workspace)} == {file_name(flow_id, 1)}
    assert assert_exactly_the_messages(workspace) == 1


def test_a_message_failing_the_official_checks_fails_the_flow_and_nothing_is_sent(workspace: Workspace) -> None:
    """A built message that fails BR-FR-CDV (injected: an unknown status code) fails its flow to failed/: no ack,
    no message, no delivery; requeued without the fault, it ends once with its messages."""
    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    run = edi(workspace, "batch", faults="cdar.built=corrupt")
    assert "CDAR message fails" in run.stdout + run.stderr
    assert all_acks(workspace) == [] and cdar_files(workspace) == set()
    assert not list((workspace.root / "queues").rglob("new/*"))
    (failed,) = (workspace.root / "failed").iterdir()
    assert (failed / "meta.json").exists()

    assert edi(workspace, "requeue", "--failed").returncode == 0
    assert edi(workspace, "batch").returncode == 0
    assert len(all_acks(workspace)) == 1 and assert_exactly_the_messages(workspace) == 1
    assert len(list((workspace.root / "queues").rglob("new/*"))) == 1


def test_a_flow_whose_message_is_corrupted_fails_alone_in_its_group(workspace: Workspace) -> None:
    """`cdar.built=corrupt@2` (every message from the second on): the first flow of the group is answered with its
    message, the two others are parked in failed/ with none of theirs: the failure is per flow, not per group."""
    for position, name in enumerate(["01-ubl-invoice.xml", "03-cii-invoice.xml", "06-missing-service-code.xml"]):
        workspace.drop("acme", name, (FLOWS / "acme" / name).read_bytes(), age=90 - position)
    edi(workspace, "batch", faults="cdar.built=corrupt@2")
    ((_, ack),) = all_acks(workspace)
    assert ack["file_name"] == "01-ubl-invoice.xml" and assert_exactly_the_messages(workspace) == 1
    assert len(list((workspace.root / "failed").iterdir())) == 2
