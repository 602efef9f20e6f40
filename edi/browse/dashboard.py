"""The dashboard's data: what came in over a period (flows and documents per day and status, per sender, per
recipient, the rules broken most) and what needs an operator now (failed flows, flows stuck in process, what waits
in the folders: :mod:`edi.browse.waiting`, and the invoices still waiting for their recipient's status:
:mod:`edi.browse.lifecycle`).

Fast on millions of flows: a flow counts on the day of its id (ids are the claim time in UTC to the microsecond,
:func:`edi.browse.flows.stamp`, made just after ``received_at``), so the period and each of its days is a range of
ids; every count is read from an index whose leading columns are an equality (status, sender, recipient, queue,
rule) and then the flow id, without touching the tables, and the values of the leading column are found by skipping
through the index from one to the next. No GROUP BY sorts the period's rows: sorting 80,000 rows costs more than
reading them (measured in ``benchmarks/bench_console.py``). Everything is read in one snapshot of the store, and
the account's scope is in every query.
Reads the store through :class:`edi.browse.Reader` and the workspace's folders; writes nothing; raises
:class:`edi.errors.BadQuery` for a period that cannot be read, :class:`edi.errors.WorkspaceError` for a store that
cannot be.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edi.browse import Beside, Reader, lifecycle, scoped, waiting
from edi.browse.flows import Filters, period_bounds, stamp
from edi.clock import iso
from edi.config import Settings
from edi.errors import BadQuery
from edi.model import FlowStatus
from edi.workspace import Layout

DEFAULT_PERIOD = "7d"
MAX_DAYS = 366  # a custom period longer than this is refused: one bar per day must stay readable (and the scan short)
STUCK_AFTER = timedelta(minutes=10)  # a flow in process (IN_RECU) unchanged for longer is stuck
TOP_RULES = 10
LISTED = 10  # flows named per attention list (all are counted)
# the order of the series in the charts and tables: the outcomes first, then what is not finished
STATUSES = (
    FlowStatus.INTEGRATED.value,
    FlowStatus.PARTIALLY_INTEGRATED.value,
    FlowStatus.REJECTED.value,
    FlowStatus.FAILED.value,
    FlowStatus.RECEIVED.value,
)
OPEN_END = "99999999"  # after every flow id
FINAL = frozenset(s.value for s in FlowStatus if s.final)
ACCEPTED = "200"  # a document's status when it was accepted (its other statuses are refusals)


@dataclass(frozen=True, slots=True)
class Period:
    """What the dashboard covers: ``[since, until)`` in UTC (``until`` None: up to now), and its days."""

    name: str  # today | 7d | 30d | custom
    since: datetime
    until: datetime | None
    days: tuple[str, ...]  # each UTC day of the period, YYYY-MM-DD

    def id_range(self) -> tuple[str, str]:
        """The flow ids of the period: ``[low, high)``."""
        return stamp(self.since), stamp(self.until) if self.until is not None else OPEN_END

    def ranges(self) -> list[tuple[str, str]]:
        """The flow ids of each day of the period (the first and last days cut to the period)."""
        low, high = self.id_range()
        out = []
        for day in self.days:
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            out.append((max(low, stamp(start)), min(high, stamp(start + timedelta(days=1)))))
        return out

    def filters(self) -> Filters:
        """The flows list's filters for this period (links from a count to the flows it counts)."""
        return Filters(since=self.since, until=self.until)


def period(params: Mapping[str, str], now: datetime) -> Period:
    """The period the query asks for: ``period`` today, 7d or 30d (UTC days ending today; 7d when nothing is said),
    or ``custom`` (the default when ``from`` or ``to`` is given) from ``from`` to ``to`` (a date or an ISO time;
    ``to`` a date means up to its end; no ``to``: up to now). Raises BadQuery for anything else."""
    given = {k: v.strip() for k, v in params.items() if isinstance(v, str) and v.strip()}
    name = given.get("period") or ("custom" if "from" in given or "to" in given else DEFAULT_PERIOD)
    since, until = period_bounds({**given, "period": name}, now)
    if since is None:
        raise BadQuery("from: a custom period needs its first day (from=YYYY-MM-DD)")
    end = until or now
    if end <= since:
        raise BadQuery("from: the period starts after now: give a 'to' after it")
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    first = since.astimezone(UTC).date()
    if (last - first).days + 1 > MAX_DAYS:
        raise BadQuery(f"from, to: a period of at most {MAX_DAYS} days")
    days = tuple((first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1))
    return Period(name, since, until, days)


@contextmanager
def _snapshot(reader: Reader) -> Iterator[None]:
    """Every query inside reads the same state of the store (one read transaction: counts that add up while a
    batch writes)."""
    conn = reader.connection()
    with reader.reading():
        conn.execute("BEGIN")
    try:
        yield
    finally:
        with reader.reading():
            conn.execute("ROLLBACK")


Buckets = Callable[[Sequence[float]], list[tuple[str, int]]]


def dashboard(
    reader: Reader,
    settings: Settings,
    layout: Layout,
    scope: str | None,
    span: Period,
    now: datetime,
    buckets: Buckets,
    counted: lifecycle.Counted | None = None,
) -> dict[str, Any]:
    """Everything the dashboard shows, for an account's ``scope`` (a sender id, or None for every sender), with the
    ages of what waits counted in ``buckets`` (labels and counts; :func:`edi.web.charts.age_buckets`) and the
    invoices waiting for their recipient as ``counted`` keeps them (counted now without it): JSON-ready (the HTML
    page and the twins render this)."""
    # the documents' counts, the longest part (each document of the period read once per recipient and per queue),
    # run beside the others on a second core: one statement, so it is consistent in itself, but it may count a flow
    # recorded after the snapshot the others read
    documents = Beside(reader, lambda apart: _documents(apart, scope, span))
    keep = counted or lifecycle.Counted(settings.console.waiting_days, ttl=0)
    invoices = keep.cached(scope, now)  # else counted beside the others too: the longest part when it runs
    counting = Beside(reader, lambda apart: keep.count(apart, scope, now)) if invoices is None else None
    with _snapshot(reader):
        by_day, by_sender, totals = _flows(reader, scope, span)
        rules = _rules(reader, scope, span)
        attention = _attention(reader, scope, now)
    look = waiting.look(settings, layout, now.timestamp(), scope)
    recipients, queues = documents.result()
    if counting is not None:
        invoices = counting.result()
    attention["stalled"] = {"count": look.stalled_count, "files": [_problem(p) for p in look.stalled]}
    attention["unclaimable"] = {"count": look.unclaimable_count, "files": [_problem(p) for p in look.unclaimable]}
    return {
        "period": span.name,
        "from": iso(span.since),
        "to": iso(span.until) if span.until is not None else None,
        "as_of": iso(now),
        "days": list(span.days),
        "statuses": list(STATUSES),
        "totals": totals,
        "by_day": by_day,
        "by_sender": by_sender,
        "by_recipient": recipients,
        "by_queue": queues,
        "top_rules": rules,
        "attention": attention,
        "waiting": _waiting(look, buckets),
        "invoices_waiting": invoices,
    }


def _counts() -> dict[str, Any]:
    """Zeros for the counts of a row of the dashboard (the totals, a sender)."""
    return {"flows": 0, "documents": 0, "accepted": 0, "rejected": 0, "flows_rejected": 0, "flows_final": 0}


def _add(into: dict[str, Any], status: str, flows: int, documents: int, accepted: int) -> None:
    """Add one group's counts: documents are decided (accepted or rejected) only in a flow with its final answer."""
    into["flows"] += flows
    into["documents"] += documents
    into["accepted"] += accepted
    if status in FINAL:
        into["rejected"] += documents - accepted
        into["flows_final"] += flows
    if status == FlowStatus.REJECTED:
        into["flows_rejected"] += flows


def _rates(counts: dict[str, Any]) -> dict[str, Any]:
    """The rejection rates: of the documents decided, and of the flows with their final answer (None: none yet)."""
    decided = counts["accepted"] + counts["rejected"]
    counts["rejection_rate"] = round(counts["rejected"] / decided, 4) if decided else None
    final = counts["flows_final"]
    counts["flow_rejection_rate"] = round(counts["flows_rejected"] / final, 4) if final else None
    return counts


def _flows(
    reader: Reader, scope: str | None, span: Period
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The period's flows per day and status, per sender and status, and the totals."""
    cells, cell_args = _values([(day, lo, hi) for day, (lo, hi) in zip(span.days, span.ranges(), strict=True)])
    marks, statuses = _values([(s,) for s in STATUSES])
    mine, mine_args = ("f.sender = ? AND ", [scope]) if scope is not None else ("", [])
    rows = reader.rows(
        f"WITH d(day, lo, hi) AS (VALUES {cells}), st(status) AS (VALUES {marks}) "
        f"SELECT d.day AS day, st.status AS status, (SELECT {_FLOW_COUNTS} FROM flows f WHERE {mine}"
        "f.status = st.status AND f.flow_id >= d.lo AND f.flow_id < d.hi) AS counts FROM d, st",
        [*cell_args, *statuses, *mine_args],
    )
    by_day = [  # every day and status, zeros too: the CSV twin is a table a spreadsheet pivots as it is
        {"day": r["day"], "status": r["status"], "flows": n, "documents": int(docs), "accepted": int(accepted)}
        for r in rows
        for n, docs, accepted in [json.loads(r["counts"])]
    ]
    order = {s: i for i, s in enumerate(STATUSES)}
    by_day.sort(key=lambda r: (r["day"], order[r["status"]]))
    totals: dict[str, Any] = _counts() | {"by_status": dict.fromkeys(STATUSES, 0)}
    for r in by_day:
        _add(totals, r["status"], r["flows"], r["documents"], r["accepted"])
        totals["by_status"][r["status"]] += r["flows"]
    return by_day, _senders(reader, scope, span, statuses, marks), _rates(totals)


# a flow count and its documents' counts, read in one pass over an index range (a scalar subquery gives one value)
_FLOW_COUNTS = "json_array(count(*), total(f.documents_total), total(f.documents_accepted))"


def _senders(reader: Reader, scope: str | None, span: Period, statuses: list[Any], marks: str) -> list[dict[str, Any]]:
    """The period's flows per sender and status (the senders that have flows in the store, read from the index by
    skipping from one to the next; only ``scope`` for a sender account)."""
    if scope is None:
        senders = (
            "WITH RECURSIVE s(sender) AS (SELECT min(sender) FROM flows UNION ALL "
            "SELECT (SELECT min(sender) FROM flows WHERE sender > s.sender) FROM s WHERE s.sender IS NOT NULL)"
        )
        sender_args: list[Any] = []
    else:
        senders, sender_args = "WITH s(sender) AS (VALUES (?))", [scope]
    rows = reader.rows(
        f"{senders}, st(status) AS (VALUES {marks}) SELECT s.sender AS sender, st.status AS status, "
        f"(SELECT {_FLOW_COUNTS} FROM flows f WHERE f.sender = s.sender AND f.status = st.status "
        "AND f.flow_id >= ? AND f.flow_id < ?) AS counts FROM s, st WHERE s.sender IS NOT NULL",
        [*sender_args, *statuses, *span.id_range()],
    )
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        n, docs, accepted = json.loads(r["counts"])
        if not n:
            continue
        sender = found.setdefault(r["sender"], _counts() | {"sender": r["sender"], "by_status": {}})
        _add(sender, r["status"], n, int(docs), int(accepted))
        sender["by_status"][r["status"]] = n
    return sorted((_rates(s) for s in found.values()), key=lambda s: (-s["flows"], s["sender"]))


def _values(rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """The placeholders of a VALUES list and its arguments."""
    marks = ", ".join("(" + ", ".join("?" for _ in row) + ")" for row in rows)
    return marks, [value for row in rows for value in row]


def _skip(table: str, column: str) -> str:
    """A recursive CTE ``v(value)`` of the distinct values of an indexed column, each found by one seek in the index
    (from one value to the next: a few hundred seeks, not a scan), ending with NULL."""
    return (
        f"WITH RECURSIVE v(value) AS (SELECT min({column}) FROM {table} UNION ALL SELECT (SELECT min({column}) "
        f"FROM {table} WHERE {column} > v.value) FROM v WHERE v.value IS NOT NULL)"
    )


def _documents(reader: Reader, scope: str | None, span: Period) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The period's documents per recipient (flows, documents, accepted, rejected) and per queue (flows and
    documents delivered to it).

    For every sender: each recipient and each queue is a range of its index (recipient or queue, then the flow id),
    read once, its flows counted in id order (no sort). For a sender account: its flows' documents, grouped (a sort
    of that sender's documents only)."""
    lo, hi = span.id_range()
    if scope is None:
        # the last value of the skip is NULL: the documents without a recipient (refused before routing)
        of = "FROM documents d WHERE d.recipient IS v.value AND d.flow_id >= ? AND d.flow_id < ?"
        rows = reader.rows(
            f"{_skip('documents', 'recipient')} SELECT v.value AS recipient, "
            f"(SELECT json_array(count(*), total(d.status = '{ACCEPTED}')) {of}) AS counts, "
            f"(SELECT count(*) FROM (SELECT DISTINCT d.flow_id {of})) AS flows FROM v",
            [lo, hi, lo, hi],
        )
        of = "FROM documents d WHERE d.queue = v.value AND d.flow_id >= ? AND d.flow_id < ?"
        queues = reader.rows(
            f"{_skip('documents', 'queue')} SELECT * FROM (SELECT v.value AS queue, "
            f"(SELECT count(*) FROM (SELECT DISTINCT d.flow_id {of})) AS flows, (SELECT count(*) {of}) AS documents "
            "FROM v WHERE v.value IS NOT NULL) WHERE documents > 0",
            [lo, hi, lo, hi],
        )
        recipients = [
            {"recipient": r["recipient"], "flows": r["flows"], "documents": docs, "accepted": int(accepted)}
            for r in rows
            for docs, accepted in [json.loads(r["counts"])]
            if docs
        ]
    else:
        mine = (
            "FROM flows f JOIN documents d ON d.flow_id = f.flow_id "
            "WHERE f.sender = ? AND f.flow_id >= ? AND f.flow_id < ?"
        )
        recipients = reader.rows(
            "SELECT d.recipient AS recipient, count(DISTINCT d.flow_id) AS flows, count(*) AS documents, "
            f"total(d.status = '{ACCEPTED}') AS accepted {mine} GROUP BY d.recipient",
            [scope, lo, hi],
        )
        queues = reader.rows(
            "SELECT d.queue AS queue, count(DISTINCT d.flow_id) AS flows, count(*) AS documents "
            f"{mine} AND d.queue IS NOT NULL GROUP BY d.queue",
            [scope, lo, hi],
        )
    for r in recipients:
        r["accepted"] = int(r["accepted"])
        r["rejected"] = r["documents"] - r["accepted"]
        r["rejection_rate"] = round(r["rejected"] / r["documents"], 4) if r["documents"] else None
    recipients.sort(key=lambda r: (-r["documents"], r["recipient"] is None, r["recipient"] or ""))
    queues.sort(key=lambda q: (-q["documents"], q["queue"]))
    return recipients, queues


def _rules(reader: Reader, scope: str | None, span: Period) -> list[dict[str, Any]]:
    """The rules broken (fatal findings) in the most flows of the period: for every sender, each rule a range of
    its index (rule, flow id, severity) read once; for a sender account, its flows' findings, grouped."""
    lo, hi = span.id_range()
    if scope is None:
        of = "FROM findings x WHERE x.rule = v.value AND x.flow_id >= ? AND x.flow_id < ? AND x.severity = 'fatal'"
        found = reader.rows(
            f"{_skip('findings', 'rule')} SELECT * FROM (SELECT v.value AS rule, "
            f"(SELECT count(*) FROM (SELECT DISTINCT x.flow_id {of})) AS flows, (SELECT count(*) {of}) AS findings "
            "FROM v WHERE v.value IS NOT NULL) WHERE flows > 0",
            [lo, hi, lo, hi],
        )
        found.sort(key=lambda r: (-r["flows"], -r["findings"], r["rule"]))
        return found[:TOP_RULES]
    return reader.rows(
        "SELECT x.rule AS rule, count(DISTINCT x.flow_id) AS flows, count(*) AS findings "
        "FROM flows f JOIN findings x ON x.flow_id = f.flow_id WHERE f.sender = ? AND f.flow_id >= ? "
        "AND f.flow_id < ? AND x.severity = 'fatal' AND x.rule IS NOT NULL "
        f"GROUP BY x.rule ORDER BY flows DESC, findings DESC, x.rule LIMIT {TOP_RULES}",
        [scope, lo, hi],
    )


def _attention(reader: Reader, scope: str | None, now: datetime) -> dict[str, Any]:
    """What needs an operator now, whatever the period: failed flows (to requeue), flows stuck in process, and
    notification e-mails given up."""
    cond, args = scoped(scope)
    out: dict[str, Any] = {}
    columns = "flow_id, sender, file_name, received_at, updated_at"
    failed = [FlowStatus.FAILED.value, *args]
    out["failed"] = {
        "count": _count(reader, f"status = ? AND {cond}", failed),
        "flows": reader.rows(
            f"SELECT {columns} FROM flows WHERE status = ? AND {cond} ORDER BY flow_id DESC LIMIT {LISTED}", failed
        ),
    }
    stuck_cond = f"status = ? AND coalesce(updated_at, received_at) < ? AND {cond}"
    stuck = [FlowStatus.RECEIVED.value, iso(now - STUCK_AFTER), *args]
    out["stuck"] = {
        "count": _count(reader, stuck_cond, stuck),
        "minutes": int(STUCK_AFTER.total_seconds() // 60),
        "flows": reader.rows(f"SELECT {columns} FROM flows WHERE {stuck_cond} ORDER BY flow_id LIMIT {LISTED}", stuck),
    }
    # e-mails to senders' contacts given up (edi.notify): an operator fixes the cause, then `edi notifications --retry`
    mails = "SELECT {} FROM notifications WHERE state = 'failed'" + ("" if scope is None else " AND sender = ?")
    given = [] if scope is None else [scope]
    row = reader.one(mails.format("count(*) AS n"), given)
    out["mails"] = {
        "count": int(row["n"]) if row else 0,
        "mails": reader.rows(
            mails.format("sender, status, flow_id, idx, invoice_number, last_error, due_at")
            + f" ORDER BY id DESC LIMIT {LISTED}",
            given,
        ),
    }
    return out


def _count(reader: Reader, where: str, args: list[Any]) -> int:
    row = reader.one(f"SELECT count(*) AS n FROM flows WHERE {where}", args)
    return int(row["n"]) if row else 0


def _problem(problem: waiting.Problem) -> dict[str, Any]:
    return {
        "place": problem.place,
        "name": problem.name,
        "why": problem.why,
        "age_seconds": round(problem.age) if problem.age is not None else None,
    }


def _waiting(look: waiting.Waiting, buckets: Buckets) -> dict[str, Any]:
    """What waits in each folder, in age buckets (Postfix qshape's: a row per folder, and one for all of them)."""
    every = [age for place in look.places for age in place.ages]
    total = buckets(every)
    places = []
    for place in look.places:
        places.append(
            {
                "place": place.name,
                "kind": place.kind,
                "count": len(place.ages),
                "more": place.truncated,
                "oldest_seconds": round(max(place.ages)) if place.ages else None,
                "buckets": [n for _, n in buckets(place.ages)],
            }
        )
    return {
        "buckets": [label for label, _ in total],
        "total": [n for _, n in total],
        "count": len(every),
        "more": look.truncated,
        "places": places,
        "stalled_after_seconds": round(look.threshold),
    }
