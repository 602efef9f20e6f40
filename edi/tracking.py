"""The flow-tracking store: SQLite (WAL mode) through sqlite-utils.

Tables: ``flows`` (one row per flow, its current status), ``documents`` and ``findings`` (as the final
acknowledgement states them), and ``events``, append-only: every status change of a flow or a document with its
time. Write transactions of several processes wait their turn in the kernel, on ``tracking.sqlite-writers``
(``flock``: a waiting writer wakes as soon as the one before it commits; SQLite's own wait polls, sleeping 1, 2, 5,
10 ms and more between tries: 0.4 s of sleep per 20,000 flows with two worker processes). Reads and writes
``<workspace>/tracking.sqlite`` (makes ``tracking.sqlite-writers`` beside it); raises :class:`WorkspaceError` when
the store cannot be opened or a read for an operator fails (a damaged file), sqlite3 errors otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlite_utils

from edi.clock import iso
from edi.errors import StoreError, UnknownFlowError, WorkspaceError
from edi.faults import fault_point
from edi.lifecycle.cdar import reasons_of, status_of
from edi.lifecycle.rules import Order, order
from edi.lifecycle.timeline import RECORDED, by_document, timeline
from edi.model import FlowStatus, InvoiceRef

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000
# pages in the write-ahead log before the committing writer copies them into the store (SQLite's default: 1,000).
# The copy ends with two fdatasync calls, in the processing thread and under the writers' lock: 30,000 flows, one
# worker: 244 calls, 0.34 s, with 1,000 pages; 28 calls, 0.07 s, with 10,000 (a log of up to ~40 MiB, reused)
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The queries of every flow's processing name their index (INDEXED BY): the console's indexes on flows (sender,
# flow_id), (status, flow_id, ...) would otherwise tempt SQLite's planner, which has no statistics, into walking all of
# a sender's flows (or all final ones) for each digest, duplicate check or recovery: O(n) per flow (batch -25 % at
# 5,000 flows, worse as the store grows). tests/test_tracking.py pins these plans.

_FLOW_COLUMNS = {
    "flow_id": str,
    "sender": str,
    "file_name": str,
    "size": int,
    "sha256": str,
    "received_at": str,
    "deposited_at": str,
    "kind": str,
    "processed_at": str,
    "status": str,
    "duplicate_of": str,
    "documents_total": int,
    "documents_accepted": int,
    "updated_at": str,
    "claimed_by": str,  # the spool folder of the process that claimed it (docs/architecture.md, "Crash safety")
    "raw_name": str,  # hex of the file name's bytes when they are not UTF-8 (file_name shows them escaped)
}
_DOCUMENT_COLUMNS = {
    "flow_id": str,
    "idx": int,
    "name": str,
    "size": int,
    "sha256": str,
    "container": str,
    "embedded_name": str,
    "attachments": str,  # JSON list
    "declared_profile": str,
    "syntax": str,
    "kind": str,
    "profile": str,
    "specification_id": str,
    "layers": str,  # JSON list
    "invoice_number": str,
    "type_code": str,
    "issue_date": str,
    "currency": str,
    "seller_id": str,
    "seller_name": str,
    "seller_key": str,
    "buyer_id": str,
    "buyer_name": str,
    "service_code": str,
    "engagement": str,
    "recipient": str,
    "queue": str,
    "delivered_as": str,  # JSON list
    "status": str,
    "reason": str,
}
_LIST_COLUMNS = ("attachments", "delivered_as", "layers")
_FINDING_COLUMNS = {
    "id": int,
    "flow_id": str,
    "idx": int,  # 0 for a flow-level finding, else the document index
    "code": str,
    "reason": str,
    "rule": str,
    "assert_id": str,
    "layer": str,
    "severity": str,
    "line": int,
    "xpath": str,
    "message": str,
    "rule_set_version": str,
    "rule_set_sha256": str,
}
_EVENT_COLUMNS = {"id": int, "flow_id": str, "idx": int, "at": str, "status": str, "detail": str}
_INVOICE_COLUMNS = {  # one row per accepted invoice key: who holds it (reserved when decided, kept once accepted)
    "seller_key": str,
    "invoice_number": str,
    "kind": str,
    "year": str,
    "flow_id": str,
    "idx": int,
}
# An invoice's lifecycle after edi's own decision (its document's status, 200 / 213 / 501): the statuses its recipient
# (or an operator) set later, 202-212, one row each, append-only (docs/lifecycle.md). A row is "held" from the moment
# its status flow is decided (the order rules are checked under the writers' lock, so two flows deciding at once
# cannot both pass) and "recorded" in the transaction that records that flow's outcome; only recorded rows are the
# invoice's history. Its current status is its latest recorded row, else its document's status.
_LIFECYCLE_COLUMNS = {
    "id": int,  # append order
    "flow_id": str,  # the invoice: its flow and its document's index there
    "idx": int,
    "status": str,  # the lifecycle status code (MDT-105), 202-212
    "reason": str,  # the reform reason code (MDT-113), or None
    "text": str,  # the partner's or the operator's words (MDT-114), or None
    "set_by": str,  # who set it: the partner's sender id, or "operator:<user>"
    "set_at": str,  # when the partner says it was set (MDT-78), or when the operator set it; ISO 8601 UTC
    "recorded_at": str,  # when edi recorded it
    "source_flow_id": str,  # what carried it: the status flow (and its document), or the id edi gave an operator's
    "source_idx": int,
    "relay": str,  # the CDAR message relayed to the invoice's sender, in acks/<sender>/ (a file name)
    "state": str,  # "held" or "recorded"
}
# The notifications outbox (edi.notify): one row per event a sender's contacts are told of, queued in the transaction
# that records it (record_outcomes, when a NotificationPolicy is set), sent by edi.notify.send. ``key`` is the event's
# stable key (re-recording never queues it twice); ``mail`` the mail that carries it: the key itself for an immediate
# notification, a digest's key once the day's digest is formed (None before); rows of one mail share its state.
_NOTIFICATION_COLUMNS = {
    "id": int,
    "key": str,  # "decision:<flow_id>:<idx>" (edi's decision on a document; idx 0: the file) or
    #              "status:<status flow_id>:<idx>" (a status a partner set, carried by that flow's document)
    "mail": str,
    "message_id": str,  # the mail's Message-ID, fixed once: every attempt sends the same
    "sender": str,  # the sender whose contacts are told (the invoice's sender)
    "recipients": str,  # JSON list: the sender's addresses when queued
    "kind": str,  # decision | status
    "status": str,  # 200, 213, 501, or the lifecycle status 202-212
    "mode": str,  # immediate | digest
    "day": str,  # YYYY-MM-DD in the digests' time zone, when recorded
    "flow_id": str,  # the invoice's flow and document index (0: the file)
    "idx": int,
    "invoice_number": str,
    "detail": str,  # JSON: what the mail says (reason, findings, file name, who set the status, ...)
    "queued_at": str,
    "due_at": str,  # when the mail became due (queued, or its digest formed): give_up_seconds count from it
    "state": str,  # queued | sent | failed
    "attempts": int,
    "next_attempt_at": str,  # None for a digest row until its digest is formed
    "last_error": str,
    "sent_at": str,
}
_RUN_COLUMNS = {"id": int, "job": str, "started_at": str, "finished_at": str, "outcome": str, "detail": str}
_USER_COLUMNS = {  # console accounts (edi.accounts)
    "name": str,
    "role": str,  # operator | sender
    "sender": str,  # the sender a sender account sees, None for an operator
    "password_hash": str,  # Argon2id, as argon2-cffi writes it
    "created_at": str,
    "sessions_since": str,  # sessions opened before this (a new password) are no longer valid
}
_ACTION_COLUMNS = {"id": int, "at": str, "user": str, "action": str, "target": str, "detail": str}  # append-only
# The deposit API's clients (edi.api.clients): each acts for one sender; its secret is kept as an Argon2id hash only
_API_CLIENT_COLUMNS = {"client_id": str, "name": str, "sender": str, "secret_hash": str, "created_at": str}
# ... and their tokens, kept as the SHA-256 of the token only: access tokens (POST /oauth2/token) and long-lived ones
_API_TOKEN_COLUMNS = {
    "token_hash": str,
    "client_id": str,
    "kind": str,  # access | bearer
    "issued_at": str,
    "expires_at": str,
    "revoked_at": str,  # None while valid
}
# The API's webhooks (edi.api.webhooks): a client's subscription to its sender's acknowledged flows. The signing key
# is not kept: it is derived from the workspace's webhook key file and the id (edi.api.signing)
_API_WEBHOOK_COLUMNS = {
    "webhook_id": str,  # a UUID
    "client_id": str,  # its owner: it fires for the owner's sender only
    "callback_url": str,
    "flow_types": str,  # JSON list; [] for any
    "flow_direction": str,  # In | Out, None for any
    "ack_status": str,  # Ok | Error, None for any
    "created_at": str,
}
# ... and their events, queued in the transaction that records the outcome (record_outcomes, with a WebhookPolicy),
# sent by edi.api.deliver: one row per (webhook, flowId); ``flow_id`` is the standard's flowId (edi's flow id, or a
# CDAR message's id <flow_id>.<nnnn> for a lifecycle message edi wrote)
_API_WEBHOOK_EVENT_COLUMNS = {
    "id": int,
    "webhook_id": str,
    "sender": str,  # whose flow it is (the webhook's client's sender)
    "flow_id": str,
    "flow_type": str,  # what the acknowledgement says it is, when queued (the body sent is checked again)
    "flow_direction": str,
    "queued_at": str,
    "state": str,  # queued | sent | failed | skipped
    "attempts": int,
    "next_attempt_at": str,  # None once sent, failed or skipped
    "last_error": str,
    "answered": int,  # the callback's last HTTP status, None when it could not be reached
    "sent_at": str,
}
_ENDED_SESSION_COLUMNS = {"session": str, "ended_at": str}  # console sessions logged out before their time
# Flows deposited through the API (edi.api.deposit), one row each, committed before the 202 and kept after the claim
# (the flow's API metadata); the claim of ``inbox_name`` in ``inbox/<sender>/`` takes ``flow_id`` (edi.deposits)
_API_DEPOSIT_COLUMNS = {
    "flow_id": str,
    "sender": str,
    "inbox_name": str,  # the file's name in inbox/<sender>/
    "name": str,  # flowInfo.name, as the client gave it
    "flow_syntax": str,
    "flow_profile": str,
    "processing_rule": str,
    "tracking_id": str,
    "sha256": str,  # of the bytes received (the client's, checked, when it gave one)
    "size": int,
    "client_id": str,
    "request_id": str,
    "submitted_at": str,
}
# The CDAR messages edi wrote into a sender's acks/ folder, as the deposit API shows them (flows of that sender,
# direction In: edi.api.flows): its own 200 / 213 / 501 about a flow's documents (kind "cdar", in the flow's sender's
# folder) and the statuses a recipient set, relayed (kind "relay", in the invoice's sender's folder). A row per
# message, written with the outcome that names it (record_outcomes, restore_answered): one that fails or is decided
# again loses the rows of its earlier decision.
_API_MESSAGE_COLUMNS = {
    "message_id": str,  # edi.lifecycle.cdar.message_id: <flow_id>.<nnnn>, its file <message_id>.cdar.xml
    "sender": str,  # whose acks/ folder holds it
    "flow_id": str,  # the flow whose outcome wrote it (for a relay: the recipient's status flow)
    "idx": int,  # that flow's document (0: the file refused whole)
    "kind": str,  # cdar | relay
    "status": str,  # 200, 213, 501, or the relayed status 202-212
    "updated_at": str,  # when its outcome was recorded (as flows.updated_at)
}
# whether a flow is a recipient's lifecycle status flow (the API's SupplierInvoiceLC): deposited as CDAR, or read as
# CDAR; kept in flows.status_flow (0 or 1) by the triggers of _STATUS_FLOW_TRIGGERS on every write of flows,
# documents and api_deposits, so that the API's search by flow type is a range of idx_flows_api_type, not a walk of
# the sender's flows ({flow}: the flow id's SQL expression)
STATUS_FLOW_OF = (
    "(EXISTS (SELECT 1 FROM api_deposits s WHERE s.flow_id = {flow} AND s.flow_syntax = 'CDAR') "
    "OR EXISTS (SELECT 1 FROM documents s WHERE s.flow_id = {flow} AND s.syntax = 'CDAR'))"
)
_STATUS_FLOW_TRIGGERS = {
    "flows_status_flow_on_insert": "AFTER INSERT ON flows WHEN {yes} "
    "BEGIN UPDATE flows SET status_flow = 1 WHERE flow_id = NEW.flow_id; END",
    "flows_status_flow_on_document": "AFTER INSERT ON documents WHEN NEW.syntax = 'CDAR' "
    "BEGIN UPDATE flows SET status_flow = 1 WHERE flow_id = NEW.flow_id AND status_flow = 0; END",
    "flows_status_flow_on_deposit": "AFTER INSERT ON api_deposits WHEN NEW.flow_syntax = 'CDAR' "
    "BEGIN UPDATE flows SET status_flow = 1 WHERE flow_id = NEW.flow_id AND status_flow = 0; END",
    "flows_status_flow_off_document": "AFTER DELETE ON documents WHEN OLD.syntax = 'CDAR' "
    "BEGIN UPDATE flows SET status_flow = {old} WHERE flow_id = OLD.flow_id; END",
    "flows_status_flow_off_deposit": "AFTER DELETE ON api_deposits WHEN OLD.flow_syntax = 'CDAR' "
    "BEGIN UPDATE flows SET status_flow = {old} WHERE flow_id = OLD.flow_id; END",
}

# What the API's search reads a sender's flows by (edi.api.flows): its acknowledgement status, then updatedAt and the
# id, so that each status is one keyset range of one index (no sort, no scan of the sender's other flows). The
# expression is the index's: a query that says it the same way uses it (edi.api.flows.ACK_STATUS)
API_ACK_STATUS = (
    "(CASE status WHEN 'IN_INTEGRE' THEN 'Ok' WHEN 'IN_INTEGRE_PARTIEL' THEN 'Ok' WHEN 'IN_REJETE' THEN 'Error' "
    "ELSE 'Pending' END)"
)
FINAL = tuple(str(s) for s in FlowStatus if s.final)
_P = ParamSpec("_P")
_R = TypeVar("_R")


class NotificationPolicy(Protocol):
    """What to queue in the notifications outbox for final acknowledgements (built from the settings by
    :mod:`edi.notify.policy`; a store without one queues nothing, at no cost)."""

    def rows(self, acks: Sequence[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
        """The notifications rows (columns of the ``notifications`` table) these acknowledgements call for."""
        ...


class WebhookPolicy(Protocol):
    """What to queue for the API's webhooks when final acknowledgements are recorded (:mod:`edi.api.events`; a
    store without one queues nothing). Runs inside the transaction that records them, so that it sees the webhooks
    as they are when the outcome is recorded."""

    def rows(self, conn: sqlite3.Connection, acks: Sequence[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
        """The ``api_webhook_events`` rows these acknowledgements call for."""
        ...


def _reading(method: Callable[Concatenate[Tracking, _P], _R]) -> Callable[Concatenate[Tracking, _P], _R]:
    """A read an operator asked for: a SQLite error (a damaged store) becomes a WorkspaceError naming the store."""

    @functools.wraps(method)
    def read(self: Tracking, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot read the tracking store {self.path}: {exc}") from None

    return read


# what a store cannot be without: its flows (the same file sent again) and their documents (the keys of accepted
# invoices are made from them when a store from an older edi has no invoices table); the others are made if missing
REQUIRED_TABLES = ("flows", "documents")


class Tracking:
    """The store of one workspace."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        """Open the store at ``path``. A store that is missing, empty (0 bytes), not an SQLite database or without
        its tables raises :class:`StoreError` (saying which), unless ``create`` is given and the store is missing,
        empty or holds no table at all: a new store is made there (``edi init`` of a new workspace, a rebuild)."""
        self.path = path
        fresh = _fresh(path)
        if fresh is not None and not create:
            raise StoreError(f"the tracking store {path} {fresh}")
        self._writers: int | None = None
        self.notifications: NotificationPolicy | None = None  # set by whoever processes flows, from the settings
        self.webhooks: WebhookPolicy | None = None  # likewise
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _check_tables(conn, path, create)  # before anything is written to it, or made beside it
            self._writers = _writers_lock(path)
            self.db = sqlite_utils.Database(conn)
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            self._firsts: dict[tuple[str, str], str] = {}  # (sender, SHA-256) -> first flow, as of the last digests
            self._create()
        except (sqlite3.Error, StoreError) as exc:
            if conn is not None:
                conn.close()
            self._close_writers()
            if isinstance(exc, StoreError):
                raise
            if _damaged(exc):
                raise StoreError(f"the tracking store {path} is damaged ({exc})") from None
            raise WorkspaceError(f"cannot open the tracking store {path}: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        self.db.conn.close()
        self._close_writers()

    def _close_writers(self) -> None:
        if self._writers is not None:
            os.close(self._writers)
            self._writers = None

    def _create(self) -> None:
        db = self.db
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("flows").create(_FLOW_COLUMNS, pk="flow_id", if_not_exists=True)
        db.table("documents").create(_DOCUMENT_COLUMNS, pk=("flow_id", "idx"), if_not_exists=True)
        db.table("findings").create(_FINDING_COLUMNS, pk="id", if_not_exists=True)
        db.table("events").create(_EVENT_COLUMNS, pk="id", if_not_exists=True)
        db.table("runs").create(_RUN_COLUMNS, pk="id", if_not_exists=True)
        db.table("users").create(_USER_COLUMNS, pk="name", if_not_exists=True)
        db.table("actions").create(_ACTION_COLUMNS, pk="id", if_not_exists=True)
        db.table("ended_sessions").create(_ENDED_SESSION_COLUMNS, pk="session", if_not_exists=True)
        db.table("api_clients").create(_API_CLIENT_COLUMNS, pk="client_id", if_not_exists=True)
        db.table("api_tokens").create(_API_TOKEN_COLUMNS, pk="token_hash", if_not_exists=True)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_api_clients_name ON api_clients (name)")
        db.table("api_deposits").create(_API_DEPOSIT_COLUMNS, pk="flow_id", if_not_exists=True)
        # the claim's look-up: inbox names of a group (each holds its flow id: unique in the workspace)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_api_deposits_inbox ON api_deposits (inbox_name, sender)")
        db.table("api_webhooks").create(_API_WEBHOOK_COLUMNS, pk="webhook_id", if_not_exists=True)
        db.table("api_webhook_events").create(_API_WEBHOOK_EVENT_COLUMNS, pk="id", if_not_exists=True)
        db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS idx_api_webhook_events_key ON api_webhook_events (webhook_id, flow_id)"
        )
        db.table("lifecycle").create(_LIFECYCLE_COLUMNS, pk="id", if_not_exists=True)
        db.table("notifications").create(_NOTIFICATION_COLUMNS, pk="id", if_not_exists=True)
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_notifications_key ON notifications (key)")
        db.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_lifecycle_source ON lifecycle (source_flow_id, source_idx)")
        # its ids begin with the id of the flow that wrote it: that flow's rows are a range of the primary key, and
        # the table is that key's B-tree (two writes per message with the search's index, not four)
        types = {str: "TEXT", int: "INTEGER"}
        declared = ", ".join(f"{name} {types[kind]}" for name, kind in _API_MESSAGE_COLUMNS.items())
        db.execute(f"CREATE TABLE IF NOT EXISTS api_messages ({declared}, PRIMARY KEY (message_id)) WITHOUT ROWID")
        for name, spec in (
            ("flows", _FLOW_COLUMNS),
            ("documents", _DOCUMENT_COLUMNS),
            ("findings", _FINDING_COLUMNS),
            ("events", _EVENT_COLUMNS),
            ("runs", _RUN_COLUMNS),
        ):  # a store made by an older edi gets the columns added since
            existing = db.table(name)
            for column, kind in spec.items():
                if column not in existing.columns_dict:
                    existing.add_column(column, kind)
        if "invoices" not in db.table_names():  # a store made by an older edi: the keys of its accepted invoices
            db.table("invoices").create(
                _INVOICE_COLUMNS, pk=("seller_key", "invoice_number", "kind", "year"), if_not_exists=True
            )
            db.execute(
                "INSERT OR IGNORE INTO invoices SELECT seller_key, invoice_number, kind, substr(issue_date, 1, 4), "
                "flow_id, idx FROM documents WHERE status = '200' AND seller_key IS NOT NULL "
                "AND invoice_number IS NOT NULL AND kind IS NOT NULL AND issue_date IS NOT NULL ORDER BY flow_id, idx"
            )
        for index_table, columns in (
            ("flows", ["sender", "sha256"]),
            ("flows", ["received_at"]),
            ("flows", ["claimed_by"]),
            ("invoices", ["flow_id"]),
            ("findings", ["flow_id"]),
            ("events", ["flow_id"]),
            # the console's lists, newest first within a filter (edi.browse): keyset scans, no sort
            ("flows", ["sender", "flow_id"]),
            ("flows", ["sha256"]),
            ("flows", ["flow_id", "file_name"]),  # a file name part: this index is scanned, not the table (1/4 of it)
            ("documents", ["invoice_number"]),
            ("documents", ["seller_id"]),
            ("documents", ["buyer_id"]),
            ("actions", ["target"]),
            # /metrics counts these on each scrape from the index alone (a table scan is 0.2 s per 300k rows); few
            # distinct leading values and growing rowids: an insert appends near one of a few hot pages
            ("documents", ["status", "reason"]),
            ("findings", ["severity", "rule"]),
            # the same, and the dashboard's counts (edi.browse.dashboard): each count a range of one of these, read
            # without the table and without sorting (the flows list's status, queue and rule filters use them too)
            ("flows", ["status", "flow_id", "documents_total", "documents_accepted"]),
            ("flows", ["sender", "status", "flow_id", "documents_total", "documents_accepted"]),
            ("documents", ["recipient", "flow_id", "status"]),
            ("documents", ["queue", "flow_id"]),
            ("findings", ["rule", "flow_id", "severity"]),
            ("lifecycle", ["flow_id", "idx", "state", "id"]),  # an invoice's history, and its current status
            ("lifecycle", ["status", "state", "flow_id"]),
            # the dashboard's invoices still waiting for their recipient (edi.browse.lifecycle): a range of flow
            # ids, each invoice's statuses side by side, counted without the table
            ("lifecycle", ["state", "flow_id", "idx", "status"]),
            ("notifications", ["state", "next_attempt_at"]),  # what is due
            # the rows of one mail; and (mail NULL: digest rows not in a digest yet) those of days that ended
            ("notifications", ["mail", "day"]),
            ("api_tokens", ["client_id"]),
            ("api_messages", ["sender", "updated_at", "message_id"]),  # the API's search: a keyset range per sender
            ("api_deposits", ["sender", "tracking_id"]),  # the API's search by trackingId
            ("api_webhooks", ["client_id"]),
            ("api_webhook_events", ["state", "next_attempt_at"]),  # what is due
        ):
            db.table(index_table).create_index(columns, if_not_exists=True)
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_flows_api ON flows (sender, {API_ACK_STATUS}, updated_at, flow_id)")
        if "status_flow" not in db.table("flows").columns_dict:  # a new store, or one made by an older edi
            with self._transaction():  # one process adds it (~4 s per 1,000,000 flows, once); another waits
                if "status_flow" not in {row[1] for row in db.execute("PRAGMA table_info(flows)")}:
                    db.execute("ALTER TABLE flows ADD COLUMN status_flow INTEGER NOT NULL DEFAULT 0")
                    db.execute(f"UPDATE flows SET status_flow = 1 WHERE {STATUS_FLOW_OF.format(flow='flows.flow_id')}")
        for name, body in _STATUS_FLOW_TRIGGERS.items():
            yes, old = STATUS_FLOW_OF.format(flow="NEW.flow_id"), STATUS_FLOW_OF.format(flow="OLD.flow_id")
            db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body.format(yes=yes, old=old)}")
        db.execute(
            "CREATE INDEX IF NOT EXISTS idx_flows_api_type ON flows "
            f"(sender, {API_ACK_STATUS}, status_flow, updated_at, flow_id)"
        )
        # served by the wider ones above (same leading columns): each was one more write per row
        for narrower in (
            "idx_flows_status",
            "idx_flows_status_flow_id",
            "idx_documents_queue",
            "idx_findings_rule_flow_id",
        ):
            db.execute(f"DROP INDEX IF EXISTS {narrower}")
        # duplicates are found through the invoices table now: this index was one more random write per document
        db.execute("DROP INDEX IF EXISTS idx_documents_seller_key_invoice_number")
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db.conn, self._writers)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction on the store, in turn with every other writer (for :mod:`edi.accounts`)."""
        return self._transaction()

    # -- writes --------------------------------------------------------------------------------------------------

    def record_claims(self, flows: Sequence[Mapping[str, Any]], at: datetime) -> set[str]:
        """Record flows about to be claimed (before their file is renamed into the spool), in one transaction;
        a flow already recorded keeps its row and gets no new event (recovery, requeue). Returns the ids that were
        recorded already (a deposit's file another process is claiming under the deposit's id)."""
        if not flows:
            return set()
        fault_point("tracking.record_claims")
        status, when = str(FlowStatus.RECEIVED), iso(at)
        columns = list(_FLOW_COLUMNS)
        with self._transaction():
            known = self._known([str(f["flow_id"]) for f in flows])
            new = [f for f in flows if f["flow_id"] not in known]
            rows = [[*(f.get(c) for c in columns)] for f in new]
            for row in rows:
                row[columns.index("status")], row[columns.index("updated_at")] = status, when
            self.db.conn.executemany(
                f"INSERT INTO flows ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", rows
            )
            self.db.conn.executemany(
                "INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, NULL, ?, ?, ?)",
                [[f["flow_id"], when, status, "claimed from the inbox"] for f in new],
            )
        return known

    def _known(self, flow_ids: Sequence[str]) -> set[str]:
        """Which of these flows have a row (a query per 500 ids, not one per id)."""
        known: set[str] = set()
        for chunk, marks in in_chunks(flow_ids):
            known.update(
                str(r[0]) for r in self.db.conn.execute(f"SELECT flow_id FROM flows WHERE flow_id IN ({marks})", chunk)
            )
        return known

    def record_received(self, flow: Mapping[str, Any], at: datetime) -> None:
        """Record one claimed flow (see :meth:`record_claims`)."""
        self.record_claims([flow], at)

    def record_deposit(self, row: Mapping[str, Any]) -> None:
        """Record a flow deposited through the API (its ``api_deposits`` row), durably: the transaction's commit
        waits for the disk (``synchronous = FULL`` for it), since the file is renamed into the inbox only then."""
        columns = list(_API_DEPOSIT_COLUMNS)
        self.db.execute("PRAGMA synchronous = FULL")
        try:
            with self._transaction():
                self.db.conn.execute(
                    f"INSERT INTO api_deposits ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                    [row.get(c) for c in columns],
                )
        finally:
            self.db.execute("PRAGMA synchronous = NORMAL")

    def forget_deposit(self, flow_id: str) -> None:
        """Remove the row of a deposit refused after it was recorded (its file never reached the inbox)."""
        with self._transaction():
            self.db.conn.execute("DELETE FROM api_deposits WHERE flow_id = ?", [flow_id])

    def deposit(self, flow_id: str) -> dict[str, Any] | None:
        """The ``api_deposits`` row of a flow, None for a flow that was not deposited through the API."""
        return next(iter(self.db.query("SELECT * FROM api_deposits WHERE flow_id = ?", [flow_id])), None)

    def deposits_named(self, files: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
        """Which of these (sender, inbox name) files were deposited through the API: for each, its flow id and the
        name the client gave (a query per 500 files, on the inbox-name index)."""
        wanted = set(files)
        found: dict[tuple[str, str], tuple[str, str]] = {}
        names = sorted({name for _, name in files if utf8_text(name)})  # a deposit's inbox name is always UTF-8
        for chunk, marks in in_chunks(names):
            rows = self.db.conn.execute(
                "SELECT sender, inbox_name, flow_id, name FROM api_deposits INDEXED BY idx_api_deposits_inbox "
                f"WHERE inbox_name IN ({marks})",
                chunk,
            )
            for sender, inbox_name, flow_id, name in rows:
                if (sender, inbox_name) in wanted:
                    found[(str(sender), str(inbox_name))] = (str(flow_id), str(name))
        return found

    def forget_claims(self, flow_ids: Sequence[str]) -> None:
        """Remove the rows of claims that did not happen (another process renamed the file first)."""
        if not flow_ids:
            return
        with self._transaction():
            for table in ("events", "flows"):
                self.db.conn.executemany(
                    f"DELETE FROM {table} WHERE flow_id = ? AND flow_id IN "
                    "(SELECT flow_id FROM flows WHERE status = ? AND processed_at IS NULL)",
                    [[f, str(FlowStatus.RECEIVED)] for f in flow_ids],
                )

    def record_digests(self, digests: Sequence[tuple[str, int, str | None]]) -> None:
        """Store (flow id, size, SHA-256) of claimed flows, in one transaction, and note for each the first flow in
        which its sender deposited the same bytes (what :meth:`earlier_flow` then answers without a query). A
        SHA-256 of None (a file refused by its size, never read) matches nothing."""
        ids = [f for f, _, _ in digests]
        with self._transaction():
            self.db.conn.executemany(
                "UPDATE flows SET size = ?, sha256 = ? WHERE flow_id = ?", [[z, h, f] for f, z, h in digests]
            )
            firsts: dict[tuple[str, str], str] = {}
            for chunk, marks in in_chunks(ids):
                rows = self.db.conn.execute(
                    "SELECT g.sender, g.sha256, (SELECT MIN(o.flow_id) FROM flows o INDEXED BY idx_flows_sender_sha256 "
                    "WHERE o.sender = g.sender "
                    f"AND o.sha256 = g.sha256) FROM flows g WHERE g.flow_id IN ({marks})",
                    chunk,
                )
                firsts.update(((str(sender), str(sha)), str(first)) for sender, sha, first in rows if first)
        self._firsts = firsts

    def claims_of(self, hand: str) -> list[str]:
        """The flows a process (by its hand's name) recorded as claimed and took to no outcome."""
        rows = self.db.execute(
            "SELECT flow_id FROM flows WHERE claimed_by = ? AND status = ?", [hand, str(FlowStatus.RECEIVED)]
        ).fetchall()
        return [str(r[0]) for r in rows]

    def final_flows_of_processes(self, pids: Collection[int], since: datetime) -> list[dict[str, Any]]:
        """The flows claimed by the processes of these pids (their hands are named ``<pid>-<random>``) and
        received since ``since`` that reached a final status: flow_id, sender, file_name, status, documents_total,
        documents_accepted (what a pass counts when the outcomes of a dead pool's tasks never came back)."""
        marks = ", ".join("?" for _ in FINAL)
        rows: list[dict[str, Any]] = []
        for pid in sorted(pids):  # a range of the claimed_by index per process: '-' sorts just before '.'
            rows += self.db.query(
                "SELECT flow_id, sender, file_name, status, documents_total, documents_accepted FROM flows "
                "INDEXED BY idx_flows_claimed_by WHERE claimed_by >= ? AND claimed_by < ? AND received_at >= ? "
                f"AND status IN ({marks})",
                [f"{pid}-", f"{pid}.", iso(since), *FINAL],
            )
        return rows

    def claimed(self, flow_id: str) -> dict[str, Any] | None:
        """What was recorded when a flow was claimed (its row), None if nothing was."""
        return next(iter(self.db.query("SELECT * FROM flows WHERE flow_id = ?", [flow_id])), None)

    def reserve_invoice(self, key: tuple[str, str, str, str], flow_id: str, idx: int) -> tuple[str, int]:
        """Hold an invoice key (seller key, number, kind, year) for a document about to be accepted; return who
        holds it: this document, or the one that got it first (then this one is a duplicate)."""
        return self.reserve_invoices([(key, flow_id, idx)])[0]

    def reserve_invoices(self, asks: Sequence[tuple[tuple[str, str, str, str], str, int]]) -> list[tuple[str, int]]:
        """Hold the keys of documents about to be accepted, in order, in one transaction: for each (key, flow id,
        index), who holds the key now (that document, or the one that got it first). Processes that decide at the
        same time cannot both get a key (the transaction holds the write lock)."""
        select = (
            "SELECT flow_id, idx FROM invoices WHERE seller_key = ? AND invoice_number = ? AND kind = ? AND year = ?"
        )
        with self._transaction():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO invoices VALUES (?, ?, ?, ?, ?, ?)", [(*key, f, i) for key, f, i in asks]
            )
            rows = [self.db.conn.execute(select, key).fetchone() for key, _, _ in asks]
        return [(str(row[0]), int(row[1])) for row in rows]

    def find_invoices(self, seller: str, number: str, year: str) -> list[tuple[str, InvoiceRef]]:
        """The accepted invoices (status 200) with this seller key, number (BT-1) and year (BT-2): the kind of each
        and what was recorded of it (the flow's sender, its recipient, ...), oldest first."""
        rows = self.db.conn.execute(
            "SELECT i.kind, i.flow_id, i.idx, f.sender, d.invoice_number, d.seller_id, d.issue_date, d.type_code, "
            "d.recipient, d.buyer_id FROM invoices i JOIN documents d ON d.flow_id = i.flow_id AND d.idx = i.idx "
            "JOIN flows f ON f.flow_id = i.flow_id WHERE i.seller_key = ? AND i.invoice_number = ? AND i.year = ? "
            "AND d.status = '200' ORDER BY i.flow_id, i.idx",
            [seller, number, year],
        ).fetchall()
        return [(str(r[0]), InvoiceRef(str(r[1]), int(r[2]), str(r[3]), *r[4:])) for r in rows]

    def hold_statuses(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """Check lifecycle statuses about to be accepted against their invoices' history (recorded and held rows,
        those of earlier ``rows`` included) and hold the new ones (``state`` "held"), in order, in one transaction
        under the writers' lock: for each, (:class:`edi.lifecycle.rules.Order`, message). A status whose source
        (status flow and document) holds a row already gets it back (a flow decided again after a crash or a
        requeue), as the same status; a row of that source saying anything else is replaced."""
        conn = self.db.conn
        columns = [c for c in _LIFECYCLE_COLUMNS if c not in ("id", "recorded_at", "state")]
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO lifecycle ({', '.join(columns)}, state) VALUES ({marks}, 'held')"
        verdicts: list[tuple[str, str]] = []
        with self._transaction():
            for row in rows:
                own = conn.execute(
                    "SELECT id, flow_id, idx, status FROM lifecycle WHERE source_flow_id = ? AND source_idx = ?",
                    [row["source_flow_id"], row["source_idx"]],
                ).fetchone()
                if own is not None:
                    if tuple(own[1:]) == (row["flow_id"], row["idx"], row["status"]):
                        verdicts.append((str(Order.NEW), ""))
                        continue
                    conn.execute("DELETE FROM lifecycle WHERE id = ?", [own[0]])
                history = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT status FROM lifecycle WHERE flow_id = ? AND idx = ? ORDER BY id",
                        [row["flow_id"], row["idx"]],
                    )
                ]
                verdict, message = order(history, str(row["status"]))
                if verdict is Order.NEW:
                    conn.execute(insert, [row.get(c) for c in columns])
                verdicts.append((str(verdict), message))
        return verdicts

    def relays_of(self, flow_id: str) -> list[tuple[str, str]]:
        """The CDAR messages a status flow's lifecycle rows name: (the invoice's sender, the file name) each."""
        rows = self.db.conn.execute(
            "SELECT f.sender, l.relay FROM lifecycle l JOIN flows f ON f.flow_id = l.flow_id "
            "WHERE l.source_flow_id = ? AND l.relay IS NOT NULL ORDER BY l.source_idx",
            [flow_id],
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def record_outcome(self, ack: Mapping[str, Any], at: datetime) -> None:
        """Store what the final acknowledgement says, in one transaction, with one event per status."""
        self.record_outcomes([ack], at)

    def record_outcomes(self, acks: Sequence[Mapping[str, Any]], at: datetime) -> None:
        """Store what final acknowledgements say, all in one transaction, with one event per status; an invoice
        key held by a document that was not accepted after all is let go; the lifecycle statuses a status flow held
        are recorded (those its acknowledgement relays), or let go (any other). With a :attr:`notifications` policy,
        the notifications they call for are queued in the same transaction (an event queued already is not queued
        again); with a :attr:`webhooks` policy, the webhook events too."""
        if not acks:
            return
        queued = self.notifications.rows(acks, at) if self.notifications is not None else None
        when = iso(at)
        conn = self.db.conn
        columns = [c for c in _FLOW_COLUMNS if c not in ("flow_id", "claimed_by", "raw_name")]
        flows: list[list[Any]] = []
        documents: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        events: list[list[Any]] = []
        releases: list[tuple[str, list[int]]] = []
        statuses: list[tuple[str, list[int]]] = []
        messages: list[list[Any]] = []
        for ack in acks:
            flow_id = ack["flow_id"]
            flows.append([*(when if c == "updated_at" else ack.get(c) for c in columns), flow_id])
            messages += _message_rows(ack, when)
            findings += [_finding_row(flow_id, 0, f) for f in ack["findings"]]
            for doc in ack["documents"]:
                documents.append(_document_row(flow_id, doc))
                findings += [_finding_row(flow_id, doc["index"], f) for f in doc["findings"]]
                events.append([flow_id, doc["index"], when, doc["status"], doc.get("reason") or ""])
            accepted = f"{ack['documents_accepted']}/{ack['documents_total']} accepted"
            events.append([flow_id, None, when, ack["status"], accepted])
            if not ack["documents"] or any(d["status"] != "200" for d in ack["documents"]):
                releases.append((flow_id, [d["index"] for d in ack["documents"] if d["status"] == "200"]))
            if any(d.get("lifecycle") for d in ack["documents"]):  # a status flow: its held statuses
                relayed = [d["index"] for d in ack["documents"] if _relayed(d)]
                statuses.append((flow_id, relayed))
        with self._transaction():
            assignments = ", ".join(f"{c} = ?" for c in columns)
            changes = conn.total_changes
            conn.executemany(f"UPDATE flows SET {assignments} WHERE flow_id = ?", flows)
            if conn.total_changes - changes != len(flows):
                # some were never recorded as claimed (a store restored from an older backup): recorded now
                known = self._known([flow[-1] for flow in flows])
                conn.executemany(
                    f"INSERT INTO flows ({', '.join(columns)}, flow_id) VALUES ({', '.join('?' for _ in columns)}, ?)",
                    [flow for flow in flows if flow[-1] not in known],
                )
            ids = [[flow[-1]] for flow in flows]
            conn.executemany("DELETE FROM documents WHERE flow_id = ?", ids)  # an earlier attempt's, if any
            conn.executemany("DELETE FROM findings WHERE flow_id = ?", ids)
            conn.executemany(_DELETE_MESSAGES, [[f, f] for (f,) in ids])
            _insert_many(conn, "documents", documents)
            _insert_many(conn, "findings", findings)
            conn.executemany("INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, ?, ?, ?, ?)", events)
            for flow_id, kept in releases:
                conn.execute(
                    f"DELETE FROM invoices WHERE flow_id = ? AND idx NOT IN ({', '.join('?' for _ in kept)})",
                    [flow_id, *kept],
                )
            for flow_id, kept in statuses:  # recorded with the outcome; a status not accepted holds nothing
                conn.execute(
                    f"DELETE FROM lifecycle WHERE source_flow_id = ? AND source_idx NOT IN "
                    f"({', '.join('?' for _ in kept)})",
                    [flow_id, *kept],
                )
                conn.execute(
                    "UPDATE lifecycle SET state = 'recorded', recorded_at = ? WHERE source_flow_id = ? "
                    "AND state = 'held'",
                    [when, flow_id],
                )
            conn.executemany(_INSERT_MESSAGE, messages)
            if queued:
                _insert_many(conn, "notifications", queued, "INSERT OR IGNORE")
            if self.webhooks is not None:
                hooked = self.webhooks.rows(conn, acks, at)
                if hooked:
                    _insert_many(conn, "api_webhook_events", hooked, "INSERT OR IGNORE")

    def record_failed(self, flow: Mapping[str, Any], at: datetime, detail: str) -> None:
        """Mark a flow as failed for our own reason (kept for requeue), recording it first if it failed so early
        that it was never recorded as received (``flow`` gives at least flow_id, sender, file_name, received_at)."""
        row = {k: flow.get(k) for k in _FLOW_COLUMNS} | {"status": str(FlowStatus.FAILED), "updated_at": iso(at)}
        with self._transaction():
            self.db.execute(
                f"INSERT OR IGNORE INTO flows ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )
            self.db.execute("DELETE FROM invoices WHERE flow_id = ?", [flow["flow_id"]])  # nothing of it accepted
            self.db.execute("DELETE FROM lifecycle WHERE source_flow_id = ?", [flow["flow_id"]])  # nor of its statuses
            self.db.execute(_DELETE_MESSAGES, [flow["flow_id"]] * 2)  # its messages are withdrawn
        self._set_status(str(flow["flow_id"]), FlowStatus.FAILED, at, detail)

    def record_requeued(self, flow_id: str, at: datetime) -> None:
        """Mark a failed flow as back in the spool."""
        self._set_status(flow_id, FlowStatus.RECEIVED, at, "requeued by an operator")

    def _set_status(self, flow_id: str, status: FlowStatus, at: datetime, detail: str) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE flows SET status = ?, updated_at = ? WHERE flow_id = ?", [str(status), iso(at), flow_id]
            )
            self._event(flow_id, None, at, status, detail)

    def _event(self, flow_id: str, idx: int | None, at: datetime, status: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, ?, ?, ?, ?)",
            [flow_id, idx, iso(at), str(status), detail],
        )

    def record_run(self, job: str, started: datetime, finished: datetime, outcome: str, detail: str) -> None:
        """Keep the outcome of one scheduled job run."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO runs (job, started_at, finished_at, outcome, detail) VALUES (?, ?, ?, ?, ?)",
                [job, iso(started), iso(finished), outcome, detail],
            )

    @_reading
    def final_flows_before(self, cutoff: datetime) -> list[dict[str, Any]]:
        """Flows whose final outcome was reached before ``cutoff`` (never one still in progress or failed)."""
        marks = ", ".join("?" for _ in FINAL)
        return list(
            self.db.query(
                "SELECT flow_id, sender, file_name, raw_name, received_at, processed_at, documents_total FROM flows "
                f"WHERE status IN ({marks}) AND processed_at < ? ORDER BY processed_at",
                [*FINAL, iso(cutoff)],
            )
        )

    def export(self, flow_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every row kept about these flows (flow, documents, findings, events), one dict per flow."""
        for flow_id in flow_ids:
            yield self.flow(flow_id)

    def forget(self, flow_ids: Sequence[str]) -> int:
        """Delete every row about these flows, in one transaction; return how many flows went."""
        if not flow_ids:
            return 0
        with self._transaction():
            self.db.conn.executemany(_DELETE_MESSAGES, [[f, f] for f in flow_ids])
            for table in ("findings", "documents", "events", "invoices", "lifecycle", "api_deposits", "flows"):
                self.db.conn.executemany(f"DELETE FROM {table} WHERE flow_id = ?", [[f] for f in flow_ids])
        return len(flow_ids)

    def meta(self, key: str) -> str | None:
        """A value of the store's ``meta`` table (``schema_version``, ``workspace_id``, ``rebuilt_at``), if set."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def keep_meta(self, key: str, value: str) -> str:
        """Set a ``meta`` value unless it has one already; return the value it has now (two processes setting it
        at once agree on the first one's)."""
        with self._transaction():
            self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", [key, value])
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return str(row[0])

    def restore_answered(self, acks: Sequence[Mapping[str, Any]], at: datetime) -> int:
        """Write what final acknowledgements read back from the workspace say (``edi store rebuild``), in one
        transaction: the flow (with ``raw_name`` when the mapping has it), its documents and findings, the keys of
        its accepted invoices (kept by the first flow that has one: give the flows in id order), the lifecycle
        statuses it relayed (a status flow; recorded as of its ``processed_at``), and the events its
        acknowledgement tells, then one saying where it was rebuilt from (``origin`` in the mapping). Returns how
        many invoice keys were recorded."""
        flows, documents, findings, events, keys = [], [], [], [], []
        statuses: list[list[Any]] = []
        messages: list[list[Any]] = []
        for ack in acks:
            flow_id, processed = ack["flow_id"], ack["processed_at"]
            messages += _message_rows(ack, processed)
            flows.append({c: ack.get(c) for c in _FLOW_COLUMNS} | {"updated_at": processed, "claimed_by": None})
            findings += [_finding_row(flow_id, 0, f) for f in ack["findings"]]
            events.append([flow_id, None, ack["received_at"], str(FlowStatus.RECEIVED), "claimed from the inbox"])
            for doc in ack["documents"]:
                documents.append(_document_row(flow_id, doc))
                findings += [_finding_row(flow_id, doc["index"], f) for f in doc["findings"]]
                events.append([flow_id, doc["index"], processed, doc["status"], doc.get("reason") or ""])
                year = (doc.get("issue_date") or "")[:4]
                key = (doc.get("seller_key"), doc.get("invoice_number"), doc.get("kind"), year)
                if doc["status"] == "200" and all(key):
                    keys.append([*key, flow_id, doc["index"]])
                if _relayed(doc):  # a recipient's status, recorded and relayed: the invoice's history
                    statuses.append(_lifecycle_row(ack, doc))
            accepted = f"{ack.get('documents_accepted')}/{ack.get('documents_total')} accepted"
            events.append([flow_id, None, processed, ack["status"], accepted])
            events.append([flow_id, None, iso(at), ack["status"], f"rebuilt from {ack.get('origin') or 'its ack'}"])
        conn = self.db.conn
        with self._transaction():
            _insert_many(conn, "flows", flows)
            _insert_many(conn, "documents", documents)
            _insert_many(conn, "findings", findings)
            conn.executemany("INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, ?, ?, ?, ?)", events)
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO invoices VALUES (?, ?, ?, ?, ?, ?)", keys)
            restored = conn.total_changes - before
            columns = [c for c in _LIFECYCLE_COLUMNS if c != "id"]
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f"INSERT OR IGNORE INTO lifecycle ({', '.join(columns)}) VALUES ({marks})", statuses)
            conn.executemany(_INSERT_MESSAGE, messages)
            return restored

    def restore_failed(self, flows: Sequence[Mapping[str, Any]], at: datetime) -> None:
        """Write flows found in ``failed/`` (``edi store rebuild``: what their ``meta.json`` and payload say, and
        ``origin``) as failed, waiting for ``edi requeue``, in one transaction."""
        failed, when = str(FlowStatus.FAILED), iso(at)
        rows = [{c: f.get(c) for c in _FLOW_COLUMNS} | {"status": failed, "updated_at": when} for f in flows]
        events = []
        for flow in flows:
            events.append(
                [flow["flow_id"], None, flow.get("received_at"), str(FlowStatus.RECEIVED), "claimed from the inbox"]
            )
            events.append([flow["flow_id"], None, when, failed, f"rebuilt from {flow.get('origin') or 'failed/'}"])
        conn = self.db.conn
        with self._transaction():
            _insert_many(conn, "flows", rows)
            conn.executemany("INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, ?, ?, ?, ?)", events)

    # -- reads ---------------------------------------------------------------------------------------------------

    @_reading
    def read(self, query: Callable[[sqlite3.Connection], _R]) -> _R:
        """What ``query`` reads on the store's connection (a SQLite error becomes a WorkspaceError naming the
        store): a read for an operator that lives beside the table it reads (edi.notify.outbox)."""
        return query(self.db.conn)

    @_reading
    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The last run of each scheduled job."""
        rows = self.db.query("SELECT * FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY job)")
        return {r["job"]: r for r in rows}

    @_reading
    def day_report(self, start: datetime, end: datetime) -> dict[str, Any]:
        """What happened to the flows received in [start, end): counts, reasons, and what needs an operator."""
        window = [iso(start), iso(end)]
        where = "received_at >= ? AND received_at < ?"
        by_status = {
            r["status"]: r["n"]
            for r in self.db.query(f"SELECT status, count(*) AS n FROM flows WHERE {where} GROUP BY status", window)
        }
        by_sender = list(
            self.db.query(
                f"SELECT sender, status, count(*) AS flows, coalesce(sum(documents_total), 0) AS documents, "
                f"coalesce(sum(documents_accepted), 0) AS accepted FROM flows WHERE {where} "
                "GROUP BY sender, status ORDER BY sender, status",
                window,
            )
        )
        reasons = list(
            self.db.query(
                "SELECT d.reason AS reason, count(*) AS documents FROM documents d JOIN flows f USING (flow_id) "
                "WHERE f.received_at >= ? AND f.received_at < ? AND d.reason IS NOT NULL "
                "GROUP BY d.reason ORDER BY documents DESC, reason",
                window,
            )
        )
        rules = list(
            self.db.query(
                "SELECT x.layer AS layer, x.rule AS rule, count(*) AS findings FROM findings x "
                "JOIN flows f USING (flow_id) WHERE f.received_at >= ? AND f.received_at < ? "
                "AND x.severity = 'fatal' AND x.rule IS NOT NULL GROUP BY x.layer, x.rule "
                "ORDER BY findings DESC, rule LIMIT 20",
                window,
            )
        )
        attention = list(
            self.db.query(
                "SELECT flow_id, sender, file_name, status, received_at FROM flows WHERE status IN (?, ?) "
                "ORDER BY received_at",
                [str(FlowStatus.FAILED), str(FlowStatus.RECEIVED)],
            )
        )
        return {
            "flows": sum(by_status.values()),
            "by_status": by_status,
            "by_sender": by_sender,
            "reasons": reasons,
            "top_rules": rules,
            "needing_attention": attention,
        }

    def earlier_flow(self, sender: str, sha256: str, flow_id: str) -> str | None:
        """The first flow claimed before this one (ids sort by claim time) in which ``sender`` deposited these same
        bytes, if any."""
        first = self._firsts.get((sender, sha256))
        if first is not None:  # noted when the digest was recorded
            return first if first < flow_id else None
        row = self.db.execute(
            "SELECT flow_id FROM flows INDEXED BY idx_flows_sender_sha256 "
            "WHERE sender = ? AND sha256 = ? AND flow_id < ? ORDER BY flow_id LIMIT 1",
            [sender, sha256, flow_id],
        ).fetchone()
        return row[0] if row else None

    def earlier_invoice(self, seller: str, number: str, kind: str, year: str, flow_id: str) -> tuple[str, int] | None:
        """The document of another flow that holds (accepted, or about to be) this seller key, number, kind and
        year."""
        row = self.db.conn.execute(  # the bare connection: one lookup per document
            "SELECT flow_id, idx FROM invoices WHERE seller_key = ? AND invoice_number = ? AND kind = ? "
            "AND year = ? AND flow_id != ?",
            [seller, number, kind, year, flow_id],
        ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def status(self, flow_id: str) -> str | None:
        """The current status of a flow, None if unknown."""
        row = self.db.execute("SELECT status FROM flows WHERE flow_id = ?", [flow_id]).fetchone()
        return row[0] if row else None

    @_reading
    def flows(
        self,
        *,
        sender: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Flows, newest first, filtered."""
        where, args = [], []
        if sender:
            where.append("sender = ?")
            args.append(sender)
        if status:
            where.append("status = ?")
            args.append(status)
        if since:
            where.append("received_at >= ?")
            args.append(iso(since))
        sql = "SELECT * FROM flows" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY received_at DESC, flow_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return list(self.db.query(sql, args))

    @_reading
    def resolve(self, prefix: str) -> str:
        """The full id of the one flow whose id starts with ``prefix`` (an empty prefix names none)."""
        if not prefix:
            raise UnknownFlowError("an empty flow id names no flow: give the id, or the start of it")
        rows = [
            r[0]
            for r in self.db.execute(
                "SELECT flow_id FROM flows WHERE flow_id >= ? AND flow_id < ? ORDER BY flow_id LIMIT 3",
                [prefix, prefix + "\U0010ffff"],
            ).fetchall()
        ]
        if prefix in rows:
            return str(prefix)
        if not rows:
            raise UnknownFlowError(f"no flow {prefix!r}")
        if len(rows) > 1:
            raise UnknownFlowError(
                f"{prefix!r} matches several flows ({', '.join(rows[:2])}, ...): give more of the id"
            )
        return str(rows[0])

    @_reading
    def flow(self, flow_id: str) -> dict[str, Any]:
        """One flow with its documents (each with its lifecycle timeline), findings and history."""
        flow_id = self.resolve(flow_id)
        row = next(self.db.query("SELECT * FROM flows WHERE flow_id = ?", [flow_id]))
        findings = list(self.db.query("SELECT * FROM findings WHERE flow_id = ? ORDER BY id", [flow_id]))
        documents = list(self.db.query("SELECT * FROM documents WHERE flow_id = ? ORDER BY idx", [flow_id]))
        statuses = by_document(
            self.db.query("SELECT * FROM lifecycle WHERE flow_id = ? AND state = ? ORDER BY id", [flow_id, RECORDED])
        )
        for doc in documents:
            for column in _LIST_COLUMNS:
                doc[column] = json.loads(doc[column]) if doc[column] else []
            doc["findings"] = [_strip(f) for f in findings if f["idx"] == doc["idx"]]
            doc["lifecycle"] = timeline(doc, row["processed_at"], statuses.get(doc["idx"], []))
        row["findings"] = [_strip(f) for f in findings if f["idx"] == 0]
        row["documents"] = documents
        row["events"] = list(
            self.db.query("SELECT at, idx, status, detail FROM events WHERE flow_id = ? ORDER BY id", [flow_id])
        )
        return row

    @_reading
    def document(self, flow_id: str, idx: int) -> dict[str, Any] | None:
        """One document's row, with its flow's ``sender``; None when there is no such document."""
        rows = self.db.query(
            "SELECT d.*, f.sender FROM documents AS d JOIN flows AS f ON f.flow_id = d.flow_id "
            "WHERE d.flow_id = ? AND d.idx = ?",
            [flow_id, idx],
        )
        return next(rows, None)

    @_reading
    def accepted_numbered(self, number: str, seller: str | None = None, limit: int = 6) -> list[dict[str, Any]]:
        """The accepted documents (status 200) whose invoice number is ``number`` (and whose seller id is ``seller``,
        when given), with their flow's ``sender``: at most ``limit``, oldest first."""
        where = "d.invoice_number = ? AND d.status = '200'" + (" AND d.seller_id = ?" if seller else "")
        return list(
            self.db.query(
                "SELECT d.*, f.sender FROM documents AS d JOIN flows AS f ON f.flow_id = d.flow_id "
                f"WHERE {where} ORDER BY d.flow_id, d.idx LIMIT ?",
                [number, *([seller] if seller else []), limit],
            )
        )

    @_reading
    def recorded_statuses(self, flow_id: str, idx: int) -> list[str]:
        """An invoice's recorded lifecycle statuses (after edi's decision), oldest first."""
        rows = self.db.conn.execute(
            "SELECT status FROM lifecycle WHERE flow_id = ? AND idx = ? AND state = 'recorded' ORDER BY id",
            [flow_id, idx],
        )
        return [str(row[0]) for row in rows]

    @_reading
    def document_count(self, flow_id: str) -> int:
        """How many documents the store holds for a flow."""
        return int(self.db.execute("SELECT count(*) FROM documents WHERE flow_id = ?", [flow_id]).fetchone()[0])

    @_reading
    def counts(self) -> dict[str, int]:
        """How many flows are in each status."""
        return {r["status"]: r["n"] for r in self.db.query("SELECT status, count(*) AS n FROM flows GROUP BY status")}


def utf8_text(name: str) -> bool:
    """Whether a file name is text SQLite can hold (not bytes that are not UTF-8, kept as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def in_chunks(ids: Sequence[str], size: int = 500) -> Iterator[tuple[Sequence[str], str]]:
    """``ids`` in chunks small enough for one ``IN (...)`` each, with the chunk's placeholders."""
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk, ", ".join("?" for _ in chunk)


def _insert_many(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]], verb: str = "INSERT") -> None:
    """Plain executemany: sqlite-utils' own insert would commit our open transaction early."""
    if not rows:
        return
    columns = list(rows[0])
    sql = f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    conn.executemany(sql, [[r.get(c) for c in columns] for r in rows])


def _document_row(flow_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document of an acknowledgement as its row (its list columns as JSON)."""
    row = {k: doc.get(k) for k in _DOCUMENT_COLUMNS if k not in ("flow_id", "idx")}
    row.update(flow_id=flow_id, idx=doc["index"])
    for column in _LIST_COLUMNS:
        value = doc.get(column)
        row[column] = json.dumps(value, ensure_ascii=False) if value else "[]"
    return row


def _lifecycle_row(ack: Mapping[str, Any], doc: Mapping[str, Any]) -> list[Any]:
    """The recorded lifecycle row (every column but ``id``) of a status a status flow's acknowledgement relayed."""
    status, invoice = doc["lifecycle"], doc["lifecycle"]["invoice"]
    return [
        invoice["flow_id"],
        invoice["index"],
        status["status"],
        status.get("reason"),
        status.get("text"),
        ack["sender"],
        status.get("set_at"),
        ack["processed_at"],
        ack["flow_id"],
        doc["index"],
        status["relay"],
        "recorded",
    ]


# the messages a flow's outcome wrote: <flow_id>.<nnnn>, a range of the primary key ('.' < '/')
_DELETE_MESSAGES = "DELETE FROM api_messages WHERE message_id > ? || '.' AND message_id < ? || '/'"
_INSERT_MESSAGE = (  # the sender: given, else the one of the flow named last (a relay's invoice)
    f"INSERT OR REPLACE INTO api_messages ({', '.join(_API_MESSAGE_COLUMNS)}) "
    "VALUES (?, coalesce(?, (SELECT sender FROM flows WHERE flow_id = ?)), ?, ?, ?, ?, ?)"
)
CDAR_SUFFIX = ".cdar.xml"


def _message_rows(ack: Mapping[str, Any], when: str) -> list[list[Any]]:
    """The ``api_messages`` rows of the CDAR messages a final acknowledgement names: edi's own (``cdar`` of the
    flow, or of each document) in its sender's folder, and the statuses it relayed to invoices' senders."""
    flow_id, sender = ack["flow_id"], ack["sender"]
    rows = []
    if ack.get("cdar"):  # the file refused whole: one message, index 0
        status = status_of(reasons_of(ack.get("findings") or [])) if ack.get("findings") else "501"
        rows.append([str(ack["cdar"]).removesuffix(CDAR_SUFFIX), sender, None, flow_id, 0, "cdar", status, when])
    for doc in ack["documents"]:
        if doc.get("cdar"):
            rows.append([str(doc["cdar"]).removesuffix(CDAR_SUFFIX), sender, None, flow_id, doc["index"], "cdar"])
            rows[-1] += [doc["status"], when]
        if _relayed(doc):
            lifecycle, invoice = doc["lifecycle"], doc["lifecycle"]["invoice"]
            name = str(lifecycle["relay"]).removesuffix(CDAR_SUFFIX)
            rows.append([name, invoice.get("sender"), invoice.get("flow_id"), flow_id, doc["index"], "relay"])
            rows[-1] += [lifecycle["status"], when]
    return rows


def _relayed(doc: Mapping[str, Any]) -> bool:
    """Whether a document of an acknowledgement is a status accepted, new, and relayed to its invoice's sender."""
    lifecycle = doc.get("lifecycle")
    return bool(doc["status"] == "200" and lifecycle and lifecycle.get("relay") and not lifecycle.get("known"))


def _finding_row(flow_id: str, idx: int, finding: Mapping[str, Any]) -> dict[str, Any]:
    return {k: finding.get(k) for k in _FINDING_COLUMNS if k not in ("id", "flow_id", "idx")} | {
        "flow_id": flow_id,
        "idx": idx,
    }


def _strip(finding: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in finding.items() if k not in ("id", "flow_id", "idx")}


def _fresh(path: Path) -> str | None:
    """Why the store at ``path`` holds nothing (it is missing, or 0 bytes long), None if it holds something."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "is missing"
    except OSError:  # SQLite says what is wrong when it opens it
        return None
    return "is empty (0 bytes)" if size == 0 else None


def _check_tables(conn: sqlite3.Connection, path: Path, create: bool) -> None:
    """Raise :class:`StoreError` unless ``path`` is an SQLite database with the store's tables (or, with
    ``create``, one with no table at all: a new store)."""
    try:
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise StoreError(f"the tracking store {path} is not an SQLite database ({exc})") from None
        raise
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if not tables and not create:
        raise StoreError(f"the tracking store {path} holds no tables")
    if tables and missing:
        raise StoreError(f"the tracking store {path} lacks its tables ({', '.join(missing)})")


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is not a database, or a damaged one (not busy, not unwritable)."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT")


def _writers_lock(path: Path) -> int | None:
    """A descriptor of the store's writers' lock file, made if missing; None when it cannot be opened (a read-only
    workspace: SQLite's own locking still applies)."""
    try:
        return os.open(f"{path}-writers", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection, holding the writers' lock (if any)
    from before BEGIN to after the end."""

    def __init__(self, conn: sqlite3.Connection, writers: int | None) -> None:
        self.conn = conn
        self.writers = writers
        self.locked = False

    def __enter__(self) -> None:
        if self.writers is not None:
            with contextlib.suppress(OSError):  # a filesystem without flock: SQLite's own locking still applies
                fcntl.flock(self.writers, fcntl.LOCK_EX)
                self.locked = True
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        try:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self.locked:
            assert self.writers is not None  # locked only through it
            self.locked = False
            with contextlib.suppress(OSError):
                fcntl.flock(self.writers, fcntl.LOCK_UN)
