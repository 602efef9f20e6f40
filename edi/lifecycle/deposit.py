"""Record a recipient's status for an invoice on its behalf (``edi status set``, the console's invoice page): the
status is written as the CDAR message the recipient's platform would have sent, and dropped into that partner's inbox,
so that it goes through exactly the path a partner's own message takes (claim, checks, order rules, history, relay to
the invoice's sender, acknowledgement, notifications) and nothing is recorded twice or by a second mechanism.

:func:`find_invoice` reads the store (an invoice by ``<flow_id>~<index>``, by flow id or its start, or by its number);
:func:`prepare` checks what can be known before depositing (the invoice was delivered, the status is one a recipient
sets, with a reason where the rules want one, a partner speaks for its recipient) and builds the message, which must
pass the official CDAR XSD and BR-FR-CDV rules (:func:`edi.lifecycle.validate.check_or_raise`); :func:`deposit` writes
it into ``inbox/<partner>/`` atomically (a temporary name, fsync, rename: never seen half-written). The order rules
are checked when the message is processed, under the writers' lock, as for any partner. Raises
:class:`StatusRefused` (one line for the user) for what cannot be deposited.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edi.config import SenderSettings
from edi.errors import EdiError, UnknownFlowError
from edi.lifecycle.cdar import Relay, build_relay, file_name
from edi.lifecycle.rules import Order, order, reason_problem, status_problem
from edi.lifecycle.validate import check_or_raise
from edi.spool import Spool
from edi.tracking import Tracking
from edi.workspace import Layout

MAX_TEXT = 1000
_KEY = re.compile(r"(?P<flow>\d{8}T\d{6,12}(?:-[0-9a-f]{0,6})?)[~/](?P<idx>\d{1,6})")


class StatusRefused(EdiError):
    """A status that cannot be recorded for this invoice, and why (one line)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A status message ready to drop into a partner's inbox."""

    partner: str
    name: str  # its file name there
    message: bytes
    invoice: Mapping[str, Any]


def find_invoice(store: Tracking, ref: str, seller: str | None = None) -> dict[str, Any]:
    """The document (store row, with its flow's ``sender``) ``ref`` names: ``<flow_id>/<index>`` (as ``edi
    invoices`` shows it) or ``<flow_id>~<index>`` (the console's key), a flow id or its unique start (a flow of one
    document), or an invoice number (BT-1) that only one accepted invoice has (``seller`` narrows it to one seller
    id). Raises :class:`StatusRefused`."""
    ref = ref.strip()
    if not ref:
        raise StatusRefused("give the invoice: <flow_id>~<index>, a flow id, or an invoice number")
    match = _KEY.fullmatch(ref)
    if match:
        return _document(store, _flow_id(store, match["flow"]), int(match["idx"]))
    rows = store.accepted_numbered(ref, seller)
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        keys = ", ".join(f"{r['flow_id']}~{r['idx']}" for r in rows[:5])
        raise StatusRefused(f"several accepted invoices are numbered {ref!r} ({keys}): give <flow_id>~<index>")
    try:
        flow_id = store.resolve(ref)
    except UnknownFlowError:
        raise StatusRefused(f"no accepted invoice numbered {ref!r}, and no flow {ref!r}") from None
    count = store.document_count(flow_id)
    if count != 1:
        raise StatusRefused(f"flow {flow_id} holds {count} documents: give <flow_id>~<index>")
    return _document(store, flow_id, 1)


def _flow_id(store: Tracking, prefix: str) -> str:
    try:
        return store.resolve(prefix)
    except UnknownFlowError as exc:
        raise StatusRefused(str(exc)) from None


def _document(store: Tracking, flow_id: str, idx: int) -> dict[str, Any]:
    row = store.document(flow_id, idx)
    if row is None:
        raise StatusRefused(f"flow {flow_id} has no document {idx}")
    return row


def partner_for(senders: Sequence[SenderSettings], recipient: str | None, partner: str | None = None) -> str:
    """The partner that speaks for ``recipient``: ``partner`` when given (it must list the recipient), else the only
    sender whose ``recipients`` lists it. Raises :class:`StatusRefused`."""
    speaking = [s.id for s in senders if recipient and recipient in s.recipients]
    if partner is not None:
        if partner not in speaking:
            raise StatusRefused(
                f"partner {partner!r} does not speak for recipient {recipient!r} (its recipients = [...] in "
                "config.toml does not list it)"
            )
        return partner
    if not speaking:
        raise StatusRefused(
            f"no partner speaks for recipient {recipient!r}: declare one in config.toml "
            f'([[senders]] with recipients = ["{recipient}"])'
        )
    if len(speaking) > 1:
        raise StatusRefused(
            f"several partners speak for recipient {recipient!r} ({', '.join(speaking)}): give --partner"
        )
    return speaking[0]


def prepare(
    invoice: Mapping[str, Any],
    status: str,
    senders: Sequence[SenderSettings],
    now: datetime,
    *,
    history: Sequence[str] = (),
    reason: str | None = None,
    text: str | None = None,
    partner: str | None = None,
    by: str | None = None,
) -> Prepared:
    """Check what can be known before depositing and build the checked message. ``by`` (an operator's name) is
    written in the message's name, for the record; ``history`` is the invoice's recorded statuses (the order rules
    are checked on it here, and again, authoritatively, when the message is processed). Raises
    :class:`StatusRefused`, or :class:`edi.lifecycle.validate.CdarInvalid` (a bug in edi: nothing is deposited)."""
    status = status.strip()
    problem = status_problem(status) or reason_problem(status, reason)
    if problem is not None:
        raise StatusRefused(problem[1] + (": give --reason CODE" if problem[0] == "STATUS_REASON_MISSING" else ""))
    if text is not None and (not text.strip() or len(text) > MAX_TEXT):
        raise StatusRefused(f"--text must hold 1 to {MAX_TEXT} characters")
    if invoice.get("status") != "200" or not invoice.get("recipient"):
        raise StatusRefused(
            f"document {invoice['flow_id']}~{invoice['idx']} was not delivered (status {invoice.get('status')}): "
            "only an accepted invoice gets a recipient's status"
        )
    if not invoice.get("invoice_number") or not invoice.get("seller_id") or not invoice.get("issue_date"):
        raise StatusRefused(f"document {invoice['flow_id']}~{invoice['idx']} lacks its number, seller or date")
    verdict, why = order(history, status)
    if verdict is not Order.NEW:
        raise StatusRefused(f"{why} (invoice {invoice['flow_id']}~{invoice['idx']})")
    who = partner_for(senders, invoice["recipient"], partner)
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    operator = re.sub(r"[^A-Za-z0-9._-]", "_", by)[:40] if by else "operator"
    stem = f"status-{stamp}-{secrets.token_hex(3)}-{status}-{operator}"  # never another deposit's name
    message = status_message(invoice, status, now, stem, reason=reason, text=text)
    name = file_name(stem, 0)
    check_or_raise(message)
    return Prepared(who, name, message, invoice)


def deposit(layout: Layout, prepared: Prepared) -> Path:
    """Write the message into ``inbox/<partner>/`` atomically (temporary name, fsync, rename, folder fsync); the
    path it has there."""
    target = layout.sender_inbox(prepared.partner) / prepared.name
    target.parent.mkdir(parents=True, exist_ok=True)
    Spool(layout).write_atomic(target, prepared.message)
    return target


def status_message(
    invoice: Mapping[str, Any],
    status: str,
    now: datetime,
    stem: str,
    *,
    reason: str | None = None,
    text: str | None = None,
) -> bytes:
    """The CDAR message the invoice's recipient (its buyer, role BY) sends about it: status ``status`` with its
    ``reason`` and ``text``, addressed to the seller (SE), named ``file_name(stem, 0)``: the message edi relays
    (:func:`edi.lifecycle.cdar.build_relay`), here with the buyer as its issuer."""
    return build_relay(
        Relay(
            flow_id=stem,
            index=0,
            sender=str(invoice["sender"]),
            status=status,
            set_at=now,
            decided_at=now,
            invoice_number=str(invoice["invoice_number"]),
            issue_date=invoice.get("issue_date"),
            type_code=invoice.get("type_code"),
            seller_id=invoice.get("seller_id"),
            issuer_id=str(invoice.get("buyer_id") or invoice["recipient"]),  # MDT-38 is required in phase 23
            issuer_role="BY",
            issuer_name=invoice.get("buyer_name"),
            reason=reason,
            text=text,
        )
    )
