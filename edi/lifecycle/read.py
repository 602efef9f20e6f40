"""Read what a recipient's CDAR D22B lifecycle message says: the invoice it is about and the status it sets.

Pure: takes a parsed root element, returns a :class:`edi.model.StatusReport`; raises nothing on any tree (a value
that is missing or malformed is None; whether the message is valid is :mod:`edi.lifecycle.validate`'s to say).
Reads the first ``ReferenceReferencedDocument`` and counts them (one invoice per message): MDT-87 (BT-1), MDT-91
type, MDT-100 date, MDT-129 seller id, MDT-105 status, MDT-113 reason, MDT-114 text, MDT-78 time, the issuer
(MDT-38 / MDT-40) and the characteristics (MDG-43) a relay carries on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxml import etree

from edi.clock import iso
from edi.lifecycle.cdar import NSMAP
from edi.model import Characteristic, StatusReport

_CDAR = "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100"
ROOT = "CrossDomainAcknowledgementAndResponse"
_DATE_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def _xpath(path: str) -> etree.XPath:
    return etree.XPath(path, namespaces=NSMAP, regexp=False, smart_strings=False)


_ACK = "rsm:AcknowledgementDocument"
_REFERENCES = _xpath(f"{_ACK}/ram:ReferenceReferencedDocument")
_SET_AT = _xpath(f"string({_ACK}/ram:IssueDateTime/udt:DateTimeString)")
_ISSUER = _xpath("rsm:ExchangedDocument/ram:IssuerTradeParty")
_NUMBER = _xpath("string(ram:IssuerAssignedID)")
_TYPE = _xpath("string(ram:TypeCode)")
_ISSUE_DATE = _xpath("string(ram:FormattedIssueDateTime/qdt:DateTimeString)")
_STATUS = _xpath("string(ram:ProcessConditionCode)")
_SELLER = _xpath("string(ram:IssuerTradeParty/ram:GlobalID)")
_DETAILS = _xpath("ram:SpecifiedDocumentStatus")
_REASON = _xpath("string(ram:ReasonCode)")
_TEXT = _xpath("string(ram:Reason)")
_CHARACTERISTICS = _xpath("ram:SpecifiedDocumentStatus/ram:SpecifiedDocumentCharacteristic")
_GLOBAL_ID = _xpath("ram:GlobalID")
_NAME = _xpath("string(ram:Name)")
_ROLE = _xpath("string(ram:RoleCode)")
_CHAR_TYPE = _xpath("string(ram:TypeCode)")
_AMOUNT = _xpath("ram:ValueAmount")
_PERCENT = _xpath("string(ram:ValuePercent)")


def is_status_message(root: etree._Element) -> bool:
    """Whether ``root`` is a CDAR D22B message (``rsm:CrossDomainAcknowledgementAndResponse``)."""
    tag = etree.QName(root)
    return bool(tag.namespace == _CDAR and tag.localname == ROOT)


def read_status(root: etree._Element) -> StatusReport:
    """What the message at ``root`` says about the (first) invoice it references."""
    references = _REFERENCES(root)
    issuer = _ISSUER(root)
    ids = _GLOBAL_ID(issuer[0]) if issuer else []
    report = StatusReport(
        set_at=_instant(_SET_AT(root)),
        references=len(references),
        issuer_id=_text(ids[0].text) if ids else None,
        issuer_scheme=_text(ids[0].get("schemeID")) if ids else None,
        issuer_role=_text(_ROLE(issuer[0])) if issuer else None,
        issuer_name=_text(_NAME(issuer[0])) if issuer else None,
    )
    if not references:
        return report
    ref = references[0]
    reason = text = None
    for detail in _DETAILS(ref):  # the first detail with a reason code gives the reason
        if reason is None and _text(_REASON(detail)):
            reason, text = _text(_REASON(detail)), _text(_TEXT(detail))
    if text is None:
        text = next((t for d in _DETAILS(ref) if (t := _text(_TEXT(d)))), None)
    return StatusReport(
        status=_text(_STATUS(ref)),
        reason=reason,
        text=text,
        set_at=report.set_at,
        invoice_number=_text(_NUMBER(ref)),
        type_code=_text(_TYPE(ref)),
        issue_date=_date(_ISSUE_DATE(ref)),
        seller_id=_text(_SELLER(ref)),
        references=report.references,
        issuer_id=report.issuer_id,
        issuer_scheme=report.issuer_scheme,
        issuer_role=report.issuer_role,
        issuer_name=report.issuer_name,
        characteristics=tuple(_characteristic(c) for c in _CHARACTERISTICS(ref) if _text(_CHAR_TYPE(c))),
    )


def _characteristic(element: etree._Element) -> Characteristic:
    amounts = _AMOUNT(element)
    return Characteristic(
        type_code=_text(_CHAR_TYPE(element)) or "",
        amount=_text(amounts[0].text) if amounts else None,
        currency=_text(amounts[0].get("currencyID")) if amounts else None,
        percent=_text(_PERCENT(element)),
    )


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _instant(value: str) -> str | None:
    """A format-204 time (YYYYMMDDHHMMSS, UTC) as ISO 8601, None when it is not one."""
    match = _DATE_TIME.match(value.strip())
    if not match:
        return None
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        return iso(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    except ValueError:
        return None


def _date(value: str) -> str | None:
    """A format-102 date (YYYYMMDD) as ISO 8601, None when it is not one."""
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return datetime(int(match[1]), int(match[2]), int(match[3])).strftime("%Y-%m-%d")
    except ValueError:
        return None
