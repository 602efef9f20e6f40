"""The flow-tracking store (edi/tracking.py) on a real SQLite file."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edi.ack import build_ack
from edi.clock import iso
from edi.errors import StoreError, UnknownFlowError, WorkspaceError
from edi.model import Code, Document, Finding, Flow, Invoice, Layer, Party, Severity
from edi.tracking import Tracking
from tests.lifecycle_rows import add_status

T0 = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tracking.sqlite"


@pytest.fixture
def store(store_path: Path) -> Iterator[Tracking]:
    tracking = Tracking(store_path, create=True)
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


def test_the_write_ahead_log_is_copied_into_the_store_only_every_so_many_pages(
    store: Tracking, store_path: Path
) -> None:
    """Commits leave their pages in the write-ahead log until it holds edi.tracking.WAL_AUTOCHECKPOINT_PAGES
    (SQLite's default, 1,000, copied them into the store, and waited for the disk twice, ten times as often);
    closing copies it all."""
    wal = store_path.with_name(store_path.name + "-wal")
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    for number in range(0, 200_000, 200):  # until the log holds twice SQLite's default: it would have restarted
        store.record_claims([received(f"F{number + n:06d}", sha256=f"{number + n:064x}") for n in range(200)], T0)
        if wal.stat().st_size > 2_000 * page:
            break
    with contextlib.closing(sqlite3.connect(store_path)) as reader:
        frames = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert frames > 1_500  # all still in the log when a reader looked (and copied them)
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0


def test_reopening_keeps_the_data(store_path: Path) -> None:
    """Closing and reopening the store keeps what was recorded."""
    first = Tracking(store_path, create=True)
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
        Tracking(path, create=True)


def _sqlite_with(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


LOST = {
    "missing": (lambda path: None, "is missing"),
    "empty": (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
    "not-sqlite": (lambda path: path.write_bytes(b"edi tracking store, or not\n" * 500), "is not an SQLite database"),
    "no-tables": (lambda path: _sqlite_with(path, "PRAGMA user_version = 3"), "holds no tables"),
    "no-flows": (lambda path: _sqlite_with(path, "CREATE TABLE documents (x)"), "lacks its tables (flows)"),
}


@pytest.mark.parametrize("state", list(LOST))
def test_a_store_that_holds_nothing_usable_is_refused_and_left_as_it_is(store_path: Path, state: str) -> None:
    """Missing, 0 bytes, not SQLite, no tables, no flows table: a StoreError (a WorkspaceError) saying which, and
    the file is not touched (no empty store is made in its place)."""
    make, why = LOST[state]
    make(store_path)
    before = sorted(p.name for p in store_path.parent.iterdir())
    contents = store_path.read_bytes() if store_path.exists() else None
    with pytest.raises(StoreError, match=re.escape(f"the tracking store {store_path} {why}")):
        Tracking(store_path)
    assert sorted(p.name for p in store_path.parent.iterdir()) == before
    assert (store_path.read_bytes() if store_path.exists() else None) == contents
    assert issubclass(StoreError, WorkspaceError)


@pytest.mark.parametrize("state", ["missing", "empty", "no-tables"])
def test_create_makes_a_store_only_where_there_is_nothing(store_path: Path, state: str) -> None:
    """With create, a missing, empty or table-less file becomes a new store."""
    LOST[state][0](store_path)
    Tracking(store_path, create=True).close()
    again = Tracking(store_path)
    try:
        assert again.meta("schema_version") == "1" and again.flows() == []
    finally:
        again.close()


@pytest.mark.parametrize("state", ["not-sqlite", "no-flows"])
def test_create_never_overwrites_something_else(store_path: Path, state: str) -> None:
    """Even with create, a file that is not SQLite, or an SQLite file with other tables, is refused as it is."""
    make, why = LOST[state]
    make(store_path)
    contents = store_path.read_bytes()
    with pytest.raises(StoreError, match=re.escape(why)):
        Tracking(store_path, create=True)
    assert store_path.read_bytes() == contents


def test_keep_meta_keeps_the_first_value(store: Tracking) -> None:
    """keep_meta sets a value once; a second one is ignored and the first returned."""
    assert store.meta("workspace_id") is None
    assert store.keep_meta("workspace_id", "one") == "one"
    assert store.keep_meta("workspace_id", "two") == "one"
    assert store.meta("workspace_id") == "one"


def test_restore_answered_records_acks_read_back_and_the_first_holder_of_each_key(store: Tracking) -> None:
    """Acknowledgements read back from a workspace become the same rows record_outcomes made, the keys of their
    accepted invoices (the first flow keeps a key), their events and one saying where they came from."""
    refused = replace(invoice(2, "FA-2"), findings=(Finding(Code.DEST_INC, Layer.ROUTING, "who?"),))
    first = build_ack(flow("F1", invoice(1, "FA-1"), refused), T0)
    second = build_ack(flow("F2", invoice(1, "FA-1")), T0 + timedelta(minutes=1))  # FA-1 again (a copy, say)
    first |= {"origin": "acks/acme/F1.json", "raw_name": "ff"}
    keys = store.restore_answered([first, second], T0 + timedelta(days=1))
    assert keys == 1
    assert invoices(store) == [("123456782", "FA-1", "Invoice", "2026", "F1", 1)]
    assert store.earlier_invoice("123456782", "FA-1", "Invoice", "2026", "F9") == ("F1", 1)
    assert store.earlier_flow("acme", "a" * 64, "F9") == "F1"
    row = store.flow("F1")
    assert (row["status"], row["raw_name"], row["updated_at"]) == ("IN_INTEGRE_PARTIEL", "ff", iso(T0))
    assert [d["status"] for d in row["documents"]] == ["200", "213"]
    assert row["documents"][1]["findings"][0]["code"] == "DEST_INC"
    assert events(store, "F1") == [
        (None, "IN_RECU", "claimed from the inbox"),
        (1, "200", ""),
        (2, "213", "DEST_INC"),
        (None, "IN_INTEGRE_PARTIEL", "1/2 accepted"),
        (None, "IN_INTEGRE_PARTIEL", "rebuilt from acks/acme/F1.json"),
    ]


def test_restore_failed_records_flows_waiting_for_requeue(store: Tracking) -> None:
    """Flows found in failed/ are recorded as failed with their digest (the same bytes again are a duplicate)."""
    store.restore_failed([received("F3") | {"origin": "failed/F3/meta.json"}], T0)
    assert store.status("F3") == "IN_EN_ATTENTE_RETRAITEMENT"
    assert store.earlier_flow("acme", "a" * 64, "F9") == "F3"
    assert events(store, "F3")[-1] == (None, "IN_EN_ATTENTE_RETRAITEMENT", "rebuilt from failed/F3/meta.json")


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


def test_a_business_rule_finding_keeps_its_assert_id_beside_its_rule(store: Tracking) -> None:
    """A finding's assert_id (the id the official artefact gives the assert) is stored beside its rule and read back
    with the flow; a finding without one reads back None."""
    broken = Finding(Code.REJ_SEMAN, Layer.EN16931, "[BR-IC-11]-In an Invoice", rule="BR-IC-11", assert_id="FX-SCH-A-1")
    store.record_outcome(build_ack(flow("F1", document(1, broken), findings=PARTIAL.findings), T0), T0)
    row = store.flow("F1")
    assert [(f["rule"], f["assert_id"]) for f in row["documents"][0]["findings"]] == [("BR-IC-11", "FX-SCH-A-1")]
    assert [f["assert_id"] for f in row["findings"]] == [None]
    stored = store.db.execute("SELECT rule, assert_id FROM findings WHERE idx = 1").fetchall()
    assert stored == [("BR-IC-11", "FX-SCH-A-1")]


def test_a_store_from_before_assert_ids_gets_the_column(store_path: Path) -> None:
    """A findings table made before assert_id gets the column when the store opens: its rows read back with None,
    and new findings are stored with theirs."""
    conn = sqlite3.connect(store_path)
    conn.execute("CREATE TABLE flows (flow_id TEXT PRIMARY KEY)")  # what every store has had (else: lost, refused)
    conn.execute("CREATE TABLE documents (flow_id TEXT, idx INTEGER, PRIMARY KEY (flow_id, idx))")
    conn.execute(
        "CREATE TABLE findings (id INTEGER PRIMARY KEY, flow_id TEXT, idx INTEGER, code TEXT, reason TEXT, rule TEXT, "
        "layer TEXT, severity TEXT, line INTEGER, xpath TEXT, message TEXT, rule_set_version TEXT, "
        "rule_set_sha256 TEXT)"
    )
    conn.execute("INSERT INTO findings (flow_id, idx, code, rule) VALUES ('F0', 1, 'REJ_SEMAN', 'FX-SCH-A-000144')")
    conn.commit()
    conn.close()
    store = Tracking(store_path)
    try:
        assert "assert_id" in store.db.table("findings").columns_dict
        broken = Finding(Code.REJ_SEMAN, Layer.EN16931, "broken", rule="BR-IC-11", assert_id="FX-SCH-A-000144")
        store.record_outcome(build_ack(flow("F1", document(1, broken)), T0), T0)
        rows = store.db.execute("SELECT flow_id, rule, assert_id FROM findings ORDER BY id").fetchall()
        assert rows == [("F0", "FX-SCH-A-000144", None), ("F1", "BR-IC-11", "FX-SCH-A-000144")]
    finally:
        store.close()


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
    broken = ack | {"documents": [*ack["documents"], ack["documents"][0]]}  # index 1 twice: fails mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
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


def test_earlier_flow_as_noted_when_a_group_s_digests_are_recorded(store: Tracking) -> None:
    """record_digests notes each flow's first same-bytes flow of its sender; earlier_flow then gives the same
    answers as its query: an earlier flow of the same group or of an earlier one, never itself or a later one."""
    store.record_claims([claimed_row("F1"), claimed_row("F2"), claimed_row("F3"), claimed_row("F4")], T0)
    store.record_digests([("F1", 10, "a" * 64)])
    store.record_digests([("F2", 10, "a" * 64), ("F3", 10, "a" * 64), ("F4", 10, "b" * 64)])
    assert store.earlier_flow("acme", "a" * 64, "F2") == "F1"
    assert store.earlier_flow("acme", "a" * 64, "F3") == "F1"
    assert store.earlier_flow("acme", "b" * 64, "F4") is None
    assert store.earlier_flow("acme", "a" * 64, "F0") is None  # a flow claimed before the first copy
    assert store.earlier_flow("opdemat", "a" * 64, "F5") is None  # not noted: asked of the store


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


def test_an_empty_prefix_names_no_flow_even_in_a_store_of_one(store: Tracking) -> None:
    """resolve('') refuses, though '' is a prefix of every id (it would match the only flow of a store)."""
    store.record_received(received("20261126T093000000001-aaaaaa"), T0)
    with pytest.raises(UnknownFlowError, match="an empty flow id names no flow"):
        store.resolve("")


def test_reading_a_damaged_store_is_one_workspace_error(store_path: Path) -> None:
    """A store that opens but whose flows pages are damaged: each read an operator asks for raises a
    WorkspaceError naming the store, not a bare sqlite3 error."""
    with contextlib.closing(Tracking(store_path, create=True)) as store:
        store.record_received(received("20261126T093000000001-aaaaaa"), T0)
    with contextlib.closing(sqlite3.connect(store_path)) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        roots = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'flows'")]
    data = bytearray(store_path.read_bytes())
    for root in roots:  # the table and its indexes (each a page, this small)
        data[(root - 1) * size : root * size] = b"\xa5" * size
    store_path.write_bytes(data)
    with contextlib.closing(Tracking(store_path)) as store:
        reads = [
            lambda: store.flows(),
            lambda: store.flow("20261126T093000000001-aaaaaa"),
            lambda: store.day_report(T0 - timedelta(days=1), T0 + timedelta(days=1)),
            lambda: store.counts(),
        ]
        for read in reads:
            with pytest.raises(WorkspaceError, match=f"cannot read the tracking store {store_path}: .*malformed"):
                read()


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
    one = Tracking(store_path, create=True)
    two = Tracking(store_path)
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


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_a_writer_waits_for_another_writers_transaction_in_the_kernel(store_path: Path) -> None:
    """While one connection holds a write transaction, a second one's write waits on the writers' lock file (a
    blocked flock in /proc/locks: it wakes when the first commits, where SQLite's own wait would poll), then goes
    through: both rows are there."""
    one = Tracking(store_path, create=True)
    inode = Path(f"{store_path}-writers").stat().st_ino
    failed: list[BaseException] = []
    opened, go = threading.Event(), threading.Event()

    def write() -> None:  # a connection of its own, in its own thread (as another process would)
        two = Tracking(store_path)
        opened.set()
        try:
            go.wait(30)
            two.record_received(received("F2"), T0)
        except BaseException as exc:
            failed.append(exc)
        finally:
            two.close()

    def waiting() -> bool:
        lines = Path("/proc/locks").read_text().splitlines()
        return any("-> FLOCK" in line and line.split()[-3].endswith(f":{inode}") for line in lines)

    second = threading.Thread(target=write)
    second.start()
    try:
        assert opened.wait(30)
        with one._transaction():
            one.db.conn.execute("INSERT INTO meta (key, value) VALUES ('first', '1')")
            go.set()
            deadline = time.monotonic() + 30
            while not waiting():
                assert second.is_alive(), "the second writer did not wait for the first"
                assert time.monotonic() < deadline, "the second writer never waited on the writers' lock"
                time.sleep(0.01)
        second.join(timeout=30)
        assert not second.is_alive() and failed == []
        assert one.status("F2") == "IN_RECU"
        assert one.db.execute("SELECT value FROM meta WHERE key = 'first'").fetchone()[0] == "1"
    finally:
        go.set()
        second.join(timeout=30)
        one.close()


def test_a_reader_during_a_write_transaction_sees_the_last_commit(store_path: Path) -> None:
    """WAL: a plain sqlite3 reader is not blocked by an open write transaction and sees only committed data."""
    store = Tracking(store_path, create=True)
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


# -- claims ------------------------------------------------------------------------------------------------------

HAND = "4242-aaaaaa"
KEY = ("123456782", "FA-1", "Invoice", "2026")
KEY_2027 = (*KEY[:3], "2027")


def claimed_row(flow_id: str, hand: str = HAND, **extra: Any) -> dict[str, Any]:
    """What a process records just before renaming a file into its hand."""
    return received(flow_id) | {"claimed_by": hand} | extra


def invoices(store: Tracking) -> list[tuple[Any, ...]]:
    return list(
        store.db.execute(
            "SELECT seller_key, invoice_number, kind, year, flow_id, idx FROM invoices ORDER BY 1, 2, 3, 4"
        )
    )


def test_record_claims_records_each_flow_with_one_event(store: Tracking) -> None:
    """record_claims stores every row given (with its hand and raw name) as IN_RECU, one claim event each."""
    store.record_claims([claimed_row("F1"), claimed_row("F2", raw_name="e9"), claimed_row("F3", hand="7-bbbbbb")], T0)
    assert [(f["flow_id"], f["status"], f["claimed_by"], f["raw_name"], f["updated_at"]) for f in store.flows()] == [
        ("F3", "IN_RECU", "7-bbbbbb", None, iso(T0)),
        ("F2", "IN_RECU", HAND, "e9", iso(T0)),
        ("F1", "IN_RECU", HAND, None, iso(T0)),
    ]
    for flow_id in ("F1", "F2", "F3"):
        assert events(store, flow_id) == [(None, "IN_RECU", "claimed from the inbox")]
    store.record_claims([], T0)
    assert count(store, "events") == 1


def test_record_claims_keeps_rows_already_there(store: Tracking) -> None:
    """A flow already recorded (recovered, requeued) keeps its row, hand and history; the new ones are added."""
    store.record_claims([claimed_row("F1")], T0)
    store.record_failed(received("F1"), T0, "boom")
    store.record_claims([claimed_row("F1", hand="9-cccccc"), claimed_row("F2")], T0 + timedelta(minutes=1))
    first = store.claimed("F1")
    assert first is not None
    assert (first["status"], first["claimed_by"]) == ("IN_EN_ATTENTE_RETRAITEMENT", HAND)
    assert [e[1] for e in events(store, "F1")] == ["IN_RECU", "IN_EN_ATTENTE_RETRAITEMENT"]
    assert store.status("F2") == "IN_RECU"


def test_record_claims_says_which_flows_were_recorded_already(store: Tracking) -> None:
    """record_claims returns the ids it found recorded (a deposit's file another process is claiming under the
    deposit's id), none for new ones."""
    assert store.record_claims([claimed_row("F1")], T0) == set()
    assert store.record_claims([claimed_row("F1", hand="9-cccccc"), claimed_row("F2")], T0) == {"F1"}


def deposit_row(flow_id: str, sender: str = "acme", inbox_name: str | None = None) -> dict[str, Any]:
    """An api_deposits row as edi.api.deposit writes it."""
    return {
        "flow_id": flow_id,
        "sender": sender,
        "inbox_name": inbox_name or f"{flow_id}_invoice.xml",
        "name": "invoice.xml",
        "flow_syntax": "UBL",
        "sha256": "a" * 64,
        "size": 10,
        "client_id": "c1",
        "request_id": None,
        "submitted_at": iso(T0),
    }


def test_deposits_are_recorded_found_by_inbox_name_and_sender_and_forgotten(store: Tracking) -> None:
    """record_deposit keeps an api_deposits row; deposits_named finds the rows of (sender, inbox name) pairs, and
    no other sender's file of that name (nor chokes on a name that is not UTF-8); forget_deposit removes one row."""
    store.record_deposit(deposit_row("D1"))
    store.record_deposit(deposit_row("D2", sender="opdemat"))
    assert store.deposit("D1") == {**deposit_row("D1"), "flow_profile": None, "processing_rule": None,
                                   "tracking_id": None}  # fmt: skip
    files = [("acme", "D1_invoice.xml"), ("acme", "D2_invoice.xml"), ("acme", "mine.xml"), ("acme", "\udce9.xml")]
    assert store.deposits_named(files) == {("acme", "D1_invoice.xml"): ("D1", "invoice.xml")}
    assert store.deposits_named([]) == {}
    store.forget_deposit("D1")
    assert store.deposit("D1") is None and store.deposit("D2") is not None
    with pytest.raises(sqlite3.IntegrityError):  # one row per inbox file
        store.record_deposit(deposit_row("D3", sender="opdemat", inbox_name="D2_invoice.xml"))


def test_the_claims_deposit_lookup_uses_its_index(store: Tracking) -> None:
    """deposits_named probes the inbox-name index (one look-up per name, whatever the number of deposits)."""
    plan = store.db.execute(
        "EXPLAIN QUERY PLAN SELECT sender, inbox_name, flow_id, name FROM api_deposits "
        "INDEXED BY idx_api_deposits_inbox WHERE inbox_name IN (?)",
        ["x"],
    ).fetchall()
    assert "USING INDEX idx_api_deposits_inbox (inbox_name=?)" in " ".join(str(r[-1]) for r in plan)


def test_record_claims_is_one_transaction(store: Tracking) -> None:
    """If one row of a group cannot be recorded, none of the group is."""
    with pytest.raises(sqlite3.IntegrityError):
        store.record_claims([claimed_row("F1"), claimed_row("F2"), claimed_row("F2")], T0)
    assert store.flows() == [] and count(store, "events", "F1") == 0
    store.record_claims([claimed_row("F1")], T0)  # and the connection is usable again
    assert store.status("F1") == "IN_RECU"


def test_forget_claims_removes_only_claims_that_never_went_further(store: Tracking) -> None:
    """forget_claims deletes the row and events of flows still IN_RECU without an outcome, and nothing else."""
    store.record_claims([claimed_row(f) for f in ("F1", "F2", "F3", "F4", "F5")], T0)
    store.record_outcome(build_ack(flow("F2", document(1)), T0), T0)
    store.record_failed(received("F3"), T0, "boom")
    store.record_outcome(build_ack(flow("F5", document(1)), T0), T0)
    store.record_requeued("F5", T0)  # IN_RECU again, but it had an outcome
    store.forget_claims(["F1", "F2", "F3", "F5", "F404"])
    assert store.status("F1") is None and count(store, "events", "F1") == 0
    assert [store.status(f) for f in ("F2", "F3", "F4", "F5")] == [
        "IN_INTEGRE",
        "IN_EN_ATTENTE_RETRAITEMENT",
        "IN_RECU",
        "IN_RECU",
    ]
    assert len(events(store, "F2")) == 3 and len(events(store, "F4")) == 1
    store.forget_claims([])
    assert len(store.flows()) == 4


def test_record_digests_sets_size_and_sha256(store: Tracking) -> None:
    """record_digests stores the size and SHA-256 of each flow given; an unknown id changes nothing."""
    store.record_claims([claimed_row("F1"), claimed_row("F2")], T0)
    store.record_digests([("F1", 123, "c" * 64), ("F2", 0, "d" * 64), ("F404", 1, "e" * 64)])
    assert [(f["flow_id"], f["size"], f["sha256"]) for f in store.flows()] == [
        ("F2", 0, "d" * 64),
        ("F1", 123, "c" * 64),
    ]
    assert store.earlier_flow("acme", "c" * 64, "F9") == "F1"


def test_claimed_is_the_row_recorded_at_claim(store: Tracking) -> None:
    """claimed gives the row recorded for a flow (what recovery rebuilds its claim from), None for an unknown one."""
    store.record_claims([claimed_row("F1", raw_name="e9")], T0)
    row = store.claimed("F1")
    assert row is not None
    assert {k: row[k] for k in ("sender", "file_name", "raw_name", "received_at", "deposited_at", "claimed_by")} == {
        "sender": "acme",
        "file_name": "invoice.xml",
        "raw_name": "e9",
        "received_at": iso(T0),
        "deposited_at": iso(T0 - timedelta(seconds=30)),
        "claimed_by": HAND,
    }
    assert store.claimed("F404") is None


def test_claims_of_lists_the_unfinished_flows_of_one_hand(store: Tracking) -> None:
    """claims_of a hand gives its flows still IN_RECU: not another hand's, not those with an outcome or failed."""
    store.record_claims([claimed_row(f) for f in ("F1", "F2", "F3")] + [claimed_row("F4", hand="7-bbbbbb")], T0)
    store.record_outcome(build_ack(flow("F2", document(1)), T0), T0)
    store.record_failed(received("F3"), T0, "boom")
    assert store.claims_of(HAND) == ["F1"]
    assert store.claims_of("7-bbbbbb") == ["F4"]
    assert store.claims_of("1-dddddd") == []


# -- invoice keys ------------------------------------------------------------------------------------------------


def test_reserve_invoice_gives_each_key_to_the_first_asker(store: Tracking) -> None:
    """The first to reserve a key holds it, later askers are told who; another seller/number/kind/year is free."""
    assert store.reserve_invoice(KEY, "F1", 2) == ("F1", 2)
    assert store.reserve_invoice(KEY, "F2", 1) == ("F1", 2)
    assert store.reserve_invoice(KEY, "F1", 2) == ("F1", 2)
    others = [("999999999", *KEY[1:]), ("123456782", "FA-2", *KEY[2:]), (*KEY[:2], "CreditNote", "2026"), KEY_2027]
    for n, other in enumerate(others):
        assert store.reserve_invoice(other, "F2", n) == ("F2", n)
    assert len(invoices(store)) == 5


RESERVE = """
import json, random, sys
from pathlib import Path
from edi.tracking import Tracking

store = Tracking(Path(sys.argv[1]))
order = list(range(1000))
random.Random(sys.argv[2]).shuffle(order)  # each process in its own order: they meet all over the range
print("ready", flush=True)
sys.stdin.readline()
held = {n: store.reserve_invoice(("123456782", f"FA-{n}", "Invoice", "2026"), sys.argv[2], n) for n in order}
print(json.dumps([held[n] for n in range(1000)]), flush=True)
store.close()
"""


def test_two_processes_reserving_the_same_keys_agree_on_one_holder(store: Tracking, store_path: Path) -> None:
    """Two processes reserving the same 1,000 keys at once: each key has one holder, and both were told the same."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESERVE, str(store_path), flow_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for flow_id in ("FA", "FB")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        told = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert [proc.returncode for proc in procs] == [0, 0]
    assert told[0] == told[1]
    assert all(holder in ("FA", "FB") and idx == n for n, (holder, idx) in enumerate(told[0]))
    assert {row[1]: [row[4], row[5]] for row in invoices(store)} == {f"FA-{n}": told[0][n] for n in range(1000)}


def test_earlier_invoice_reads_the_reserved_keys(store: Tracking) -> None:
    """earlier_invoice sees another flow's reserved key, not the asker's own, not a document that holds no key."""
    store.reserve_invoice(KEY, "F1", 1)
    assert store.earlier_invoice(*KEY, "F2") == ("F1", 1)
    assert store.earlier_invoice(*KEY, "F1") is None
    assert store.earlier_invoice(*KEY_2027, "F2") is None
    store.record_outcome(build_ack(flow("F3", replace(document(7), kind="Invoice")), T0), T0)  # accepted, no key held
    assert store.earlier_invoice("123456782", "FA-7", "Invoice", "2026", "F4") is None


def ack_of(flow_id: str, *documents: Document) -> dict[str, Any]:
    return build_ack(flow(flow_id, *documents), T0)


REJECTED = (Finding(Code.DEST_INC, Layer.ROUTING, "who?"),)


def test_record_outcomes_lets_go_of_the_keys_of_documents_not_accepted(store: Tracking) -> None:
    """An outcome keeps the keys of accepted documents and lets go of the others' (all, for a flow rejected whole)."""
    key = {n: ("123456782", f"FA-{n}", "Invoice", "2026") for n in range(1, 6)}
    for flow_id, n, idx in (("F1", 1, 1), ("F1", 2, 2), ("F2", 3, 1), ("F3", 4, 1), ("F3", 5, 2)):
        store.reserve_invoice(key[n], flow_id, idx)
    store.record_outcomes(
        [
            ack_of("F1", document(1), document(2, *REJECTED)),
            build_ack(flow("F2", findings=(Finding(Code.IRR_VIDE_F, Layer.INTAKE, "empty"),)), T0),
            ack_of("F3", document(1), document(2)),
        ],
        T0,
    )
    assert [(row[1], row[4], row[5]) for row in invoices(store)] == [
        ("FA-1", "F1", 1),
        ("FA-4", "F3", 1),
        ("FA-5", "F3", 2),
    ]
    assert store.reserve_invoice(key[2], "F9", 1) == ("F9", 1)


def test_record_outcomes_records_flows_never_claimed_beside_claimed_ones(store: Tracking) -> None:
    """In one group, flows recorded as claimed are updated and a flow the store never saw (a store restored from
    an older backup) is inserted: each ends with one row and its outcome."""
    store.record_claims([claimed_row("F1"), claimed_row("F3")], T0)
    acks = [ack_of(f, document(1)) for f in ("F1", "F2", "F3")]
    store.record_outcomes(acks, T0)
    assert [count(store, "flows", f) for f in ("F1", "F2", "F3")] == [1, 1, 1]
    assert [store.status(f) for f in ("F1", "F2", "F3")] == ["IN_INTEGRE"] * 3
    assert store.flow("F2")["documents_total"] == 1


def test_record_outcomes_is_one_transaction(store: Tracking) -> None:
    """If one acknowledgement of a group cannot be stored, none is, and no key is let go."""
    store.record_claims([claimed_row("F1"), claimed_row("F2")], T0)
    store.reserve_invoice(KEY, "F1", 2)
    good = ack_of("F1", document(1), document(2, *REJECTED))
    broken = ack_of("F2", document(1), document(1))  # index 1 twice: fails after F1's rows are written
    with pytest.raises(sqlite3.IntegrityError):
        store.record_outcomes([good, broken], T0)
    assert store.status("F1") == "IN_RECU" and count(store, "documents") == 0 and len(events(store)) == 1
    assert len(invoices(store)) == 1
    store.record_outcomes([good], T0)
    assert store.status("F1") == "IN_INTEGRE_PARTIEL" and invoices(store) == []


def test_record_failed_lets_go_of_the_flows_keys(store: Tracking) -> None:
    """A flow that fails holds no key any more: another flow can take it."""
    store.record_claims([claimed_row("F1")], T0)
    store.reserve_invoice(KEY, "F1", 1)
    store.reserve_invoice(KEY_2027, "F2", 1)
    store.record_failed(received("F1"), T0, "boom")
    assert store.reserve_invoice(KEY, "F3", 1) == ("F3", 1)
    assert [row[4] for row in invoices(store)] == ["F3", "F2"]


def test_forget_takes_the_deposit_rows_of_the_flows_with_them(store: Tracking) -> None:
    """A flow forgotten (retention) takes its api_deposits row with it: no deposit is left looking pending."""
    store.record_claims([claimed_row("D1"), claimed_row("D2")], T0)
    store.record_deposit(deposit_row("D1"))
    store.record_deposit(deposit_row("D2"))
    store.forget(["D1"])
    assert store.deposit("D1") is None and store.deposit("D2") is not None


def test_forget_deletes_every_row_of_the_flows(store: Tracking) -> None:
    """forget removes flows, documents, findings, events, invoice keys and the invoices' lifecycle rows of the flows
    given, nothing else (a forgotten status flow's statuses stay in its invoice's history)."""
    store.record_claims([claimed_row("F1"), claimed_row("F2")], T0)
    store.reserve_invoice(KEY, "F1", 1)
    store.reserve_invoice(KEY_2027, "F2", 1)
    store.record_outcome(build_ack(PARTIAL, T0), T0)
    add_status(store.path, "F1", 1, "204")  # F1's invoice: goes with it
    add_status(store.path, "F2", 1, "204")  # F2's invoice, carried by a status flow of F1's id: stays
    store.db.execute("UPDATE lifecycle SET source_flow_id = 'F1' WHERE flow_id = 'F2'")
    assert store.forget(["F1"]) == 1
    tables = ("flows", "documents", "findings", "events", "invoices")
    assert all(count(store, table) == 0 for table in tables) and count(store, "lifecycle") == 0
    assert [r[0] for r in store.db.execute("SELECT flow_id FROM lifecycle").fetchall()] == ["F2"]
    assert store.status("F2") == "IN_RECU" and [row[4] for row in invoices(store)] == ["F2"]
    assert store.forget([]) == 0


def invoice(index: int, number: str, *findings: Finding, issue_date: str | None = "2026-11-26") -> Document:
    doc = document(index, *findings)
    assert doc.invoice is not None
    return replace(doc, kind="Invoice", invoice=replace(doc.invoice, number=number, issue_date=issue_date))


def test_an_older_store_gets_the_keys_of_its_accepted_invoices(store_path: Path) -> None:
    """A store without an invoices table gets it filled from accepted documents (earliest holds), only that once."""
    old = Tracking(store_path, create=True)
    old.record_outcomes(
        [
            ack_of("F1", invoice(1, "FA-1"), invoice(2, "FA-2", *REJECTED), invoice(3, "FA-3", issue_date=None)),
            ack_of("F0", invoice(1, "FA-1")),  # the same invoice accepted twice by an older edi: the earlier holds
            ack_of("F2", invoice(1, "FA-4"), document(2)),  # document(2): no kind, so no key
        ],
        T0,
    )
    old.db.execute("DROP TABLE invoices")
    old.close()
    store = Tracking(store_path)
    try:
        assert invoices(store) == [
            ("123456782", "FA-1", "Invoice", "2026", "F0", 1),
            ("123456782", "FA-4", "Invoice", "2026", "F2", 1),
        ]
        assert store.earlier_invoice("123456782", "FA-4", "Invoice", "2026", "F9") == ("F2", 1)
        store.db.execute("DELETE FROM invoices")
    finally:
        store.close()
    again = Tracking(store_path)
    try:
        assert invoices(again) == []
    finally:
        again.close()


def test_a_store_from_before_seller_keys_opens(store_path: Path) -> None:
    """A store made before documents had a seller_key column opens, and gets the columns added since."""
    conn = sqlite3.connect(store_path)
    conn.execute("CREATE TABLE flows (flow_id TEXT PRIMARY KEY, sender TEXT, status TEXT)")
    conn.execute(
        "CREATE TABLE documents (flow_id TEXT, idx INTEGER, kind TEXT, invoice_number TEXT, issue_date TEXT, "
        "seller_id TEXT, status TEXT, PRIMARY KEY (flow_id, idx))"
    )
    conn.execute("INSERT INTO documents VALUES ('F1', 1, 'Invoice', 'FA-1', '2026-11-26', '123456782', '200')")
    conn.commit()
    conn.close()
    store = Tracking(store_path)
    try:
        assert "seller_key" in store.db.table("documents").columns_dict
        assert "claimed_by" in store.db.table("flows").columns_dict
    finally:
        store.close()


def test_reserve_invoices_holds_a_group_of_keys_in_order_in_one_go(store: Tracking) -> None:
    """reserve_invoices answers each ask in order: a key held before stays with its holder, a key asked twice in the
    group goes to the first asker, and asking again for what one holds gives it back."""
    other = ("123456782", "FA-9", "Invoice", "2026")
    assert store.reserve_invoice(KEY, "F0", 1) == ("F0", 1)
    asks = [(KEY, "F1", 1), (other, "F1", 2), (other, "F2", 1), (KEY, "F0", 1)]
    assert store.reserve_invoices(asks) == [("F0", 1), ("F1", 2), ("F1", 2), ("F0", 1)]
    assert store.reserve_invoices([]) == []


def test_what_each_flow_asks_the_store_is_a_search_of_its_own_index(store: Tracking) -> None:
    """The digest, duplicate and recovery lookups of every flow search the index made for them, whatever other
    indexes (the console's) tempt the planner: never a walk over all of a sender's flows, nor a table scan."""
    at = datetime(2026, 11, 26, tzinfo=UTC)
    store.record_claims(
        [
            {
                "flow_id": f"2026112600000000000{n}-aaaaaa",
                "sender": "acme",
                "file_name": f"{n}.xml",
                "received_at": iso(at),
                "claimed_by": "123-abc",
            }
            for n in range(3)
        ],
        at,
    )
    asked: list[str] = []
    store.db.conn.set_trace_callback(asked.append)
    try:
        store.record_digests([("20261126000000000000-aaaaaa", 10, "b" * 64)])
        store._firsts.clear()  # the lookup of a flow recorded by another process
        store.earlier_flow("acme", "b" * 64, "20261126000000000002-aaaaaa")
        store.final_flows_of_processes([123], at)
    finally:
        store.db.conn.set_trace_callback(None)
    selects = [sql for sql in asked if sql.lstrip().upper().startswith("SELECT") and "FROM flows" in sql]
    assert len(selects) == 3
    for sql in selects:
        plan = [row[3] for row in store.db.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert not any(
            step.startswith("SCAN") or "sender_flow_id" in step or "status_flow_id" in step for step in plan
        ), (
            sql,
            plan,
        )


# --- lifecycle statuses held and recorded --------------------------------------------------------------------------


def status_row(status: str, source: str, idx: int = 1, invoice: tuple[str, int] = ("F-INVOICE", 1)) -> dict[str, Any]:
    """A recipient's status about ``invoice``, carried by document ``idx`` of status flow ``source``."""
    return {
        "flow_id": invoice[0],
        "idx": invoice[1],
        "status": status,
        "reason": "DOUBLON" if status == "210" else None,
        "text": None,
        "set_by": "dupont-pa",
        "set_at": iso(T0),
        "source_flow_id": source,
        "source_idx": idx,
        "relay": f"{source}.{idx:04d}.cdar.xml",
    }


def lifecycle_rows(store: Tracking) -> list[tuple[Any, ...]]:
    return list(store.db.execute("SELECT flow_id, idx, status, source_flow_id, state FROM lifecycle ORDER BY id"))


def status_ack(flow_id: str, *statuses: tuple[str, bool]) -> dict[str, Any]:
    """A status flow's final acknowledgement: one document per (document status, relayed)."""
    documents = []
    for index, (status, relayed) in enumerate(statuses, start=1):
        relay = f"{flow_id}.{index:04d}.cdar.xml" if relayed else None
        lifecycle = {"status": "204", "known": False, "invoice": {"flow_id": "F-INVOICE", "index": 1}, "relay": relay}
        documents.append({"index": index, "status": status, "findings": [], "lifecycle": lifecycle})
    accepted = sum(d["status"] == "200" for d in documents)
    return {
        "flow_id": flow_id,
        "sender": "dupont-pa",
        "file_name": "s.xml",
        "received_at": iso(T0),
        "processed_at": iso(T0),
        "status": "IN_INTEGRE" if accepted == len(documents) else "IN_REJETE",
        "documents_total": len(documents),
        "documents_accepted": accepted,
        "findings": [],
        "documents": documents,
    }


def test_held_statuses_follow_the_order_rules_within_one_transaction(store: Tracking) -> None:
    """In one call: 208 held, 209 after it held, 209 again known, 211 held, 210 held, 204 after 210 refused;
    only new statuses get a row, each held."""
    rows = [status_row(s, "F-S", i) for i, s in enumerate(["208", "209", "209", "211", "210", "204"], start=1)]
    verdicts = [v for v, _ in store.hold_statuses(rows)]
    assert verdicts == ["new", "new", "known", "new", "new", "refused"]
    assert [(r[2], r[4]) for r in lifecycle_rows(store)] == [(s, "held") for s in ("208", "209", "211", "210")]


def test_a_flow_decided_again_gets_its_own_held_row_back(store: Tracking) -> None:
    """The same source holding the same status again (recovery, requeue) gets "new" and keeps its one row; a
    row of the same source that says something else is replaced."""
    assert store.hold_statuses([status_row("204", "F-S")]) == [("new", "")]
    assert store.hold_statuses([status_row("204", "F-S")]) == [("new", "")]
    assert len(lifecycle_rows(store)) == 1
    assert store.hold_statuses([status_row("205", "F-S")]) == [("new", "")]
    assert [r[2] for r in lifecycle_rows(store)] == ["205"]


def test_recording_a_status_flow_records_what_it_relayed_and_lets_go_of_the_rest(store: Tracking) -> None:
    """record_outcomes: the held rows its ack relays become recorded (recorded_at set), those of documents refused
    in the end are deleted, and a failed status flow leaves no row at all."""
    store.hold_statuses([status_row("204", "F-S", 1), status_row("205", "F-S", 2, ("F-OTHER", 1))])
    store.record_outcomes([status_ack("F-S", ("200", True), ("213", False))], T0)
    assert lifecycle_rows(store) == [("F-INVOICE", 1, "204", "F-S", "recorded")]
    (recorded_at,) = store.db.execute("SELECT recorded_at FROM lifecycle").fetchone()
    assert recorded_at == iso(T0)
    store.hold_statuses([status_row("211", "F-T")])
    store.record_failed({"flow_id": "F-T", "sender": "dupont-pa", "file_name": "t.xml"}, T0, "disk full")
    assert [r[3] for r in lifecycle_rows(store)] == ["F-S"]


def _race(path: str, status: str, invoices: int, barrier: Any, out: Any) -> None:
    """One process of the race: hold ``status`` for each invoice in turn, as soon as the other is ready."""
    store = Tracking(Path(path))
    barrier.wait()
    verdicts = [
        store.hold_statuses([status_row(status, f"F-{status}-{i}", invoice=(f"F-INV-{i}", 1))])[0][0]
        for i in range(invoices)
    ]
    store.close()
    out.put((status, verdicts))


def test_two_processes_racing_210_and_211_on_one_invoice_keep_exactly_one_order(store_path: Path) -> None:
    """Two processes hold 210 and 211 at once on each of 60 invoices (the writers' lock serialises them): for each
    invoice either 210 came first and 211 is refused, or 211 then 210 are both held; never both after a 210."""
    import multiprocessing

    Tracking(store_path, create=True).close()
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    invoices = 60
    workers = [context.Process(target=_race, args=(str(store_path), s, invoices, barrier, out)) for s in ("210", "211")]
    for worker in workers:
        worker.start()
    results = dict(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = Tracking(store_path)
    try:
        rows = lifecycle_rows(store)
    finally:
        store.close()
    for i in range(invoices):
        statuses = [r[2] for r in rows if r[0] == f"F-INV-{i}"]
        assert statuses in (["210"], ["211", "210"]), statuses
        assert results["210"][i] == "new"
        assert results["211"][i] == ("refused" if statuses == ["210"] else "new")


# --- the CDAR messages the API shows (api_messages) ----------------------------------------------------------------


def message_rows(store: Tracking) -> list[tuple[Any, ...]]:
    return list(store.db.execute("SELECT message_id, sender, flow_id, idx, kind, status FROM api_messages"))


def test_an_outcome_records_a_row_per_message_it_names_and_a_new_decision_replaces_them(store: Tracking) -> None:
    """record_outcomes: a row per CDAR message the ack names (edi's own, a relay in the invoice's sender's folder,
    that sender read from the invoice's flow when the ack does not say it); recorded again, the rows of the earlier
    decision go (a message it no longer names leaves no row); record_failed leaves none."""
    store.record_claims([received("F-INVOICE", "opdemat")], T0)
    ack = status_ack("F-S", ("200", True), ("213", False))
    ack["documents"][1]["cdar"] = "F-S.0002.cdar.xml"
    store.record_outcomes([ack], T0)
    assert sorted(message_rows(store)) == [
        ("F-S.0001", "opdemat", "F-S", 1, "relay", "204"),
        ("F-S.0002", "dupont-pa", "F-S", 2, "cdar", "213"),
    ]
    ack = status_ack("F-S", ("213", False))
    ack["cdar"] = None
    store.record_outcomes([ack], T0 + timedelta(seconds=1))
    assert message_rows(store) == []
    store.record_outcomes([status_ack("F-S", ("200", True))], T0)
    store.record_failed({"flow_id": "F-S", "sender": "dupont-pa", "file_name": "s.xml"}, T0, "disk full")
    assert message_rows(store) == []


def test_forgetting_a_flow_removes_its_messages_and_no_other_flows(store: Tracking) -> None:
    """forget (retention): the messages the flow's outcome wrote go, those of a flow whose id it begins with stay."""
    store.record_claims([received("F-INVOICE", "opdemat")], T0)
    store.record_outcomes([status_ack("F-S", ("200", True)), status_ack("F-S2", ("200", True))], T0)
    store.forget(["F-S"])
    assert message_rows(store) == [("F-S2.0001", "opdemat", "F-S2", 1, "relay", "204")]
