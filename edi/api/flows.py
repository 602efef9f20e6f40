"""A sender's flows as the Flow Service shows them (AFNOR XP Z12-013 Annex A 1.3.0): one flow as the standard's
``Flow`` (:func:`flow_json`), its acknowledgement mapped from edi's (:func:`acknowledgement`), and the search
(:func:`search`, keyset pages behind an opaque cursor).

A sender's flows are three kinds of rows, each read scoped to the sender in SQL:

- ``flows``: every flow edi claimed from the sender's inbox, whether it came through the API (its ``api_deposits``
  row gives the metadata the client declared), a folder or SFTP (defaults, docs/api.md "Following a flow");
- ``api_deposits`` rows with no ``flows`` row yet: deposited, not claimed (``Pending``);
- ``api_messages``: the CDAR messages edi wrote into the sender's ``acks/`` folder (direction ``In``).

Reads the store on the connection it is given (rows as tuples or :class:`sqlite3.Row`: it sets its own cursors'
row factory) and, for a search that may show deposits not claimed yet, the names in the sender's inbox; writes
nothing; raises :class:`SearchError` for
a search the standard does not allow (answered 400).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import heapq
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edi.api.standard import ACK_STATUSES, ERROR, FLOW_DIRECTIONS, FLOW_TYPES, OK, PENDING, PROCESSING_RULES
from edi.clock import iso
from edi.tracking import API_ACK_STATUS, in_chunks, utf8_text
from edi.workspace import Layout

ACK_STATUS = API_ACK_STATUS  # the acknowledgement status of a flows row, as idx_flows_api indexes it
INVOICE, STATUS_FLOW, MESSAGE = "CustomerInvoice", "SupplierInvoiceLC", "CustomerInvoiceLC"
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
MAX_DETAILS = 100  # details of one acknowledgement (errors first): the acknowledgement file holds them all
MAX_ID = 64  # the standard's NotOnlyUuid
# a row is searchable once it is this old: a writer takes its time before its transaction commits, so a row younger
# than this may still be joined by one with an older updatedAt (docs/api.md "Searching": nothing is skipped)
SETTLE = timedelta(seconds=2)
MESSAGE_SUFFIX = ".cdar.xml"
# a flow of a recipient's lifecycle statuses (it deposited CDAR): declared so, or read so, as the store keeps it in
# flows.status_flow (edi.tracking.STATUS_FLOW_OF); a deposit not claimed yet (no flows row) by what it declared
IS_STATUS_FLOW = "(coalesce(f.status_flow, 0) = 1 OR coalesce(d.flow_syntax, '') = 'CDAR')"
# edi's finding codes -> the standard's ReasonCode (its enum where it has the case, else edi's reform reason code);
# docs/api.md "Following a flow" has the table
REASON_CODES = {
    "IRR_VIDE_F": "EmptyFlow",
    "IRR_TAILLE_F": "FileSizeExceeded",
    "IRR_TYPE_F": "FlowTypeError",
    "IRR_SYNTAX": "InvalidSchema",
    "IRR_NOM_F": "AttachmentTypeError",
    "DOUBLON": "AlreadyExistingFlow",
    "LAYER_NOT_RUN": "OtherTechnicalError",
    "STATUS_NOT_ALLOWED": "InvoiceLCStatusError",
    "STATUS_ORDER": "InvoiceLCInvalidStatus",
    "STATUS_REASON_MISSING": "InvoiceLCRuleError",
    "STATUS_REASON_NOT_ALLOWED": "InvoiceLCRuleError",
    "STATUS_SEVERAL_INVOICES": "InvoiceLCRuleError",
    "STATUS_UNKNOWN_INVOICE": "InvoiceLCRuleError",
    "STATUS_NOT_A_RECIPIENT": "InvoiceLCAccessDenied",
    "STATUS_OTHER_PARTNER": "InvoiceLCAccessDenied",
}
PROFILES = {  # edi's normalised profile (edi.ingest.recognise.profile_of) -> the standard's FlowProfile
    "minimum": "Basic",
    "basicwl": "Basic",
    "basic": "Basic",
    "en16931": "Basic",
    "en16931-cius": "CIUS",
    "peppol-bis3": "CIUS",
    "xrechnung": "CIUS",
    "extended-ctc-fr": "Extended-CTC-FR",
}


class SearchError(ValueError):
    """A search the standard does not allow, or a cursor that is not one of ours for this search."""


# -- one flow ----------------------------------------------------------------------------------------------------


def flow_json(conn: sqlite3.Connection, layout: Layout, sender: str, flow_id: str) -> dict[str, Any] | None:
    """The standard's ``Flow`` of ``flow_id`` (a flow, a deposit not claimed yet, or a CDAR message) exactly as GET
    ``docType=Metadata`` returns it; None for an unknown id or another sender's."""
    if not flow_id or len(flow_id) > MAX_ID:
        return None
    with _snapshot(conn):
        found = locate(conn, sender, flow_id)
        return None if found is None else _flow_of(conn, layout, found)


@dataclass(frozen=True, slots=True)
class Found:
    """What an id names for a sender: ``kind`` (flow, deposit, message), its row, and its deposit's (if any)."""

    kind: str
    row: dict[str, Any]
    deposit: dict[str, Any] | None


def locate(conn: sqlite3.Connection, sender: str, flow_id: str) -> Found | None:
    """The flow, pending deposit or CDAR message ``flow_id`` names among ``sender``'s, None if none."""
    row = _one(conn, "SELECT * FROM flows WHERE flow_id = ? AND sender = ?", [flow_id, sender])
    deposit = _one(conn, "SELECT * FROM api_deposits WHERE flow_id = ? AND sender = ?", [flow_id, sender])
    if row is not None:
        return Found("flow", row, deposit)
    if deposit is not None:
        return Found("deposit", deposit, deposit)
    message = _one(conn, "SELECT * FROM api_messages WHERE message_id = ? AND sender = ?", [flow_id, sender])
    return Found("message", message, None) if message is not None else None


def _flow_of(conn: sqlite3.Connection, layout: Layout, found: Found) -> dict[str, Any]:
    if found.kind == "message":
        return _message_json(found.row)
    if found.kind == "deposit":
        return _deposit_json(found.row)
    return _processed_json(conn, found.row, found.deposit)


def _message_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A CDAR message edi wrote for the sender: an incoming lifecycle flow, acknowledged Ok when written."""
    at = str(row["updated_at"])
    return {
        "flowId": row["message_id"],
        "name": f"{row['message_id']}{MESSAGE_SUFFIX}",
        "flowSyntax": "CDAR",
        "flowProfile": "Undefined",
        "processingRule": "NotApplicable",
        "processingRuleSource": "Computed",
        "submittedAt": at,
        "updatedAt": at,
        "flowType": MESSAGE,
        "flowDirection": "In",
        "acknowledgement": {"status": OK},
    }


def _deposit_json(deposit: Mapping[str, Any]) -> dict[str, Any]:
    """A flow deposited and not claimed yet: what the client declared, Pending."""
    flow = _declared(deposit, str(deposit["name"]), str(deposit["flow_syntax"]), "Undefined")
    at = str(deposit["submitted_at"])
    flow.update(submittedAt=at, updatedAt=at, acknowledgement={"status": PENDING})
    flow["flowType"] = STATUS_FLOW if deposit["flow_syntax"] == "CDAR" else INVOICE
    return _ordered(flow)


def _declared(deposit: Mapping[str, Any] | None, name: str, syntax: str, profile: str) -> dict[str, Any]:
    """The fields the client declares (FlowInfo), from its deposit, else edi's defaults."""
    flow: dict[str, Any] = {"name": name, "flowSyntax": syntax, "flowProfile": profile}
    flow["processingRule"], flow["processingRuleSource"] = "Undefined", "Computed"
    flow["flowDirection"] = "Out"
    if deposit is None:
        return flow
    flow["flowId"] = deposit["flow_id"]
    flow["name"] = deposit["name"] or name
    flow["flowSyntax"] = deposit["flow_syntax"] or syntax
    flow["flowProfile"] = deposit["flow_profile"] or profile
    if deposit["processing_rule"]:
        flow["processingRule"], flow["processingRuleSource"] = deposit["processing_rule"], "Input"
    if deposit["tracking_id"]:
        flow["trackingId"] = deposit["tracking_id"]
    return flow


def _processed_json(
    conn: sqlite3.Connection, row: Mapping[str, Any], deposit: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A flow edi claimed: its documents say what it is; its status and findings its acknowledgement."""
    documents = _rows(conn, "SELECT * FROM documents WHERE flow_id = ? ORDER BY idx", [row["flow_id"]])
    syntax, profile = _read_as(row, documents)
    flow = _declared(deposit, str(row["file_name"]), syntax, profile)
    flow["flowId"] = row["flow_id"]
    flow["submittedAt"] = deposit["submitted_at"] if deposit else row["received_at"]
    flow["updatedAt"] = row["updated_at"] or flow["submittedAt"]
    status_flow = flow["flowSyntax"] == "CDAR" or any(d["syntax"] == "CDAR" for d in documents)
    flow["flowType"] = STATUS_FLOW if status_flow else INVOICE
    findings: list[dict[str, Any]] = []
    if ack_status(str(row["status"])) != PENDING:
        findings = _rows(
            conn,
            "SELECT idx, code, reason, rule, assert_id, severity, line, message FROM findings "
            "WHERE flow_id = ? AND severity IN ('fatal', 'warning') ORDER BY severity = 'warning', idx, id LIMIT ?",
            [row["flow_id"], MAX_DETAILS],
        )
    flow["acknowledgement"] = acknowledgement(row, documents, findings)
    return _ordered(flow)


def _read_as(row: Mapping[str, Any], documents: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The flowSyntax and flowProfile edi read the flow as (a folder flow declares none): Factur-X for a PDF, else
    its documents' syntax; before it is read, from its name (``.pdf``: Factur-X), else CII."""
    syntaxes = [str(d["syntax"]) for d in documents if d["syntax"] in ("CII", "UBL", "CDAR")]
    kind = row["kind"] or ("pdf" if str(row["file_name"]).lower().endswith(".pdf") else None)
    syntax = "Factur-X" if kind == "pdf" else syntaxes[0] if syntaxes else "CII"
    profiles = {PROFILES.get(str(d["profile"]), "Undefined") for d in documents}
    return syntax, profiles.pop() if len(profiles) == 1 else "Undefined"


def ack_status(status: str) -> str:
    """The standard's acknowledgement status of an edi flow status (as :data:`ACK_STATUS` says it in SQL):
    integrated or partly integrated -> Ok, rejected -> Error, received or failed (edi's own fault, waiting for an
    operator's requeue) -> Pending."""
    return {"IN_INTEGRE": OK, "IN_INTEGRE_PARTIEL": OK, "IN_REJETE": ERROR}.get(status, PENDING)


def acknowledgement(
    flow: Mapping[str, Any], documents: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The standard's ``Acknowledgement`` of a flow from edi's: its status (:func:`ack_status`) and, once final, one
    detail per fatal finding (level Error) and per warning (level Warning), errors first, at most
    :data:`MAX_DETAILS`; a rejected flow with no finding to name gets one detail from its documents' reasons."""
    status = ack_status(str(flow["status"]))
    answer: dict[str, Any] = {"status": status}
    if status == PENDING:
        return answer
    names = {int(d["idx"]): str(d["name"] or f"document {d['idx']}") for d in documents}
    details = [_detail(flow, names, f) for f in findings]
    if not details and status == ERROR:
        reasons = sorted({str(d["reason"]) for d in documents if d["reason"]}) or ["refused"]
        message = f"{flow['file_name']}: refused ({', '.join(reasons)}): the acknowledgement says why"
        details = [_entry(ERROR, str(flow["file_name"]), "OtherTechnicalError", message)]
    if details:
        answer["details"] = details[:MAX_DETAILS]
    return answer


def _detail(flow: Mapping[str, Any], names: Mapping[int, str], finding: Mapping[str, Any]) -> dict[str, str]:
    """One finding as the standard's AcknowledgementDetail: the rule it broke as the item (else the document, else
    the file; a duplicate file: the first flow), the standard's reason code, edi's code and words as the message."""
    code = str(finding["code"])
    idx = int(finding["idx"] or 0)
    where = names.get(idx) if idx else str(flow["file_name"])
    item = str(finding["assert_id"] or finding["rule"] or where)
    if code == "DOUBLON" and not idx and flow["duplicate_of"]:
        item = str(flow["duplicate_of"])
    reason = REASON_CODES.get(code) or str(finding["reason"] or code)
    line = f", line {finding['line']}" if finding["line"] else ""
    message = f"{code}: {finding['message']} ({where}{line})"
    return _entry(ERROR if finding["severity"] == "fatal" else "Warning", item, reason, message)


def _entry(level: str, item: str, reason: str, message: str) -> dict[str, str]:
    return {"level": level, "item": item, "reasonCode": reason, "reasonMessage": message}


_ORDER = (
    "flowId",
    "name",
    "flowSyntax",
    "flowProfile",
    "trackingId",
    "processingRule",
    "processingRuleSource",
    "submittedAt",
    "updatedAt",
    "flowType",
    "flowDirection",
    "acknowledgement",
)


def _ordered(flow: Mapping[str, Any]) -> dict[str, Any]:
    return {k: flow[k] for k in _ORDER if k in flow}


# -- the search --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """A search as the client asked it, checked: ``where`` is its filters as given (echoed as ``filters``)."""

    limit: int
    where: dict[str, Any]
    cursor: str | None = None


def parse_search(body: Any) -> Query:
    """The standard's SearchFlowParams, checked: ``limit`` 1-100 (25), ``cursor``, ``where`` with at least one
    criterion, each of the standard's kind; anything else is refused (a mistyped filter would widen the answer)."""
    if not isinstance(body, dict):
        raise SearchError("the search is a JSON object: {limit, cursor, where}")
    if unknown := sorted(set(body) - {"limit", "cursor", "where"}):
        raise SearchError(f"unknown field {unknown[0]!r}: the search takes limit, cursor and where")
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit is a whole number from 1 to {MAX_LIMIT}")
    cursor = body.get("cursor")
    if "cursor" in body and (not isinstance(cursor, str) or not 0 < len(cursor) <= 1024):
        raise SearchError("cursor is the nextCursor of the previous page, as it came")
    where = body.get("where")
    if not isinstance(where, dict):
        raise SearchError("where is required: at least one criterion (updatedAfter, flowType, ...)")
    _check_where(where)
    return Query(limit, where, cursor)


def _check_where(where: Mapping[str, Any]) -> None:
    lists = {"processingRule": PROCESSING_RULES, "flowType": FLOW_TYPES, "flowDirection": FLOW_DIRECTIONS}
    known = {"updatedAfter", "updatedBefore", "trackingId", "ackStatus", *lists}
    if unknown := sorted(set(where) - known):
        raise SearchError(f"unknown criterion {unknown[0]!r}: where takes {', '.join(sorted(known))}")
    if not where:
        raise SearchError("where needs at least one criterion")
    for name in ("updatedAfter", "updatedBefore"):
        if name in where:
            _instant(where[name], name)
    for name, allowed in lists.items():
        values = where.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v in allowed for v in values):
            raise SearchError(f"{name} is a list of {', '.join(allowed)}")
    tracking = where.get("trackingId")
    if "trackingId" in where and (not isinstance(tracking, str) or len(tracking) > MAX_ID):
        raise SearchError(f"trackingId is a text of at most {MAX_ID} characters")
    if "ackStatus" in where and where["ackStatus"] not in ACK_STATUSES:
        raise SearchError(f"ackStatus is one of {', '.join(ACK_STATUSES)}")


def _instant(value: Any, name: str) -> datetime:
    """A date-time criterion (RFC 3339, with its offset) in UTC."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if not isinstance(value, str) or moment is None or moment.tzinfo is None:
        raise SearchError(f"{name} is a date-time with its offset (2026-12-06T09:30:00Z)")
    return moment.astimezone(UTC)


Key = tuple[str, str]  # (updatedAt as the store writes it, id): the order of a search, and its cursor
LAST_ID = "\U0010ffff"  # after every id: (t, LAST_ID) is the key just after everything updated at t


def search(conn: sqlite3.Connection, layout: Layout, sender: str, query: Query, now: datetime) -> dict[str, Any]:
    """One page of ``sender``'s flows that ``query`` selects, in (updatedAt, id) order after its cursor: the
    standard's SearchFlowContent. Only rows older than :data:`SETTLE` at ``now`` are searched; a page that would end
    inside a run of equal updatedAt ends before it when it can (so ``updatedAfter`` paging skips nothing either)."""
    where, limit = query.where, query.limit
    start: Key = ("", "")
    if query.cursor is not None:
        start = _read_cursor(query.cursor, sender, where)
    if "updatedAfter" in where:  # strict: updatedAt > updatedAfter; the store's times are to the millisecond
        start = max(start, (iso(_instant(where["updatedAfter"], "updatedAfter")), LAST_ID))
    end = iso(now - SETTLE)  # inclusive: one bound, so that each index range has one end
    if "updatedBefore" in where:  # strict: the last millisecond before it
        moment = _instant(where["updatedBefore"], "updatedBefore")
        end = min(end, iso(moment + timedelta(microseconds=(-moment.microsecond) % 1000 - 1000)))
    with _snapshot(conn):
        keys = _keys(conn, layout, sender, where, start, end, limit + 1)
        page = _page(keys, limit)
        results = []
        for _, flow_id in page:
            found = locate(conn, sender, flow_id)
            if found is not None:
                results.append(_flow_of(conn, layout, found))
    answer: dict[str, Any] = {"limit": limit}
    if len(keys) > limit and page:
        answer["nextCursor"] = _write_cursor(page[-1], sender, where)
    answer["filters"] = where
    answer["results"] = results
    return answer


def _page(keys: list[Key], limit: int) -> list[Key]:
    """The first ``limit`` keys; when more follow and the next shares the last one's updatedAt, the page stops
    before that updatedAt (unless that would leave it empty)."""
    if len(keys) <= limit:
        return keys
    page, following = keys[:limit], keys[limit]
    if page[-1][0] == following[0]:
        kept = [k for k in page if k[0] != following[0]]
        if kept:
            return kept
    return page


def _keys(
    conn: sqlite3.Connection,
    layout: Layout,
    sender: str,
    where: Mapping[str, Any],
    start: Key,
    end: str,
    wanted: int,
) -> list[Key]:
    """The first ``wanted`` keys after ``start`` of the rows ``where`` selects: each kind of row read as a keyset
    range of its own index (a range per acknowledgement status for flows), merged."""
    directions = set(where.get("flowDirection") or FLOW_DIRECTIONS)
    types = set(where.get("flowType") or FLOW_TYPES)
    rules = where.get("processingRule") or None
    tracking = where.get("trackingId")
    wanted_status = where.get("ackStatus")
    flow_types = types & {INVOICE, STATUS_FLOW}
    if tracking is not None:  # a few flows: those the sender gave this trackingId
        if "Out" not in directions or not flow_types:
            return []
        conditions, args = _flow_conditions(flow_types, rules, None)
        return _tracked_leg(conn, sender, tracking, wanted_status, conditions, args, start, end, wanted)
    legs: list[list[Key]] = []
    if "Out" in directions and flow_types:
        # one flow type: a range of idx_flows_api_type (flows.status_flow), not a filter over the sender's flows
        kind = None if flow_types == {INVOICE, STATUS_FLOW} else int(flow_types == {STATUS_FLOW})
        conditions, args = _flow_conditions({INVOICE, STATUS_FLOW}, rules, tracking)
        for status in [wanted_status] if wanted_status else ACK_STATUSES:
            legs.append(_flows_leg(conn, sender, status, kind, conditions, args, start, end, wanted))
    messages = "In" in directions and MESSAGE in types and wanted_status in (None, OK) and tracking is None
    if messages and (rules is None or "NotApplicable" in rules):
        legs.append(_messages_leg(conn, sender, start, end, wanted))
    if "Out" in directions and flow_types and wanted_status in (None, PENDING):
        conditions, args = _flow_conditions(flow_types, rules, None)
        legs.append(_deposits_leg(conn, layout, sender, conditions, args, start, end, wanted))
    return list(heapq.merge(*legs))[:wanted]


def _flow_conditions(types: set[str], rules: Sequence[str] | None, tracking: str | None) -> tuple[str, list[Any]]:
    """The SQL conditions (over ``f`` flows and ``d`` its deposit) of the criteria no index orders."""
    sql, args = "", []
    if types == {STATUS_FLOW}:
        sql += f" AND {IS_STATUS_FLOW}"
    elif types == {INVOICE}:
        sql += f" AND NOT {IS_STATUS_FLOW}"
    if rules is not None:
        sql += f" AND coalesce(d.processing_rule, 'Undefined') IN ({', '.join('?' for _ in rules)})"
        args += list(rules)
    if tracking is not None:
        sql += " AND d.tracking_id = ?"
        args.append(tracking)
    return sql, args


def _flows_leg(
    conn: sqlite3.Connection,
    sender: str,
    status: str,
    kind: int | None,
    conditions: str,
    args: list[Any],
    start: Key,
    end: str,
    wanted: int,
) -> list[Key]:
    """The sender's flows of one acknowledgement status (and, when ``kind`` is given, of one flow type: 1 a status
    flow, 0 an invoice flow) after ``start``: a range of idx_flows_api (idx_flows_api_type)."""
    index, typed = "idx_flows_api", ""
    params: list[Any] = [sender, status]
    if kind is not None:
        index, typed = "idx_flows_api_type", "AND f.status_flow = ? "
        params.append(kind)
    sql = (
        f"SELECT f.updated_at, f.flow_id FROM flows f INDEXED BY {index} "
        "LEFT JOIN api_deposits d ON d.flow_id = f.flow_id "
        f"WHERE f.sender = ? AND {ACK_STATUS.replace('status', 'f.status', 1)} = ? {typed}"
        "AND (f.updated_at, f.flow_id) > (?, ?) AND f.updated_at <= ?"
    )
    params += [*start, end]
    sql += f"{conditions} ORDER BY f.updated_at, f.flow_id LIMIT ?"
    return [(str(u), str(i)) for u, i in conn.execute(sql, [*params, *args, wanted])]


def _tracked_leg(
    conn: sqlite3.Connection,
    sender: str,
    tracking: str,
    status: str | None,
    conditions: str,
    args: list[Any],
    start: Key,
    end: str,
    wanted: int,
) -> list[Key]:
    """The sender's flows deposited with this trackingId after ``start``, claimed or not (read by that index, then
    sorted: a trackingId names one flow, or a few)."""
    sql = (
        "SELECT coalesce(f.updated_at, d.submitted_at) AS u, d.flow_id FROM api_deposits d "
        "INDEXED BY idx_api_deposits_sender_tracking_id LEFT JOIN flows f ON f.flow_id = d.flow_id "
        "WHERE d.sender = ? AND d.tracking_id = ? AND (u, d.flow_id) > (?, ?) AND u <= ?"
    )
    params: list[Any] = [sender, tracking, *start, end]
    if status is not None:
        sql += f" AND {ACK_STATUS.replace('status', 'f.status', 1)} = ?"
        params.append(status)
    sql += f"{conditions} ORDER BY u, d.flow_id LIMIT ?"
    return [(str(u), str(i)) for u, i in conn.execute(sql, [*params, *args, wanted])]


def _messages_leg(conn: sqlite3.Connection, sender: str, start: Key, end: str, wanted: int) -> list[Key]:
    """The CDAR messages edi wrote for the sender after ``start``: a range of its index."""
    sql = (
        "SELECT updated_at, message_id FROM api_messages INDEXED BY idx_api_messages_sender_updated_at_message_id "
        "WHERE sender = ? AND (updated_at, message_id) > (?, ?) AND updated_at <= ?"
    )
    params: list[Any] = [sender, *start, end]
    sql += " ORDER BY updated_at, message_id LIMIT ?"
    return [(str(u), str(i)) for u, i in conn.execute(sql, [*params, wanted])]


def _deposits_leg(
    conn: sqlite3.Connection,
    layout: Layout,
    sender: str,
    conditions: str,
    args: list[Any],
    start: Key,
    end: str,
    wanted: int,
) -> list[Key]:
    """The sender's deposits not claimed yet after ``start``: those whose file is in its inbox (what is waiting there,
    looked up by name: never a walk over every deposit the sender made) and has no flow row yet."""
    conditions = conditions.replace(IS_STATUS_FLOW, "(coalesce(d.flow_syntax, '') = 'CDAR')")
    keys: list[Key] = []
    for chunk, marks in in_chunks(_waiting(layout, sender)):
        sql = (
            "SELECT d.submitted_at, d.flow_id FROM api_deposits d INDEXED BY idx_api_deposits_inbox "
            f"WHERE d.inbox_name IN ({marks}) AND d.sender = ? AND (d.submitted_at, d.flow_id) > (?, ?) "
            f"AND d.submitted_at <= ? AND NOT EXISTS (SELECT 1 FROM flows f WHERE f.flow_id = d.flow_id){conditions}"
        )
        keys += [(str(u), str(i)) for u, i in conn.execute(sql, [*chunk, sender, *start, end, *args])]
    return sorted(keys)[:wanted]


def _waiting(layout: Layout, sender: str) -> list[str]:
    """The names of the files in the sender's inbox (none when it cannot be read); a name that is not UTF-8 is no
    deposit's (and SQLite could not bind it)."""
    try:
        with os.scandir(layout.sender_inbox(sender)) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]
    except OSError:
        return []
    return [n for n in names if n.isascii() or utf8_text(n)]


# -- the cursor: opaque to the client, checked when it comes back ------------------------------------------------


def _digest(sender: str, where: Mapping[str, Any]) -> str:
    """What binds a cursor to its search: the sender and the filters."""
    text = json.dumps([sender, where], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _write_cursor(key: Key, sender: str, where: Mapping[str, Any]) -> str:
    payload = json.dumps({"u": key[0], "i": key[1], "w": _digest(sender, where)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _read_cursor(cursor: str, sender: str, where: Mapping[str, Any]) -> Key:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise SearchError("the cursor is not one this service gave: send nextCursor as it came") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("u", "i", "w")):
        raise SearchError("the cursor is not one this service gave: send nextCursor as it came")
    if data["w"] != _digest(sender, where):
        raise SearchError("the cursor belongs to another search: send the same where as the page that gave it")
    return str(data["u"]), str(data["i"])


# -- reading -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Every read inside sees the store as of one moment (a read transaction), unless the caller has one open."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return [dict(r) for r in cursor.execute(sql, args)]


def _one(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> dict[str, Any] | None:
    rows = _rows(conn, sql, args)
    return rows[0] if rows else None
