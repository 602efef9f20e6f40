"""Build the CDAR D22B lifecycle message (the reform's CDV, "Flux 6") for edi's own decision on one document.

Pure: reads and writes nothing, raises nothing on any text it is given. :class:`Subject` says what a message is
about (a document of a flow, or the flow's file when no document could be read) and :func:`build` returns its bytes,
the same bytes for the same subject: ``200`` Déposée for an accepted invoice, ``213`` Rejetée and ``501``
Irrecevable with one ``SpecifiedDocumentStatus`` per reform reason code (MDT-113) and, under it, one characteristic
per finding (``DIV``, the invalid value: the rule, the finding's text, the value where known, the XPath location).
Whether the result passes the official artefacts is :mod:`edi.lifecycle.validate`'s to say.

The message goes from edi (the platform, role ``WK``, phase ``305`` transmission) to the partner who deposited the
flow (role ``SE``, its edi sender id as its address). :func:`build_relay` builds the message edi relays to an
invoice's sender for a status its recipient set (202-212, :class:`Relay`): phase ``23`` (processing), edi the
sender (``WK``), the party that set the status the issuer (its id and role as its own message gave them, ``BY`` by
default), its reason and words in one ``SpecifiedDocumentStatus`` with the characteristics it carried (a 212's
amounts), and the status time (MDT-78) the recipient gave. Where the invoice's identifiers are unknown (an unreadable
file), the object is the file as deposited: its name stands for BT-1, its receipt date for BT-2; an unknown seller
id (MDT-129) is left out, never made up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from edi.codes import CODES, Code, DocumentStatus
from edi.lifecycle import labels
from edi.lifecycle.rules import LABELS as RECIPIENT_LABELS
from edi.model import Characteristic, Finding, Severity

RSM = "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}

GUIDELINE = "urn.cpro.gouv.fr:1p0:CDV:invoice"  # MDT-3 (BR-FR-CDV-02)
PROCESS = "REGULATED"  # MDT-2 (BR-FR-CDV-CL-01)
LABELS = {code: labels.LABELS[code] for code in ("200", "213", "501")} | RECIPIENT_LABELS  # MDT-106
ISSUER_ROLES = frozenset({"BY", "AB", "DL", "SE", "SR", "PE", "PR", "II", "IV"})  # MDT-40 in phase 23 (CL-03)
# BT-3 codes BR-FR-04 accepts in MDT-91: another type code (a hostile or foreign one) is left out, MDT-91 being
# optional, rather than making the message fail.
DOCUMENT_TYPES = frozenset(
    ["380", "389", "393", "501", "386", "500", "384", "471", "472", "473", "261", "262", "381", "396", "502", "503"]
)
# What the sender is asked to do (MDT-121, BR-FR-CDV-CL-10): nothing for a duplicate (the first one stands), a new
# invoice for any other rejection (a rejected invoice is deemed never issued).
NO_ACTION, NEW_INVOICE = "NOA", "NIN"
MAX_TEXT = 2000  # characters of a finding's text or value; identifiers are never cut (they are correlation keys)

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


@dataclass(frozen=True, slots=True)
class Reason:
    """One fatal finding as a lifecycle message carries it."""

    code: str  # edi's stable finding code (DOUBLON, SERVICE_CODE_MISSING, REJ_SEMAN, ...)
    reason: str  # the reform reason code it rolls up to (MDT-113)
    message: str
    rule: str | None = None
    xpath: str | None = None
    line: int | None = None
    value: str | None = None  # the invalid value, where known

    @property
    def status(self) -> str:
        """The status this reason calls for: 501 for an IRR_* reason, else 213."""
        known = CODES.get(Code(self.code)) if self.code in Code.__members__ else None
        if known is not None:
            return str(known.status)
        return str(DocumentStatus.IRRECEVABLE if self.reason.startswith("IRR_") else DocumentStatus.REJETEE)


def reasons_of(findings: Sequence[Finding | Mapping[str, Any]]) -> tuple[Reason, ...]:
    """The fatal findings among ``findings`` (edi's, or dicts as acknowledgements carry them) as reasons."""
    reasons = []
    for finding in findings:
        if isinstance(finding, Finding):
            if finding.fatal:
                reasons.append(
                    Reason(
                        str(finding.code), finding.reason, finding.message, finding.rule, finding.xpath, finding.line
                    )
                )
        elif finding.get("severity", "fatal") == str(Severity.FATAL):
            code = str(finding["code"])
            reason = finding.get("reason") or (CODES[Code(code)].reason if code in Code.__members__ else code)
            reasons.append(
                Reason(
                    code,
                    str(reason),
                    str(finding.get("message") or ""),
                    finding.get("rule"),
                    finding.get("xpath"),
                    finding.get("line"),
                    finding.get("value"),
                )
            )
    return tuple(reasons)


def status_of(reasons: Sequence[Reason]) -> str:
    """The gravest status ``reasons`` call for: 501 over 213, and 200 when there is none."""
    statuses = {r.status for r in reasons}
    for status in (DocumentStatus.IRRECEVABLE, DocumentStatus.REJETEE):
        if status in statuses:
            return str(status)
    return str(DocumentStatus.DEPOSEE)


@dataclass(frozen=True, slots=True)
class Subject:
    """What one lifecycle message says, about what, to whom."""

    flow_id: str
    index: int  # the document's index in the flow (from 1); 0 for the flow's file itself
    sender: str  # edi's id of the partner who deposited the flow: the message's addressee
    status: str  # 200, 213 or 501
    received_at: datetime  # when the flow was received (MDT-95)
    decided_at: datetime  # when edi decided (MDT-8, MDT-78)
    name: str  # the file name, or the member path inside an archive
    invoice_number: str | None = None  # BT-1
    issue_date: str | None = None  # BT-2, ISO 8601 (or YYYYMMDD)
    type_code: str | None = None  # BT-3
    seller_id: str | None = None
    seller_name: str | None = None
    reasons: tuple[Reason, ...] = ()
    platform_id: str | None = None  # edi's own registration id, when it has one


def message_id(flow_id: str, index: int) -> str:
    """The message's id (MDT-4): unique per document of a flow, the same each time it is built."""
    return f"{flow_id}.{index:04d}"


def file_name(flow_id: str, index: int) -> str:
    """The message's file name: beside the flow's acknowledgement, sorted with it and with the document's delivery
    files (``<flow_id>.<index>.xml``)."""
    return f"{message_id(flow_id, index)}.cdar.xml"


def subjects_from_ack(ack: Mapping[str, Any], platform_id: str | None = None) -> list[Subject]:
    """One subject per document of a flow's acknowledgement (its JSON as a dict); a flow whose file was refused
    whole (no document) has one subject, index 0, for the file. The flow's fatal findings count for each document."""
    received = _instant(ack["received_at"])
    decided = _instant(ack.get("processed_at") or ack["received_at"])
    flow_reasons = reasons_of(ack.get("findings") or [])
    common = {"flow_id": ack["flow_id"], "sender": ack["sender"], "received_at": received, "decided_at": decided}
    documents = ack.get("documents") or []
    if not documents:
        status = status_of(flow_reasons) if flow_reasons else str(DocumentStatus.IRRECEVABLE)
        return [
            Subject(
                **common, index=0, status=status, name=ack["file_name"], reasons=flow_reasons, platform_id=platform_id
            )
        ]
    subjects = []
    for doc in documents:
        reasons = flow_reasons + reasons_of(doc.get("findings") or [])
        subjects.append(
            Subject(
                **common,
                index=int(doc["index"]),
                status=status_of(reasons),
                name=doc.get("name") or ack["file_name"],
                invoice_number=doc.get("invoice_number"),
                issue_date=doc.get("issue_date"),
                type_code=doc.get("type_code"),
                seller_id=doc.get("seller_id"),
                seller_name=doc.get("seller_name"),
                reasons=reasons,
                platform_id=platform_id,
            )
        )
    return subjects


def build(subject: Subject) -> bytes:
    """The CDAR message for ``subject``, UTF-8, indented; the same bytes for the same subject. Written as text in one
    pass (:class:`_Text`: the bytes lxml's serialiser gives for the same elements, ``etree.indent`` included, at a
    fifth of the cost of building and serialising a tree; ``tests/lifecycle/test_cdar.py`` holds the tree-built
    reference)."""
    out = _Text()
    out.open("rsm:CrossDomainAcknowledgementAndResponse", _ROOT_NAMESPACES)
    out.open("rsm:ExchangedDocumentContext")
    out.open("ram:BusinessProcessSpecifiedDocumentContextParameter")
    out.leaf("ram:ID", PROCESS)
    out.close()
    out.open("ram:GuidelineSpecifiedDocumentContextParameter")
    out.leaf("ram:ID", GUIDELINE)
    out.close()
    out.close()

    out.open("rsm:ExchangedDocument")
    out.leaf("ram:ID", message_id(subject.flow_id, subject.index))  # MDT-4
    out.leaf("ram:Name", file_name(subject.flow_id, subject.index))  # MDT-5
    out.moment("ram:IssueDateTime", subject.decided_at)  # MDT-8
    out.open("ram:SenderTradeParty")
    if subject.platform_id:
        out.leaf("ram:GlobalID", subject.platform_id, {"schemeID": "0238"})
    out.leaf("ram:RoleCode", "WK")
    out.close()
    out.open("ram:IssuerTradeParty")
    out.leaf("ram:RoleCode", "WK")
    out.close()
    out.open("ram:RecipientTradeParty")
    if subject.seller_id:
        out.leaf("ram:GlobalID", subject.seller_id, _scheme(subject.seller_id))
    if subject.seller_name:
        out.leaf("ram:Name", _cut(subject.seller_name))
    out.leaf("ram:RoleCode", "SE")
    out.open("ram:URIUniversalCommunication")
    out.leaf("ram:URIID", subject.sender)  # MDT-73
    out.close()
    out.close()
    out.close()

    out.open("rsm:AcknowledgementDocument")
    out.open("ram:MultipleReferencesIndicator")
    out.leaf("udt:Indicator", "false")
    out.close()
    out.leaf("ram:TypeCode", "305")  # transmission phase: the platform's own statuses
    out.moment("ram:IssueDateTime", subject.decided_at)  # MDT-78
    out.open("ram:ReferenceReferencedDocument")
    out.leaf("ram:IssuerAssignedID", subject.invoice_number or subject.name)  # MDT-87
    if subject.type_code in DOCUMENT_TYPES:
        out.leaf("ram:TypeCode", subject.type_code)  # MDT-91
    out.moment("ram:ReceiptDateTime", subject.received_at)  # MDT-95
    out.open("ram:FormattedIssueDateTime")  # MDG-35 / MDT-100
    out.leaf("qdt:DateTimeString", _issue_date(subject), {"format": "102"})
    out.close()
    out.leaf("ram:ProcessConditionCode", subject.status)  # MDT-105
    out.leaf("ram:ProcessCondition", LABELS.get(subject.status, subject.status))
    if subject.seller_id:  # MDT-129: left out, not made up, when the invoice names no seller id
        out.open("ram:IssuerTradeParty")
        out.leaf("ram:GlobalID", subject.seller_id, _scheme(subject.seller_id))
        out.leaf("ram:RoleCode", "SE")
        out.close()
    if subject.status != DocumentStatus.DEPOSEE:
        _statuses(out, subject)
    out.close()
    out.close()
    out.close()
    return out.bytes()


_ROOT_NAMESPACES = {f"xmlns:{prefix}": uri for prefix, uri in NSMAP.items()}
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


class _Text:
    """An indented XML document written as text, escaped as lxml escapes (text: ``& < >`` and CR; attributes: also
    ``"``, LF and TAB); every character XML 1.0 cannot carry replaced by U+FFFD (:func:`_safe`). An element either
    holds text (:meth:`leaf`) or other elements (:meth:`open` ... :meth:`close`)."""

    def __init__(self) -> None:
        self._parts = ["<?xml version='1.0' encoding='UTF-8'?>"]
        self._open: list[str] = []

    def open(self, tag: str, attributes: Mapping[str, str] | None = None) -> None:
        self._parts.append(f"\n{'  ' * len(self._open)}<{tag}{_attributes(attributes)}>")
        self._open.append(tag)

    def close(self) -> None:
        tag = self._open.pop()
        self._parts.append(f"\n{'  ' * len(self._open)}</{tag}>")

    def leaf(self, tag: str, text: str, attributes: Mapping[str, str] | None = None) -> None:
        escaped = _safe(text).translate(_TEXT_ESCAPES)
        self._parts.append(f"\n{'  ' * len(self._open)}<{tag}{_attributes(attributes)}>{escaped}</{tag}>")

    def moment(self, tag: str, moment: datetime) -> None:
        """An MDT date and time (format 204, UTC) under ``tag``."""
        utc = moment.astimezone(UTC) if moment.tzinfo else moment
        self.open(tag)
        self.leaf("udt:DateTimeString", utc.strftime("%Y%m%d%H%M%S"), {"format": "204"})
        self.close()

    def bytes(self) -> bytes:
        assert not self._open, f"{self._open} left open"
        return "".join(self._parts).encode("utf-8")


def _attributes(attributes: Mapping[str, str] | None) -> str:
    if not attributes:
        return ""
    return "".join(f' {name}="{_safe(value).translate(_ATTRIBUTE_ESCAPES)}"' for name, value in attributes.items())


def _statuses(out: _Text, subject: Subject) -> None:
    """One MDG-37 per reform reason of the subject's status, in order of first appearance; one characteristic per
    finding under it."""
    groups: dict[str, list[Reason]] = {}
    for reason in subject.reasons:
        if reason.status == subject.status:
            groups.setdefault(reason.reason, []).append(reason)
    for sequence, (code, reasons) in enumerate(groups.items(), start=1):
        out.open("ram:SpecifiedDocumentStatus")
        out.leaf("ram:ReasonCode", code)  # MDT-113
        meanings = dict.fromkeys(CODES[Code(r.code)].meaning for r in reasons if r.code in Code.__members__)
        out.leaf("ram:Reason", "; ".join(meanings) or code)
        if subject.status == DocumentStatus.REJETEE:
            out.leaf("ram:RequestedActionCode", NO_ACTION if code == "DOUBLON" else NEW_INVOICE)  # MDT-121
        out.leaf("ram:SequenceNumeric", str(sequence))  # MDT-124-2
        for reason in reasons:
            out.open("ram:SpecifiedDocumentCharacteristic")
            out.leaf("ram:ID", reason.code)  # edi's finding code, finer than the reform reason
            out.leaf("ram:TypeCode", "DIV")  # the invalid value
            out.leaf("ram:Name", _cut(reason.rule or reason.code))
            description = reason.message if reason.line is None else f"{reason.message} (line {reason.line})"
            out.leaf("ram:Description", _cut(description))
            if reason.xpath:
                out.leaf("ram:Location", _cut(reason.xpath))
            if reason.value is not None:
                out.leaf("ram:Value", _cut(reason.value))
            out.close()
        out.close()


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: _safe(v) for k, v in attributes.items()})
    if text is not None:
        element.text = _safe(text)
    return element


def _party(party: etree._Element, identifier: str | None, name: str | None) -> None:
    if identifier:
        _sub(party, RAM, "GlobalID", identifier, **_scheme(identifier))
    if name:
        _sub(party, RAM, "Name", _cut(name))


def _scheme(identifier: str | None) -> dict[str, str]:
    """The ISO 6523 scheme of a French identifier: 0002 for a SIREN, 0009 for a SIRET; none for another."""
    value = "".join((identifier or "").split())
    if value.isdigit() and value.isascii() and len(value) in (9, 14):
        return {"schemeID": "0002" if len(value) == 9 else "0009"}
    return {}


def _datetime(parent: etree._Element, tag: str, moment: datetime) -> None:
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    _sub(_sub(parent, RAM, tag), UDT, "DateTimeString", utc.strftime("%Y%m%d%H%M%S"), format="204")


def _issue_date(subject: Subject) -> str:
    """BT-2 as YYYYMMDD; the flow's receipt date when the invoice's date is unknown or not a date."""
    match = _ISO_DATE.match((subject.issue_date or "").strip())
    if match:
        try:
            return datetime(int(match[1]), int(match[2]), int(match[3])).strftime("%Y%m%d")
        except ValueError:
            pass
    received = subject.received_at.astimezone(UTC) if subject.received_at.tzinfo else subject.received_at
    return received.strftime("%Y%m%d")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Relay:
    """A status an invoice's recipient set (202-212), as edi relays it to the invoice's sender."""

    flow_id: str  # the status flow, and the index of the message in it
    index: int
    sender: str  # edi's id of the partner who deposited the invoice: the message's addressee
    status: str
    set_at: datetime  # MDT-78
    decided_at: datetime  # MDT-8
    invoice_number: str  # BT-1
    issue_date: str | None  # BT-2, ISO 8601
    type_code: str | None  # BT-3
    seller_id: str | None
    issuer_id: str  # who set the status (MDT-38)
    issuer_scheme: str | None = None
    issuer_role: str | None = None
    issuer_name: str | None = None
    reason: str | None = None  # MDT-113
    text: str | None = None  # MDT-114
    characteristics: tuple[Characteristic, ...] = ()
    platform_id: str | None = None


def build_relay(relay: Relay) -> bytes:
    """The CDAR message relaying ``relay`` to the invoice's sender, UTF-8, indented; the same bytes each time."""
    root = etree.Element(f"{{{RSM}}}CrossDomainAcknowledgementAndResponse", nsmap=NSMAP)
    context = _sub(root, RSM, "ExchangedDocumentContext")
    _sub(_sub(context, RAM, "BusinessProcessSpecifiedDocumentContextParameter"), RAM, "ID", PROCESS)
    _sub(_sub(context, RAM, "GuidelineSpecifiedDocumentContextParameter"), RAM, "ID", GUIDELINE)

    header = _sub(root, RSM, "ExchangedDocument")
    _sub(header, RAM, "ID", message_id(relay.flow_id, relay.index))  # MDT-4
    _sub(header, RAM, "Name", file_name(relay.flow_id, relay.index))  # MDT-5
    _datetime(header, "IssueDateTime", relay.decided_at)  # MDT-8
    sender = _sub(header, RAM, "SenderTradeParty")
    if relay.platform_id:
        _sub(sender, RAM, "GlobalID", relay.platform_id, schemeID="0238")
    _sub(sender, RAM, "RoleCode", "WK")
    issuer = _sub(header, RAM, "IssuerTradeParty")  # MDT-38 is required in phase 23 (BR-FR-CDV-07)
    scheme = {"schemeID": relay.issuer_scheme} if relay.issuer_scheme else _scheme(relay.issuer_id)
    _sub(issuer, RAM, "GlobalID", relay.issuer_id, **scheme)
    if relay.issuer_name:
        _sub(issuer, RAM, "Name", _cut(relay.issuer_name))
    _sub(issuer, RAM, "RoleCode", relay.issuer_role if relay.issuer_role in ISSUER_ROLES else "BY")
    recipient = _sub(header, RAM, "RecipientTradeParty")
    _party(recipient, relay.seller_id, None)
    _sub(recipient, RAM, "RoleCode", "SE")
    _sub(_sub(recipient, RAM, "URIUniversalCommunication"), RAM, "URIID", relay.sender)  # MDT-73

    ack = _sub(root, RSM, "AcknowledgementDocument")
    _sub(_sub(ack, RAM, "MultipleReferencesIndicator"), UDT, "Indicator", "false")
    _sub(ack, RAM, "TypeCode", "23")  # processing phase: the recipient's statuses
    _datetime(ack, "IssueDateTime", relay.set_at)  # MDT-78
    ref = _sub(ack, RAM, "ReferenceReferencedDocument")
    _sub(ref, RAM, "IssuerAssignedID", relay.invoice_number)  # MDT-87
    if relay.type_code in DOCUMENT_TYPES:
        _sub(ref, RAM, "TypeCode", relay.type_code)  # MDT-91
    match = _ISO_DATE.match((relay.issue_date or "").strip())
    day = f"{match[1]}{match[2]}{match[3]}" if match else relay.decided_at.astimezone(UTC).strftime("%Y%m%d")
    _sub(_sub(ref, RAM, "FormattedIssueDateTime"), QDT, "DateTimeString", day, format="102")  # MDT-100
    _sub(ref, RAM, "ProcessConditionCode", relay.status)  # MDT-105
    _sub(ref, RAM, "ProcessCondition", LABELS.get(relay.status, relay.status))
    if relay.seller_id:
        seller = _sub(ref, RAM, "IssuerTradeParty")
        _sub(seller, RAM, "GlobalID", relay.seller_id, **_scheme(relay.seller_id))
        _sub(seller, RAM, "RoleCode", "SE")
    if relay.reason or relay.text or relay.characteristics:
        detail = _sub(ref, RAM, "SpecifiedDocumentStatus")
        if relay.reason:
            _sub(detail, RAM, "ReasonCode", relay.reason)  # MDT-113
        if relay.text or relay.reason:
            _sub(detail, RAM, "Reason", _cut(relay.text or relay.reason or ""))  # MDT-114
        _sub(detail, RAM, "SequenceNumeric", "1")
        for item in relay.characteristics:
            element = _sub(detail, RAM, "SpecifiedDocumentCharacteristic")
            _sub(element, RAM, "TypeCode", item.type_code)
            if item.amount is not None:
                currency = {"currencyID": item.currency} if item.currency else {}
                _sub(element, RAM, "ValueAmount", item.amount, **currency)
            if item.percent is not None:
                _sub(element, RAM, "ValuePercent", item.percent)
    etree.indent(root)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data
