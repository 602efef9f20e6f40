"""Tests for edi.ingest.recognise: syntax and kind from the root element, profile from the specification id."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from edi.ingest.recognise import (
    CDAR,
    CII,
    UBL_CREDIT_NOTE,
    UBL_INVOICE,
    ZUGFERD1,
    Recognition,
    profile_of,
    recognise,
)
from edi.ingest.xmlparse import parse_xml
from tests.conftest import CORPUS, FLOWS, corpus_rows

PROFILES = {
    "minimum",
    "basicwl",
    "basic",
    "en16931",
    "extended",
    "xrechnung",
    "xrechnung-extension",
    "peppol-bis3",
    "extended-ctc-fr",
    "en16931-cius",
    "en16931-extension",
    "other",
    "unknown",
}
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"


def root_of(text: str) -> etree._Element:
    tree, findings = parse_xml(text.encode())
    assert tree is not None, findings
    return tree.getroot()


def ubl(namespace: str, tag: str, spec: str | None) -> etree._Element:
    custom = f"<cbc:CustomizationID>{spec}</cbc:CustomizationID>" if spec is not None else ""
    return root_of(f'<{tag} xmlns="{namespace}" xmlns:cbc="{CBC}">{custom}<cbc:ID>1</cbc:ID></{tag}>')


def cii(spec: str | None = "urn:cen.eu:en16931:2017", type_code: str | None = "380") -> etree._Element:
    context = (
        "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        f"<ram:ID>{spec}</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>"
        if spec is not None
        else ""
    )
    code = f"<ram:TypeCode>{type_code}</ram:TypeCode>" if type_code is not None else ""
    return root_of(
        f'<rsm:CrossIndustryInvoice xmlns:rsm="{CII}" xmlns:ram="{RAM}">{context}'
        f"<rsm:ExchangedDocument><ram:ID>1</ram:ID>{code}</rsm:ExchangedDocument></rsm:CrossIndustryInvoice>"
    )


def zugferd1(spec: str) -> etree._Element:
    ram12 = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12"
    return root_of(
        f'<rsm:CrossIndustryDocument xmlns:rsm="{ZUGFERD1}" xmlns:ram="{ram12}">'
        "<rsm:SpecifiedExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        f"<ram:ID>{spec}</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>"
        "</rsm:SpecifiedExchangedDocumentContext></rsm:CrossIndustryDocument>"
    )


# --- the shared corpus -------------------------------------------------------------------------------------------


def _xml_rows() -> list:
    rows = [r for r in corpus_rows() if r["file"].endswith(".xml")]
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(r, id=Path(r["file"]).name) for r in rows]


@pytest.mark.parametrize("row", _xml_rows())
def test_corpus_xml_is_recognised_as_the_manifest_says(row: dict[str, str]) -> None:
    """Every XML file of the corpus gets the manifest's profile, syntax and kind, and its raw BT-24."""
    tree, findings = parse_xml((CORPUS / row["file"]).read_bytes())
    assert tree is not None, findings
    found = recognise(tree.getroot())
    assert found is not None
    assert found.profile == row["profile"]
    assert found.specification_id == row["syntax_id"]
    if row["format"] == "ubl-invoice":
        assert (found.syntax, found.kind) == ("UBL", "Invoice")
    elif row["format"] == "ubl-creditnote":
        assert (found.syntax, found.kind) == ("UBL", "CreditNote")
    elif row["profile"].startswith("zugferd1-"):
        assert (found.syntax, found.kind) == ("ZUGFeRD1", "Invoice")
        assert not found.supported
    else:
        assert row["format"] == "cii"
        assert found.syntax == "CII"
        assert found.kind in ("Invoice", "CreditNote")
    assert found.supported == (found.syntax in ("UBL", "CII"))


def test_corpus_cii_credit_note_by_type_code() -> None:
    """The corpus CII document with TypeCode 381 is recognised as a credit note."""
    path = CORPUS / "invalid" / "mustang__validator__invalidV2.xml"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    tree, _ = parse_xml(path.read_bytes())
    assert tree is not None
    found = recognise(tree.getroot())
    assert found is not None
    assert (found.syntax, found.kind) == ("CII", "CreditNote")


# --- the repository samples --------------------------------------------------------------------------------------

SAMPLES = {
    "01-ubl-invoice.xml": ("UBL", "Invoice", "en16931"),
    "02-ubl-creditnote.xml": ("UBL", "CreditNote", "en16931"),
    "03-cii-invoice.xml": ("CII", "Invoice", "en16931"),
    "10-schema-invalid.xml": ("UBL", "Invoice", "en16931"),
    "01-initech-cii-basic.xml": ("CII", "Invoice", "basic"),
    "02-initech-ubl-voirie.xml": ("UBL", "Invoice", "en16931"),
}
SAMPLE_PATHS = sorted(p for p in FLOWS.glob("*/*.xml") if p.name in SAMPLES)


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=[p.name for p in SAMPLE_PATHS])
def test_samples_are_recognised(path: Path) -> None:
    """The repository samples have the syntax, kind and profile flows/README.md describes."""
    tree, _ = parse_xml(path.read_bytes())
    assert tree is not None
    found = recognise(tree.getroot())
    assert found is not None
    assert (found.syntax, found.kind, found.profile) == SAMPLES[path.name]
    assert found.supported


def test_order_sample_is_not_recognised() -> None:
    """A UBL Order (not an invoice) is not recognised."""
    tree, _ = parse_xml((FLOWS / "acme" / "11-not-an-invoice.xml").read_bytes())
    assert tree is not None
    assert recognise(tree.getroot()) is None


# --- roots -------------------------------------------------------------------------------------------------------

UNKNOWN_ROOTS = {
    "no-namespace-invoice": "<Invoice/>",
    "ubl-order": '<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
    "invoice-in-creditnote-namespace": f'<Invoice xmlns="{UBL_CREDIT_NOTE}"/>',
    "creditnote-in-invoice-namespace": f'<CreditNote xmlns="{UBL_INVOICE}"/>',
    "cii-root-in-ubl-namespace": f'<CrossIndustryInvoice xmlns="{UBL_INVOICE}"/>',
    "cii-namespace-other-root": f'<rsm:Invoice xmlns:rsm="{CII}"/>',
    "cii-no-namespace": "<CrossIndustryInvoice/>",
    "zugferd1-namespace-other-root": f'<CrossIndustryInvoice xmlns="{ZUGFERD1}"/>',
    "html": "<html><body>Facture</body></html>",
    "cdar-namespace-other-root": f'<Acknowledgement xmlns="{CDAR}"/>',
}


@pytest.mark.parametrize("text", UNKNOWN_ROOTS.values(), ids=UNKNOWN_ROOTS.keys())
def test_unknown_roots_give_none(text: str) -> None:
    """A root that is not a UBL Invoice/CreditNote, CII CrossIndustryInvoice or ZUGFeRD 1.0 document gives None."""
    assert recognise(root_of(text)) is None


def test_a_cdar_lifecycle_message_is_a_status_of_its_own_syntax() -> None:
    """A CDAR D22B root is recognised as a status (syntax CDAR, kind Status, profile cdv), with its guideline (MDT-3)
    as its specification id, and supported (edi.lifecycle.intake reads it)."""
    from tests.lifecycle.statuses import status_message

    found = recognise(etree.fromstring(status_message("204")))
    assert found == Recognition("CDAR", "Status", "cdv", "urn.cpro.gouv.fr:1p0:CDV:invoice")
    assert found.supported


def test_ubl_invoice_with_any_prefix() -> None:
    """Recognition goes by namespace, not by prefix."""
    root = root_of(f'<x:Invoice xmlns:x="{UBL_INVOICE}"/>')
    assert recognise(root) == Recognition("UBL", "Invoice", "unknown", "")


def test_ubl_roots() -> None:
    """UBL Invoice and CreditNote roots give syntax UBL and their kind, with the profile of CustomizationID."""
    assert recognise(ubl(UBL_INVOICE, "Invoice", "urn:cen.eu:en16931:2017")) == Recognition(
        "UBL", "Invoice", "en16931", "urn:cen.eu:en16931:2017"
    )
    peppol = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    assert recognise(ubl(UBL_CREDIT_NOTE, "CreditNote", peppol)) == Recognition(
        "UBL", "CreditNote", "peppol-bis3", peppol
    )


def test_specification_id_is_stripped() -> None:
    """The specification id is read without surrounding whitespace."""
    found = recognise(ubl(UBL_INVOICE, "Invoice", "\n   urn:cen.eu:en16931:2017 \n"))
    assert found is not None
    assert found.specification_id == "urn:cen.eu:en16931:2017"
    assert found.profile == "en16931"


def test_missing_specification_id_is_unknown() -> None:
    """A document with no specification id has profile unknown and an empty id."""
    assert recognise(ubl(UBL_INVOICE, "Invoice", None)) == Recognition("UBL", "Invoice", "unknown", "")
    assert recognise(cii(spec=None)) == Recognition("CII", "Invoice", "unknown", "")


@pytest.mark.parametrize(
    ("type_code", "kind"),
    [("380", "Invoice"), ("381", "CreditNote"), ("396", "CreditNote"), ("261", "CreditNote"), ("384", "Invoice"),
     ("389", "Invoice"), ("751", "Invoice"), (None, "Invoice"), (" 381 ", "CreditNote")],
    ids=["380", "381", "396", "261", "384", "389", "751", "none", "381-padded"],
)  # fmt: skip
def test_cii_kind_follows_type_code(type_code: str | None, kind: str) -> None:
    """A CII document is a credit note when its TypeCode is a credit note type (381, ...), else an invoice."""
    found = recognise(cii(type_code=type_code))
    assert found is not None
    assert (found.syntax, found.kind) == ("CII", kind)


@pytest.mark.parametrize(
    ("spec", "profile"),
    [
        ("urn:ferd:CrossIndustryDocument:invoice:1p0:basic", "zugferd1-basic"),
        ("urn:ferd:CrossIndustryDocument:invoice:1p0:comfort", "zugferd1-comfort"),
        ("urn:ferd:CrossIndustryDocument:invoice:1p0:extended", "zugferd1-extended"),
        ("URN:FERD:CROSSINDUSTRYDOCUMENT:INVOICE:1P0:EXTENDED", "zugferd1-extended"),
        ("urn:ferd:CrossIndustryDocument:invoice:1p0:komfort", "zugferd1-unknown"),
        ("", "zugferd1-unknown"),
    ],
    ids=["basic", "comfort", "extended", "upper-case", "komfort", "none"],
)
def test_zugferd1_is_recognised_but_not_supported(spec: str, profile: str) -> None:
    """A ZUGFeRD 1.0 CrossIndustryDocument is recognised with its level, and is not a supported syntax."""
    found = recognise(zugferd1(spec))
    assert found is not None
    assert (found.syntax, found.kind, found.profile) == ("ZUGFeRD1", "Invoice", profile)
    assert not found.supported


# --- profile_of --------------------------------------------------------------------------------------------------

PROFILE_CASES = [
    ("", "unknown"),
    ("   \n", "unknown"),
    ("urn:cen.eu:en16931:2017", "en16931"),
    ("  URN:CEN.EU:EN16931:2017  ", "en16931"),
    ("urn:cen.eu:en16931:2017:compliant:factur-x.eu:1p0:en16931", "en16931"),
    ("urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:en16931", "en16931"),
    ("urn:factur-x.eu:1p0:minimum", "minimum"),
    ("urn:zugferd.de:2p0:minimum", "minimum"),
    ("urn:factur-x.eu:1p0:basicwl", "basicwl"),
    ("urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic", "basic"),
    ("urn:cen.eu:en16931:2017#compliant#urn:zugferd.de:2p0:basic", "basic"),
    ("urn:cen.eu:en16931:2017:compliant:factur-x.eu:1p0:basic", "basic"),
    ("urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended", "extended"),
    ("urn:cen.eu:en16931:2017#conformant#urn:zugferd.de:2p0:extended", "extended"),
    ("urn:cen.eu:en16931:2017:compliant:factur-x.eu:1p0:extended", "extended"),
    ("urn:cen.eu:en16931:2017#conformant#urn.cpro.gouv.fr:1p0:extended-ctc-fr", "extended-ctc-fr"),
    ("urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0", "peppol-bis3"),
    ("urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0", "xrechnung"),
    ("urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_1.2", "xrechnung"),
    (
        "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
        "#conformant#urn:xeinkauf.de:kosit:extension:xrechnung_3.0",
        "xrechnung-extension",
    ),
    ("urn:cen.eu:en16931:2017#compliant#urn:example.org:my-cius:1.0", "en16931-cius"),
    ("urn:cen.eu:en16931:2017#conformant#urn:example.org:my-extension:1.0", "en16931-extension"),
    ("urn:ferd:CrossIndustryDocument:invoice:1p0:comfort", "other"),
    ("urn:factur-x.eu:1p0:basic:something-more", "other"),
    ("urn:cen.eu:en16931:2017:extra", "other"),
    ("hello", "other"),
]


@pytest.mark.parametrize(("spec", "profile"), PROFILE_CASES, ids=[s.strip() or "blank" for s, _ in PROFILE_CASES])
def test_profile_of(spec: str, profile: str) -> None:
    """Each specification identifier maps to the corpus profile name."""
    assert profile_of(spec) == profile


@given(st.text())
def test_profile_of_is_total(spec: str) -> None:
    """profile_of never raises and always names one of the known profiles."""
    assert profile_of(spec) in PROFILES


@given(st.text(alphabet=st.characters(max_codepoint=127)), st.sampled_from(["", " ", "\n", "\t  "]))
def test_profile_of_ignores_case_and_surrounding_space(spec: str, space: str) -> None:
    """The profile does not depend on letter case or on whitespace around the identifier."""
    assert profile_of(space + spec.swapcase() + space) == profile_of(spec)
