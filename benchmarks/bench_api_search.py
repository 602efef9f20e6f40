"""How fast the Flow Service finds a sender's flows on a big store: p50 / p95 of POST /v1/flows/search's query
(:func:`edi.api.flows.search`) and of GET's Flow (:func:`edi.api.flows.flow_json`), in this process, on the store's
read-only connection as ``edi serve`` opens it (:class:`edi.browse.Reader`).

Builds (once, kept in --work) a store of N flows (default 1,000,000) with the real schema and indexes (a store
:class:`edi.tracking.Tracking` made), rows written with plain SQL: 25 senders of very different sizes (the largest
holds ~40 % of the flows), statuses 80 % integrated / 5 % partially / 14 % rejected / 1 % received or failed, a third of
the flows deposited through the API (an ``api_deposits`` row with a trackingId, some still unclaimed), a CDAR message
per flow in ``api_messages``, and updatedAt written by groups of 50 flows (a batch records a group with one time:
long runs of ties). Then times, for the largest sender, each search ``--rounds`` times: the first page, a page deep
in the store reached by its cursor, ``ackStatus`` Error, ``flowDirection`` In (the CDAR messages), a trackingId, and
``updatedAfter`` an hour ago; and the Flow of one flow. Measured, never asserted.

Usage:

  .venv/bin/python benchmarks/bench_api_search.py [--flows 1000000] [--rounds 50] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edi.api import flows  # noqa: E402
from edi.browse import Reader  # noqa: E402
from edi.clock import iso  # noqa: E402
from edi.tracking import Tracking  # noqa: E402
from edi.workspace import Layout  # noqa: E402

START = datetime(2026, 1, 5, tzinfo=UTC)
SENDERS = [f"sender-{i:02d}" for i in range(25)]
WEIGHTS = [40.0] + [60.0 / 24] * 24
STATUSES = (
    ["IN_INTEGRE"] * 80 + ["IN_INTEGRE_PARTIEL"] * 5 + ["IN_REJETE"] * 14 + ["IN_RECU", "IN_EN_ATTENTE_RETRAITEMENT"]
)
GROUP = 50  # flows recorded with one time


def build(path: Path, count: int) -> None:
    """A store of ``count`` flows at ``path``."""
    rng = random.Random(26)
    store = Tracking(path, create=True)
    conn = store.db.conn
    conn.execute("BEGIN")
    moment = START
    flow_rows: list[list[Any]] = []
    deposit_rows: list[list[Any]] = []
    message_rows: list[list[Any]] = []

    def flush() -> None:
        conn.executemany(
            "INSERT INTO flows (flow_id, sender, file_name, received_at, status, updated_at, processed_at, kind, "
            "documents_total, documents_accepted) VALUES (?, ?, ?, ?, ?, ?, ?, 'xml', 1, ?)",
            flow_rows,
        )
        conn.executemany(
            "INSERT INTO api_deposits (flow_id, sender, inbox_name, name, flow_syntax, processing_rule, tracking_id, "
            "submitted_at) VALUES (?, ?, ?, ?, 'UBL', 'B2B', ?, ?)",
            deposit_rows,
        )
        conn.executemany("INSERT INTO api_messages VALUES (?, ?, ?, 1, 'cdar', ?, ?)", message_rows)
        flow_rows.clear()
        deposit_rows.clear()
        message_rows.clear()

    for n in range(count):
        if n % GROUP == 0:
            moment += timedelta(seconds=rng.uniform(1, 60))
        flow_id = f"{moment:%Y%m%dT%H%M%S}{n % 1_000_000:06d}-{rng.getrandbits(24):06x}"
        sender = rng.choices(SENDERS, WEIGHTS)[0]
        status = rng.choice(STATUSES)
        at = iso(moment)
        flow_rows.append([flow_id, sender, f"invoice-{n}.xml", at, status, at, at, int(status != "IN_REJETE")])
        if n % 3 == 0:
            deposit_rows.append([flow_id, sender, f"{flow_id}.xml", f"invoice-{n}.xml", f"T-{n}", at])
        if status not in ("IN_RECU", "IN_EN_ATTENTE_RETRAITEMENT"):
            code = "200" if status != "IN_REJETE" else "213"
            message_rows.append([f"{flow_id}.0001", sender, flow_id, code, at])
        if len(flow_rows) >= 20_000:
            flush()
    flush()
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    store.close()


def timed(call: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    """p50 and p95 in milliseconds of ``rounds`` calls, and the last result."""
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], result


def walk(search: Callable[[str | None], dict[str, Any]], pages: int) -> Iterator[dict[str, Any]]:
    """Pages of a search, following nextCursor."""
    cursor = None
    for _ in range(pages):
        page = search(cursor)
        yield page
        cursor = page.get("nextCursor")
        if cursor is None:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("/tmp/edi-bench-api-search"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    layout = Layout(args.work)
    if not layout.database.exists():
        started = time.perf_counter()
        build(layout.database, args.flows)
        print(f"built {args.flows:,} flows in {time.perf_counter() - started:.0f} s: {layout.database}")
    Tracking(layout.database).close()  # a store kept from an older edi gets what this one adds (as `edi serve` does)
    reader = Reader(layout.database)
    conn = reader.connection()
    sender = SENDERS[0]
    total = conn.execute("SELECT count(*) FROM flows").fetchone()[0]
    mine = conn.execute("SELECT count(*) FROM flows WHERE sender = ?", [sender]).fetchone()[0]
    messages = conn.execute("SELECT count(*) FROM api_messages WHERE sender = ?", [sender]).fetchone()[0]
    print(f"store: {total:,} flows; {sender}: {mine:,} flows, {messages:,} CDAR messages")
    now = datetime.now(UTC)
    last = conn.execute("SELECT max(updated_at) FROM flows").fetchone()[0]
    hour_before = (datetime.fromisoformat(last.replace("Z", "+00:00")) - timedelta(hours=1)).isoformat()

    def page(where: dict[str, Any], cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
        query = flows.Query(limit, where, cursor)
        return flows.search(conn, layout, sender, query, now)

    middle = None  # a cursor half-way through the sender's flows
    everything = {"flowDirection": ["Out"]}
    for number, seen in enumerate(walk(lambda c: page(everything, c), 10_000)):
        if number * 100 >= mine // 2:
            middle = seen.get("nextCursor")
            break
    tracking = conn.execute("SELECT tracking_id FROM api_deposits WHERE sender = ? LIMIT 1 OFFSET 1000", [sender])
    tracking_id = tracking.fetchone()[0]
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("first page, flowDirection Out, limit 100", lambda: page(everything)),
        ("a page half-way, by its cursor", lambda: page(everything, middle)),
        ("ackStatus Error", lambda: page({"ackStatus": "Error"})),
        ("flowDirection In (CDAR messages)", lambda: page({"flowDirection": ["In"]})),
        (
            "all of the sender's, no filter but updatedAfter 2000",
            lambda: page({"updatedAfter": "2000-01-01T00:00:00Z"}),
        ),
        ("ackStatus Pending (1 % of the flows)", lambda: page({"ackStatus": "Pending"})),
        ("flowType SupplierInvoiceLC (none here)", lambda: page({"flowType": ["SupplierInvoiceLC"]})),
        ("flowType CustomerInvoice (all of them)", lambda: page({"flowType": ["CustomerInvoice"]})),
        ("trackingId", lambda: page({"trackingId": tracking_id})),
        ("updatedAfter an hour before the last", lambda: page({"updatedAfter": hour_before})),
    ]
    print(f"{'search (' + sender + ')':<58} {'p50 ms':>8} {'p95 ms':>8} {'results':>8}")
    for label, call in cases:
        p50, p95, result = timed(call, args.rounds)
        print(f"{label:<58} {p50:8.2f} {p95:8.2f} {len(result['results']):8d}")
    flow_id = conn.execute("SELECT flow_id FROM flows WHERE sender = ? AND status = 'IN_REJETE' LIMIT 1", [sender])
    one = flow_id.fetchone()[0]
    p50, p95, _ = timed(lambda: flows.flow_json(conn, layout, sender, one), args.rounds)
    print(f"{'GET one Flow (flow_json)':<58} {p50:8.2f} {p95:8.2f}")
    reader.close()


if __name__ == "__main__":
    main()
