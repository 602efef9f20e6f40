"""The invoices (the console's list and ``edi invoices``): every document the store read but recipients' status
messages, searched by seller and number (BT-1), buyer, recipient, issue date, reception period, sender and current
lifecycle status, newest first, each with the flow that brought it and its current status.

An invoice's current status is its latest recorded ``lifecycle`` row (a recipient's or an operator's status), else
its document's own (edi's decision: 200, 213, 501). A search by a status a recipient sets (202-212) walks the
lifecycle's (status, state, flow_id) index newest first and keeps the rows that are their invoice's latest; by one of
edi's own, the documents of that status that have no recorded lifecycle row.

A document's key is ``(flow_id, idx)``, the documents table's primary key: newest first is ``flow_id`` descending
(flow ids are claim times) and, within a flow, the documents in their order; a page after another starts after the
last key shown, never with OFFSET. A search by invoice number, seller or buyer reads that column's index; one with
no such filter walks the primary key from the newest flow. Reads the store through :class:`edi.browse.Reader` (the
account's scope on the flow's sender, in the query); raises :class:`BadQuery` for a malformed filter or cursor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from edi.browse import Reader, Where, every_row
from edi.browse.flows import ID_SLACK, MAX_LIMIT, MAX_TEXT, SAFE_NAME, flow, period_bounds, stamp
from edi.clock import iso
from edi.errors import BadQuery, UnknownFlowError
from edi.lifecycle import labels
from edi.lifecycle.timeline import AN_OPERATOR, OPERATOR_PREFIX, RECORDED, STATUS_SYNTAX

# a page cursor's key: the last document shown, ``<flow_id>~<idx>``
KEY = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}~\d{1,6}\Z")
STATUSES = labels.STATUSES  # an invoice's current status: 200-213, 501
COLUMNS = (
    "flow_id",
    "idx",
    "sender",
    "received_at",
    "invoice_number",
    "issue_date",
    "type_code",
    "currency",
    "seller_id",
    "seller_name",
    "buyer_id",
    "buyer_name",
    "queue",
    "status",
    "reason",
    "name",
    "recipient",
    "current_status",  # the latest recorded lifecycle status, else the document's own status
    "current_label",  # its French label
    "current_at",  # since when: the status's set_at, else the flow's processed_at
    "current_by",  # who set it: edi, a partner's sender id, an operator
)
# the latest recorded lifecycle status of the page's document p: one seek in the (flow_id, idx, state, id) index,
# made for the page's rows only (the page is chosen and sorted first)
_LATEST = (
    "(SELECT json_array(l.status, l.set_at, l.set_by) FROM lifecycle l WHERE l.flow_id = p.flow_id "
    f"AND l.idx = p.idx AND l.state = '{RECORDED}' ORDER BY l.id DESC LIMIT 1)"
)
_SELECT = (
    "d.flow_id, d.idx, f.sender, f.received_at, d.invoice_number, d.issue_date, d.type_code, d.currency, "
    "d.seller_id, d.seller_name, d.buyer_id, d.buyer_name, d.queue, d.status, d.reason, d.name, d.recipient, "
    "f.processed_at"
)


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    """What an invoice search is narrowed to (every field optional); the same for the page and its twins."""

    invoice: str | None = None  # the invoice number (BT-1), exactly
    seller: str | None = None  # the seller's identifier as the document gives it, exactly
    buyer: str | None = None
    issued_from: date | None = None  # issue date (BT-2), inclusive
    issued_to: date | None = None  # inclusive
    status: str | None = None  # the invoice's current status: 200-213, 501
    sender: str | None = None
    recipient: str | None = None  # the directory recipient it was routed to, exactly
    since: datetime | None = None  # received at or after (the flow's reception)
    until: datetime | None = None  # received before

    def query(self) -> dict[str, str]:
        """The filters as query parameters (links to the next page and to the twins)."""
        names = {"issued_from": "from", "issued_to": "to"}
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[names.get(f.name, f.name)] = iso(value) if isinstance(value, datetime) else str(value)
        return out

    @property
    def empty(self) -> bool:
        """Whether nothing narrows the search."""
        return not self.query()


def parse_invoice_filters(params: Mapping[str, str]) -> InvoiceFilters:
    """Filters from query parameters: ``invoice``, ``seller``, ``buyer``, ``recipient`` (exact identifiers), ``from``
    / ``to`` (issue dates, YYYY-MM-DD, both inclusive), ``since`` / ``until`` (reception: a date or an ISO time,
    ``until`` a date meaning up to its end), ``status`` (the current status: 200-213, 501), ``sender``. An empty value
    is no filter."""
    given = {k: v.strip() for k, v in params.items() if isinstance(v, str) and v.strip()}
    for key, value in given.items():
        if len(value) > MAX_TEXT:
            raise BadQuery(f"{key}: the value is too long (at most {MAX_TEXT} characters)")
    status = given.get("status")
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status: {status!r} is not an invoice status ({', '.join(STATUSES)})")
    sender = given.get("sender")
    if sender is not None and not SAFE_NAME.fullmatch(sender):
        raise BadQuery(f"sender: {sender!r} is not a sender id")
    issued_from, issued_to = _day("from", given.get("from")), _day("to", given.get("to"))
    if issued_from and issued_to and issued_to < issued_from:
        raise BadQuery("to: the last issue date is before the first")
    period = {"from": given.get("since", ""), "to": given.get("until", "")}
    try:
        since, until = period_bounds(period, datetime.now(UTC))
    except BadQuery as exc:  # said with this list's names for the period
        raise BadQuery(str(exc).replace("from:", "since:", 1).replace("to:", "until:", 1)) from None
    return InvoiceFilters(
        invoice=given.get("invoice"),
        seller=given.get("seller"),
        buyer=given.get("buyer"),
        issued_from=issued_from,
        issued_to=issued_to,
        status=status,
        sender=sender,
        recipient=given.get("recipient"),
        since=since,
        until=until,
    )


def _day(key: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{key}: {value!r} is not an issue date (YYYY-MM-DD)") from None


def check_key(key: str) -> tuple[str, int]:
    """A page cursor's key as (flow id, document index); BadQuery when it is not one."""
    if not KEY.match(key):
        raise BadQuery("cursor: not a page cursor of this console (it was altered, or cut short)")
    flow_id, _, idx = key.partition("~")
    return flow_id, int(idx)


def key_of(row: Mapping[str, Any]) -> str:
    """The cursor key of a row: ``<flow_id>~<idx>``."""
    return f"{row['flow_id']}~{row['idx']}"


def _where(
    scope: str | None, filters: InvoiceFilters, after: tuple[str, int] | None, key: tuple[str, str]
) -> tuple[str, list[Any]]:
    """The WHERE clause of an invoice search (scope first) and its arguments; ``key`` is the (flow id, index)
    columns the list walks (``d.flow_id, d.idx``; ``c.`` for the lifecycle rows of a recipient's status; a sender's
    flows' ``f.flow_id``)."""
    flow_id_column, idx_column = key
    where = Where(scope, "f.sender")
    add = where.add
    add(f"coalesce(d.syntax, '') != '{STATUS_SYNTAX}'")  # a recipient's status message is not an invoice
    if filters.invoice:
        add("d.invoice_number = ?", filters.invoice)
    if filters.seller:
        add("d.seller_id = ?", filters.seller)
    if filters.buyer:
        add("d.buyer_id = ?", filters.buyer)
    if filters.recipient:
        add("d.recipient = ?", filters.recipient)
    if filters.issued_from:
        add("d.issue_date >= ?", filters.issued_from.isoformat())
    if filters.issued_to:
        add("d.issue_date <= ?", filters.issued_to.isoformat())
    if filters.since:  # the ids too, so that only that range is read (an id is made just after received_at)
        add(f"{flow_id_column} >= ? AND f.received_at >= ?", stamp(filters.since), iso(filters.since))
    if filters.until:
        add(f"{flow_id_column} < ? AND f.received_at < ?", stamp(filters.until + ID_SLACK), iso(filters.until))
    if filters.status in labels.EDI_STATUSES:  # "+": not by the (status, reason) index, which would sort every 200
        add("+d.status = ?", filters.status)
        add(
            "NOT EXISTS (SELECT 1 FROM lifecycle l WHERE l.flow_id = d.flow_id AND l.idx = d.idx "
            f"AND l.state = '{RECORDED}')"
        )
    elif filters.status:  # walked from the lifecycle rows of that status: those that are their invoice's latest
        add("c.status = ? AND c.state = ?", filters.status, RECORDED)
        add(
            "c.id = (SELECT max(m.id) FROM lifecycle m WHERE m.flow_id = c.flow_id AND m.idx = c.idx "
            f"AND m.state = '{RECORDED}')"
        )
    if filters.sender:
        add("f.sender = ?", filters.sender)
    if after is not None:
        flow_id, idx = after
        add(f"{flow_id_column} <= ? AND ({flow_id_column} < ? OR {idx_column} > ?)", flow_id, flow_id, idx)
    return where.sql(), where.args


def invoices_page(
    reader: Reader,
    scope: str | None,
    filters: InvoiceFilters,
    *,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of invoices, newest flow first (a flow's documents in their order), from just after ``after``
    (a (flow id, index) key, exclusive), and the key of the page's last row when another page follows (else None).
    Each row has its current status (``current_status``, ``current_label``, ``current_at``, ``current_by``); for a
    sender's account (``scope``) an operator who set it reads "an operator"."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit: give 1 to {MAX_LIMIT} invoices per page")
    rows = reader.rows(*search(scope, filters, after, limit + 1))
    more = len(rows) > limit
    rows = [_current(row, scope) for row in rows[:limit]]
    return rows, key_of(rows[-1]) if more and rows else None


def search(
    scope: str | None, filters: InvoiceFilters, after: tuple[str, int] | None, limit: int
) -> tuple[str, list[Any]]:
    """The SQL of one page of an invoice search and its arguments: the documents walked newest first (their primary
    key, or the index of the column a filter names), a sender's flows newest first (its account, or a sender asked
    for, with no narrower filter), or the lifecycle rows of the recipient's status asked for."""
    by_status = filters.status is not None and filters.status not in labels.EDI_STATUSES
    narrower = filters.invoice or filters.seller or filters.buyer or filters.recipient
    key = ("d.flow_id", "d.idx")
    tables = "documents d JOIN flows f ON f.flow_id = d.flow_id"
    if (scope or filters.sender) and not narrower and not by_status:
        # the sender's (sender, flow_id) index newest first: the planner, with or without statistics, would read
        # all of the sender's flows by the wider (sender, status, ...) index and sort them (0.3 s for a sender of
        # 80,000 flows)
        key = ("f.flow_id", "d.idx")
        tables = "flows f INDEXED BY idx_flows_sender_flow_id CROSS JOIN documents d ON d.flow_id = f.flow_id"
    if by_status:
        key = ("c.flow_id", "c.idx")
        # by that status's rows only: the planner, without statistics, would rather scan every recorded row of
        # the (state, flow_id, idx, status) index, which holds no table lookup but all the other statuses too
        # (and first: for a sender's account the planner would rather read all of its flows and sort them)
        tables = (
            "lifecycle c INDEXED BY idx_lifecycle_status_state_flow_id CROSS JOIN documents d ON d.flow_id = "
            "c.flow_id AND d.idx = c.idx CROSS JOIN flows f ON f.flow_id = c.flow_id"
        )
    where, args = _where(scope, filters, after, key)
    order = f"ORDER BY {key[0]} DESC, {key[1]}"
    page = f"SELECT {_SELECT} FROM {tables} WHERE {where} {order} LIMIT {limit}"
    return f"SELECT p.*, {_LATEST} AS latest FROM ({page}) p ORDER BY p.flow_id DESC, p.idx", args


def _current(row: dict[str, Any], scope: str | None) -> dict[str, Any]:
    """A row with its current status in words, in place of the latest lifecycle row's JSON."""
    latest = row.pop("latest")
    processed = row.pop("processed_at")
    if latest:
        status, at, by = json.loads(latest)
        if scope is not None and str(by or "").startswith(OPERATOR_PREFIX):
            by = AN_OPERATOR
    else:
        status, at, by = row["status"], processed, "edi" if row["status"] else None
    row |= {"current_status": status, "current_label": labels.label(status), "current_at": at, "current_by": by}
    return row


def iter_invoices(
    reader: Reader,
    scope: str | None,
    filters: InvoiceFilters,
    *,
    after: tuple[str, int] | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every document the filters keep, in the pages' order, read a chunk at a time (a CSV in bounded memory)."""

    def page(cursor: tuple[str, int] | None, size: int) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
        rows, last = invoices_page(reader, scope, filters, after=cursor, limit=size)
        return rows, check_key(last) if last is not None else None

    return every_row(page, after, limit)


FLOW_FACTS = ("flow_id", "sender", "file_name", "received_at", "processed_at", "status")


def invoice(reader: Reader, scope: str | None, flow_id: str, idx: int) -> dict[str, Any]:
    """One invoice within the scope: its flow's facts, its document (findings, lifecycle timeline) and its current
    status (the timeline's last step; None for a document not decided yet). An invoice outside the scope is
    reported exactly as an unknown one (UnknownFlowError)."""
    found = flow(reader, scope, flow_id)
    document = next((d for d in found["documents"] if d["idx"] == idx), None)
    if document is None:
        raise UnknownFlowError(f"no document {idx} in flow {flow_id!r}")
    steps = document["lifecycle"]
    return {
        "flow": {k: found[k] for k in FLOW_FACTS},
        "document": document,
        "current": steps[-1] if steps else None,
    }
