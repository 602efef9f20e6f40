"""The webhooks' events: what is queued when final acknowledgements are recorded, and the outbox they wait in.

:class:`Policy` (set on the store by whoever processes flows, :func:`policy_for`) runs inside the transaction of
:meth:`edi.tracking.Tracking.record_outcomes`: for each acknowledgement it names the flows the standard knows of,

- the flow itself, for its sender: direction ``Out``, ``CustomerInvoice`` (``SupplierInvoiceLC`` for a recipient's
  status flow), acknowledgement ``Ok`` when integrated, wholly or partly, ``Error`` when rejected (as
  :mod:`edi.api.flows` maps it);
- each CDAR message edi wrote for a sender (its 200 / 213 / 501, a file refused whole; a status relayed to an
  invoice's sender, for that sender): flowId ``<flow_id>.<nnnn>``, ``CustomerInvoiceLC``, ``In``, ``Ok``;

and queues one ``api_webhook_events`` row per webhook of that sender's clients whose ``flowTypes`` /
``flowDirection`` / ``ackStatus`` match (a filter left out matches all). Where the acknowledgement alone cannot say
(a file refused whole may be of any type), the event is queued and the Flow JSON built at sending decides
(:mod:`edi.api.deliver`, which checks every event so): an event it does not match is ``skipped``, never sent.

The outbox: :func:`claim_due` takes due events for one pass in one write transaction, moving their next attempt
past a lease (two processes never send the same event at once; one whose sender died is due again after the lease);
then :func:`record_sent`, :func:`record_retry` (back-off: ``webhook_retry_seconds`` doubling up to
``webhook_retry_max_seconds``; given up, ``failed``, once ``webhook_give_up_seconds`` have passed since it was
queued), :func:`record_skipped`, :func:`release`.

Reads and writes the store's ``api_webhooks`` and ``api_webhook_events`` (the policy through the transaction's
connection; the outbox through :class:`edi.tracking.Tracking`'s write transactions). Raises sqlite3 errors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from edi.clock import iso
from edi.config import ApiSettings, Settings
from edi.model import FlowStatus
from edi.tracking import Tracking

log = structlog.get_logger()

OK, ERROR = "Ok", "Error"
IN, OUT = "In", "Out"
CUSTOMER_INVOICE, SUPPLIER_INVOICE_LC, CUSTOMER_INVOICE_LC = "CustomerInvoice", "SupplierInvoiceLC", "CustomerInvoiceLC"
UNDEFINED = "Undefined"
CDAR_SUFFIX = ".cdar.xml"
STATES = ("queued", "sent", "failed", "skipped")
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Event:
    """A flow the standard knows of, as an acknowledgement names it: whose, its id, and what it may be."""

    sender: str
    flow_id: str
    flow_types: frozenset[str]
    direction: str
    statuses: frozenset[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed event: what to send where, and what the webhook asked for."""

    id: int
    webhook_id: str
    sender: str
    flow_id: str
    callback_url: str
    flow_types: tuple[str, ...]
    flow_direction: str | None
    ack_status: str | None
    attempts: int  # this one included
    queued_at: datetime


def events_of(ack: Mapping[str, Any]) -> list[Event]:
    """The flows an acknowledgement makes known (see the module)."""
    sender, documents = str(ack["sender"]), ack.get("documents") or []
    status = ack.get("status")
    statuses = {
        str(FlowStatus.INTEGRATED): {OK},
        str(FlowStatus.REJECTED): {ERROR},
        str(FlowStatus.PARTIALLY_INTEGRATED): {OK},
    }.get(str(status), set())
    if any(d.get("lifecycle") is not None or d.get("syntax") == "CDAR" for d in documents):
        types = {SUPPLIER_INVOICE_LC}
    elif documents:
        types = {CUSTOMER_INVOICE}
    else:  # refused whole: what it was is not known here
        types = {CUSTOMER_INVOICE, SUPPLIER_INVOICE_LC, UNDEFINED}
    found = [Event(sender, str(ack["flow_id"]), frozenset(types), OUT, frozenset(statuses))]
    lifecycle = (frozenset({CUSTOMER_INVOICE_LC}), IN, frozenset({OK}))
    names = [ack.get("cdar")] + [d.get("cdar") for d in documents]
    found += [Event(sender, message_id(name), *lifecycle) for name in names if name]
    for doc in documents:
        life = doc.get("lifecycle") or {}
        invoice = life.get("invoice") or {}
        if life.get("relay") and invoice.get("sender"):
            found.append(Event(str(invoice["sender"]), message_id(life["relay"]), *lifecycle))
    return found


def message_id(name: str) -> str:
    """The flowId of a CDAR message from its file name (``<flow_id>.<nnnn>.cdar.xml``)."""
    return name[: -len(CDAR_SUFFIX)] if name.endswith(CDAR_SUFFIX) else name


def matches(event: Event, flow_types: Sequence[str], direction: str | None, status: str | None) -> bool:
    """Whether a webhook's filters may match the event (a filter left out matches all)."""
    return (
        (not flow_types or bool(event.flow_types & set(flow_types)))
        and (direction is None or direction == event.direction)
        and (status is None or status in event.statuses)
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """Queues the webhooks' events with the outcomes (see the module)."""

    def rows(self, conn: sqlite3.Connection, acks: Sequence[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
        """The events rows these final acknowledgements call for. One this cannot read is logged and queues
        nothing: webhooks never stop an outcome from being recorded."""
        events: list[Event] = []
        for ack in acks:
            try:
                events += events_of(ack)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("no webhook event queued", flow_id=str(ack.get("flow_id")), error=f"{type(exc).__name__}")
        if not events:
            return []
        senders = sorted({e.sender for e in events})
        hooks: dict[str, list[tuple[str, list[str], str | None, str | None]]] = {}
        marks = ", ".join("?" for _ in senders)
        for webhook_id, sender, types, direction, status in conn.execute(
            "SELECT w.webhook_id, c.sender, w.flow_types, w.flow_direction, w.ack_status FROM api_webhooks w "  # noqa: S608 (marks)
            f"JOIN api_clients c ON c.client_id = w.client_id WHERE c.sender IN ({marks}) "
            "ORDER BY w.created_at, w.webhook_id",
            senders,
        ):
            hooks.setdefault(str(sender), []).append((str(webhook_id), json.loads(types or "[]"), direction, status))
        when = iso(at)
        rows: list[dict[str, Any]] = []
        for event in events:
            for webhook_id, types, direction, status in hooks.get(event.sender, []):
                if matches(event, types, direction, status):
                    rows.append(_row(event, webhook_id, when))
        return rows


def _row(event: Event, webhook_id: str, when: str) -> dict[str, Any]:
    return {
        "webhook_id": webhook_id,
        "sender": event.sender,
        "flow_id": event.flow_id,
        "flow_type": next(iter(event.flow_types)) if len(event.flow_types) == 1 else None,
        "flow_direction": event.direction,
        "queued_at": when,
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": when,
    }


def policy_for(settings: Settings) -> Policy | None:
    """The policy, None when the API is off or allows callbacks to no host (then nothing is queued, at no cost)."""
    if not settings.api.webhooks:
        return None
    return Policy()


# -- the outbox --------------------------------------------------------------------------------------------------


def has_due(conn: sqlite3.Connection, now: datetime) -> bool:
    """Whether some event is due (a read, no transaction)."""
    row = conn.execute(
        "SELECT 1 FROM api_webhook_events WHERE state = 'queued' AND next_attempt_at <= ? LIMIT 1", [iso(now)]
    ).fetchone()
    return row is not None


def claim_due(store: Tracking, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
    """Take up to ``limit`` due events, oldest due first: each counts one more attempt and is not due again before
    ``lease_until`` unless its outcome is recorded (or it is released) first. An event whose webhook or client is
    gone is skipped here."""
    conn = store.db.conn
    with store.transaction():
        rows = conn.execute(
            "SELECT e.id, e.webhook_id, e.sender, e.flow_id, w.callback_url, w.flow_types, w.flow_direction, "
            "w.ack_status, e.attempts, e.queued_at, c.sender FROM api_webhook_events e "
            "LEFT JOIN api_webhooks w ON w.webhook_id = e.webhook_id "
            "LEFT JOIN api_clients c ON c.client_id = w.client_id "
            "WHERE e.state = 'queued' AND e.next_attempt_at <= ? ORDER BY e.next_attempt_at, e.id LIMIT ?",
            [iso(now), limit],
        ).fetchall()
        gone = [r[0] for r in rows if r[4] is None or r[10] != r[2]]
        conn.executemany(
            "UPDATE api_webhook_events SET state = 'skipped', next_attempt_at = NULL, last_error = ? WHERE id = ?",
            [[f"{iso(now)}: the webhook, or its client, is gone", i] for i in gone],
        )
        taken = [r for r in rows if r[0] not in gone]
        conn.executemany(
            "UPDATE api_webhook_events SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
            [[iso(lease_until), r[0]] for r in taken],
        )
    return [
        Delivery(
            id=int(r[0]),
            webhook_id=str(r[1]),
            sender=str(r[2]),
            flow_id=str(r[3]),
            callback_url=str(r[4]),
            flow_types=tuple(json.loads(r[5] or "[]")),
            flow_direction=r[6],
            ack_status=r[7],
            attempts=int(r[8] or 0) + 1,
            queued_at=datetime.fromisoformat(str(r[9]).replace("Z", "+00:00")),
        )
        for r in taken
    ]


def record_sent(store: Tracking, delivery: Delivery, at: datetime, answered: int) -> None:
    """The callback took the event (a 2xx)."""
    with store.transaction():
        store.db.conn.execute(
            "UPDATE api_webhook_events SET state = 'sent', sent_at = ?, next_attempt_at = NULL, answered = ?, "
            "last_error = NULL WHERE id = ?",
            [iso(at), answered, delivery.id],
        )


def record_skipped(store: Tracking, delivery: Delivery, at: datetime, why: str) -> None:
    """The event is not for this webhook after all (its Flow does not match the filters, or is gone)."""
    with store.transaction():
        store.db.conn.execute(
            "UPDATE api_webhook_events SET state = 'skipped', next_attempt_at = NULL, last_error = ? WHERE id = ?",
            [_cut(f"{iso(at)}: {why}"), delivery.id],
        )


def record_retry(
    store: Tracking,
    deliveries: Sequence[Delivery],
    at: datetime,
    error: str,
    answered: int | None,
    settings: ApiSettings,
) -> tuple[int, int]:
    """These events could not be delivered now: each is tried again after its back-off, or given up (``failed``,
    logged) once ``webhook_give_up_seconds`` have passed since it was queued. Returns (to retry, given up)."""
    retry, give_up = [], []
    for delivery in deliveries:
        if (at - delivery.queued_at).total_seconds() >= settings.webhook_give_up_seconds:
            hours = settings.webhook_give_up_seconds / 3600
            give_up.append([_cut(f"{iso(at)}: given up after {hours:g} h; last error: {error}"), answered, delivery.id])
        else:
            when = iso(at + timedelta(seconds=backoff(delivery.attempts, settings)))
            retry.append([when, _cut(f"{iso(at)}: {error}"), answered, delivery.id])
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE api_webhook_events SET next_attempt_at = ?, last_error = ?, answered = ? "
            "WHERE id = ? AND state = 'queued'",
            retry,
        )
        store.db.conn.executemany(
            "UPDATE api_webhook_events SET state = 'failed', next_attempt_at = NULL, last_error = ?, answered = ? "
            "WHERE id = ? AND state = 'queued'",
            give_up,
        )
    for delivery in deliveries:
        if any(row[-1] == delivery.id for row in give_up):
            log.error("webhook event given up", webhook=delivery.webhook_id, flow_id=delivery.flow_id, error=error)
    return len(retry), len(give_up)


def release(store: Tracking, deliveries: Sequence[Delivery], at: datetime) -> None:
    """Give back events claimed but not tried (the pass ran out of time): due at once, the attempt not counted."""
    with store.transaction():
        store.db.conn.executemany(
            "UPDATE api_webhook_events SET attempts = attempts - 1, next_attempt_at = ? WHERE id = ? "
            "AND state = 'queued'",
            [[iso(at), d.id] for d in deliveries],
        )


def prune(store: Tracking, cutoff: datetime) -> int:
    """Delete the events sent, failed or skipped that were queued before ``cutoff`` (retention); never a queued one.
    Returns how many went."""
    with store.transaction():
        cursor = store.db.conn.execute(
            "DELETE FROM api_webhook_events WHERE state IN ('sent', 'failed', 'skipped') AND queued_at < ?",
            [iso(cutoff)],
        )
    return int(cursor.rowcount)


def backoff(attempts: int, settings: ApiSettings) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``webhook_retry_seconds``, doubling, at most
    ``webhook_retry_max_seconds``."""
    doubled = settings.webhook_retry_seconds * 2 ** min(max(attempts - 1, 0), 30)
    return float(min(doubled, settings.webhook_retry_max_seconds))


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many events are in each state (every state named, 0 included)."""
    found = dict(conn.execute("SELECT state, count(*) FROM api_webhook_events GROUP BY state").fetchall())
    return {state: int(found.get(state, 0)) for state in STATES}


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."
