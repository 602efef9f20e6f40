"""The console's invoices: every document the store read, searched by seller and number (BT-1), buyer, issue date,
status, newest first, each with the flow that brought it.

A document's key is ``(flow_id, idx)``, the documents table's primary key: newest first is ``flow_id`` descending
(flow ids are claim times) and, within a flow, the documents in their order; a page after another starts after the
last key shown, never with OFFSET. A search by invoice number, seller or buyer reads that column's index; one with
no such filter walks the primary key from the newest flow. Reads the store through :class:`edi.browse.Reader` (the
account's scope on the flow's sender, in the query); raises :class:`BadQuery` for a malformed filter or cursor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from edi.browse import Reader, Where, every_row
from edi.browse.flows import MAX_LIMIT, MAX_TEXT, SAFE_NAME
from edi.codes import DocumentStatus
from edi.errors import BadQuery

# a page cursor's key: the last document shown, ``<flow_id>~<idx>``
KEY = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}~\d{1,6}\Z")
STATUSES = tuple(s.value for s in DocumentStatus)
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
)
_SELECT = (
    "d.flow_id, d.idx, f.sender, f.received_at, d.invoice_number, d.issue_date, d.type_code, d.currency, "
    "d.seller_id, d.seller_name, d.buyer_id, d.buyer_name, d.queue, d.status, d.reason, d.name"
)


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    """What an invoice search is narrowed to (every field optional); the same for the page and its twins."""

    invoice: str | None = None  # the invoice number (BT-1), exactly
    seller: str | None = None  # the seller's identifier as the document gives it, exactly
    buyer: str | None = None
    issued_from: date | None = None  # issue date (BT-2), inclusive
    issued_to: date | None = None  # inclusive
    status: str | None = None  # the document's status: 200, 213, 501
    sender: str | None = None

    def query(self) -> dict[str, str]:
        """The filters as query parameters (links to the next page and to the twins)."""
        names = {"issued_from": "from", "issued_to": "to"}
        return {
            names.get(f.name, f.name): str(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        }

    @property
    def empty(self) -> bool:
        """Whether nothing narrows the search."""
        return not self.query()


def parse_invoice_filters(params: Mapping[str, str]) -> InvoiceFilters:
    """Filters from query parameters: ``invoice``, ``seller``, ``buyer`` (exact identifiers), ``from`` / ``to`` (issue
    dates, YYYY-MM-DD, both inclusive), ``status`` (200, 213, 501), ``sender``. An empty value is no filter."""
    given = {k: v.strip() for k, v in params.items() if isinstance(v, str) and v.strip()}
    for key, value in given.items():
        if len(value) > MAX_TEXT:
            raise BadQuery(f"{key}: the value is too long (at most {MAX_TEXT} characters)")
    status = given.get("status")
    if status is not None and status not in STATUSES:
        raise BadQuery(f"status: {status!r} is not a document status ({', '.join(STATUSES)})")
    sender = given.get("sender")
    if sender is not None and not SAFE_NAME.fullmatch(sender):
        raise BadQuery(f"sender: {sender!r} is not a sender id")
    issued_from, issued_to = _day("from", given.get("from")), _day("to", given.get("to"))
    if issued_from and issued_to and issued_to < issued_from:
        raise BadQuery("to: the last issue date is before the first")
    return InvoiceFilters(
        invoice=given.get("invoice"),
        seller=given.get("seller"),
        buyer=given.get("buyer"),
        issued_from=issued_from,
        issued_to=issued_to,
        status=status,
        sender=sender,
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


def _where(scope: str | None, filters: InvoiceFilters, after: tuple[str, int] | None) -> tuple[str, list[Any]]:
    """The WHERE clause of an invoice search (scope first) and its arguments."""
    where = Where(scope, "f.sender")
    add = where.add
    if filters.invoice:
        add("d.invoice_number = ?", filters.invoice)
    if filters.seller:
        add("d.seller_id = ?", filters.seller)
    if filters.buyer:
        add("d.buyer_id = ?", filters.buyer)
    if filters.issued_from:
        add("d.issue_date >= ?", filters.issued_from.isoformat())
    if filters.issued_to:
        add("d.issue_date <= ?", filters.issued_to.isoformat())
    if filters.status:  # "+": not by the (status, reason) index, which would sort every 200 before a page
        add("+d.status = ?", filters.status)
    if filters.sender:
        add("f.sender = ?", filters.sender)
    if after is not None:
        flow_id, idx = after
        add("d.flow_id <= ? AND (d.flow_id < ? OR d.idx > ?)", flow_id, flow_id, idx)
    return where.sql(), where.args


def invoices_page(
    reader: Reader,
    scope: str | None,
    filters: InvoiceFilters,
    *,
    after: tuple[str, int] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of documents, newest flow first (a flow's documents in their order), from just after ``after``
    (a (flow id, index) key, exclusive), and the key of the page's last row when another page follows (else None)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit: give 1 to {MAX_LIMIT} invoices per page")
    where, args = _where(scope, filters, after)
    rows = reader.rows(
        f"SELECT {_SELECT} FROM documents d JOIN flows f ON f.flow_id = d.flow_id WHERE {where} "
        f"ORDER BY d.flow_id DESC, d.idx LIMIT {limit + 1}",
        args,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, key_of(rows[-1]) if more and rows else None


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
