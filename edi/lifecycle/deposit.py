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

from lxml import etree

from edi.config import SenderSettings
from edi.errors import EdiError, UnknownFlowError
from edi.lifecycle.cdar import GUIDELINE, NSMAP, PROCESS, QDT, RAM, RSM, UDT
from edi.lifecycle.rules import Order, label, order, reason_problem, status_problem
from edi.lifecycle.validate import check_or_raise
from edi.spool import Spool
from edi.tracking import Tracking
from edi.workspace import Layout

HANDLING = "23"  # MDT-77: the recipient's handling phase ("traitement")
MAX_TEXT = 1000
_KEY = re.compile(r"(?P<flow>\d{8}T\d{6,12}(?:-[0-9a-f]{0,6})?)[~/](?P<idx>\d{1,6})")
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    name = f"status-{stamp}-{secrets.token_hex(3)}-{status}-{operator}.xml"  # never another deposit's name
    message = status_message(invoice, status, now, name, reason=reason, text=text)
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
    name: str,
    *,
    reason: str | None = None,
    text: str | None = None,
) -> bytes:
    """The CDAR message the invoice's recipient (its buyer, role BY) sends about it: status ``status`` with its
    reason and words, addressed to the seller (SE)."""
    root = etree.Element(f"{{{RSM}}}CrossDomainAcknowledgementAndResponse", nsmap=NSMAP)
    context = _sub(root, RSM, "ExchangedDocumentContext")
    _sub(_sub(context, RAM, "BusinessProcessSpecifiedDocumentContextParameter"), RAM, "ID", PROCESS)
    _sub(_sub(context, RAM, "GuidelineSpecifiedDocumentContextParameter"), RAM, "ID", GUIDELINE)
    header = _sub(root, RSM, "ExchangedDocument")
    _sub(header, RAM, "ID", name.removesuffix(".xml"))  # MDT-4
    _sub(header, RAM, "Name", name)  # MDT-5
    _datetime(header, "IssueDateTime", now)  # MDT-8
    _sub(_sub(header, RAM, "SenderTradeParty"), RAM, "RoleCode", "WK")
    issuer = _sub(header, RAM, "IssuerTradeParty")
    if invoice.get("buyer_id"):
        _sub(issuer, RAM, "GlobalID", str(invoice["buyer_id"]), **_scheme(str(invoice["buyer_id"])))
    if invoice.get("buyer_name"):
        _sub(issuer, RAM, "Name", _cut(str(invoice["buyer_name"])))
    _sub(issuer, RAM, "RoleCode", "BY")
    recipient = _sub(header, RAM, "RecipientTradeParty")
    seller = str(invoice["seller_id"])
    _sub(recipient, RAM, "GlobalID", seller, **_scheme(seller))
    _sub(recipient, RAM, "RoleCode", "SE")
    _sub(_sub(recipient, RAM, "URIUniversalCommunication"), RAM, "URIID", str(invoice["sender"]))  # MDT-73

    ack = _sub(root, RSM, "AcknowledgementDocument")
    _sub(_sub(ack, RAM, "MultipleReferencesIndicator"), UDT, "Indicator", "false")
    _sub(ack, RAM, "TypeCode", HANDLING)  # MDT-77
    _datetime(ack, "IssueDateTime", now)  # MDT-78
    ref = _sub(ack, RAM, "ReferenceReferencedDocument")
    _sub(ref, RAM, "IssuerAssignedID", str(invoice["invoice_number"]))  # MDT-87
    if invoice.get("type_code"):
        _sub(ref, RAM, "TypeCode", str(invoice["type_code"]))  # MDT-91
    _sub(
        _sub(ref, RAM, "FormattedIssueDateTime"), QDT, "DateTimeString", _day(str(invoice["issue_date"])), format="102"
    )
    _sub(ref, RAM, "ProcessConditionCode", status)  # MDT-105
    _sub(ref, RAM, "ProcessCondition", label(status))
    issuer_ref = _sub(ref, RAM, "IssuerTradeParty")  # MDT-129
    _sub(issuer_ref, RAM, "GlobalID", seller, **_scheme(seller))
    if reason or text:
        detail = _sub(ref, RAM, "SpecifiedDocumentStatus")
        if reason:
            _sub(detail, RAM, "ReasonCode", reason)  # MDT-113
        if text:
            _sub(detail, RAM, "Reason", _cut(text))  # MDT-114
        _sub(detail, RAM, "SequenceNumeric", "1")
    etree.indent(root)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", attributes)
    if text is not None:
        element.text = _NOT_XML.sub("\ufffd", text)
    return element


def _scheme(identifier: str) -> dict[str, str]:
    value = "".join(identifier.split())
    if value.isdigit() and value.isascii() and len(value) in (9, 14):
        return {"schemeID": "0002" if len(value) == 9 else "0009"}
    return {}


def _datetime(parent: etree._Element, tag: str, moment: datetime) -> None:
    _sub(_sub(parent, RAM, tag), UDT, "DateTimeString", moment.astimezone(UTC).strftime("%Y%m%d%H%M%S"), format="204")


def _day(issue_date: str) -> str:
    return issue_date.strip().replace("-", "")[:8]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
