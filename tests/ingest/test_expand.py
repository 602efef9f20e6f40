"""Tests for edi.ingest.expand: what a flow is (from its bytes) and the documents it holds, read one at a time."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from edi.ingest.archives import Limits
from edi.ingest.expand import Expand, delivery_files, original_bytes
from edi.model import Code, Document, Finding, Flow, FlowRejected, Layer
from tests.conftest import FLOWS

MIB = 1024 * 1024
LIMITS = Limits(max_document_bytes=MIB, max_uncompressed_bytes=8 * MIB, max_compression_ratio=200, max_members=1000)
EXPAND = Expand(LIMITS, pdf_seconds=10)
XML_SAMPLE = FLOWS / "acme" / "01-ubl-invoice.xml"
PDF_SAMPLE = FLOWS / "acme" / "15-facturx-invoice.pdf"
ZIP_SAMPLE = FLOWS / "opdemat" / "03-batch-partial.zip"
TAR_SAMPLE = FLOWS / "opdemat" / "04-batch.tar.gz"
XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><ID>FA-1</ID></Invoice>\n'
KINDS = ["zip", "tar.gz"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flow_of(path: Path) -> Flow:
    """A flow as the intake makes it once the file is claimed: its payload is the real file."""
    data = path.read_bytes()
    return Flow("F1", "acme", path.name, len(data), sha(data), datetime(2026, 1, 5, 9, 30, tzinfo=UTC), path)


def expand(path: Path, expander: Expand = EXPAND) -> Flow:
    return expander(flow_of(path))


def documents(flow: Flow) -> list[Document]:
    assert flow.members is not None
    return list(flow.members())


def put(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def zip_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name if data is not None else name.rstrip("/") + "/", data or b"")
    return buffer.getvalue()


def tar_gz_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def archive_of(kind: str, entries: list[tuple[str, bytes | None]]) -> bytes:
    return zip_of(entries) if kind == "zip" else tar_gz_of(entries)


def embedded(pdf: bytes, name: str = "factur-x.xml") -> bytes:
    """The embedded file of a PDF, read with pypdf directly."""
    return PdfReader(io.BytesIO(pdf)).attachments[name][0]


def codes(doc: Document) -> list[tuple[Code, str | None]]:
    return [(f.code, f.rule) for f in doc.findings]


# -- single files ------------------------------------------------------------------------------------------------


def test_xml_file_is_one_document_with_its_bytes() -> None:
    """An XML file is kind "xml" and yields one document holding the file's bytes."""
    data = XML_SAMPLE.read_bytes()

    flow = expand(XML_SAMPLE)
    docs = documents(flow)

    assert (flow.kind, flow.findings) == ("xml", ())
    assert len(docs) == 1
    doc = docs[0]
    assert (doc.index, doc.name, doc.size, doc.sha256) == (1, XML_SAMPLE.name, len(data), sha(data))
    assert doc.data == data
    assert (doc.container, doc.embedded_name, doc.findings) == (None, None, ())


def test_facturx_pdf_is_one_document_carrying_its_embedded_xml() -> None:
    """A Factur-X PDF is kind "pdf": one document whose data is the embedded factur-x.xml, with the PDF's facts."""
    pdf = PDF_SAMPLE.read_bytes()

    flow = expand(PDF_SAMPLE)
    docs = documents(flow)

    assert (flow.kind, flow.findings) == ("pdf", ())
    assert len(docs) == 1
    doc = docs[0]
    assert (doc.index, doc.name, doc.size, doc.sha256) == (1, PDF_SAMPLE.name, len(pdf), sha(pdf))
    assert doc.container == "pdf"
    assert doc.embedded_name == "factur-x.xml"
    assert doc.attachments == ("bon-de-livraison.txt",)
    assert doc.declared_profile == "en16931"
    assert doc.data == embedded(pdf)
    assert doc.findings == ()


def test_xml_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    """A single XML file over max_document_bytes is one IRR_TAILLE_F document with its size and SHA-256, no data."""
    data = b"<Invoice>" + b" " * LIMITS.max_document_bytes + b"</Invoice>"
    path = put(tmp_path, "big.xml", data)

    flow = expand(path)
    (doc,) = documents(flow)

    assert flow.kind == "xml"
    assert (doc.index, doc.name, doc.size, doc.sha256, doc.data) == (1, "big.xml", len(data), sha(data), None)
    assert codes(doc) == [(Code.IRR_TAILLE_F, "max_document_bytes")]
    assert doc.findings[0].layer is Layer.INTAKE


def test_xml_file_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    """A single XML file of exactly max_document_bytes is read."""
    data = b"<Invoice>" + b" " * (LIMITS.max_document_bytes - 19) + b"</Invoice>"
    assert len(data) == LIMITS.max_document_bytes

    (doc,) = documents(expand(put(tmp_path, "exact.xml", data)))

    assert doc.data == data
    assert doc.findings == ()


@pytest.mark.parametrize(
    "data",
    [b"Facture FA-1\nMontant: 10 EUR\n", bytes(range(256)), b'{"invoice": 1}', b"\x00" * 2048, b"BZh91AY&SY"],
    ids=["text", "binary", "json", "nul-bytes", "bzip2"],
)
def test_unknown_content_is_refused_at_flow_level_without_members(tmp_path: Path, data: bytes) -> None:
    """A file that is neither XML, PDF, ZIP nor gzip gets a flow-level IRR_TYPE_F and no document reader."""
    flow = expand(put(tmp_path, "invoice.xml", data))

    assert flow.kind is None
    assert flow.members is None
    assert [(f.code, f.layer) for f in flow.findings] == [(Code.IRR_TYPE_F, Layer.INTAKE)]
    assert flow.rejected_whole


def test_existing_flow_findings_are_kept(tmp_path: Path) -> None:
    """Expand adds its finding to those the flow already has."""
    earlier = Finding(Code.DOUBLON, Layer.INTAKE, "already deposited")
    flow = flow_of(put(tmp_path, "x.bin", b"junk"))

    result = EXPAND(replace(flow, findings=(earlier,)))

    assert [f.code for f in result.findings] == [Code.DOUBLON, Code.IRR_TYPE_F]


# -- content, not names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "kind"),
    [
        ("invoice.xml", lambda: PDF_SAMPLE.read_bytes(), "pdf"),
        ("invoice.pdf", lambda: XML, "xml"),
        ("batch.zip", lambda: tar_gz_of([("a.xml", XML)]), "tar.gz"),
        ("batch.tar.gz", lambda: zip_of([("a.xml", XML)]), "zip"),
        ("invoice.xml", lambda: zip_of([("a.xml", XML)]), "zip"),
        ("no-suffix", lambda: XML, "xml"),
    ],
    ids=[
        "xml-name-pdf-bytes",
        "pdf-name-xml-bytes",
        "zip-name-tar-gz-bytes",
        "tgz-name-zip-bytes",
        "xml-name-zip",
        "bare",
    ],
)
def test_kind_comes_from_the_bytes_not_the_name(tmp_path: Path, name: str, make, kind: str) -> None:
    """The flow kind is what the content is, whatever the file is called; its documents read accordingly."""
    flow = expand(put(tmp_path, name, make()))
    docs = documents(flow)

    assert flow.kind == kind
    assert flow.findings == ()
    assert [d.accepted for d in docs] == [True]
    assert docs[0].container == ("pdf" if kind == "pdf" else None)


@pytest.mark.parametrize("kind", KINDS)
def test_member_kind_comes_from_its_bytes_not_its_name(tmp_path: Path, kind: str) -> None:
    """Inside a batch, a .xml member holding a PDF is read as a PDF and a .pdf member holding XML as XML."""
    pdf = PDF_SAMPLE.read_bytes()
    path = put(tmp_path, f"batch.{kind}", archive_of(kind, [("facture.xml", pdf), ("facture.pdf", XML)]))

    first, second = documents(expand(path))

    assert (first.name, first.container, first.data, first.sha256) == ("facture.xml", "pdf", embedded(pdf), sha(pdf))
    assert (second.name, second.container, second.data) == ("facture.pdf", None, XML)


# -- batches -----------------------------------------------------------------------------------------------------


def test_sample_zip_batch_gives_one_document_per_member() -> None:
    """The sample ZIP batch is kind "zip" with one document per member, named by member path, in archive order."""
    with zipfile.ZipFile(ZIP_SAMPLE) as archive:
        expected = [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]

    flow = expand(ZIP_SAMPLE)
    docs = documents(flow)

    assert flow.kind == "zip"
    assert [(d.index, d.name) for d in docs] == [(i, name) for i, (name, _) in enumerate(expected, 1)]
    assert [(d.size, d.sha256) for d in docs] == [(len(data), sha(data)) for _, data in expected]
    assert [d.container for d in docs] == [None, "pdf", None]
    assert docs[0].data == expected[0][1]
    assert docs[1].data == embedded(expected[1][1])
    assert all(d.findings == () for d in docs)


def test_sample_tar_gz_batch_gives_one_document_per_member() -> None:
    """The sample tar.gz batch is kind "tar.gz" with one XML document per member."""
    with tarfile.open(TAR_SAMPLE) as archive:
        files = [m for m in archive.getmembers() if m.isfile()]
        expected = [(m.name, archive.extractfile(m).read()) for m in files]

    flow = expand(TAR_SAMPLE)
    docs = documents(flow)

    assert flow.kind == "tar.gz"
    assert [(d.index, d.name, d.data) for d in docs] == [(i, n, data) for i, (n, data) in enumerate(expected, 1)]
    assert [d.name for d in docs] == ["IN-2026-0047.xml", "IN-2026-0048.xml"]


@pytest.mark.parametrize("kind", KINDS)
def test_batch_members_become_documents_or_findings(tmp_path: Path, kind: str) -> None:
    """Each member is one document: XML, PDF, or one carrying IRR_TYPE_F, IRR_VIDE_F or IRR_TAILLE_F."""
    pdf = PDF_SAMPLE.read_bytes()
    big = b"<Invoice>" + os.urandom(LIMITS.max_document_bytes)  # incompressible: over the limit, not a bomb
    entries: list[tuple[str, bytes | None]] = [
        ("lot/", None),
        ("lot/a.xml", XML),
        ("lot/b.pdf", pdf),
        ("lot/notes.txt", b"bon de livraison"),
        ("lot/empty.xml", b""),
        ("lot/big.xml", big),
    ]
    path = put(tmp_path, f"batch.{kind}", archive_of(kind, entries))

    flow = expand(path)
    docs = documents(flow)

    assert flow.kind == kind
    assert [(d.index, d.name) for d in docs] == [
        (1, "lot/a.xml"),
        (2, "lot/b.pdf"),
        (3, "lot/notes.txt"),
        (4, "lot/empty.xml"),
        (5, "lot/big.xml"),
    ]
    xml, pdf_doc, text, empty, too_big = docs
    assert (xml.data, xml.findings, xml.sha256) == (XML, (), sha(XML))
    assert (pdf_doc.container, pdf_doc.data, pdf_doc.findings) == ("pdf", embedded(pdf), ())
    assert [f.code for f in text.findings] == [Code.IRR_TYPE_F]
    assert (empty.size, [f.code for f in empty.findings]) == (0, [Code.IRR_VIDE_F])
    assert codes(too_big) == [(Code.IRR_TAILLE_F, "max_document_bytes")]
    assert (too_big.size, too_big.sha256, too_big.data) == (len(big), sha(big), None)
    assert [d.accepted for d in docs] == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("kind", "entries"),
    [("zip", []), ("zip", [("a/", None), ("a/b/", None)]), ("tar.gz", []), ("tar.gz", [("a/", None), ("a/b/", None)])],
    ids=["zip-empty", "zip-only-directories", "tar.gz-empty", "tar.gz-only-directories"],
)
def test_batch_without_documents_is_refused_empty(tmp_path: Path, kind: str, entries) -> None:
    """A batch with no member (or only directories) raises FlowRejected with IRR_VIDE_F when its documents are read."""
    flow = expand(put(tmp_path, "batch.bin", archive_of(kind, entries)))

    assert flow.kind == kind
    with pytest.raises(FlowRejected) as caught:
        documents(flow)
    assert caught.value.finding.code is Code.IRR_VIDE_F


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_batch_is_refused_while_reading_its_documents(tmp_path: Path, kind: str) -> None:
    """A batch refused by the archive reader raises its FlowRejected from members(), not from Expand itself."""
    flow = expand(put(tmp_path, "batch.bin", archive_of(kind, [("../evil.xml", XML)])))

    assert flow.kind == kind
    with pytest.raises(FlowRejected) as caught:
        documents(flow)
    assert (caught.value.finding.code, caught.value.finding.rule) == (Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH")


@pytest.mark.parametrize("kind", KINDS)
def test_members_can_be_read_again(tmp_path: Path, kind: str) -> None:
    """Each call of flow.members() reads the documents afresh from the file."""
    path = put(tmp_path, "batch.bin", archive_of(kind, [("a.xml", XML), ("b.xml", XML)]))
    flow = expand(path)

    assert documents(flow) == documents(flow)
    assert [d.name for d in documents(flow)] == ["a.xml", "b.xml"]


# -- delivery ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [XML_SAMPLE, PDF_SAMPLE], ids=lambda p: p.name)
def test_original_bytes_of_a_single_file(path: Path) -> None:
    """original_bytes gives the file as sent for document 1, and nothing for any other number."""
    kind = expand(path).kind

    assert list(original_bytes(path, kind, LIMITS, {1})) == [(1, path.read_bytes())]
    assert list(original_bytes(path, kind, LIMITS, {1, 2})) == [(1, path.read_bytes())]
    assert list(original_bytes(path, kind, LIMITS, {2})) == []
    assert list(original_bytes(path, kind, LIMITS, set())) == []


@pytest.mark.parametrize("kind", KINDS)
def test_original_bytes_of_chosen_batch_members(tmp_path: Path, kind: str) -> None:
    """original_bytes gives the chosen members' bytes as sent (a PDF stays a PDF), in archive order."""
    pdf = PDF_SAMPLE.read_bytes()
    datas = [XML.replace(b"FA-1", b"FA-2"), pdf, b"junk", XML]
    path = put(tmp_path, "batch.bin", archive_of(kind, [(f"{i}.bin", d) for i, d in enumerate(datas, 1)]))

    assert list(original_bytes(path, kind, LIMITS, {4, 2})) == [(2, pdf), (4, XML)]
    assert list(original_bytes(path, kind, LIMITS, set())) == []


def test_original_bytes_of_the_sample_zip() -> None:
    """original_bytes of the sample ZIP gives back the PDF member as a PDF."""
    with zipfile.ZipFile(ZIP_SAMPLE) as archive:
        pdf = archive.read("lot-11-2026/IN-2026-0045.pdf")

    assert list(original_bytes(ZIP_SAMPLE, "zip", LIMITS, {2})) == [(2, pdf)]


def test_delivery_files_of_an_xml_document() -> None:
    """An XML document is delivered as its XML only."""
    (doc,) = documents(expand(XML_SAMPLE))
    data = XML_SAMPLE.read_bytes()

    assert delivery_files(doc, data, LIMITS) == [("xml", data)]


def test_delivery_files_of_a_pdf_document() -> None:
    """A PDF document is delivered as its embedded XML first, then the PDF as sent."""
    (doc,) = documents(expand(PDF_SAMPLE))
    pdf = PDF_SAMPLE.read_bytes()

    assert delivery_files(doc, pdf, LIMITS) == [("xml", embedded(pdf)), ("pdf", pdf)]
    assert [suffix for suffix, _ in delivery_files(doc, pdf, LIMITS)] == list(doc.suffixes)


def test_delivery_files_of_a_pdf_member_of_the_sample_zip() -> None:
    """A PDF member of a batch is delivered from its original bytes as XML then PDF."""
    doc = documents(expand(ZIP_SAMPLE))[1]
    ((_, pdf),) = original_bytes(ZIP_SAMPLE, "zip", LIMITS, {doc.index})

    assert delivery_files(doc, pdf, LIMITS) == [("xml", doc.data), ("pdf", pdf)]


def test_delivery_files_refuses_a_pdf_that_no_longer_yields_its_xml() -> None:
    """A PDF document whose bytes no longer hold an invoice XML is an error, not a silent XML-less delivery."""
    doc = Document(index=3, name="x.pdf", size=10, sha256="0" * 64, container="pdf")

    with pytest.raises(RuntimeError, match="document 3"):
        delivery_files(doc, b"%PDF-1.4\n%%EOF\n", LIMITS)
