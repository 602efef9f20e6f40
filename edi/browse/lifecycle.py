"""The dashboard's invoices still waiting for their recipient: delivered (edi's 200), yet no processing status
(204-212) recorded for them after ``days`` days, counted in age buckets as Postfix qshape counts a queue.

Fast on millions of invoices: a bucket is a range of flow ids (ids are the claim time, :func:`edi.browse.flows.stamp`)
and its count is the delivered invoices of that range (read from the documents' (recipient, flow_id, status) index
without the table, skipping from one recipient to the next) less those of the range with a processing status (read
from the lifecycle's (state, flow_id, idx, status) index without the table, each invoice once). A delivered invoice
is a document with status 200 and a recipient: a status flow's documents (a recipient's CDAR messages) are routed to
no recipient, so they are not counted. For a sender's account both counts go through its flows, one seek each
(the join's order and indexes named: SQLite's planner, without statistics, would otherwise read a range of all
senders' rows for each of its flows). The console keeps
each scope's counts a few minutes (:class:`Counted`). Reads the store
through :class:`edi.browse.Reader`; writes nothing; raises :class:`edi.errors.WorkspaceError` for a store that cannot
be read.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from edi.browse import Reader
from edi.browse.flows import stamp
from edi.clock import iso
from edi.lifecycle.labels import PROCESSING_STATUSES
from edi.lifecycle.timeline import RECORDED

BUCKETS = 5  # [N, 2N), [2N, 4N), [4N, 8N), [8N, 16N) days, then 16N days and more
TTL_SECONDS = 300.0  # the console counts a scope's waiting invoices again after this long (Counted)
_PROCESSING = ", ".join(f"'{s}'" for s in PROCESSING_STATUSES)
_SKIP_RECIPIENTS = (
    "WITH RECURSIVE v(value) AS (SELECT min(recipient) FROM documents UNION ALL SELECT (SELECT min(recipient) "
    "FROM documents WHERE recipient > v.value) FROM v WHERE v.value IS NOT NULL)"
)


class Counted:
    """The waiting invoices' counts of each scope, counted again only once ``ttl`` seconds have passed: counting
    reads every delivered invoice and every recorded status (about a second over a million flows), and a count of
    invoices days old hardly changes in minutes. Safe across the console's threads (two may count at once)."""

    def __init__(self, days: float, ttl: float = TTL_SECONDS) -> None:
        self.days = days
        self.ttl = ttl
        self._kept: dict[str | None, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def cached(self, scope: str | None, now: datetime) -> dict[str, Any] | None:
        """The scope's counts if counted less than ``ttl`` seconds before ``now`` (and not after it), else None."""
        with self._lock:
            kept = self._kept.get(scope)
        if kept is not None and 0 <= now.timestamp() - kept[0] < self.ttl:
            return kept[1]
        return None

    def count(self, reader: Reader, scope: str | None, now: datetime) -> dict[str, Any]:
        """The scope's counts as of ``now`` (:func:`waiting`), kept for the next ``ttl`` seconds."""
        found = waiting(reader, scope, now, self.days)
        with self._lock:
            self._kept[scope] = (now.timestamp(), found)
        return found


def waiting(reader: Reader, scope: str | None, now: datetime, days: float) -> dict[str, Any]:
    """The invoices delivered at least ``days`` days before ``now`` and still without a processing status from
    their recipient, for the account's ``scope``: the bucket labels, the count in each, their total, and each
    bucket's reception period (``since`` / ``until``, ISO times; the last open) for links to the invoices."""
    bounds = [now - timedelta(days=days * 2**i) for i in range(BUCKETS)]  # newest first: N, 2N, 4N ... days ago
    ranges = [(stamp(bounds[i + 1]), stamp(bounds[i])) for i in range(BUCKETS - 1)] + [("", stamp(bounds[-1]))]
    counts = [max(0, _delivered(reader, scope, lo, hi) - _answered(reader, scope, lo, hi)) for lo, hi in ranges]
    periods = [
        {"since": iso(bounds[i + 1]) if i + 1 < BUCKETS else None, "until": iso(bounds[i])} for i in range(BUCKETS)
    ]
    return {
        "counted_at": iso(now),
        "after_days": days,
        "buckets": [_label(days * 2**i, days * 2 ** (i + 1) if i + 1 < BUCKETS else None) for i in range(BUCKETS)],
        "counts": counts,
        "total": sum(counts),
        "periods": periods,
    }


def _delivered(reader: Reader, scope: str | None, lo: str, hi: str) -> int:
    """The delivered invoices (status 200, with a recipient) of the flows with ids in ``[lo, hi)``."""
    if scope is None:
        row = reader.one(
            f"{_SKIP_RECIPIENTS} SELECT total((SELECT count(*) FROM documents d WHERE d.recipient = v.value "
            "AND d.flow_id >= ? AND d.flow_id < ? AND d.status = '200')) AS n FROM v WHERE v.value IS NOT NULL",
            [lo, hi],
        )
    else:
        row = reader.one(
            "SELECT count(*) AS n FROM flows f CROSS JOIN documents d INDEXED BY sqlite_autoindex_documents_1 "
            "ON d.flow_id = +f.flow_id WHERE f.sender = ? AND f.flow_id >= ? AND f.flow_id < ? AND d.status = '200' "
            "AND d.recipient IS NOT NULL",
            [scope, lo, hi],
        )
    return int(row["n"]) if row else 0


def _answered(reader: Reader, scope: str | None, lo: str, hi: str) -> int:
    """The invoices of the flows with ids in ``[lo, hi)`` that have a recorded processing status (each once): for
    every sender, a range of the lifecycle's index; for a sender's account, its flows' (one seek each)."""
    if scope is None:
        row = reader.one(
            "SELECT count(*) AS n FROM (SELECT DISTINCT l.flow_id, l.idx FROM lifecycle l WHERE l.state = ? "
            f"AND l.flow_id >= ? AND l.flow_id < ? AND l.status IN ({_PROCESSING}))",
            [RECORDED, lo, hi],
        )
    else:
        row = reader.one(
            "SELECT count(*) AS n FROM (SELECT DISTINCT l.flow_id, l.idx FROM flows f CROSS JOIN lifecycle l "
            "INDEXED BY idx_lifecycle_state_flow_id_idx_status ON l.state = ? AND l.flow_id = +f.flow_id "
            f"WHERE f.sender = ? AND f.flow_id >= ? AND f.flow_id < ? AND l.status IN ({_PROCESSING}))",
            [RECORDED, scope, lo, hi],
        )
    return int(row["n"]) if row else 0


def _label(low_days: float, high_days: float | None) -> str:
    """A bucket's label: "7-14 d", "≥ 112 d"."""
    if high_days is None:
        return f"≥ {low_days:g} d"
    return f"{low_days:g}-{high_days:g} d"
