"""Tests for edi.validate.xsd: every XSD error as a finding, against the official schemas the catalogue names."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from edi.errors import CatalogueError
from edi.ingest.recognise import recognise
from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Document, Flow, Layer
from edi.validate.catalogue import Catalogue, load_catalogue, official_schemas
from edi.validate.xsd import MAX_ERRORS, XsdValidation, compile_schema, readable, validate_xsd
from tests.conftest import CORPUS, FLOWS, corpus_rows

UBL_INVOICE_XSD = official_schemas() / "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"


def tree_of(data: bytes) -> etree._ElementTree:
    tree, findings = parse_xml(data)
    assert tree is not None, findings
    return tree


def xsd_findings(data: bytes) -> list:
    """Parse, recognise, pick the schema in the shipped catalogue, validate: the XSD layer as the pipeline runs it."""
    tree = tree_of(data)
    found = recognise(tree.getroot())
    assert found is not None
    entry = load_catalogue().xsd_for(found.syntax, found.kind, found.profile)
    assert entry is not None
    return validate_xsd(tree, entry.schema)


# --- the shared corpus -------------------------------------------------------------------------------------------


def _xml_rows() -> list:
    rows = [r for r in corpus_rows() if r["file"].endswith(".xml")]
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(r, id=Path(r["file"]).name) for r in rows]


@pytest.mark.parametrize("row", _xml_rows())
def test_corpus_xml_gets_the_manifest_xsd_verdict(row: dict[str, str]) -> None:
    """Every XML file of the corpus (ZUGFeRD 1.0 included, with the catalogue's ZUGFeRD1 entry) is XSD-valid
    exactly when the manifest says so, using the same schema as the manifest's xsd_used."""
    tree = tree_of((CORPUS / row["file"]).read_bytes())
    found = recognise(tree.getroot())
    assert found is not None
    entry = load_catalogue().xsd_for(found.syntax, found.kind, found.profile)
    assert entry is not None
    assert entry.schema == official_schemas() / row["xsd_used"]
    findings = validate_xsd(tree, entry.schema)
    assert ("no" if findings else "yes") == row["xsd_valid"]
    for finding in findings:
        assert (finding.code, finding.layer) == (Code.IRR_SYNTAX, Layer.XSD)
        if found.supported:  # ZUGFeRD 1.0 namespaces have no short prefix (the format is refused before the XSD)
            assert "{urn:" not in finding.message


def _invalid_rows() -> list:
    rows = [r for r in corpus_rows() if r["file"].endswith(".xml") and r["xsd_valid"] == "no"]
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(r, id=Path(r["file"]).name) for r in rows]


@pytest.mark.parametrize("row", _invalid_rows())
def test_corpus_first_error_is_the_manifest_first_error(row: dict[str, str]) -> None:
    """The first finding of an XSD-invalid corpus file is the manifest's xsd_first_error: same line, same message."""
    findings = xsd_findings((CORPUS / row["file"]).read_bytes())
    where, _, message = row["xsd_first_error"].partition(": ")
    assert where == f"line {findings[0].line}"
    known = readable(message)
    cut = known.rfind("{")
    if cut >= 0 and "}" not in known[cut:]:  # the manifest cuts messages at 200 characters, maybe inside a namespace
        known = known[:cut]
    assert len(known) > 40
    assert findings[0].message.startswith(known)


# --- the repository samples --------------------------------------------------------------------------------------

VALID = sorted(
    p
    for p in FLOWS.glob("*/*.xml")
    if p.stat().st_size > 0
    and p.name not in {"09-not-well-formed.xml", "10-schema-invalid.xml", "11-not-an-invoice.xml", "13-doctype.xml"}
)


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_samples_have_no_xsd_finding(path: Path) -> None:
    """The samples flows/README.md calls XSD-valid give no finding."""
    assert xsd_findings(path.read_bytes()) == []


def test_doctype_sample_without_its_doctype_is_valid() -> None:
    """The DOCTYPE sample is XSD-valid once its DOCTYPE line is removed (as flows/README.md says)."""
    lines = (FLOWS / "acme" / "13-doctype.xml").read_bytes().splitlines(keepends=True)
    assert xsd_findings(b"".join(line for line in lines if not line.startswith(b"<!DOCTYPE"))) == []


def test_schema_invalid_sample_reports_all_three_errors() -> None:
    """The schema-invalid sample gives its 3 errors, each with line, XPath and a SCHEMAV rule, prefixes not URIs."""
    findings = xsd_findings((FLOWS / "acme" / "10-schema-invalid.xml").read_bytes())
    assert len(findings) == 3
    for finding in findings:
        assert (finding.code, finding.layer) == (Code.IRR_SYNTAX, Layer.XSD)
        assert finding.fatal
        assert isinstance(finding.line, int)
        assert finding.line > 0
        assert finding.xpath is not None
        assert finding.xpath.startswith("/")
        assert finding.rule is not None
        assert finding.rule.startswith("SCHEMAV_")
        assert "{urn:" not in finding.message
    date, street, quantity = findings
    assert (date.line, date.xpath) == (9, "/*/cbc:IssueDate")
    assert "cbc:IssueDate" in date.message
    assert "2026-13-45" in date.message
    assert street.xpath == "/*/cac:AccountingSupplierParty/cac:Party/cac:PostalAddress/cbc:StreetName"
    assert street.rule == "SCHEMAV_ELEMENT_CONTENT"
    assert "cbc:StreetName" in street.message
    assert quantity.xpath is not None
    assert quantity.xpath.endswith("cbc:InvoicedQuantity")
    assert "douze" in quantity.message


def test_errors_do_not_leak_into_the_next_validation() -> None:
    """After an invalid document, a valid one validated against the same schema gives no finding."""
    assert xsd_findings((FLOWS / "acme" / "10-schema-invalid.xml").read_bytes())
    assert xsd_findings((FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()) == []


def test_at_most_max_errors_are_listed_then_a_count() -> None:
    """A document with more than MAX_ERRORS errors lists MAX_ERRORS of them and one finding counting the rest."""
    text = (FLOWS / "acme" / "10-schema-invalid.xml").read_text(encoding="utf-8")
    start = text.index("<cac:InvoiceLine>")
    end = text.index("</cac:InvoiceLine>") + len("</cac:InvoiceLine>")
    assert text[start:end].count("douze") == 1
    extra = MAX_ERRORS + 50
    data = (text[:start] + text[start:end] * extra + text[end:]).encode()
    findings = xsd_findings(data)
    assert len(findings) == MAX_ERRORS + 1
    hidden = extra + 2 - MAX_ERRORS  # each line has one error, plus the date and the street name
    assert findings[-1].message == f"{hidden} more XSD errors not listed"
    assert findings[-1].code is Code.IRR_SYNTAX
    assert all(f.rule for f in findings[:-1])


# --- readable ----------------------------------------------------------------------------------------------------

READABLE = [
    (
        "Element '{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}IssueDate': bad.",
        "Element 'cbc:IssueDate': bad.",
    ),
    (
        "Element '{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}Party': "
        "Expected is ( {urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID ).",
        "Element 'cac:Party': Expected is ( cbc:ID ).",
    ),
    (
        "Element '{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}Name'",
        "Element 'ram:Name'",
    ),
    ("Element '{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice'", "Element 'ubl:Invoice'"),
    ("Element '{urn:example:other}Thing': x", "Element '{urn:example:other}Thing': x"),
    ("  no namespace at all \n", "no namespace at all"),
]


@pytest.mark.parametrize(
    ("message", "expected"), READABLE, ids=["cbc", "cac-and-cbc", "ram", "ubl", "unknown", "strip"]
)
def test_readable_shortens_known_namespaces(message: str, expected: str) -> None:
    """Known namespaces become their usual prefix; unknown ones are kept in Clark notation."""
    assert readable(message) == expected


# --- compile_schema ----------------------------------------------------------------------------------------------


def test_compile_schema_is_cached() -> None:
    """The same schema path gives the same compiled object twice."""
    assert compile_schema(UBL_INVOICE_XSD) is compile_schema(UBL_INVOICE_XSD)


def test_compile_schema_of_a_broken_file_is_a_catalogue_error(tmp_path: Path) -> None:
    """A file that is not an XSD (or not there) raises CatalogueError: an installation fault, not bad input."""
    bad = tmp_path / "bad.xsd"
    bad.write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:nonsense/></xs:schema>")
    with pytest.raises(CatalogueError, match=r"bad\.xsd"):
        compile_schema(bad)
    with pytest.raises(CatalogueError):
        compile_schema(tmp_path / "missing.xsd")
    broken = tmp_path / "broken.xsd"
    broken.write_text("<xs:schema")
    with pytest.raises(CatalogueError):
        compile_schema(broken)


# --- the XsdValidation stage -------------------------------------------------------------------------------------


def _flow_and_doc(path: Path) -> tuple[Flow, Document]:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    flow = Flow("F-1", "acme", path.name, len(data), sha, datetime(2026, 11, 26, tzinfo=UTC), path)
    tree = tree_of(data)
    found = recognise(tree.getroot())
    assert found is not None
    doc = Document(
        1, path.name, len(data), sha, data, syntax=found.syntax, kind=found.kind,
        profile=found.profile, tree=tree,
    )  # fmt: skip
    return flow, doc


def test_stage_adds_xsd_findings() -> None:
    """The XSD stage adds the document's XSD errors to its findings."""
    flow, doc = _flow_and_doc(FLOWS / "acme" / "10-schema-invalid.xml")
    checked = XsdValidation(load_catalogue())(doc, flow)
    assert len(checked.findings) == 3
    assert not checked.accepted


def test_stage_keeps_a_valid_document_accepted() -> None:
    """A valid document goes through the XSD stage with no finding."""
    flow, doc = _flow_and_doc(FLOWS / "opdemat" / "01-initech-cii-basic.xml")
    assert XsdValidation(load_catalogue())(doc, flow).findings == ()


def test_stage_skips_a_document_without_tree() -> None:
    """A document that could not be parsed or recognised is left as it is."""
    flow, doc = _flow_and_doc(FLOWS / "acme" / "01-ubl-invoice.xml")
    stage = XsdValidation(load_catalogue())
    for skipped in (Document(1, "x", 0, doc.sha256, doc.data, syntax="UBL"), Document(1, "x", 0, doc.sha256, doc.data)):
        assert stage(skipped, flow) is skipped


def test_stage_fails_closed_when_no_schema_covers_the_document() -> None:
    """With no catalogue entry for a recognised document, the stage raises rather than call it valid."""
    flow, doc = _flow_and_doc(FLOWS / "acme" / "03-cii-invoice.xml")
    ubl_only = Catalogue(tuple(e for e in load_catalogue().entries if e.syntax == "UBL"))
    with pytest.raises(CatalogueError, match="CII"):
        XsdValidation(ubl_only)(doc, flow)
