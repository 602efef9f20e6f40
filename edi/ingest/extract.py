"""Read the facts of an invoice that routing and tracking need (BT-1, BT-2, BT-3, BT-5, BT-10, BT-13, seller, buyer).

Pure: takes a parsed, recognised UBL or CII document and returns an :class:`Invoice`; a missing element gives None,
never an exception, so that facts can be read even from a document that fails its XSD.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from edi.ingest.recognise import compile_xpath
from edi.model import Invoice, Party

_SEPARATOR = "\n"  # normalize-space() leaves no line feed in a value: it can stand between values


class _Fields:
    """Several values of a node read in one XPath call (each call costs more to set up than these paths cost to
    evaluate): each value the first non-empty of its paths, in order of preference, with its spaces normalised."""

    def __init__(self, *fields: tuple[str, ...]) -> None:
        self._spans: list[tuple[int, int]] = []  # where each value's alternatives are among the parts
        parts: list[str] = []
        for paths in fields:
            self._spans.append((len(parts), len(parts) + len(paths)))
            parts += [f"normalize-space(({path})[1])" for path in paths]
        between = f", '{_SEPARATOR}', "
        self._xpath = compile_xpath(f"concat({between.join(parts)})")

    def __call__(self, node: etree._Element) -> list[str | None]:
        """The values, None for each one that is missing or empty."""
        parts = str(self._xpath(node)).split(_SEPARATOR)
        return [next(filter(None, parts[start:stop]), None) for start, stop in self._spans]


def _all(path: str) -> Callable[[etree._Element], tuple[str, ...]]:
    compiled = compile_xpath(path)

    def get(node: etree._Element) -> tuple[str, ...]:
        found = compiled(node)
        assert isinstance(found, list)
        return tuple(v for v in (" ".join(str(getattr(e, "text", e) or "").split()) for e in found) if v)

    return get


@dataclass(frozen=True, slots=True)
class _PartyPaths:
    node: Callable[[etree._Element], list[etree._Element]]
    fields: _Fields  # name, legal_id, legal_scheme, vat_id, endpoint, endpoint_scheme
    ids: Callable[[etree._Element], tuple[str, ...]]

    def read(self, root: etree._Element) -> Party:
        found = self.node(root)
        if not found:
            return Party()
        node = found[0]
        name, legal_id, legal_scheme, vat_id, endpoint, endpoint_scheme = self.fields(node)
        return Party(
            name=name,
            legal_id=legal_id,
            legal_scheme=legal_scheme,
            vat_id=vat_id,
            ids=self.ids(node),
            endpoint=endpoint,
            endpoint_scheme=endpoint_scheme,
        )


def _nodes(path: str) -> Callable[[etree._Element], list[etree._Element]]:
    compiled = compile_xpath(path)
    return lambda root: list(compiled(root))


def _ubl_party(path: str) -> _PartyPaths:
    return _PartyPaths(
        node=_nodes(path),
        fields=_Fields(
            ("cac:PartyLegalEntity/cbc:RegistrationName", "cac:PartyName/cbc:Name"),
            ("cac:PartyLegalEntity/cbc:CompanyID",),
            ("cac:PartyLegalEntity/cbc:CompanyID/@schemeID",),
            ("cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']/cbc:CompanyID",),
            ("cbc:EndpointID",),
            ("cbc:EndpointID/@schemeID",),
        ),
        ids=_all("cac:PartyIdentification/cbc:ID"),
    )


def _cii_party(path: str) -> _PartyPaths:
    return _PartyPaths(
        node=_nodes(path),
        fields=_Fields(
            ("ram:Name", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"),
            ("ram:SpecifiedLegalOrganization/ram:ID",),
            ("ram:SpecifiedLegalOrganization/ram:ID/@schemeID",),
            ("ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']",),
            ("ram:URIUniversalCommunication/ram:URIID",),
            ("ram:URIUniversalCommunication/ram:URIID/@schemeID",),
        ),
        ids=_all("ram:ID | ram:GlobalID"),
    )


_FACTS = ("number", "type_code", "issue_date", "currency", "buyer_reference", "order_reference")
_UBL = _Fields(  # in the order of _FACTS
    ("cbc:ID",),
    ("cbc:InvoiceTypeCode | cbc:CreditNoteTypeCode",),
    ("cbc:IssueDate",),
    ("cbc:DocumentCurrencyCode",),
    ("cbc:BuyerReference",),
    ("cac:OrderReference/cbc:ID",),
)
_UBL_SELLER = _ubl_party("cac:AccountingSupplierParty/cac:Party")
_UBL_BUYER = _ubl_party("cac:AccountingCustomerParty/cac:Party")

_AGREEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
_CII = _Fields(  # in the order of _FACTS
    ("rsm:ExchangedDocument/ram:ID",),
    ("rsm:ExchangedDocument/ram:TypeCode",),
    ("rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString",),
    ("rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceCurrencyCode",),
    (f"{_AGREEMENT}/ram:BuyerReference",),
    (f"{_AGREEMENT}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID",),
)
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
    values = dict(zip(_FACTS, facts(root), strict=True))
    date = values["issue_date"]
    if date and (m := _DATE_102.match(date) or _DATE_ISO.match(date)):
        values["issue_date"] = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return Invoice(seller=seller.read(root), buyer=buyer.read(root), **values)
