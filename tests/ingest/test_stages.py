"""Tests for edi.ingest.stages: the intake stages over real Flow and Document values and real payload files."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edi.ingest.archives import Limits
from edi.ingest.expand import Expand
from edi.ingest.recognise import ZUGFERD1
from edi.ingest.stages import (
    CheckFile,
    CheckPdfProfile,
    Extract,
    Parse,
    Recognise,
    RejectDuplicateFlow,
    RejectDuplicateInvoice,
    invoice_key,
    open_regular,
)
from edi.model import Code, Document, Finding, Flow, FlowStatus, Layer
from tests.conftest import FLOWS

MIB = 1024 * 1024
RECEIVED = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def flow_for(path: Path, *, size: int | None = None, sender: str = "acme", flow_id: str = "F-2") -> Flow:
    """A flow whose payload is ``path``, as the pipeline builds it after claiming the file."""
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
    return Flow(
        flow_id=flow_id,
        sender=sender,
        file_name=path.name,
        size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest(),
        received_at=RECEIVED,
        payload=path,
    )


def payload(tmp_path: Path, data: bytes, name: str = "invoice.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def document_of(path: Path) -> Document:
    data = path.read_bytes()
    return Document(
        index=1,
        name=path.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )


LIMITS = Limits(max_document_bytes=MIB, max_uncompressed_bytes=10 * MIB, max_compression_ratio=200, max_members=100)


# --- CheckFile ---------------------------------------------------------------------------------------------------


def test_check_file_passes_a_normal_file(tmp_path: Path) -> None:
    """A non-empty regular file within the limit goes through unchanged."""
    flow = flow_for(payload(tmp_path, b"<Invoice/>"))
    assert CheckFile(max_bytes=MIB)(flow) is flow


def test_check_file_refuses_an_empty_file(tmp_path: Path) -> None:
    """An empty file is rejected whole with IRR_VIDE_F at the intake layer."""
    flow = CheckFile(max_bytes=MIB)(flow_for(payload(tmp_path, b"")))
    assert [(f.code, f.layer) for f in flow.findings] == [(Code.IRR_VIDE_F, Layer.INTAKE)]
    assert flow.rejected_whole
    assert flow.status is FlowStatus.REJECTED


def test_check_file_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    """A file over the limit gives IRR_TAILLE_F, and the message gives the file size and the limit."""
    flow = CheckFile(max_bytes=MIB)(flow_for(payload(tmp_path, b"<Invoice/>"), size=3 * MIB))
    (finding,) = flow.findings
    assert (finding.code, finding.layer) == (Code.IRR_TAILLE_F, Layer.INTAKE)
    assert "3.0 MiB" in finding.message
    assert "1.0 MiB" in finding.message
    assert str(MIB) in finding.message
    assert flow.rejected_whole


@pytest.mark.parametrize(
    ("size", "limit", "message"),
    [
        (1500, 1000, "the file is 1500 bytes (1.5 KiB); the limit is 1000 bytes"),
        (2048, 1024, "the file is 2048 bytes (2.0 KiB); the limit is 1024 bytes (1.0 KiB)"),
        (5 * 1024**3, MIB, "the file is 5368709120 bytes (5.0 GiB); the limit is 1048576 bytes (1.0 MiB)"),
        (3000 * 1024**3, MIB, "the file is 3221225472000 bytes (3000.0 GiB); the limit is 1048576 bytes (1.0 MiB)"),
    ],
    ids=["bytes", "kib", "gib", "tib"],
)
def test_check_file_size_message_units(tmp_path: Path, size: int, limit: int, message: str) -> None:
    """Sizes are exact byte counts, with KiB, MiB or GiB (the largest unit) beside them from 1 KiB up."""
    flow = CheckFile(max_bytes=limit)(flow_for(payload(tmp_path, b"<Invoice/>"), size=size))
    assert flow.findings[0].message == message


def test_check_file_accepts_a_file_exactly_at_the_limit(tmp_path: Path) -> None:
    """The limit is inclusive: a file of exactly max_bytes passes."""
    data = b"<Invoice/>"
    flow = flow_for(payload(tmp_path, data))
    assert CheckFile(max_bytes=len(data))(flow).findings == ()
    assert CheckFile(max_bytes=len(data) - 1)(flow).findings[0].code is Code.IRR_TAILLE_F


def test_check_file_message_tells_the_sizes_apart_just_over_the_limit(tmp_path: Path) -> None:
    """A file one byte over a 1 MiB limit gets a message in which the file size and the limit differ."""
    flow = CheckFile(max_bytes=MIB)(flow_for(payload(tmp_path, b"<Invoice/>"), size=MIB + 1))
    message = flow.findings[0].message
    file_part, limit_part = message.split(";")
    assert file_part.removeprefix("the file is ") not in limit_part


def test_check_file_refuses_a_symlink_payload(tmp_path: Path) -> None:
    """A payload that is a symlink (even to a good file) is refused with IRR_TYPE_F, its target never read."""
    target = payload(tmp_path, (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), "target.xml")
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    flow = CheckFile(max_bytes=MIB)(flow_for(link, size=target.stat().st_size))
    (finding,) = flow.findings
    assert (finding.code, finding.layer) == (Code.IRR_TYPE_F, Layer.INTAKE)
    assert "not a regular file" in finding.message


def test_check_file_refuses_a_fifo_payload(tmp_path: Path) -> None:
    """A FIFO payload is refused with IRR_TYPE_F without being opened (opening it would block)."""
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    flow = CheckFile(max_bytes=MIB)(flow_for(fifo, size=10))
    assert [f.code for f in flow.findings] == [Code.IRR_TYPE_F]


def test_check_file_keeps_earlier_findings(tmp_path: Path) -> None:
    """A stage adds its finding after those already on the flow."""
    earlier = Finding(Code.DOUBLON, Layer.INTAKE, "earlier")
    flow = flow_for(payload(tmp_path, b""))
    flow = CheckFile(max_bytes=MIB)(replace(flow, findings=(earlier,)))
    assert [f.code for f in flow.findings] == [Code.DOUBLON, Code.IRR_VIDE_F]


# --- RejectDuplicateFlow -----------------------------------------------------------------------------------------


def test_new_bytes_are_not_a_duplicate(tmp_path: Path) -> None:
    """When the lookup finds no earlier flow, the flow goes through unchanged; the lookup gets sender, hash, id."""
    calls: list[tuple[str, str, str]] = []

    def earlier(sender: str, sha256: str, flow_id: str) -> str | None:
        calls.append((sender, sha256, flow_id))
        return None

    flow = flow_for(payload(tmp_path, b"<Invoice/>"), sender="opdemat", flow_id="F-9")
    assert RejectDuplicateFlow(earlier)(flow) is flow
    assert calls == [("opdemat", flow.sha256, "F-9")]


def test_duplicate_is_rejected_naming_the_earlier_flow(tmp_path: Path) -> None:
    """When the sender already deposited these bytes, the flow gets DOUBLON and names the earlier flow."""
    deposited = {("acme", hashlib.sha256(b"<Invoice/>").hexdigest()): "F-1"}

    def earlier(sender: str, sha256: str, flow_id: str) -> str | None:
        return deposited.get((sender, sha256))

    flow = RejectDuplicateFlow(earlier)(flow_for(payload(tmp_path, b"<Invoice/>")))
    (finding,) = flow.findings
    assert (finding.code, finding.layer, finding.rule) == (Code.DOUBLON, Layer.INTAKE, "DUPLICATE_FLOW")
    assert flow.duplicate_of == "F-1"
    assert "F-1" in finding.message
    assert "'acme'" in finding.message
    assert flow.sha256[:16] in finding.message
    assert flow.rejected_whole
    other = RejectDuplicateFlow(earlier)(flow_for(payload(tmp_path, b"<Invoice/>"), sender="opdemat"))
    assert other.findings == ()
    assert other.duplicate_of is None


# --- open_regular -------------------------------------------------------------------------------------------------


def test_open_regular_reads_a_file_and_refuses_a_symlink(tmp_path: Path) -> None:
    """open_regular reads a regular file and raises OSError on a symlink."""
    path = payload(tmp_path, b"abc")
    with open_regular(path) as stream:
        assert stream.read() == b"abc"
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(OSError):
        open_regular(link)


# --- Parse, Recognise, Extract ------------------------------------------------------------------------------------


def test_parse_gives_the_tree(tmp_path: Path) -> None:
    """Parse reads the document through open() and attaches its tree, with no finding."""
    flow = flow_for(payload(tmp_path, b"<Invoice/>"))
    doc = Parse()(document_of(flow.payload), flow)
    assert doc.findings == ()
    assert doc.tree is not None


def test_parse_refuses_bad_xml_and_keeps_earlier_findings(tmp_path: Path) -> None:
    """A document that is not well-formed gets IRR_SYNTAX after its earlier findings, and no tree."""
    flow = flow_for(payload(tmp_path, b"<Invoice>"))
    earlier = Finding(Code.DEST_INC, Layer.ROUTING, "earlier")
    doc = Parse()(document_of(flow.payload).with_findings(earlier), flow)
    assert doc.tree is None
    assert [f.code for f in doc.findings] == [Code.DEST_INC, Code.IRR_SYNTAX]
    assert doc.findings[1].layer is Layer.PARSE


def _parsed(tmp_path: Path, data: bytes) -> tuple[Document, Flow]:
    flow = flow_for(payload(tmp_path, data))
    return Parse()(document_of(flow.payload), flow), flow


def test_recognise_names_a_ubl_invoice(tmp_path: Path) -> None:
    """Recognise fills syntax, kind, profile and specification id and keeps the tree."""
    doc, flow = _parsed(tmp_path, (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    doc = Recognise()(doc, flow)
    assert (doc.syntax, doc.kind, doc.profile, doc.specification_id) == (
        "UBL",
        "Invoice",
        "en16931",
        "urn:cen.eu:en16931:2017",
    )
    assert doc.tree is not None
    assert doc.findings == ()


def test_recognise_refuses_an_unknown_root(tmp_path: Path) -> None:
    """An unknown root gives IRR_TYPE_F naming the root, at /* and its line, and drops the tree."""
    doc, flow = _parsed(tmp_path, (FLOWS / "acme" / "11-not-an-invoice.xml").read_bytes())
    doc = Recognise()(doc, flow)
    (finding,) = doc.findings
    assert (finding.code, finding.layer, finding.xpath) == (Code.IRR_TYPE_F, Layer.PARSE, "/*")
    assert "Order" in finding.message
    assert isinstance(finding.line, int)
    assert doc.tree is None
    assert doc.syntax is None


def test_recognise_refuses_zugferd1_but_says_what_it_is(tmp_path: Path) -> None:
    """A ZUGFeRD 1.0 document is named (syntax ZUGFeRD1, its profile) and refused with IRR_TYPE_F."""
    data = (
        f'<rsm:CrossIndustryDocument xmlns:rsm="{ZUGFERD1}" '
        'xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12">'
        "<rsm:SpecifiedExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        "<ram:ID>urn:ferd:CrossIndustryDocument:invoice:1p0:comfort</ram:ID>"
        "</ram:GuidelineSpecifiedDocumentContextParameter></rsm:SpecifiedExchangedDocumentContext>"
        "</rsm:CrossIndustryDocument>"
    ).encode()
    doc, flow = _parsed(tmp_path, data)
    doc = Recognise()(doc, flow)
    assert (doc.syntax, doc.profile) == ("ZUGFeRD1", "zugferd1-comfort")
    assert [f.code for f in doc.findings] == [Code.IRR_TYPE_F]
    assert "ZUGFeRD 1.0" in doc.findings[0].message
    assert doc.tree is None
    assert not doc.accepted


def test_recognise_and_extract_leave_an_unparsed_document_alone(tmp_path: Path) -> None:
    """Without a tree, Recognise and Extract return the document unchanged."""
    doc, flow = _parsed(tmp_path, b"<Invoice")
    assert Recognise()(doc, flow) is doc
    assert Extract()(doc, flow) is doc


def test_extract_fills_the_invoice(tmp_path: Path) -> None:
    """Extract reads the invoice facts of a recognised document."""
    doc, flow = _parsed(tmp_path, (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes())
    doc = Extract()(Recognise()(doc, flow), flow)
    assert doc.invoice is not None
    assert (doc.invoice.number, doc.invoice.issue_date) == ("FA-2026-0002", "2026-11-05")


def test_extract_needs_a_syntax(tmp_path: Path) -> None:
    """Extract does nothing on a parsed document that was not recognised yet."""
    doc, flow = _parsed(tmp_path, (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    assert Extract()(doc, flow).invoice is None


# --- the whole intake over the samples ---------------------------------------------------------------------------

EXPECTED = {
    "09-not-well-formed.xml": [Code.IRR_SYNTAX],
    "11-not-an-invoice.xml": [Code.IRR_TYPE_F],
    "13-doctype.xml": [Code.IRR_SYNTAX],
}
SAMPLES = sorted(p for p in FLOWS.glob("*/*.xml") if p.stat().st_size > 0)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_intake_stages_over_the_samples(path: Path) -> None:
    """CheckFile, Expand, Parse, Recognise, Extract give each sample the intake outcome flows/README.md lists."""
    flow = Expand(LIMITS)(CheckFile(max_bytes=MIB)(flow_for(path)))
    assert flow.findings == () and flow.members is not None
    (doc,) = flow.members()
    for stage in (Parse(), Recognise(), Extract()):
        doc = stage(doc, flow)
    assert [f.code for f in doc.findings] == EXPECTED.get(path.name, [])
    if path.name in EXPECTED:
        assert doc.tree is None
        assert doc.invoice is None
    else:
        assert doc.invoice is not None
        assert doc.invoice.number is not None
        assert doc.invoice.number.split("-")[0] in ("FA", "AV", "IN")


def test_empty_sample_is_rejected_whole() -> None:
    """The empty sample is rejected whole by CheckFile with IRR_VIDE_F."""
    flow = CheckFile(max_bytes=MIB)(flow_for(FLOWS / "acme" / "12-empty.xml"))
    assert [f.code for f in flow.findings] == [Code.IRR_VIDE_F]


# --- CheckPdfProfile --------------------------------------------------------------------------------------------


def _pdf_doc(declared: str | None, profile: str | None, container: str | None = "pdf") -> Document:
    return Document(
        1, "f.pdf", 1, "0" * 64, container=container, embedded_name="factur-x.xml", declared_profile=declared,
        profile=profile,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("declared", "profile", "warned"),
    [
        ("en16931", "en16931", False),
        ("en16931", "xrechnung", True),
        ("basic", "extended", True),
        (None, "en16931", False),  # no XMP conformance level: nothing to compare
        ("en16931", "peppol-bis3", False),  # not a Factur-X level: nothing to compare
        ("en16931", None, False),  # unrecognised XML
    ],
)
def test_check_pdf_profile_warns_on_disagreement(declared: str | None, profile: str | None, warned: bool) -> None:
    """XMP declaring another Factur-X level than the XML is a warning (the document stays accepted)."""
    doc = CheckPdfProfile()(_pdf_doc(declared, profile), flow_for(Path("/nonexistent")))
    codes = [(f.code, f.severity.value) for f in doc.findings]
    assert codes == ([(Code.XMP_PROFILE_MISMATCH, "warning")] if warned else [])
    assert doc.accepted
    if warned:
        assert declared in doc.findings[0].message and str(profile) in doc.findings[0].message


def test_check_pdf_profile_ignores_what_did_not_come_in_a_pdf() -> None:
    """An XML document has no XMP to compare."""
    doc = _pdf_doc("basic", "en16931", container=None)
    assert CheckPdfProfile()(doc, flow_for(Path("/nonexistent"))).findings == ()


# --- RejectDuplicateInvoice -------------------------------------------------------------------------------------


def _invoice_doc(index: int, number: str = "FA-1", kind: str = "Invoice", seller: str = "FR11123456782") -> Document:
    from edi.model import Invoice, Party

    invoice = Invoice(number=number, issue_date="2026-11-05", seller=Party(vat_id=seller))
    return Document(index, f"d{index}.xml", 1, "0" * 64, kind=kind, invoice=invoice)


def test_invoice_key_uses_the_siren_whatever_identifier_the_seller_gives() -> None:
    """Seller key (a SIREN from a VAT id or SIRET), number, kind and year make the key."""
    assert invoice_key(_invoice_doc(1)) == ("123456782", "FA-1", "Invoice", "2026")
    assert invoice_key(_invoice_doc(1, seller="12345678200010"))[0] == "123456782"  # type: ignore[index]
    assert invoice_key(replace(_invoice_doc(1), invoice=None)) is None


def test_duplicate_invoice_found_in_the_store_names_flow_and_document() -> None:
    """A document matching an accepted one elsewhere is DOUBLON, naming that flow and document."""
    calls = []

    def earlier(*key: str) -> tuple[str, int] | None:
        calls.append(key)
        return ("F-1", 3)

    doc = RejectDuplicateInvoice(earlier)(_invoice_doc(1), flow_for(Path("/nonexistent")))
    (finding,) = doc.findings
    assert (finding.code, finding.rule) == (Code.DOUBLON, "DUPLICATE_INVOICE")
    assert "flow F-1, document 3" in finding.message
    assert calls == [("123456782", "FA-1", "Invoice", "2026", "F-2")]


def test_duplicate_invoice_within_the_flow_comes_before_the_store() -> None:
    """An earlier accepted document of the same flow is found without asking the store."""
    flow = replace(flow_for(Path("/nonexistent")), documents=(_invoice_doc(1),))
    doc = RejectDuplicateInvoice(lambda *key: None)(_invoice_doc(2), flow)
    assert "this flow, document 1" in doc.findings[0].message
    credit = RejectDuplicateInvoice(lambda *key: None)(_invoice_doc(2, kind="CreditNote"), flow)
    assert credit.findings == ()
