"""Tests for edi.ingest.extract: the invoice facts routing and tracking need, None where an element is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from edi.ingest.extract import extract_invoice
from edi.ingest.recognise import CII, UBL_CREDIT_NOTE, UBL_INVOICE, recognise
from edi.ingest.xmlparse import parse_xml
from edi.model import Invoice, Party
from tests.conftest import CORPUS, FLOWS, corpus_rows

NSDECL = (
    'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2" '
    'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
)
CII_NSDECL = (
    f'xmlns:rsm="{CII}" '
    'xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" '
    'xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"'
)


def root_of(data: bytes) -> etree._Element:
    tree, findings = parse_xml(data)
    assert tree is not None, findings
    return tree.getroot()


def facts(path: Path) -> Invoice:
    root = root_of(path.read_bytes())
    found = recognise(root)
    assert found is not None
    return extract_invoice(root, found.syntax)


def test_ubl_invoice_sample() -> None:
    """The facts of the UBL sample invoice: number, date, type, currency, parties and service code."""
    invoice = facts(FLOWS / "acme" / "01-ubl-invoice.xml")
    assert invoice == Invoice(
        number="FA-2026-0001",
        type_code="380",
        issue_date="2026-11-03",
        currency="EUR",
        seller=Party(
            name="Acme SAS",
            legal_id="123456782",
            legal_scheme="0002",
            vat_id="FR11123456782",
            endpoint="123456782",
            endpoint_scheme="0225",
        ),
        buyer=Party(
            name="Ville d'Exemple",
            legal_id="21930048000015",
            legal_scheme="0009",
            vat_id="FR19219300480",
            endpoint="219300480",
            endpoint_scheme="0225",
        ),
        buyer_reference="ACHATS",
        order_reference=None,
    )


def test_ubl_credit_note_sample() -> None:
    """A UBL credit note gives its number and CreditNoteTypeCode."""
    invoice = facts(FLOWS / "acme" / "02-ubl-creditnote.xml")
    assert (invoice.number, invoice.type_code, invoice.issue_date) == ("AV-2026-0001", "381", "2026-11-04")
    assert (invoice.buyer.legal_id, invoice.buyer.legal_scheme) == ("404040404", "0002")


def test_cii_invoice_sample() -> None:
    """The CII sample: the 102 date becomes ISO YYYY-MM-DD, the engagement number is the order reference."""
    invoice = facts(FLOWS / "acme" / "03-cii-invoice.xml")
    assert invoice.number == "FA-2026-0002"
    assert invoice.type_code == "380"
    assert invoice.issue_date == "2026-11-05"
    assert invoice.currency == "EUR"
    assert invoice.order_reference == "EJ-2026-000123"
    assert invoice.buyer_reference is None
    assert invoice.seller.legal_id == "123456782"
    assert invoice.seller.vat_id == "FR11123456782"
    assert invoice.buyer.name == "Centre hospitalier d'Exemple"
    assert (invoice.buyer.legal_id, invoice.buyer.legal_scheme) == ("26750045200011", "0009")


def test_cii_buyer_with_only_an_electronic_address() -> None:
    """In the opdemat CII sample the buyer has only an endpoint (0225 404040404) and no legal or VAT id."""
    invoice = facts(FLOWS / "opdemat" / "01-initech-cii-basic.xml")
    assert invoice.number == "IN-2026-0042"
    assert invoice.issue_date == "2026-11-16"
    assert invoice.buyer == Party(name="Dupont Industrie SA", endpoint="404040404", endpoint_scheme="0225")
    assert invoice.buyer.main_id == "404040404"
    assert invoice.seller.legal_id == "987654324"


def test_ubl_order_reference_and_service_code() -> None:
    """The opdemat UBL sample gives its service code (BT-10) and engagement number (BT-13)."""
    invoice = facts(FLOWS / "opdemat" / "02-initech-ubl-voirie.xml")
    assert (invoice.buyer_reference, invoice.order_reference) == ("VOIRIE", "EJ-2026-000777")


def test_schema_invalid_document_still_gives_its_facts() -> None:
    """Facts are read from a document that fails its XSD; a bad date is kept as written."""
    invoice = facts(FLOWS / "acme" / "10-schema-invalid.xml")
    assert invoice.number == "FA-2026-0010"
    assert invoice.issue_date == "2026-13-45"
    assert invoice.seller.vat_id is None


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        (f'<Invoice xmlns="{UBL_INVOICE}"/>', "UBL"),
        (f'<CreditNote xmlns="{UBL_CREDIT_NOTE}" {NSDECL}><cac:AccountingSupplierParty/></CreditNote>', "UBL"),
        (f"<rsm:CrossIndustryInvoice {CII_NSDECL}/>", "CII"),
        (
            f"<rsm:CrossIndustryInvoice {CII_NSDECL}><rsm:SupplyChainTradeTransaction>"
            "<ram:ApplicableHeaderTradeAgreement><ram:SellerTradeParty/></ram:ApplicableHeaderTradeAgreement>"
            "</rsm:SupplyChainTradeTransaction></rsm:CrossIndustryInvoice>",
            "CII",
        ),
    ],
    ids=["ubl-empty", "ubl-empty-party", "cii-empty", "cii-empty-party"],
)
def test_missing_elements_give_none(text: str, syntax: str) -> None:
    """A document without the elements gives None for every fact and empty parties, never an exception."""
    assert extract_invoice(root_of(text.encode()), syntax) == Invoice()


def test_empty_elements_give_none() -> None:
    """Elements that are present but blank give None, not an empty string."""
    root = root_of(
        f'<Invoice xmlns="{UBL_INVOICE}" {NSDECL}><cbc:ID>  </cbc:ID><cbc:IssueDate/>'
        "<cbc:BuyerReference>\n</cbc:BuyerReference></Invoice>".encode()
    )
    assert extract_invoice(root, "UBL") == Invoice()


def test_unknown_syntax_gives_an_empty_invoice() -> None:
    """For a syntax extract does not read (e.g. ZUGFeRD1) the invoice is empty."""
    root = root_of((FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    assert extract_invoice(root, "ZUGFeRD1") == Invoice()


def test_values_are_whitespace_normalised() -> None:
    """Values are trimmed and inner runs of whitespace collapse to one space."""
    root = root_of(
        f'<Invoice xmlns="{UBL_INVOICE}" {NSDECL}><cbc:ID>\n  FA   2026\t0001 </cbc:ID>'
        "<cac:AccountingSupplierParty><cac:Party><cac:PartyIdentification><cbc:ID> A  1 </cbc:ID>"
        "</cac:PartyIdentification></cac:Party></cac:AccountingSupplierParty></Invoice>".encode()
    )
    invoice = extract_invoice(root, "UBL")
    assert invoice.number == "FA 2026 0001"
    assert invoice.seller.ids == ("A 1",)


def test_values_with_line_breaks_stay_in_their_own_fields() -> None:
    """Values are read several at a time; line breaks and tabs inside one never spill into the next, and a
    registration name, when there is one, is preferred to the trading name."""
    root = root_of(
        f'<Invoice xmlns="{UBL_INVOICE}" {NSDECL}><cac:AccountingSupplierParty><cac:Party>'
        "<cbc:EndpointID schemeID='\n0009\n'>\r\n123\n456\n</cbc:EndpointID>"
        "<cac:PartyName><cbc:Name>Trading\nname</cbc:Name></cac:PartyName>"
        "<cac:PartyLegalEntity><cbc:RegistrationName>\nLegal\n\tname\n</cbc:RegistrationName>"
        "<cbc:CompanyID>\n</cbc:CompanyID></cac:PartyLegalEntity>"
        "</cac:Party></cac:AccountingSupplierParty></Invoice>".encode()
    )
    assert extract_invoice(root, "UBL").seller == Party(name="Legal name", endpoint="123 456", endpoint_scheme="0009")


def test_ubl_party_name_falls_back_and_ids_are_all_read() -> None:
    """Without a registration name the trading name is used; every PartyIdentification id is kept in order."""
    root = root_of(
        f'<Invoice xmlns="{UBL_INVOICE}" {NSDECL}><cac:AccountingSupplierParty><cac:Party>'
        "<cac:PartyIdentification><cbc:ID schemeID='0088'>5790000435968</cbc:ID></cac:PartyIdentification>"
        "<cac:PartyIdentification><cbc:ID/></cac:PartyIdentification>"
        "<cac:PartyIdentification><cbc:ID>SELLER-7</cbc:ID></cac:PartyIdentification>"
        "<cac:PartyName><cbc:Name>Trading name</cbc:Name></cac:PartyName>"
        "<cac:PartyTaxScheme><cbc:CompanyID>FR-NOT-VAT</cbc:CompanyID><cac:TaxScheme><cbc:ID>FC</cbc:ID>"
        "</cac:TaxScheme></cac:PartyTaxScheme>"
        "<cac:PartyTaxScheme><cbc:CompanyID>FR11123456782</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID>"
        "</cac:TaxScheme></cac:PartyTaxScheme>"
        "</cac:Party></cac:AccountingSupplierParty></Invoice>".encode()
    )
    seller = extract_invoice(root, "UBL").seller
    assert seller.name == "Trading name"
    assert seller.ids == ("5790000435968", "SELLER-7")
    assert seller.vat_id == "FR11123456782"


def test_cii_vat_id_needs_scheme_va_and_non_102_dates_are_kept() -> None:
    """CII: only a tax registration with schemeID VA is the VAT id; a date not in format 102 is kept as written."""
    root = root_of(
        f"<rsm:CrossIndustryInvoice {CII_NSDECL}><rsm:ExchangedDocument><ram:ID>X</ram:ID>"
        "<ram:IssueDateTime><udt:DateTimeString format='610'>202611</udt:DateTimeString></ram:IssueDateTime>"
        "</rsm:ExchangedDocument><rsm:SupplyChainTradeTransaction><ram:ApplicableHeaderTradeAgreement>"
        "<ram:SellerTradeParty><ram:SpecifiedTaxRegistration><ram:ID schemeID='FC'>123/456</ram:ID>"
        "</ram:SpecifiedTaxRegistration><ram:SpecifiedTaxRegistration><ram:ID schemeID='VA'>DE123456789</ram:ID>"
        "</ram:SpecifiedTaxRegistration></ram:SellerTradeParty>"
        "</ram:ApplicableHeaderTradeAgreement></rsm:SupplyChainTradeTransaction></rsm:CrossIndustryInvoice>".encode()
    )
    invoice = extract_invoice(root, "CII")
    assert invoice.issue_date == "202611"
    assert invoice.seller.vat_id == "DE123456789"


def _xml_rows() -> list:
    rows = [r for r in corpus_rows() if r["file"].endswith(".xml") and not r["profile"].startswith("zugferd1-")]
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(r, id=Path(r["file"]).name) for r in rows]


@pytest.mark.parametrize("row", _xml_rows())
def test_corpus_invoices_give_number_date_and_seller(row: dict[str, str]) -> None:
    """Every UBL/CII file of the corpus gives a number, an ISO issue date and a seller name."""
    invoice = facts(CORPUS / row["file"])
    assert invoice.number
    assert invoice.issue_date is not None
    assert re.match(r"\d{4}-\d{2}-\d{2}", invoice.issue_date)
    assert invoice.seller.name
