"""The dashboard's data (edi.browse.dashboard) on hand-built stores: counts per day, status, sender, recipient, queue
and rule, the period's bounds, what needs an operator, and the scope of a sender account."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edi.browse import Reader
from edi.browse import dashboard as board
from edi.browse.flows import stamp
from edi.clock import iso
from edi.errors import BadQuery
from edi.tracking import Tracking
from edi.web.charts import age_buckets
from tests.conftest import FixedClock, Workspace

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday noon, UTC

Doc = tuple[str | None, str | None, str]  # recipient, queue, status


def add_flow(
    store: Tracking,
    at: datetime,
    sender: str,
    status: str,
    docs: Sequence[Doc] = (),
    findings: Sequence[tuple[int, str | None, str]] = (),
    *,
    name: str | None = None,
    updated: datetime | None = None,
) -> str:
    """Write one flow as edi would have (its id made at ``at``), with its documents and findings (idx, rule,
    severity); return its id."""
    flow_id = f"{stamp(at)}-{secrets.token_hex(3)}"
    final = status in ("IN_INTEGRE", "IN_INTEGRE_PARTIEL", "IN_REJETE")
    accepted = sum(1 for _, _, s in docs if s == "200")
    conn = store.db.conn
    conn.execute(
        "INSERT INTO flows (flow_id, sender, file_name, received_at, status, documents_total, documents_accepted, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            flow_id,
            sender,
            name or f"{flow_id}.xml",
            iso(at),
            status,
            len(docs) if final else None,
            accepted if final else None,
            iso(updated or at),
        ],
    )
    for idx, (recipient, queue, doc_status) in enumerate(docs, start=1):
        conn.execute(
            "INSERT INTO documents (flow_id, idx, name, recipient, queue, status) VALUES (?, ?, ?, ?, ?, ?)",
            [flow_id, idx, f"d{idx}.xml", recipient, queue, doc_status],
        )
    for idx, rule, severity in findings:
        conn.execute(
            "INSERT INTO findings (flow_id, idx, code, rule, layer, severity, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [flow_id, idx, "BR", rule, "en16931", severity, "broken"],
        )
    return flow_id


OK: Doc = ("ville", "ville-voirie", "200")
REFUSED: Doc = ("ville", None, "213")


@pytest.fixture
def store(workspace: Workspace) -> Any:
    tracking = Tracking(workspace.settings.workspace.layout().database)
    yield tracking
    tracking.close()


def data(workspace: Workspace, scope: str | None, params: dict[str, str], now: datetime = NOW) -> dict[str, Any]:
    layout = workspace.settings.workspace.layout()
    reader = Reader(layout.database)
    try:
        span = board.period(params, now)
        return board.dashboard(reader, workspace.settings, layout, scope, span, now, age_buckets)
    finally:
        reader.close()


def cell(found: dict[str, Any], day: str, status: str) -> tuple[int, int, int]:
    row = next(r for r in found["by_day"] if r["day"] == day and r["status"] == status)
    return row["flows"], row["documents"], row["accepted"]


def test_counts_per_day_status_and_sender(workspace: Workspace, store: Tracking) -> None:
    """Flows and documents are counted on the day of their id, per status and per sender; a flow before the period
    is not counted; the rates are of the documents decided and of the flows with their answer."""
    add_flow(store, NOW - timedelta(hours=1), "acme", "IN_INTEGRE", [OK, OK])
    add_flow(store, NOW - timedelta(hours=2), "acme", "IN_REJETE", [REFUSED], [(1, "BR-01", "fatal")])
    add_flow(store, NOW - timedelta(days=1), "opdemat", "IN_INTEGRE_PARTIEL", [OK, REFUSED, REFUSED])
    add_flow(store, NOW - timedelta(days=6, hours=11), "opdemat", "IN_EN_ATTENTE_RETRAITEMENT")
    add_flow(store, NOW - timedelta(days=7, hours=1), "acme", "IN_INTEGRE", [OK])  # before the 7 days
    found = data(workspace, None, {"period": "7d"})
    assert found["days"][0] == "2026-03-04" and found["days"][-1] == "2026-03-10" and len(found["days"]) == 7
    assert len(found["by_day"]) == 7 * 5  # every day and status, zeros too
    assert cell(found, "2026-03-10", "IN_INTEGRE") == (1, 2, 2)
    assert cell(found, "2026-03-10", "IN_REJETE") == (1, 1, 0)
    assert cell(found, "2026-03-09", "IN_INTEGRE_PARTIEL") == (1, 3, 1)
    assert cell(found, "2026-03-04", "IN_EN_ATTENTE_RETRAITEMENT") == (1, 0, 0)
    assert cell(found, "2026-03-05", "IN_INTEGRE") == (0, 0, 0)
    totals = found["totals"]
    assert (totals["flows"], totals["documents"], totals["accepted"], totals["rejected"]) == (4, 6, 3, 3)
    assert totals["by_status"] == {
        "IN_INTEGRE": 1,
        "IN_INTEGRE_PARTIEL": 1,
        "IN_REJETE": 1,
        "IN_EN_ATTENTE_RETRAITEMENT": 1,
        "IN_RECU": 0,
    }
    assert totals["rejection_rate"] == 0.5
    assert totals["flow_rejection_rate"] == round(1 / 3, 4)
    senders = {s["sender"]: s for s in found["by_sender"]}
    assert [s["sender"] for s in found["by_sender"]] == ["acme", "opdemat"]  # most flows first, then by name
    assert (senders["acme"]["flows"], senders["acme"]["rejected"], senders["acme"]["rejection_rate"]) == (2, 1, 0.3333)
    assert senders["opdemat"]["by_status"] == {"IN_INTEGRE_PARTIEL": 1, "IN_EN_ATTENTE_RETRAITEMENT": 1}
    assert senders["opdemat"]["flows_rejected"] == 0


def test_periods(workspace: Workspace) -> None:
    """today, 7d and 30d are UTC days ending today (7d when nothing is asked); from/to is a custom period whose
    ``to`` date counts whole; an unknown period, a bad date, an end before the start, a custom period without its
    start or longer than a year are refused."""
    today = board.period({"period": "today"}, NOW)
    assert (today.since, today.until, today.days) == (datetime(2026, 3, 10, tzinfo=UTC), None, ("2026-03-10",))
    assert board.period({}, NOW).name == "7d"
    month = board.period({"period": "30d"}, NOW)
    assert month.since == datetime(2026, 2, 9, tzinfo=UTC) and len(month.days) == 30
    custom = board.period({"from": "2026-01-30", "to": "2026-02-02"}, NOW)
    assert custom.name == "custom"
    assert custom.days == ("2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02")
    assert custom.id_range() == (stamp(datetime(2026, 1, 30, tzinfo=UTC)), stamp(datetime(2026, 2, 3, tzinfo=UTC)))
    for bad in (
        {"period": "week"},
        {"from": "2026-02-30"},
        {"from": "2026-03-05", "to": "2026-03-01"},
        {"period": "custom"},
        {"to": "2026-03-01"},
        {"from": "2024-01-01", "to": "2026-01-01"},
        {"from": "2026-04-01"},  # starts after now, with no end
    ):
        with pytest.raises(BadQuery):
            board.period(bad, NOW)


def test_today_and_thirty_days(workspace: Workspace, store: Tracking) -> None:
    """Today holds only the flows since midnight UTC; 30 days the ones since the 30th day back at midnight."""
    clock = FixedClock(NOW)
    add_flow(store, NOW.replace(hour=0, minute=0, second=0), "acme", "IN_INTEGRE", [OK])  # midnight: today
    add_flow(store, NOW.replace(hour=0) - timedelta(microseconds=1), "acme", "IN_INTEGRE", [OK])  # yesterday
    add_flow(store, datetime(2026, 2, 9, tzinfo=UTC), "acme", "IN_REJETE", [REFUSED])  # the 30th day back
    add_flow(store, datetime(2026, 2, 8, 23, 59, tzinfo=UTC), "acme", "IN_REJETE", [REFUSED])  # the 31st
    assert data(workspace, None, {"period": "today"}, clock.now())["totals"]["flows"] == 1
    assert data(workspace, None, {"period": "7d"}, clock.now())["totals"]["flows"] == 2
    month = data(workspace, None, {"period": "30d"}, clock.now())
    assert month["totals"]["flows"] == 3 and month["totals"]["by_status"]["IN_REJETE"] == 1
    custom = data(workspace, None, {"from": "2026-02-08", "to": "2026-02-09"}, clock.now())
    assert custom["totals"]["flows"] == 2 and custom["from"] == "2026-02-08T00:00:00.000Z"
    assert custom["to"] == "2026-02-10T00:00:00.000Z"


def test_recipients_and_queues(workspace: Workspace, store: Tracking) -> None:
    """Documents per recipient (a flow with two documents for one recipient is one flow; documents refused before
    routing have no recipient) and per queue (documents delivered)."""
    batch = [OK, OK, REFUSED, ("dupont", "dupont", "200")]
    add_flow(store, NOW - timedelta(hours=3), "acme", "IN_INTEGRE_PARTIEL", batch)
    add_flow(store, NOW - timedelta(hours=2), "opdemat", "IN_REJETE", [(None, None, "501")])
    add_flow(store, NOW - timedelta(hours=1), "opdemat", "IN_INTEGRE", [OK])
    found = data(workspace, None, {"period": "today"})
    recipients = {r["recipient"]: r for r in found["by_recipient"]}
    assert [r["recipient"] for r in found["by_recipient"]] == ["ville", "dupont", None]
    ville = recipients["ville"]
    assert (ville["flows"], ville["documents"], ville["accepted"], ville["rejected"]) == (2, 4, 3, 1)
    assert ville["rejection_rate"] == 0.25
    assert (recipients[None]["documents"], recipients[None]["rejected"]) == (1, 1)
    assert found["by_queue"] == [
        {"queue": "ville-voirie", "flows": 2, "documents": 3},
        {"queue": "dupont", "flows": 1, "documents": 1},
    ]


def test_top_rules(workspace: Workspace, store: Tracking) -> None:
    """The rules broken in the most flows, fatal findings only (a warning is not a broken rule), a flow counted
    once however often it broke the rule, at most ten, and only within the period."""
    for n in range(3):
        add_flow(store, NOW - timedelta(hours=n + 1), "acme", "IN_REJETE", [REFUSED, REFUSED],
                 [(1, "BR-CO-10", "fatal"), (2, "BR-CO-10", "fatal")])  # fmt: skip
    add_flow(store, NOW - timedelta(hours=5), "acme", "IN_REJETE", [REFUSED], [(1, "BR-16", "fatal")])
    add_flow(store, NOW - timedelta(hours=6), "acme", "IN_INTEGRE", [OK], [(1, "BR-FR-W", "warning")])
    add_flow(store, NOW - timedelta(days=3), "acme", "IN_REJETE", [REFUSED], [(1, "BR-OLD", "fatal")])
    add_flow(store, NOW - timedelta(hours=7), "acme", "IN_REJETE", [], [(0, None, "fatal")])  # a code, no rule
    for n in range(12):
        add_flow(store, NOW - timedelta(minutes=n + 1), "acme", "IN_REJETE", [REFUSED], [(1, f"R-{n:02d}", "fatal")])
    rules = data(workspace, None, {"period": "today"})["top_rules"]
    assert len(rules) == 10
    assert rules[0] == {"rule": "BR-CO-10", "flows": 3, "findings": 6}
    assert {r["rule"] for r in rules[1:]} == {"BR-16", *(f"R-{n:02d}" for n in range(8))}  # ties: by rule id
    assert "BR-FR-W" not in {r["rule"] for r in data(workspace, None, {"period": "30d"})["top_rules"]}


def test_attention(workspace: Workspace, store: Tracking) -> None:
    """Failed flows are listed whatever the period, newest first; a flow in process counts as stuck once it has not
    changed for ten minutes (a requeued one from the time it was requeued)."""
    old = add_flow(store, NOW - timedelta(days=90), "acme", "IN_EN_ATTENTE_RETRAITEMENT", name="old.xml")
    new = add_flow(store, NOW - timedelta(hours=1), "acme", "IN_EN_ATTENTE_RETRAITEMENT", name="new.xml")
    stuck = add_flow(store, NOW - timedelta(minutes=11), "acme", "IN_RECU")
    add_flow(store, NOW - timedelta(minutes=9), "acme", "IN_RECU")  # still being processed
    add_flow(store, NOW - timedelta(days=2), "acme", "IN_RECU", updated=NOW - timedelta(minutes=1))  # requeued
    attention = data(workspace, None, {"period": "today"})["attention"]
    assert attention["failed"]["count"] == 2
    assert [f["flow_id"] for f in attention["failed"]["flows"]] == [new, old]
    assert attention["stuck"]["count"] == 1 and attention["stuck"]["flows"][0]["flow_id"] == stuck


def test_sender_scope(workspace: Workspace, store: Tracking) -> None:
    """A sender account's counts, recipients, queues, rules and attention lists hold its own flows only."""
    add_flow(store, NOW - timedelta(hours=1), "acme", "IN_REJETE", [REFUSED], [(1, "BR-ACME", "fatal")])
    add_flow(store, NOW - timedelta(hours=2), "opdemat", "IN_INTEGRE", [("secret-buyer", "secret-queue", "200")])
    add_flow(store, NOW - timedelta(hours=3), "opdemat", "IN_REJETE", [REFUSED], [(1, "BR-OTHER", "fatal")])
    add_flow(store, NOW - timedelta(hours=4), "opdemat", "IN_EN_ATTENTE_RETRAITEMENT", name="theirs.xml")
    add_flow(store, NOW - timedelta(hours=5), "opdemat", "IN_RECU")
    found = data(workspace, "acme", {"period": "today"})
    assert found["totals"]["flows"] == 1 and found["totals"]["rejected"] == 1
    assert [s["sender"] for s in found["by_sender"]] == ["acme"]
    assert [r["recipient"] for r in found["by_recipient"]] == ["ville"] and found["by_queue"] == []
    assert [r["rule"] for r in found["top_rules"]] == ["BR-ACME"]
    assert found["attention"]["failed"]["count"] == 0 and found["attention"]["stuck"]["count"] == 0
    text = repr(found)
    for theirs in ("opdemat", "secret-buyer", "secret-queue", "BR-OTHER", "theirs.xml"):
        assert theirs not in text


def test_operator_and_sender_queries_agree(workspace: Workspace, store: Tracking) -> None:
    """The operator's index walks and a sender's grouped queries give the same numbers on a store of one sender."""
    for n in range(20):
        docs = [OK, REFUSED, ("dupont", "dupont", "200")][: n % 3 + 1]
        add_flow(store, NOW - timedelta(hours=n * 7), "acme", ["IN_INTEGRE", "IN_REJETE"][n % 2], docs,
                 [(1, f"BR-{n % 4}", "fatal"), (1, f"BR-{n % 4}", "fatal"), (2, "W", "warning")])  # fmt: skip
    everyone = data(workspace, None, {"period": "7d"})
    mine = data(workspace, "acme", {"period": "7d"})
    for key in ("by_day", "by_sender", "by_recipient", "by_queue", "top_rules", "totals"):
        assert everyone[key] == mine[key], key
