"""The dashboard's invoices waiting for their recipient (edi.browse.lifecycle): the buckets, what counts as waiting,
the account's scope, and counts read from indexes alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from edi.browse import Reader
from edi.browse.lifecycle import _SKIP_RECIPIENTS, Counted, _answered, _delivered, waiting
from tests.conftest import Workspace
from tests.console_store import NOW, store_of
from tests.lifecycle_rows import add_status


@pytest.fixture
def aged(workspace: Workspace) -> Iterator[Reader]:
    """Invoices delivered 3, 10, 20, 40, 80 and 200 days ago, some with statuses since; a reader on them."""
    database = workspace.root / "tracking.sqlite"
    with store_of(workspace) as s:

        def invoice(sender: str, days: float, *statuses: tuple[str, str], **columns: str | None) -> None:
            flow = s.flow(sender, NOW - timedelta(days=days), status="IN_INTEGRE")
            s.document(flow, 1, **({"status": "200", "recipient": "ville-exemple"} | columns))
            for code, state in statuses:
                add_status(database, flow, 1, code, state=state)

        for days in (3, 10, 20, 40, 80, 200):
            invoice("acme", days)  # waits from 7 days on: one in each bucket but the 3-day-old one
        invoice("acme", 10, ("204", "recorded"))  # taken in charge: no longer waits
        invoice("acme", 10, ("204", "recorded"), ("210", "recorded"))  # answered twice: not counted (nor twice)
        invoice("acme", 10, ("202", "recorded"), ("203", "recorded"))  # received, made available: still waits
        invoice("acme", 20, ("205", "held"))  # its status flow not answered yet: still waits
        invoice("acme", 20, status="213", reason="REJ_SEMAN")  # rejected by edi: never delivered
        invoice("acme", 20, recipient=None)  # no recipient: a status flow's document, not an invoice
        invoice("opdemat", 40)
        invoice("opdemat", 40, ("211", "recorded"))
    reader = Reader(database)
    yield reader
    reader.close()


def test_delivered_invoices_without_a_processing_status_wait_by_age(aged: Reader) -> None:
    """Each bucket counts the delivered invoices of its age with no recorded status from 204 on (202, 203 and a held
    status do not answer); the buckets double from ``days`` on, the last open."""
    found = waiting(aged, None, NOW, 7)
    assert found["buckets"] == ["7-14 d", "14-28 d", "28-56 d", "56-112 d", "≥ 112 d"]
    assert found["counts"] == [2, 2, 2, 1, 1] and found["total"] == 8
    assert found["periods"][0] == {"since": "2026-11-12T12:00:00.000Z", "until": "2026-11-19T12:00:00.000Z"}
    assert found["periods"][-1] == {"since": None, "until": "2026-08-06T12:00:00.000Z"}


def test_a_senders_account_counts_its_own_invoices(aged: Reader) -> None:
    """A sender's scope counts only its flows' invoices, by the same rules."""
    assert waiting(aged, "acme", NOW, 7)["counts"] == [2, 2, 1, 1, 1]
    assert waiting(aged, "opdemat", NOW, 7)["counts"] == [0, 0, 1, 0, 0]
    assert waiting(aged, "nobody", NOW, 7)["total"] == 0


def test_the_threshold_is_the_configured_number_of_days(aged: Reader) -> None:
    """With 30 days, the 40-, 80- and 200-day-old invoices are in the first three buckets, the younger ones in none;
    a fraction of a day is kept."""
    assert waiting(aged, None, NOW, 30)["counts"] == [2, 1, 1, 0, 0]
    assert waiting(aged, None, NOW, 0.5)["buckets"][0] == "0.5-1 d"


def test_the_counts_are_read_from_indexes_alone(aged: Reader) -> None:
    """The delivered invoices are counted in the documents' (recipient, flow_id, status) index, skipping from one
    recipient to the next, and the answered ones in the lifecycle's (state, flow_id, idx, status) index, each once
    without a sort: neither table is read."""
    delivered = " | ".join(
        str(r["detail"])
        for r in aged.rows(
            f"EXPLAIN QUERY PLAN {_SKIP_RECIPIENTS} SELECT total((SELECT count(*) FROM documents d "
            "WHERE d.recipient = v.value AND d.flow_id >= ? AND d.flow_id < ? AND d.status = '200')) AS n FROM v",
            ["a", "b"],
        )
    )
    assert "SEARCH d USING COVERING INDEX idx_documents_recipient_flow_id_status (recipient=? AND flow_id>? AND" in (
        delivered
    )
    assert "SCAN documents" not in delivered
    answered = " | ".join(
        str(r["detail"])
        for r in aged.rows(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM (SELECT DISTINCT l.flow_id, l.idx FROM lifecycle l "
            "WHERE l.state = ? AND l.flow_id >= ? AND l.flow_id < ? AND l.status IN ('204', '210'))",
            ["recorded", "a", "b"],
        )
    )
    assert "SEARCH l USING COVERING INDEX idx_lifecycle_state_flow_id_idx_status (state=? AND flow_id>? AND" in (
        answered
    )
    assert "TEMP B-TREE" not in answered


def test_the_console_keeps_each_scopes_counts_for_a_while(aged: Reader, workspace: Workspace) -> None:
    """Counted keeps a scope's counts ``ttl`` seconds (a status recorded meanwhile shows after), each scope its own,
    never for a moment before they were counted."""
    kept = Counted(7, ttl=300)
    assert kept.cached(None, NOW) is None
    first = kept.count(aged, None, NOW)
    assert first["total"] == 8 and first["counted_at"] == "2026-11-26T12:00:00.000Z"
    flow = aged.one("SELECT flow_id FROM documents WHERE recipient IS NOT NULL ORDER BY flow_id LIMIT 1")
    assert flow is not None
    add_status(workspace.root / "tracking.sqlite", flow["flow_id"], 1, "211")
    assert kept.cached(None, NOW + timedelta(seconds=299)) is first
    assert kept.cached("acme", NOW) is None and kept.cached(None, NOW - timedelta(seconds=1)) is None
    assert kept.cached(None, NOW + timedelta(seconds=300)) is None
    assert kept.count(aged, None, NOW + timedelta(seconds=300))["total"] == 7


def test_a_senders_counts_go_through_its_own_flows(aged: Reader) -> None:
    """For a sender's account both counts read its flows in its (sender, flow_id) index, then one seek each in the
    documents' primary key and in the lifecycle's index: never a range of every sender's rows per flow."""

    def plan(query: Callable[..., int]) -> str:
        seen: list[str] = []

        class Spy:
            def one(self, sql: str, args: list[Any]) -> dict[str, Any]:
                seen.extend(str(r["detail"]) for r in aged.rows(f"EXPLAIN QUERY PLAN {sql}", args))
                return {"n": 0}

        query(Spy(), "acme", "a", "b")
        return " | ".join(seen)

    flows = "SEARCH f USING COVERING INDEX idx_flows_sender_flow_id (sender=? AND flow_id>? AND flow_id<?)"
    delivered = plan(_delivered)
    assert delivered == f"{flows} | SEARCH d USING INDEX sqlite_autoindex_documents_1 (flow_id=?)"
    answered = plan(_answered)
    assert (
        f"{flows} | SEARCH l USING COVERING INDEX idx_lifecycle_state_flow_id_idx_status (state=? AND flow_id=?)"
        in (answered)
    )
