"""Read the facts of an invoice that routing and tracking need (BT-1, BT-2, BT-3, BT-5, BT-10, BT-13, seller, buyer).

Pure: takes a parsed, recognised UBL or CII document and returns an :class:`Invoice`; a missing element gives None,
never an exception, so that facts can be read even from a document that fails its XSD.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from edi.ingest.recognise import NS
from edi.model import Invoice, Party

Get = Callable[[etree._Element], str | None]


def _get(*paths: str) -> Get:
    """The first non-empty value, trying ``paths`` in order of preference."""
    compiled = [etree.XPath(f"normalize-space(({path})[1])", namespaces=NS) for path in paths]

    def get(node: etree._Element) -> str | None:
        for xpath in compiled:
            value = str(xpath(node))
            if value:
                return value
        return None

    return get


def _all(path: str) -> Callable[[etree._Element], tuple[str, ...]]:
    compiled = etree.XPath(path, namespaces=NS)

    def get(node: etree._Element) -> tuple[str, ...]:
        found = compiled(node)
        assert isinstance(found, list)
        return tuple(v for v in (" ".join(str(getattr(e, "text", e) or "").split()) for e in found) if v)

    return get


@dataclass(frozen=True, slots=True)
class _PartyPaths:
    node: Callable[[etree._Element], list[etree._Element]]
    name: Get
    legal_id: Get
    legal_scheme: Get
    vat_id: Get
    ids: Callable[[etree._Element], tuple[str, ...]]
    endpoint: Get
    endpoint_scheme: Get

    def read(self, root: etree._Element) -> Party:
        found = self.node(root)
        if not found:
            return Party()
        node = found[0]
        return Party(
            name=self.name(node),
            legal_id=self.legal_id(node),
            legal_scheme=self.legal_scheme(node),
            vat_id=self.vat_id(node),
            ids=self.ids(node),
            endpoint=self.endpoint(node),
            endpoint_scheme=self.endpoint_scheme(node),
        )


def _nodes(path: str) -> Callable[[etree._Element], list[etree._Element]]:
    compiled = etree.XPath(path, namespaces=NS)
    return lambda root: list(compiled(root))


def _ubl_party(path: str) -> _PartyPaths:
    return _PartyPaths(
        node=_nodes(path),
        name=_get("cac:PartyLegalEntity/cbc:RegistrationName", "cac:PartyName/cbc:Name"),
        legal_id=_get("cac:PartyLegalEntity/cbc:CompanyID"),
        legal_scheme=_get("cac:PartyLegalEntity/cbc:CompanyID/@schemeID"),
        vat_id=_get("cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']/cbc:CompanyID"),
        ids=_all("cac:PartyIdentification/cbc:ID"),
        endpoint=_get("cbc:EndpointID"),
        endpoint_scheme=_get("cbc:EndpointID/@schemeID"),
    )


def _cii_party(path: str) -> _PartyPaths:
    return _PartyPaths(
        node=_nodes(path),
        name=_get("ram:Name", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"),
        legal_id=_get("ram:SpecifiedLegalOrganization/ram:ID"),
        legal_scheme=_get("ram:SpecifiedLegalOrganization/ram:ID/@schemeID"),
        vat_id=_get("ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']"),
        ids=_all("ram:ID | ram:GlobalID"),
        endpoint=_get("ram:URIUniversalCommunication/ram:URIID"),
        endpoint_scheme=_get("ram:URIUniversalCommunication/ram:URIID/@schemeID"),
    )


_UBL = {
    "number": _get("cbc:ID"),
    "type_code": _get("cbc:InvoiceTypeCode | cbc:CreditNoteTypeCode"),
    "issue_date": _get("cbc:IssueDate"),
    "currency": _get("cbc:DocumentCurrencyCode"),
    "buyer_reference": _get("cbc:BuyerReference"),
    "order_reference": _get("cac:OrderReference/cbc:ID"),
}
_UBL_SELLER = _ubl_party("cac:AccountingSupplierParty/cac:Party")
_UBL_BUYER = _ubl_party("cac:AccountingCustomerParty/cac:Party")

_AGREEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
_CII = {
    "number": _get("rsm:ExchangedDocument/ram:ID"),
    "type_code": _get("rsm:ExchangedDocument/ram:TypeCode"),
    "issue_date": _get("rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"),
    "currency": _get("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceCurrencyCode"),
    "buyer_reference": _get(f"{_AGREEMENT}/ram:BuyerReference"),
    "order_reference": _get(f"{_AGREEMENT}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"),
}
_CII_SELLER = _cii_party(f"{_AGREEMENT}/ram:SellerTradeParty")
_CII_BUYER = _cii_party(f"{_AGREEMENT}/ram:BuyerTradeParty")

_DATE_102 = re.compile(r"^(\d{4})(\d{2})(\d{2})$")  # CII format 102
_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})$")  # an xs:date with a time zone


def extract_invoice(root: etree._Element, syntax: str) -> Invoice:
    """The routing facts of a UBL or CII invoice or credit note."""
    if syntax == "UBL":
        facts, seller, buyer = _UBL, _UBL_SELLER, _UBL_BUYER
    elif syntax == "CII":
        facts, seller, buyer = _CII, _CII_SELLER, _CII_BUYER
    else:
        return Invoice()
    values = {name: get(root) for name, get in facts.items()}
    date = values["issue_date"]
    if date and (m := _DATE_102.match(date) or _DATE_ISO.match(date)):
        values["issue_date"] = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return Invoice(seller=seller.read(root), buyer=buyer.read(root), **values)
