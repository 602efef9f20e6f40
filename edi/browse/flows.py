"""The console's flows: the filtered list (keyset pages, newest first), the CSV stream, and one flow in full.

Newest first is flow id order: ids are the claim time to the microsecond (:class:`edi.clock.FlowIds`), so a page
after another is ``flow_id < last`` on the primary key or on an index ending with it, never an OFFSET scan. A period
is bounded on ``received_at`` exactly and, so that SQLite reads only that range of ids, on the ids too (an id is
made just after its flow's ``received_at``). Reads the store through :class:`edi.browse.Reader` and the workspace's
acknowledgement, archive and ``failed/`` folders; raises :class:`BadQuery` for malformed filters and
:class:`UnknownFlowError` for a flow that does not exist or is outside the scope.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from edi.browse import Reader, Where, every_row, scoped
from edi.clock import iso
from edi.errors import BadQuery, UnknownFlowError
from edi.lifecycle.timeline import RECORDED, by_document, timeline
from edi.model import FlowStatus
from edi.workspace import Layout

FLOW_ID = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}\Z")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
PERIODS = {"today": 0, "7d": 7, "30d": 30}
MAX_TEXT = 200  # a filter value longer than this is refused (no real invoice number or rule id is)
MAX_LIMIT = 1000
EXCERPT_LINES = 3  # lines shown before and after a finding's line
EXCERPT_MAX_BYTES = 20 * 1024 * 1024  # read at most this much of a document to find the lines
EXCERPTS_SHOWN = 200  # findings of a document shown with the lines around them (the others with line and XPath)
LIST_COLUMNS = (
    "flow_id",
    "sender",
    "status",
    "file_name",
    "received_at",
    "processed_at",
    "size",
    "sha256",
    "documents_total",
    "documents_accepted",
    "duplicate_of",
)
# what a sender account reads in place of the traceback of a flow that failed for edi's own reason
INTERNAL_FAILURE = "edi could not finish it, for a reason of its own (not the file's): an operator takes it up"
# an id sorts after the stamp of its received_at (made just after it); this much covers any gap when bounding above
ID_SLACK = timedelta(hours=1)
LAST_YEAR = 9998  # a later date (or that date plus ID_SLACK) is past what datetime can hold


@dataclass(frozen=True, slots=True)
class Filters:
    """What a flows list is narrowed to (every field optional); the same for the page, its CSV and JSON twins."""

    sender: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    file: str | None = None
    invoice: str | None = None
    seller: str | None = None
    buyer: str | None = None
    queue: str | None = None
    rule: str | None = None
    sha256: str | None = None

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links to the next page, the twins, a rule's flows)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "since":
                out["from"] = iso(value)
            elif f.name == "until":
                out["to"] = iso(value)
            else:
                out[f.name] = str(value)
        return out


def parse_filters(params: Mapping[str, str], now: datetime) -> Filters:
    """Filters from query parameters: ``sender``, ``status``, ``period`` (today, 7d, 30d) or ``from`` / ``to``
    (a date or an ISO time, ``to`` a date meaning up to its end), ``file`` (part of the name), ``invoice``,
    ``seller``, ``buyer``, ``queue``, ``rule``, ``sha256``. An empty value is no filter."""
    given = {k: v.strip() for k, v in params.items() if isinstance(v, str) and v.strip()}
    for key, value in given.items():
        if len(value) > MAX_TEXT:
            raise BadQuery(f"{key}: the value is too long (at most {MAX_TEXT} characters)")
    sender = given.get("sender")
    if sender is not None and not SAFE_NAME.fullmatch(sender):
        raise BadQuery(f"sender: {sender!r} is not a sender id")
    status = given.get("status")
    if status is not None and status not in {s.value for s in FlowStatus}:
        raise BadQuery(f"status: {status!r} is not a flow status ({', '.join(s.value for s in FlowStatus)})")
    sha = given.get("sha256")
    if sha is not None:
        sha = sha.lower()
        if not SHA256.match(sha):
            raise BadQuery("sha256: give the 64 hexadecimal digits of a SHA-256")
    since, until = period_bounds(given, now)
    return Filters(
        sender=sender,
        status=status,
        since=since,
        until=until,
        file=given.get("file"),
        invoice=given.get("invoice"),
        seller=given.get("seller"),
        buyer=given.get("buyer"),
        queue=given.get("queue"),
        rule=given.get("rule"),
        sha256=sha,
    )


def period_bounds(params: Mapping[str, str], now: datetime) -> tuple[datetime | None, datetime | None]:
    """``[since, until)`` from ``period`` (today, 7d, 30d: UTC days ending today) or ``from`` / ``to``."""
    period = params.get("period")
    if period and period != "custom":
        if period not in PERIODS:
            raise BadQuery(f"period: {period!r} is not one of today, 7d, 30d, custom")
        start = datetime.combine(now.astimezone(UTC).date(), time(), UTC) - timedelta(days=max(PERIODS[period] - 1, 0))
        return start, None
    since = _moment("from", params.get("from"), end=False)
    until = _moment("to", params.get("to"), end=True)
    if since is not None and until is not None and until <= since:
        raise BadQuery("to: the end of the period is not after its start")
    return since, until


def _moment(key: str, value: str | None, *, end: bool) -> datetime | None:
    """A date (its start, or for the end of a period the start of the next day) or an ISO time, in UTC."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if day.year > LAST_YEAR:
                raise OverflowError
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if moment.year > LAST_YEAR:
            raise OverflowError
    except ValueError:
        raise BadQuery(f"{key}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    except OverflowError:
        raise BadQuery(f"{key}: {value!r} is out of range: give a date before the year {LAST_YEAR + 1}") from None
    return moment


def stamp(moment: datetime) -> str:
    """The flow id prefix of a moment: ids made at or after it sort at or after this."""
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}" + moment.strftime("%m%dT%H%M%S%f")  # %Y does not pad a year before 1000


def _where(scope: str | None, filters: Filters, before: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a flows list (scope first) and its arguments."""
    where = Where(scope)
    add = where.add
    if filters.sender:
        add("sender = ?", filters.sender)
    if filters.status:
        add("status = ?", filters.status)
    if filters.since:
        add("flow_id >= ? AND received_at >= ?", stamp(filters.since), iso(filters.since))
    if filters.until:
        add("flow_id < ? AND received_at < ?", stamp(filters.until + ID_SLACK), iso(filters.until))
    if filters.file:  # a part of the name, any case (ASCII): a scan of the (flow_id, file_name) index, newest first
        add("file_name LIKE ? ESCAPE '\\'", "%" + re.sub(r"([\\%_])", r"\\\1", filters.file) + "%")
    if filters.sha256:
        add("sha256 = ?", filters.sha256)
    for column, value in (
        ("invoice_number", filters.invoice),
        ("seller_id", filters.seller),
        ("buyer_id", filters.buyer),
        ("queue", filters.queue),
    ):
        if value:
            add(f"flow_id IN (SELECT flow_id FROM documents WHERE {column} = ?)", value)
    if filters.rule:
        add("flow_id IN (SELECT flow_id FROM findings WHERE rule = ?)", filters.rule)
    if before is not None:
        add("flow_id < ?", before)
    return where.sql(), where.args


def _index_for(filters: Filters) -> str:
    """``INDEXED BY`` the (flow_id, file_name) index when a file name part is the only narrowing filter but the
    period: its entries are read newest first without touching the table (0.13 s over a million flows when nothing
    matches, where the planner's own choice, the table in id order, takes 0.36 s). Another filter has an index of
    its own that narrows more: then the planner chooses."""
    others = (filters.sender, filters.status, filters.sha256, filters.invoice, filters.seller, filters.buyer)
    if filters.file and not any((*others, filters.queue, filters.rule)):
        return "INDEXED BY idx_flows_flow_id_file_name"
    return ""


def flows_page(
    reader: Reader, scope: str | None, filters: Filters, *, before: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of flows, newest first, from ``before`` (a flow id, exclusive) on, and the cursor of the next page
    (None on the last), each flow with its documents' invoice numbers and reasons."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit: give 1 to {MAX_LIMIT} flows per page")
    where, args = _where(scope, filters, before)
    rows = reader.rows(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM flows {_index_for(filters)} WHERE {where} "
        f"ORDER BY flow_id DESC LIMIT {limit + 1}",
        args,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    _add_documents(reader, rows)
    return rows, rows[-1]["flow_id"] if more and rows else None


def _add_documents(reader: Reader, rows: list[dict[str, Any]]) -> None:
    """Each flow's invoice numbers and rejection reasons, in one query for the page."""
    by_id = {r["flow_id"]: r for r in rows}
    for r in rows:
        r["invoices"], r["reasons"] = [], []
    if not by_id:
        return
    marks = ", ".join("?" for _ in by_id)
    for doc in reader.rows(
        f"SELECT flow_id, invoice_number, reason FROM documents WHERE flow_id IN ({marks}) ORDER BY flow_id, idx",
        list(by_id),
    ):
        row = by_id[doc["flow_id"]]
        if doc["invoice_number"]:
            row["invoices"].append(doc["invoice_number"])
        if doc["reason"] and doc["reason"] not in row["reasons"]:
            row["reasons"].append(doc["reason"])


def iter_flows(
    reader: Reader, scope: str | None, filters: Filters, *, before: str | None = None, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every flow the filters keep, newest first, read a chunk at a time (a CSV export in bounded memory)."""
    return every_row(lambda cursor, size: flows_page(reader, scope, filters, before=cursor, limit=size), before, limit)


def flow(reader: Reader, scope: str | None, flow_id: str) -> dict[str, Any]:
    """One flow within the scope: its row, documents (with their findings and lifecycle timeline), flow-level
    findings, history and the console actions taken on it."""
    if not FLOW_ID.match(flow_id):
        raise UnknownFlowError(f"no flow {flow_id!r}")
    cond, args = scoped(scope)
    row = reader.one(f"SELECT * FROM flows WHERE flow_id = ? AND {cond}", [flow_id, *args])
    if row is None:
        raise UnknownFlowError(f"no flow {flow_id!r}")
    findings = reader.rows("SELECT * FROM findings WHERE flow_id = ? ORDER BY id", [flow_id])
    documents = reader.rows("SELECT * FROM documents WHERE flow_id = ? ORDER BY idx", [flow_id])
    statuses = by_document(
        reader.rows("SELECT * FROM lifecycle WHERE flow_id = ? AND state = ? ORDER BY id", [flow_id, RECORDED])
    )
    for doc in documents:
        for column in ("attachments", "delivered_as", "layers"):
            doc[column] = json.loads(doc[column]) if doc[column] else []
        doc["findings"] = [f for f in findings if f["idx"] == doc["idx"]]
        doc["lifecycle"] = timeline(doc, row["processed_at"], statuses.get(doc["idx"], []), scope=scope)
    row["findings"] = [f for f in findings if f["idx"] == 0]
    row["documents"] = documents
    row["events"] = reader.rows("SELECT at, idx, status, detail FROM events WHERE flow_id = ? ORDER BY id", [flow_id])
    row["actions"] = reader.rows("SELECT at, user, action, detail FROM actions WHERE target = ? ORDER BY id", [flow_id])
    if scope is not None:  # a sender's view: how edi itself failed, and which operator acted, are the platform's
        for event in row["events"]:
            if event["status"] == FlowStatus.FAILED and event["detail"]:
                event["detail"] = INTERNAL_FAILURE
        for action in row["actions"]:
            action["user"] = "an operator"
    return row


def stored_name(row: Mapping[str, Any]) -> str:
    """The flow's file name as the inbox had it (its undecodable bytes back as surrogates)."""
    raw = row.get("raw_name")
    return os.fsdecode(bytes.fromhex(raw)) if raw else str(row["file_name"])


def ack_path(layout: Layout, row: Mapping[str, Any], extension: str) -> Path | None:
    """The flow's acknowledgement (``json`` or ``xml``), None while it has none."""
    path = layout.sender_acks(str(row["sender"])) / f"{row['flow_id']}.{extension}"
    return path if path.is_file() else None


def original_path(layout: Layout, row: Mapping[str, Any]) -> Path | None:
    """Where the flow's bytes, as deposited, are now: the archive, ``failed/`` or the requeued spool; None when
    they are nowhere (being processed, or removed by retention)."""
    received = _parse(row.get("received_at"))
    candidates = [layout.failed / row["flow_id"] / "payload", layout.requeued / row["flow_id"] / "payload"]
    if received is not None:
        candidates.insert(0, layout.archived(str(row["flow_id"]), received, stored_name(row)))
    return next((p for p in candidates if p.is_file()), None)


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def excerpt(original: Path, document: Mapping[str, Any], line: int) -> list[tuple[int, str]] | None:
    """The lines of a document around ``line`` (numbered), for a plain XML flow or a member of a ZIP flow; None
    when the document cannot be read that way (inside a PDF, a tar archive, gone)."""
    return excerpts(original, document, [line]).get(line)


def excerpts(original: Path, document: Mapping[str, Any], lines: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
    """The lines around each of ``lines`` (the first :data:`EXCERPTS_SHOWN` of them), the document read once and
    only up to the last line wanted (at most :data:`EXCERPT_MAX_BYTES`): a page with a thousand findings on a 20 MB
    invoice reads it once, not a thousand times. Empty when the document cannot be read that way."""
    wanted = sorted({n for n in lines if n > 0})[:EXCERPTS_SHOWN]
    if not wanted:
        return {}
    try:
        if not document.get("container"):
            with original.open("rb") as handle:
                return _around(handle, wanted)
        if document.get("container") == "zip":
            with zipfile.ZipFile(original) as archive, archive.open(str(document["name"])) as handle:
                return _around(handle, wanted)
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError, NotImplementedError):
        return {}
    return {}


def _around(handle: Any, wanted: list[int]) -> dict[int, list[tuple[int, str]]]:
    """One pass over a document's lines: the numbered lines around each wanted line."""
    out: dict[int, list[tuple[int, str]]] = {line: [] for line in wanted}
    last, read = wanted[-1] + EXCERPT_LINES, 0
    for number, raw in enumerate(handle, start=1):
        read += len(raw)
        near = [w for w in wanted if w - EXCERPT_LINES <= number <= w + EXCERPT_LINES]
        if near:
            text = raw[:1600].decode("utf-8", "replace").rstrip("\r\n")[:400]
            for w in near:
                out[w].append((number, text))
        if number >= last or read > EXCERPT_MAX_BYTES:
            break
    return {line: shown for line, shown in out.items() if shown}
