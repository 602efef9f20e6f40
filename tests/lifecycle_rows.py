"""Lifecycle rows in the shared contract's shape (docs/lifecycle.md, the store's ``lifecycle`` table), written with
plain SQL into a real store on top of flows the real batch processed: what the status flows record, for the tests
of the views (``edi invoices``, ``edi show``, the console) before and apart from the status flows themselves."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from edi.clock import iso

_SOURCES = itertools.count(1)


def add_status(
    database: Path,
    flow_id: str,
    idx: int,
    status: str,
    *,
    reason: str | None = None,
    text: str | None = None,
    set_by: str = "ville-partner",
    set_at: datetime | None = None,
    state: str = "recorded",
) -> int:
    """A status of the invoice (``flow_id``, ``idx``), as a status flow's document carried it (a source of its own;
    ``state`` "held" for one whose flow is still being decided); the row's id."""
    moment = set_at or datetime.now(UTC)
    source = next(_SOURCES)
    with sqlite3.connect(database, isolation_level=None) as conn:
        cursor = conn.execute(
            "INSERT INTO lifecycle (flow_id, idx, status, reason, text, set_by, set_at, recorded_at, source_flow_id, "
            "source_idx, relay, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                flow_id,
                idx,
                status,
                reason,
                text,
                set_by,
                iso(moment),
                iso(moment) if state == "recorded" else None,
                f"20990101T000000{source:06d}-status",
                1,
                f"20990101T000000{source:06d}-status.0001.cdar.xml",
                state,
            ],
        )
    conn.close()
    return int(cursor.lastrowid or 0)
