"""Tests for edi.ingest.pdf: the invoice XML, the other embedded files and the XMP profile of a Factur-X PDF, with
findings instead of exceptions for encrypted, truncated, hostile and slow PDFs."""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter

from edi.ingest.pdf import PdfInvoice, read_pdf
from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Layer, Severity
from flows.generate import facturx, page
from tests.conftest import CORPUS, FLOWS, corpus_rows, needs_corpus
from tests.peak import alone

MIB = 1024 * 1024
CII = (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes()  # a CII EN 16931 invoice the factur-x package accepts
# edi's profile names for XMP conformance levels; also the MANIFEST profiles of Factur-X / ZUGFeRD 2.x rows.
PROFILES = {"minimum", "basicwl", "basic", "en16931", "extended", "xrechnung"}
UNREADABLE = (Code.IRR_SYNTAX, "PDF_UNREADABLE")
NO_XML = (Code.IRR_TYPE_F, "PDF_NO_INVOICE_XML")
SECRET = "TOP-SECRET-5be1d0"
# A Factur-X PDF made by the factur-x package: CII as factur-x.xml, a delivery note, EN 16931 in its XMP.
INVOICE_PDF = facturx(CII, "Facture FA-2026-0002", {"bon-de-livraison.txt": b"12 ramettes livrees.\n"})

PDF_ROWS = [r for r in corpus_rows() if r["format"] == "facturx-pdf"]
WITH_XML = [r for r in PDF_ROWS if r["profile"] != "none"]
WITHOUT_XML = [r for r in PDF_ROWS if r["profile"] == "none"]


# --- helpers -------------------------------------------------------------------------------------------------------


def read(data: bytes, max_xml_bytes: int = MIB, seconds: float = 0) -> PdfInvoice:
    """read_pdf, with the checks every result must pass: fatal findings of the pdf layer with a message, and no XML
    returned beside a finding."""
    result = read_pdf(data, max_xml_bytes=max_xml_bytes, seconds=seconds)
    for finding in result.findings:
        assert finding.layer is Layer.PDF
        assert finding.severity is Severity.FATAL
        assert finding.message.strip()
    if result.findings:
        assert result.xml is None
    return result


def finding_of(result: PdfInvoice) -> tuple[Code, str | None]:
    """The code and rule of the one finding of a result."""
    assert len(result.findings) == 1, result.findings
    return result.findings[0].code, result.findings[0].rule


def written(
    attachments: dict[str, bytes] | None = None, *, xmp: bytes | None = None, base: bytes | None = None
) -> PdfWriter:
    """A pypdf writer holding a blank page (or the PDF ``base``), these embedded files and this XMP packet."""
    if base is None:
        writer = PdfWriter()
        writer.add_blank_page(595, 842)
    else:
        writer = PdfWriter(clone_from=io.BytesIO(base))
    for name, data in (attachments or {}).items():
        writer.add_attachment(name, data)
    if xmp is not None:
        writer.xmp_metadata = xmp
    return writer


def pdf_of(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def facturx_like(xml: bytes) -> bytes:
    """A PDF carrying ``xml`` as factur-x.xml with Factur-X XMP (the factur-x package refuses XML it cannot check)."""
    packet = xmp(body="<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>")
    return pdf_of(written({"factur-x.xml": xml}, xmp=packet))


def raw_pdf(*objects: bytes) -> bytes:
    """A PDF of these objects (object 1 the catalog, 2 the page tree) with an exact cross-reference table, written
    by hand like flows/generate.py's page(): for structures pypdf's writer will not make."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def stream(data: bytes, entries: bytes = b"/Type /EmbeddedFile") -> bytes:
    """A stream object holding ``data`` as stored (compressed or not, as ``entries`` says)."""
    return b"<< /Length %d %s >>\nstream\n" % (len(data), entries) + data + b"\nendstream"


def embedding(files: list[tuple[bytes, bytes]], metadata: bytes | None = None) -> bytes:
    """A hand-written PDF embedding each ``(name as written in the name tree, stream object)``, and this XMP stream."""
    first = 4
    names, bodies = [], []
    for i, (name, body) in enumerate(files):
        spec = first + 2 * i
        names.append(name + b" %d 0 R" % spec)
        bodies += [b"<< /Type /Filespec /EF << /F %d 0 R >> >>" % (spec + 1), body]
    meta = b" /Metadata %d 0 R" % (first + len(bodies)) if metadata is not None else b""
    catalog = b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [" + b" ".join(names) + b"] >> >>"
    return raw_pdf(
        catalog + meta + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        *bodies,
        *([metadata] if metadata is not None else []),
    )


def deflate_bomb(size: int) -> bytes:
    """``size`` bytes of zeros, zlib level 9 (about a thousandth of the size), never held whole in memory."""
    packer = zlib.compressobj(9)
    chunk = bytes(MIB)
    parts = [packer.compress(chunk) for _ in range(size // MIB)]
    return b"".join([*parts, packer.flush()])


def xmp(description: str = "", body: str = "", doctype: str = "") -> bytes:
    """An XMP packet with one rdf:Description in the Factur-X extension namespace."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        + doctype
        + '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        + '<rdf:Description rdf:about="" xmlns:fx="urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"'
        + f" {description}>{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        + '<?xpacket end="w"?>'
    ).encode()


def laughs(root: str) -> str:
    """A DOCTYPE whose entity lol9 expands to a billion "lol"s."""
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f"<!DOCTYPE {root} [\n" + "\n".join(entities) + "\n]>\n"


def untouched(path: Path) -> Path:
    """Give ``path`` an access time older than its modification time, so that any read of it moves the access time
    (relatime); the file counts as never read while its access time stays 0."""
    os.utime(path, (0, time.time()))
    return path


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """200 MiB of zeros deflated at level 9 (about 200 KB)."""
    return deflate_bomb(200 * MIB)


@pytest.fixture(scope="module")
def slow_pdf() -> bytes:
    """A PDF embedding 12000 small files before its factur-x.xml: most of a second for pypdf to list them."""
    notes = [(b"(note-%05d.txt)" % i, stream(b"note")) for i in range(12000)]
    return embedding([*notes, (b"(factur-x.xml)", stream(CII))])


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file an external entity could point at, marked so that reading it shows."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + " EN 16931", encoding="utf-8")
    return untouched(path)


@pytest.fixture
def alarm_sentinel() -> Iterator[object]:
    """A SIGALRM handler of the caller's, put back after the test."""

    def sentinel(signum: int, frame: object) -> None:
        raise AssertionError("SIGALRM delivered after read_pdf returned")

    previous = signal.signal(signal.SIGALRM, sentinel)
    try:
        yield sentinel
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the shared corpus ---------------------------------------------------------------------------------------------


def other_files(row: dict[str, str]) -> int:
    """M in the MANIFEST's ``N+M(pdf)`` attachments column (0 when the column has no ``(pdf)`` part)."""
    found = re.search(r"\+(\d+)\(pdf\)", row["attachments"])
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("row", WITH_XML, ids=[Path(r["file"]).name for r in WITH_XML])
def test_corpus_pdf_yields_the_xml_its_manifest_names(row: dict[str, str]) -> None:
    """A corpus PDF gives the embedded file MANIFEST `root` names (with that root), its M other files, no finding."""
    needs_corpus()
    result = read((CORPUS / row["file"]).read_bytes(), max_xml_bytes=20 * MIB)
    name, root = row["root"].split(":", 1)
    assert result.findings == ()
    assert result.xml_name == name
    assert result.xml is not None
    tree, findings = parse_xml(result.xml)
    assert findings == []
    assert tree is not None
    assert tree.getroot().tag.rsplit("}", 1)[-1] == root.rsplit(":", 1)[-1]
    assert len(result.attachments) == other_files(row)
    assert name not in result.attachments
    if row["profile"] in PROFILES:
        assert result.declared_profile in PROFILES
    else:  # ZUGFeRD 1.0: its XMP may name a level (BASIC, COMFORT, EXTENDED) or none
        assert result.declared_profile is None or result.declared_profile in PROFILES


@pytest.mark.parametrize("row", WITHOUT_XML, ids=[Path(r["file"]).name for r in WITHOUT_XML])
def test_corpus_pdf_without_xml_is_a_finding(row: dict[str, str]) -> None:
    """A corpus PDF with no usable XML gives PDF_NO_INVOICE_XML or PDF_UNREADABLE and no XML."""
    needs_corpus()
    result = read((CORPUS / row["file"]).read_bytes())
    assert finding_of(result) in (NO_XML, UNREADABLE)
    assert result.xml is None
    assert result.xml_name is None
    assert len(result.attachments) == other_files(row)


# --- which embedded file is the invoice ----------------------------------------------------------------------------


def test_factur_x_package_pdf_is_read() -> None:
    """A PDF made by the factur-x package gives its factur-x.xml byte for byte, the other file, and EN 16931."""
    result = read(INVOICE_PDF)
    assert result == PdfInvoice(
        xml_name="factur-x.xml", xml=CII, attachments=("bon-de-livraison.txt",), declared_profile="en16931"
    )


def test_repository_sample_pdf_is_read() -> None:
    """The sample flow acme/15-facturx-invoice.pdf gives its factur-x.xml and its delivery note."""
    result = read((FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes())
    assert result.findings == ()
    assert result.xml_name == "factur-x.xml"
    assert result.xml is not None
    assert b"FA-2026-0015" in result.xml
    assert result.attachments == ("bon-de-livraison.txt",)
    assert result.declared_profile == "en16931"


CHOICES = [
    (["zugferd-invoice.xml", "xrechnung.xml", "factur-x.xml", "a.xml"], "factur-x.xml"),
    (["a.xml", "xrechnung.xml", "zugferd-invoice.xml"], "zugferd-invoice.xml"),
    (["a.xml", "xrechnung.xml", "z.xml"], "xrechnung.xml"),
    (["a.xml", "Factur-X.XML", "ZUGFeRD-invoice.xml"], "Factur-X.XML"),
    (["a.xml", "ZUGFeRD-invoice.xml"], "ZUGFeRD-invoice.xml"),
    (["XRechnung.xml", "a.xml"], "XRechnung.xml"),
    (["a-invoice.xml", "b-other.xml", "notes.txt"], "a-invoice.xml"),
    (["annex.pdf", "invoice.XML"], "invoice.XML"),
    (["factur-x.xml"], "factur-x.xml"),
]


@pytest.mark.parametrize(("names", "chosen"), CHOICES, ids=[c for _, c in CHOICES[:-1]] + ["alone"])
def test_invoice_xml_is_chosen_by_name(names: list[str], chosen: str) -> None:
    """factur-x.xml over zugferd-invoice.xml over xrechnung.xml (any case), else the first *.xml; the rest listed."""
    files = {name: f"<Invoice from='{name}'/>".encode() for name in names}
    result = read(pdf_of(written(files)))
    assert result.findings == ()
    assert result.xml_name == chosen
    assert result.xml == files[chosen]
    assert sorted(result.attachments) == sorted(n for n in names if n != chosen)


@pytest.mark.parametrize(
    "files",
    [{"notes.txt": b"hello"}, {"notes.txt": b"hello", "photo.png": b"\x89PNG"}, {"invoice.xml.txt": b"<I/>"}],
    ids=["one-txt", "txt-and-png", "xml-dot-txt"],
)
def test_pdf_without_xml_names_what_it_embeds(files: dict[str, bytes]) -> None:
    """A PDF embedding no *.xml gives IRR_TYPE_F / PDF_NO_INVOICE_XML naming every file it embeds, and lists them."""
    result = read(pdf_of(written(files)))
    assert finding_of(result) == NO_XML
    assert result.xml_name is None
    assert sorted(result.attachments) == sorted(files)
    for name in files:
        assert name in result.findings[0].message


def test_pdf_embedding_nothing_is_a_finding() -> None:
    """A plain one-page PDF gives PDF_NO_INVOICE_XML, no attachments and no declared profile."""
    result = read(page("Facture sans XML"))
    assert finding_of(result) == NO_XML
    assert result.attachments == ()
    assert result.declared_profile is None


# --- XMP -----------------------------------------------------------------------------------------------------------

LEVELS = [
    ("MINIMUM", "minimum"),
    ("BASIC WL", "basicwl"),
    ("BASIC", "basic"),
    ("EN 16931", "en16931"),
    ("EXTENDED", "extended"),
    ("XRECHNUNG", "xrechnung"),
    ("  en\n 16931 ", "en16931"),
]


@pytest.mark.parametrize(("level", "profile"), LEVELS, ids=[p + "-" + str(i) for i, (_, p) in enumerate(LEVELS)])
@pytest.mark.parametrize("form", ["element", "attribute"])
def test_xmp_conformance_level_is_the_declared_profile(form: str, level: str, profile: str) -> None:
    """fx:ConformanceLevel, as an element or as an rdf:Description attribute, maps to edi's profile name."""
    packet = (
        xmp(body=f"<fx:ConformanceLevel>{level}</fx:ConformanceLevel>")
        if form == "element"
        else xmp(description=f'fx:ConformanceLevel="{level}"')
    )
    result = read(pdf_of(written({"factur-x.xml": CII}, xmp=packet)))
    assert result.findings == ()
    assert result.declared_profile == profile
    assert result.xml == CII


def test_no_metadata_declares_no_profile() -> None:
    """A PDF without XMP metadata declares no profile and still gives its XML."""
    result = read(pdf_of(written({"factur-x.xml": CII})))
    assert result.findings == ()
    assert result.xml == CII
    assert result.declared_profile is None


ENTITY_LEVEL = '<!DOCTYPE x:xmpmeta [<!ENTITY level "EN 16931">]>'
BAD_XMP = {
    "not-well-formed": b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><fx:ConformanceLevel>EN 16931',
    "not-xml": b"\x00\x01binary\xff",
    "empty": b"",
    "empty-level": xmp(body="<fx:ConformanceLevel> </fx:ConformanceLevel>"),
    "no-level": xmp(body="<fx:DocumentType>INVOICE</fx:DocumentType>"),
    "internal-entity": xmp(body="<fx:ConformanceLevel>&level;</fx:ConformanceLevel>", doctype=ENTITY_LEVEL),
    "entity-in-attribute": xmp(description='fx:ConformanceLevel="&level;"', doctype=ENTITY_LEVEL),
    "billion-laughs": xmp(body="<fx:ConformanceLevel>&lol9;</fx:ConformanceLevel>", doctype=laughs("x:xmpmeta")),
    "doctype-only": xmp(description='fx:ConformanceLevel="EN 16931"', doctype="<!DOCTYPE x:xmpmeta>"),
}


@pytest.mark.parametrize("packet", BAD_XMP.values(), ids=BAD_XMP.keys())
def test_unusable_xmp_declares_no_profile(packet: bytes) -> None:
    """XMP that is not well-formed, declares no level, or has a DOCTYPE (entities unexpanded) gives None, no crash."""
    result = read(pdf_of(written({"factur-x.xml": CII}, xmp=packet)))
    assert result.findings == ()
    assert result.xml == CII
    assert result.declared_profile is None


def test_xmp_external_entity_is_never_read(secret: Path) -> None:
    """An XMP packet whose level is an external entity declares nothing, and the file it names is not opened."""
    doctype = f'<!DOCTYPE x:xmpmeta [<!ENTITY level SYSTEM "{secret.as_uri()}">]>'
    packet = xmp(body="<fx:ConformanceLevel>&level;</fx:ConformanceLevel>", doctype=doctype)
    result = read(pdf_of(written({"factur-x.xml": CII}, xmp=packet)))
    assert result.declared_profile is None
    assert result.xml == CII
    assert secret.stat().st_atime == 0


def test_metadata_that_is_not_a_stream_declares_no_profile() -> None:
    """A /Metadata entry pointing at a dictionary (not a stream) gives no profile and no crash."""
    data = embedding([(b"(factur-x.xml)", stream(CII))], metadata=b"<< /Type /Metadata /Subtype /XML >>")
    result = read(data)
    assert result.findings == ()
    assert result.xml == CII
    assert result.declared_profile is None


def test_xmp_packet_larger_than_the_xml_cap_is_not_parsed() -> None:
    """An XMP packet bigger than max_xml_bytes is not parsed: it declares no profile, however it is padded."""
    padding = "<!--" + " " * (4 * MIB) + "-->"
    packet = zlib.compress(xmp(description='fx:ConformanceLevel="EN 16931"', body=padding), 9)
    data = embedding(
        [(b"(factur-x.xml)", stream(CII))],
        metadata=stream(packet, b"/Type /Metadata /Subtype /XML /Filter /FlateDecode"),
    )
    result = read(data, max_xml_bytes=MIB)
    assert result.declared_profile is None


# --- encrypted, truncated, junk ------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["secret", ""], ids=["password", "empty-user-password"])
def test_encrypted_pdf_is_refused(password: str) -> None:
    """An encrypted Factur-X PDF, even one that opens without a password, gives IRR_TYPE_F / PDF_ENCRYPTED."""
    writer = written(base=INVOICE_PDF)
    writer.encrypt(password)
    result = read(pdf_of(writer))
    assert finding_of(result) == (Code.IRR_TYPE_F, "PDF_ENCRYPTED")
    assert result.xml_name is None
    assert result.attachments == ()


CUTS = {
    "empty": lambda d: 0,
    "header-only": lambda d: 9,
    "start": lambda d: 100,
    "quarter": lambda d: len(d) // 4,
    "middle": lambda d: len(d) // 2,
    "three-quarters": lambda d: 3 * len(d) // 4,
    "before-xref": lambda d: d.rindex(b"xref"),
    "before-trailer": lambda d: d.rindex(b"trailer"),
    "before-startxref": lambda d: d.rindex(b"startxref"),
    "before-eof": lambda d: d.rindex(b"%%EOF"),
    "last-byte": lambda d: len(d) - 1,
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_truncated_pdf_gives_a_finding_or_the_right_xml(cut: Callable[[bytes], int]) -> None:
    """A Factur-X PDF cut short gives PDF_UNREADABLE or PDF_NO_INVOICE_XML, or (recovered) its exact XML."""
    result = read(INVOICE_PDF[: cut(INVOICE_PDF)])
    if result.findings:
        assert finding_of(result) in (UNREADABLE, NO_XML)
    else:
        assert result.xml_name == "factur-x.xml"
        assert result.xml == CII


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-", b"%PDF-1.7\n%%EOF\n", b"%PDF-1.7\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", CII, b"PK\x03\x04" * 100],
    ids=["empty", "bare-header", "header-eof", "trailer-only", "xml", "zip-magic"],
)
def test_not_a_pdf_is_unreadable(data: bytes) -> None:
    """Bytes that are no PDF at all give one finding (PDF_UNREADABLE or PDF_NO_INVOICE_XML) and no XML."""
    assert finding_of(read(data)) in (UNREADABLE, NO_XML)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.binary(max_size=3000))
def test_junk_after_the_pdf_header_is_a_finding(junk: bytes) -> None:
    """Random bytes after "%PDF-" give a finding, never an exception."""
    result = read(b"%PDF-" + junk)
    assert finding_of(result) in (UNREADABLE, NO_XML)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(0, len(INVOICE_PDF) - 1), value=st.integers(0, 255))
def test_one_changed_byte_never_raises(position: int, value: int) -> None:
    """A real Factur-X PDF with one byte changed gives a finding or an XML, never an exception."""
    data = bytearray(INVOICE_PDF)
    data[position] = value
    result = read(bytes(data))
    assert result.findings or result.xml is not None


# --- hostile structures --------------------------------------------------------------------------------------------

BROKEN_STREAMS = {
    "unknown-filter": stream(CII, b"/Type /EmbeddedFile /Filter /NoSuchDecode"),
    "no-ef-stream": b"null",
    "ef-is-a-dictionary": b"<< /Type /EmbeddedFile >>",
}


@pytest.mark.parametrize("body", BROKEN_STREAMS.values(), ids=BROKEN_STREAMS.keys())
def test_unreadable_embedded_stream_is_a_finding(body: bytes) -> None:
    """An embedded factur-x.xml whose stream cannot be decoded gives PDF_UNREADABLE naming it, and no XML."""
    result = read(embedding([(b"(factur-x.xml)", body)]))
    assert finding_of(result) == UNREADABLE
    assert result.xml_name == "factur-x.xml"
    assert "factur-x.xml" in result.findings[0].message


def test_filespec_without_embedded_file_is_a_finding() -> None:
    """A file specification with no /EF gives PDF_UNREADABLE for that file, not an exception."""
    data = raw_pdf(
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(factur-x.xml) 3 0 R] >> >> >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /Type /Filespec /F (factur-x.xml) >>",
    )
    result = read(data)
    assert finding_of(result) == UNREADABLE
    assert result.xml_name == "factur-x.xml"


DEFLATED = zlib.compress(CII, 9)
CORRUPT_DEFLATE = {
    "not-deflate": b"this is not deflate data at all " * 8,
    "deflate-cut-short": DEFLATED[: len(DEFLATED) // 2],
}


@pytest.mark.parametrize("data", CORRUPT_DEFLATE.values(), ids=CORRUPT_DEFLATE.keys())
def test_corrupt_deflate_stream_is_a_finding(data: bytes) -> None:
    """An embedded factur-x.xml whose Flate data is corrupt gives PDF_UNREADABLE, not partial or empty XML."""
    result = read(embedding([(b"(factur-x.xml)", stream(data, b"/Type /EmbeddedFile /Filter /FlateDecode"))]))
    assert finding_of(result) == UNREADABLE
    assert result.xml_name == "factur-x.xml"


BAD_NAMES = {
    "number": b"42",
    "undecodable-string": rb"(\237factur-x.xml)",
    "del-byte": rb"(\177factur-x.xml)",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_name_tree_key_that_is_no_text_never_raises(name: bytes) -> None:
    """A name-tree key that is a number or bytes no text encoding decodes gives a result, not an exception."""
    result = read(embedding([(name, stream(CII))]))
    if result.findings:
        assert finding_of(result) in (UNREADABLE, NO_XML)
    else:
        assert result.xml == CII


@pytest.mark.parametrize("depth", [1000, 20_000], ids=["deep", "very-deep"])
def test_deeply_nested_objects_are_a_finding(depth: int) -> None:
    """Arrays and dictionaries nested thousands deep in the name tree or the XMP entry give a finding, no crash."""
    arrays = b"[" * depth + b"]" * depth
    data = raw_pdf(
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names " + arrays + b" >> >> /Metadata 3 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"<< /A " * depth + b">>" * depth,
    )
    result = read(data)
    assert finding_of(result) in (UNREADABLE, NO_XML)


def test_reference_cycles_are_a_finding() -> None:
    """Objects that are references to themselves (name tree, XMP) give a finding, no hang."""
    data = raw_pdf(
        b"<< /Type /Catalog /Pages 2 0 R /Names 3 0 R /Metadata 4 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        b"3 0 R",
        b"4 0 R",
    )
    assert finding_of(read(data)) in (UNREADABLE, NO_XML)


# --- sizes and bombs -----------------------------------------------------------------------------------------------


def test_embedded_xml_up_to_the_cap_is_returned() -> None:
    """An embedded XML of exactly max_xml_bytes is returned whole."""
    result = read(pdf_of(written({"factur-x.xml": CII})), max_xml_bytes=len(CII))
    assert result.findings == ()
    assert result.xml == CII


def test_embedded_xml_over_the_cap_is_refused() -> None:
    """An embedded XML one byte over max_xml_bytes gives IRR_TAILLE_F (the document limit's rule) and no XML,
    without being inflated past the cap."""
    result = read(pdf_of(written({"factur-x.xml": CII, "notes.txt": b"n"})), max_xml_bytes=len(CII) - 1)
    assert finding_of(result) == (Code.IRR_TAILLE_F, "max_document_bytes")
    assert result.xml is None
    assert result.xml_name == "factur-x.xml"
    assert result.attachments == ("notes.txt",)
    assert f"larger than {len(CII) - 1} bytes" in result.findings[0].message  # never inflated past the cap


def bomb_pdf(bomb: bytes, where: str) -> bytes:
    """The bomb as the embedded factur-x.xml, or as the XMP packet of a PDF whose factur-x.xml is fine."""
    inflated = b"/Filter /FlateDecode"
    if where == "embedded-xml":
        return embedding([(b"(factur-x.xml)", stream(bomb, b"/Type /EmbeddedFile " + inflated))])
    return embedding([(b"(factur-x.xml)", stream(CII))], metadata=stream(bomb, b"/Type /Metadata " + inflated))


def measured(data: bytes, max_xml_bytes: int) -> tuple[PdfInvoice, float, int]:
    """read() with its wall time and its peak of Python-allocated memory, measured alone."""
    result, peak, elapsed = alone(read, data, max_xml_bytes)
    return result, elapsed, peak


@pytest.mark.parametrize("where", ["embedded-xml", "xmp"])
def test_decompression_bomb_is_refused_in_bounded_time_and_memory(bomb: bytes, where: str) -> None:
    """200 MiB of deflated zeros (embedded XML or XMP) is never returned: a finding, or the real XML and no profile,
    in under 5 s and 256 MB."""
    result, seconds, peak = measured(bomb_pdf(bomb, where), max_xml_bytes=MIB)
    if where == "embedded-xml":
        assert finding_of(result) in (UNREADABLE, (Code.IRR_TAILLE_F, "max_document_bytes"))
    else:
        assert result.findings == ()
        assert result.xml == CII
        assert result.declared_profile is None
    assert seconds < 5
    assert peak < 256 * MIB


@pytest.mark.parametrize("where", ["embedded-xml", "xmp"])
def test_decompression_bomb_memory_is_bounded_by_the_cap(bomb: bytes, where: str) -> None:
    """Reading a 200 KB PDF holding a deflate bomb uses memory in proportion to max_xml_bytes, not to the bomb."""
    _, _, peak = measured(bomb_pdf(bomb, where), max_xml_bytes=MIB)
    assert peak < 24 * MIB  # the cap, a few times over, and pypdf's own needs


BAD_XML = {
    "billion-laughs": lambda secret: f'<?xml version="1.0"?>\n{laughs("Invoice")}<Invoice>&lol9;</Invoice>\n'.encode(),
    "external-entity": lambda secret: (
        f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY s SYSTEM "{secret.as_uri()}">]>\n<Invoice>&s;</Invoice>\n'
    ).encode(),
    "external-dtd": lambda secret: f'<!DOCTYPE Invoice SYSTEM "{secret.as_uri()}">\n<Invoice/>'.encode(),
}


@pytest.mark.parametrize("make", BAD_XML.values(), ids=BAD_XML.keys())
def test_hostile_embedded_xml_is_returned_as_bytes_and_refused_by_the_parser(
    secret: Path, make: Callable[[Path], bytes]
) -> None:
    """read_pdf returns a hostile factur-x.xml as is; parse_xml then refuses it (IRR_SYNTAX), reading no file."""
    hostile = make(secret)
    result = read(facturx_like(hostile))
    assert result.findings == ()
    assert result.xml == hostile
    assert result.xml is not None
    tree, findings = parse_xml(result.xml)
    assert tree is None
    assert findings
    assert all(f.code is Code.IRR_SYNTAX for f in findings)
    assert not any(SECRET in f.message for f in findings)
    assert secret.stat().st_atime == 0


# --- the time budget -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [0.002, 0.02, 0.05])
def test_slow_pdf_gets_pdf_timeout(slow_pdf: bytes, budget: float) -> None:
    """A PDF that takes longer than its budget to read gives IRR_SYNTAX / PDF_TIMEOUT, close to the budget."""
    started = time.monotonic()
    result = read(slow_pdf, seconds=budget)
    elapsed = time.monotonic() - started
    assert finding_of(result) == (Code.IRR_SYNTAX, "PDF_TIMEOUT")
    assert elapsed < budget + 0.05


def test_slow_pdf_is_slow_without_a_budget(slow_pdf: bytes) -> None:
    """The slow PDF really takes much longer than the budgets above, and reads fine given time."""
    started = time.monotonic()
    result = read(slow_pdf, seconds=0)
    assert time.monotonic() - started > 0.2
    assert result.findings == ()
    assert result.xml_name == "factur-x.xml"
    assert result.xml == CII
    assert len(result.attachments) == 12000


@pytest.mark.parametrize("budget", [0.002, 0.05, 30])
def test_time_budget_leaves_no_timer_or_handler_behind(slow_pdf: bytes, alarm_sentinel: object, budget: float) -> None:
    """After read_pdf with a budget, timed out or not, no timer runs and the caller's SIGALRM handler is back."""
    for data in (slow_pdf, INVOICE_PDF):
        result = read(data, seconds=budget)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert signal.getsignal(signal.SIGALRM) is alarm_sentinel
        if not result.findings:
            assert result.xml == CII
    time.sleep(0.01)  # a timer left running would fire the sentinel here


def test_no_budget_installs_no_handler(alarm_sentinel: object) -> None:
    """seconds=0 reads without a deadline and leaves SIGALRM alone."""
    assert read(INVOICE_PDF, seconds=0).xml == CII
    assert signal.getsignal(signal.SIGALRM) is alarm_sentinel
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_budget_outside_the_main_thread_is_ignored(slow_pdf: bytes, alarm_sentinel: object) -> None:
    """In a worker thread (no signals there) a budget is ignored: the slow PDF is read whole, SIGALRM untouched."""
    results: list[PdfInvoice] = []
    worker = threading.Thread(target=lambda: results.append(read_pdf(slow_pdf, max_xml_bytes=MIB, seconds=0.01)))
    worker.start()
    worker.join(timeout=30)
    assert [(r.findings, r.xml, len(r.attachments)) for r in results] == [((), CII, 12000)]
    assert signal.getsignal(signal.SIGALRM) is alarm_sentinel
