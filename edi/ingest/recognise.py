"""Recognise a parsed document: syntax from the root element and namespace, profile from the specification id.

Pure. UBL 2.1 ``Invoice`` / ``CreditNote`` and UN/CEFACT CII ``CrossIndustryInvoice`` are recognised; ZUGFeRD 1.0
``CrossIndustryDocument`` is recognised so that its rejection can say what it is. A CDAR D22B
``CrossDomainAcknowledgementAndResponse`` is a recipient's lifecycle status (syntax ``CDAR``, kind ``Status``,
profile ``cdv``), read by :mod:`edi.lifecycle.intake` rather than as an invoice. The profile comes from the
specification identifier BT-24 (UBL ``CustomizationID``, CII ``GuidelineSpecifiedDocumentContextParameter/ID``) and
uses the names of the shared corpus: ``minimum``, ``basicwl``, ``basic``, ``en16931``, ``extended``, ``xrechnung``,
``xrechnung-extension``, ``peppol-bis3``, ``extended-ctc-fr``, ``en16931-cius``, ``en16931-extension``,
``zugferd1-<level>``, ``other`` (an identifier we do not know) and ``unknown`` (none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
ZUGFERD1 = "urn:ferd:CrossIndustryDocument:invoice:1p0"
CDAR = "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100"  # a lifecycle status message

NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "rsm": CII,
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "zf1": ZUGFERD1,
    "ram12": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12",
}


def compile_xpath(path: str) -> etree.XPath:
    """``path`` compiled once with the namespaces above, for calls made on every document: without the EXSLT
    regular-expression functions lxml otherwise registers on each call, and returning plain strings rather than
    ones that keep their node alive (about a third cheaper per call)."""
    return etree.XPath(path, namespaces=NS, regexp=False, smart_strings=False)


# UNTDID 1001 document types that EN 16931 treats as credit notes.
CREDIT_NOTE_TYPES = frozenset({"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"})

_UBL_SPEC = compile_xpath("string(cbc:CustomizationID)")
_CII_SPEC = compile_xpath("string(rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID)")
_CII_TYPE = compile_xpath("string(rsm:ExchangedDocument/ram:TypeCode)")
_CDAR_SPEC = etree.XPath(
    "string(*[local-name() = 'ExchangedDocumentContext']/*[local-name() = 'GuidelineSpecifiedDocumentContextParameter']"
    "/*[local-name() = 'ID'])",
    smart_strings=False,
)
_ZF1_SPEC = compile_xpath(
    "string(zf1:SpecifiedExchangedDocumentContext/ram12:GuidelineSpecifiedDocumentContextParameter/ram12:ID)"
)

_LEVEL = re.compile(r"(?:factur-x\.eu:1p0|zugferd\.de:2p0):(minimum|basicwl|basic|en16931|extended)$")
_ZF1_LEVEL = re.compile(r"^urn:ferd:crossindustrydocument:(?:invoice|order):1p0:(basic|comfort|extended)$")
EN16931 = "urn:cen.eu:en16931:2017"


@dataclass(frozen=True, slots=True)
class Recognition:
    """What a document is."""

    syntax: str  # UBL, CII, ZUGFeRD1, CDAR
    kind: str  # Invoice, CreditNote; Status for a CDAR lifecycle message
    profile: str
    specification_id: str

    @property
    def supported(self) -> bool:
        """Whether this platform takes documents of this syntax."""
        return self.syntax in ("UBL", "CII", "CDAR")


def recognise(root: etree._Element) -> Recognition | None:
    """What ``root`` is, or None when it is not an invoice document we know."""
    tag = etree.QName(root)
    if tag.namespace == UBL_INVOICE and tag.localname == "Invoice":
        spec = _text(_UBL_SPEC(root))
        return Recognition("UBL", "Invoice", profile_of(spec), spec)
    if tag.namespace == UBL_CREDIT_NOTE and tag.localname == "CreditNote":
        spec = _text(_UBL_SPEC(root))
        return Recognition("UBL", "CreditNote", profile_of(spec), spec)
    if tag.namespace == CII and tag.localname == "CrossIndustryInvoice":
        spec = _text(_CII_SPEC(root))
        kind = "CreditNote" if _text(_CII_TYPE(root)) in CREDIT_NOTE_TYPES else "Invoice"
        return Recognition("CII", kind, profile_of(spec), spec)
    if tag.namespace == CDAR and tag.localname == "CrossDomainAcknowledgementAndResponse":
        return Recognition("CDAR", "Status", "cdv", _text(_CDAR_SPEC(root)))
    if tag.namespace == ZUGFERD1 and tag.localname == "CrossIndustryDocument":
        spec = _text(_ZF1_SPEC(root))
        level = _ZF1_LEVEL.match(spec.lower())
        return Recognition("ZUGFeRD1", "Invoice", f"zugferd1-{level.group(1) if level else 'unknown'}", spec)
    return None


def profile_of(spec: str) -> str:
    """The normalised profile of a specification identifier (BT-24)."""
    low = spec.strip().lower()
    if not low:
        return "unknown"
    if low.startswith("urn:ferd:"):
        return "other"  # a ZUGFeRD 1.0 identifier in a document that is not ZUGFeRD 1.0
    if "xrechnung" in low:
        return "xrechnung-extension" if "extension" in low else "xrechnung"
    if "peppol.eu:2017:poacc:billing" in low:
        return "peppol-bis3"
    if "extended-ctc-fr" in low:
        return "extended-ctc-fr"
    level = _LEVEL.search(low)
    if level:
        return level.group(1)
    if low == EN16931:
        return "en16931"
    if low.startswith(EN16931 + "#compliant#"):
        return "en16931-cius"
    if low.startswith(EN16931 + "#conformant#"):
        return "en16931-extension"
    return "other"


def _text(value: object) -> str:
    return str(value).strip()
