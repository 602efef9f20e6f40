"""The flow-tracking store (edi/tracking.py) on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edi.ack import build_ack
from edi.clock import iso
from edi.errors import UnknownFlowError, WorkspaceError
from edi.model import Code, Document, Finding, Flow, Invoice, Layer, Party, Severity
from edi.tracking import Tracking

T0 = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tracking.sqlite"


@pytest.fixture
def store(store_path: Path) -> Iterator[Tracking]:
    tracking = Tracking(store_path)
    yield tracking
    tracking.close()


def received(flow_id: str, sender: str = "acme", sha256: str = "a" * 64, at: datetime = T0) -> dict[str, Any]:
    """What the pipeline records when it claims a flow."""
    return {
        "flow_id": flow_id,
        "sender": sender,
        "file_name": "invoice.xml",
        "size": 10,
        "sha256": sha256,
        "received_at": iso(at),
        "deposited_at": iso(at - timedelta(seconds=30)),
    }


def document(index: int, *findings: Finding) -> Document:
    return Document(
        index=index,
        name=f"doc-{index}.xml",
        size=10,
        sha256="b" * 64,
        data=b"",
        syntax="UBL",
        invoice=Invoice(
            number=f"FA-{index}",
            issue_date="2026-11-26",
            seller=Party(legal_id="123456782"),
            buyer=Party(legal_id="40404040400012"),
        ),
        recipient="dupont",
        route="dupont",
        findings=findings,
    )


def flow(flow_id: str = "F1", *documents: Document, findings: tuple[Finding, ...] = ()) -> Flow:
    return Flow(
        flow_id=flow_id,
        sender="acme",
        file_name="batch.zip",
        size=10,
        sha256="a" * 64,
        received_at=T0,
        payload=Path("payload"),
        deposited_at=T0 - timedelta(seconds=30),
        documents=documents,
        findings=findings,
    )


PARTIAL = flow(
    "F1",
    document(1),
    document(
        2,
        Finding(Code.DEST_INC, Layer.ROUTING, "who?", xpath="/x"),
        Finding(Code.ENGAGEMENT_MISSING, Layer.ROUTING, "EJ"),
    ),
    findings=(Finding(Code.DOUBLON, Layer.INTAKE, "warn", severity=Severity.WARNING),),
)


def count(store: Tracking, table: str, flow_id: str = "F1") -> int:
    return int(store.db.execute(f"SELECT count(*) FROM {table} WHERE flow_id = ?", [flow_id]).fetchone()[0])


def events(store: Tracking, flow_id: str = "F1") -> list[tuple[Any, ...]]:
    return list(store.db.execute("SELECT idx, status, detail FROM events WHERE flow_id = ? ORDER BY id", [flow_id]))


def test_store_is_a_wal_sqlite_file(store: Tracking, store_path: Path) -> None:
    """The store is a real SQLite file in WAL mode, with its tables and schema version."""
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store_path.is_file()
    assert {"meta", "flows", "documents", "findings", "events"} <= set(store.db.table_names())
    assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"


def test_reopening_keeps_the_data(store_path: Path) -> None:
    """Closing and reopening the store (create if not exists) keeps what was recorded."""
    first = Tracking(store_path)
    first.record_received(received("F1"), T0)
    first.close()
    second = Tracking(store_path)
    try:
        assert second.status("F1") == "IN_RECU"
        assert second.db.execute("SELECT count(*) FROM meta").fetchone()[0] == 1
    finally:
        second.close()


def test_unopenable_store_is_a_workspace_error(tmp_path: Path) -> None:
    """A store path in a folder that does not exist is a WorkspaceError naming it."""
    path = tmp_path / "missing" / "tracking.sqlite"
    with pytest.raises(WorkspaceError, match="cannot open the tracking store"):
        Tracking(path)


def test_record_received_is_idempotent(store: Tracking) -> None:
    """Recording the same claimed flow twice keeps the first record and adds no second event."""
    store.record_received(received("F1"), T0)
    store.record_received(received("F1") | {"file_name": "changed.xml"}, T0 + timedelta(minutes=5))
    row = store.flow("F1")
    assert row["status"] == "IN_RECU" and row["file_name"] == "invoice.xml"
    assert row["updated_at"] == iso(T0)
    assert events(store) == [(None, "IN_RECU", "claimed from the inbox")]


def test_record_outcome_stores_flow_documents_findings_and_events(store: Tracking) -> None:
    """The final acknowledgement's flow, documents and findings are stored, with one event per status."""
    store.record_received(received("F1"), T0)
    ack = build_ack(PARTIAL, T0 + timedelta(seconds=1))
    store.record_outcome(ack, T0 + timedelta(seconds=2))
    row = store.flow("F1")
    assert row["status"] == "IN_INTEGRE_PARTIEL"
    assert row["documents_total"] == 2 and row["documents_accepted"] == 1
    assert row["processed_at"] == ack["processed_at"] and row["updated_at"] == iso(T0 + timedelta(seconds=2))
    assert [f["code"] for f in row["findings"]] == ["DOUBLON"]
    assert row["findings"][0]["severity"] == "warning"
    first, second = row["documents"]
    assert (first["idx"], first["status"], first["queue"], first["delivered_as"]) == (
        1,
        "200",
        "dupont",
        ["F1.0001.xml"],
    )
    assert first["seller_id"] == "123456782" and first["invoice_number"] == "FA-1" and first["findings"] == []
    assert (second["status"], second["reason"], second["queue"]) == ("213", "DEST_INC", None)
    assert [(f["code"], f["reason"], f["xpath"]) for f in second["findings"]] == [
        ("DEST_INC", "DEST_INC", "/x"),
        ("ENGAGEMENT_MISSING", "REJ_CONT_B2G", None),
    ]
    assert [(e["idx"], e["status"], e["detail"]) for e in row["events"]] == [
        (None, "IN_RECU", "claimed from the inbox"),
        (1, "200", ""),
        (2, "213", "DEST_INC"),
        (None, "IN_INTEGRE_PARTIEL", "1/2 accepted"),
    ]


def test_second_outcome_replaces_documents_and_findings_but_events_grow(store: Tracking) -> None:
    """Recording the outcome of the same flow again (recovery) leaves no duplicate rows; the history only grows."""
    store.record_received(received("F1"), T0)
    store.record_outcome(build_ack(PARTIAL, T0), T0)
    before = len(events(store))
    accepted = replace(PARTIAL, documents=(document(1), document(2)), findings=())
    store.record_outcome(build_ack(accepted, T0), T0 + timedelta(minutes=1))
    assert count(store, "flows") == 1
    assert count(store, "documents") == 2
    assert count(store, "findings") == 0
    assert store.status("F1") == "IN_INTEGRE"
    assert len(events(store)) == before + 3
    assert [e[1] for e in events(store)][-3:] == ["200", "200", "IN_INTEGRE"]


def test_outcome_of_a_flow_rejected_whole(store: Tracking) -> None:
    """A flow rejected before any document is stored with its flow-level findings and no documents."""
    rejected = flow("F1", findings=(Finding(Code.IRR_VIDE_F, Layer.INTAKE, "empty"),))
    store.record_outcome(build_ack(rejected, T0), T0)
    row = store.flow("F1")
    assert row["status"] == "IN_REJETE" and row["documents"] == []
    assert [f["code"] for f in row["findings"]] == ["IRR_VIDE_F"]
    assert [(e["idx"], e["status"]) for e in row["events"]] == [(None, "IN_REJETE")]


def test_a_failed_outcome_rolls_back_entirely(store: Tracking) -> None:
    """If storing an outcome fails half-way, nothing of it is kept (one transaction)."""
    store.record_received(received("F1"), T0)
    ack = build_ack(PARTIAL, T0)
    broken = ack | {"documents": [*ack["documents"], {"index": 3}]}  # no "findings": fails after the first inserts
    with pytest.raises(KeyError):
        store.record_outcome(broken, T0)
    assert store.status("F1") == "IN_RECU"
    assert count(store, "documents") == 0 and count(store, "findings") == 0
    assert len(events(store)) == 1
    store.record_outcome(ack, T0)  # and the connection is usable again
    assert store.status("F1") == "IN_INTEGRE_PARTIEL"


def test_earlier_flow_finds_the_first_same_bytes_from_the_same_sender(store: Tracking) -> None:
    """earlier_flow gives the earliest flow claimed before this one (ids sort by claim time) with the sender's same
    sha256, ignoring other senders, itself and later flows (two copies in flight are not each other's duplicate)."""
    store.record_received(received("F2", at=T0 + timedelta(minutes=2)), T0)
    store.record_received(received("F1", at=T0 + timedelta(minutes=1)), T0)
    store.record_received(received("F0", sender="opdemat", at=T0), T0)
    store.record_received(received("F9", sha256="c" * 64, at=T0 - timedelta(days=1)), T0)
    store.record_received(received("F3", at=T0 + timedelta(minutes=3)), T0)
    assert store.earlier_flow("acme", "a" * 64, "F3") == "F1"
    assert store.earlier_flow("acme", "a" * 64, "F2") == "F1"
    assert store.earlier_flow("acme", "a" * 64, "F1") is None
    assert store.earlier_flow("opdemat", "a" * 64, "F0") is None
    assert store.earlier_flow("acme", "c" * 64, "F9") is None
    assert store.earlier_flow("other", "a" * 64, "F3") is None


def test_flows_filters_and_orders_newest_first(store: Tracking) -> None:
    """flows() lists newest first and filters by sender, status and since, combined."""
    store.record_received(received("F1", at=T0), T0)
    store.record_received(received("F2", sender="opdemat", at=T0 + timedelta(hours=1)), T0)
    store.record_received(received("F3", at=T0 + timedelta(hours=2)), T0)
    store.record_outcome(build_ack(replace(flow("F3", document(1)), received_at=T0 + timedelta(hours=2)), T0), T0)
    assert [f["flow_id"] for f in store.flows()] == ["F3", "F2", "F1"]
    assert [f["flow_id"] for f in store.flows(sender="acme")] == ["F3", "F1"]
    assert [f["flow_id"] for f in store.flows(status="IN_RECU")] == ["F2", "F1"]
    assert [f["flow_id"] for f in store.flows(since=T0 + timedelta(hours=1))] == ["F3", "F2"]
    assert [f["flow_id"] for f in store.flows(sender="acme", status="IN_RECU")] == ["F1"]
    assert [f["flow_id"] for f in store.flows(limit=1)] == ["F3"]
    assert store.flows(sender="nobody") == []
    assert store.counts() == {"IN_RECU": 2, "IN_INTEGRE": 1}


def test_resolve_accepts_a_unique_prefix(store: Tracking) -> None:
    """resolve gives the full id for an exact id or a unique prefix."""
    for flow_id in ("20261126T093000000001-aaaaaa", "20261126T093000000002-bbbbbb", "20261126T0930000000"):
        store.record_received(received(flow_id), T0)
    assert store.resolve("20261126T093000000001") == "20261126T093000000001-aaaaaa"
    assert store.resolve("20261126T093000000002-bbbbbb") == "20261126T093000000002-bbbbbb"
    assert store.resolve("20261126T0930000000") == "20261126T0930000000"  # exact id, though also a prefix


@pytest.mark.parametrize("prefix", ["20261126T0930", "2026112", "nope", "20261126T093000000003", "%", "_"])
def test_resolve_refuses_unknown_or_ambiguous(store: Tracking, prefix: str) -> None:
    """An unknown id or a prefix of several flows is UnknownFlowError (LIKE wildcards are not wildcards)."""
    for flow_id in ("20261126T093000000001-aaaaaa", "20261126T093000000002-bbbbbb"):
        store.record_received(received(flow_id), T0)
    with pytest.raises(UnknownFlowError):
        store.resolve(prefix)


def test_flow_of_an_unknown_id_raises(store: Tracking) -> None:
    """Asking for an unknown flow is UnknownFlowError, and its status is None."""
    with pytest.raises(UnknownFlowError, match="no flow 'F404'"):
        store.flow("F404")
    assert store.status("F404") is None


def test_record_failed_and_requeued(store: Tracking) -> None:
    """A failure sets IN_EN_ATTENTE_RETRAITEMENT with its detail; a requeue sets IN_RECU again; each adds an event."""
    store.record_received(received("F1"), T0)
    store.record_failed(received("F1"), T0 + timedelta(seconds=1), "Traceback: boom")
    assert store.status("F1") == "IN_EN_ATTENTE_RETRAITEMENT"
    assert store.flows(status="IN_EN_ATTENTE_RETRAITEMENT")[0]["updated_at"] == iso(T0 + timedelta(seconds=1))
    store.record_requeued("F1", T0 + timedelta(seconds=2))
    assert store.status("F1") == "IN_RECU"
    assert events(store) == [
        (None, "IN_RECU", "claimed from the inbox"),
        (None, "IN_EN_ATTENTE_RETRAITEMENT", "Traceback: boom"),
        (None, "IN_RECU", "requeued by an operator"),
    ]


def test_a_flow_that_failed_before_it_was_recorded_is_recorded_as_failed(store: Tracking) -> None:
    """A failure so early that the flow was never recorded still leaves a row an operator can list and requeue."""
    store.record_failed(received("F9"), T0, "Traceback: disk")
    (row,) = store.flows(status="IN_EN_ATTENTE_RETRAITEMENT")
    assert row["flow_id"] == "F9" and row["sender"] == received("F9")["sender"]
    assert events(store, "F9") == [(None, "IN_EN_ATTENTE_RETRAITEMENT", "Traceback: disk")]


def test_two_connections_on_one_file_both_work(store_path: Path) -> None:
    """Two Tracking objects (two connections, as two processes) each see the other's committed writes."""
    one, two = Tracking(store_path), Tracking(store_path)
    try:
        one.record_received(received("F1"), T0)
        assert two.status("F1") == "IN_RECU"
        two.record_received(received("F2", at=T0 + timedelta(seconds=1)), T0)
        two.record_outcome(build_ack(flow("F1", document(1)), T0), T0)
        assert one.status("F1") == "IN_INTEGRE"
        assert [f["flow_id"] for f in one.flows()] == ["F2", "F1"]
        one.record_failed(received("F2"), T0, "boom")
        assert two.status("F2") == "IN_EN_ATTENTE_RETRAITEMENT"
    finally:
        one.close()
        two.close()


def test_a_reader_during_a_write_transaction_sees_the_last_commit(store_path: Path) -> None:
    """WAL: a plain sqlite3 reader is not blocked by an open write transaction and sees only committed data."""
    store = Tracking(store_path)
    reader = sqlite3.connect(store_path)
    try:
        store.record_received(received("F1"), T0)
        store.db.execute("BEGIN IMMEDIATE")
        store.db.execute("UPDATE flows SET status = 'X' WHERE flow_id = 'F1'")
        assert reader.execute("SELECT status FROM flows").fetchone()[0] == "IN_RECU"
        store.db.execute("ROLLBACK")
    finally:
        reader.close()
        store.close()
