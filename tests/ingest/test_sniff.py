"""Tests for edi.ingest.sniff: the kind of a file from its first bytes, never from its name."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.ingest.sniff import HEAD_BYTES, Kind, sniff
from tests.conftest import CORPUS, FLOWS, corpus_rows

DECL = '<?xml version="1.0" encoding="{}"?>\n<Invoice>é</Invoice>'
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def zip_of(name: str, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    return buffer.getvalue()


CASES = [
    ("xml-with-declaration", b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice/>', Kind.XML),
    ("xml-without-declaration", b"<Invoice/>", Kind.XML),
    ("xml-comment-first", b"<!-- a comment --><Invoice/>", Kind.XML),
    ("xml-utf8-bom", b"\xef\xbb\xbf" + DECL.format("UTF-8").encode(), Kind.XML),
    ("xml-utf8-bom-no-declaration", b"\xef\xbb\xbf<Invoice/>", Kind.XML),
    ("xml-utf16-le-bom", b"\xff\xfe" + DECL.format("UTF-16").encode("utf-16-le"), Kind.XML),
    ("xml-utf16-be-bom", b"\xfe\xff" + DECL.format("UTF-16").encode("utf-16-be"), Kind.XML),
    ("xml-utf16-be-no-bom", "<Invoice/>".encode("utf-16-be"), Kind.XML),
    ("xml-utf32-le-bom", "\ufeff<Invoice/>".encode("utf-32-le"), Kind.XML),
    ("xml-utf32-be-bom", "\ufeff<Invoice/>".encode("utf-32-be"), Kind.XML),
    ("xml-iso-8859-1", DECL.format("ISO-8859-1").encode("latin-1"), Kind.XML),
    ("xml-leading-whitespace", b" \t\r\n\n  <Invoice/>", Kind.XML),
    ("xml-bom-then-whitespace", b"\xef\xbb\xbf\n  <Invoice/>", Kind.XML),
    ("pdf", PDF, Kind.PDF),
    ("pdf-with-junk-before-header", b"junk\r\n" + PDF, Kind.PDF),
    ("zip", zip_of("a.xml", b"<Invoice/>"), Kind.ZIP),
    ("zip-empty-archive", empty_zip(), Kind.ZIP),
    ("gzip", gzip.compress(b"<Invoice/>"), Kind.GZIP),
    ("empty", b"", Kind.EMPTY),
    ("binary-junk", bytes(range(256)), Kind.UNKNOWN),
    ("nul-bytes", b"\x00" * 64, Kind.UNKNOWN),
    ("plain-text", b"Facture FA-2026-0001\nMontant : 180,00 EUR\n", Kind.UNKNOWN),
    ("json", b'{"invoice": "FA-2026-0001"}', Kind.UNKNOWN),
    ("only-whitespace", b"  \n\t ", Kind.UNKNOWN),
    ("bom-only", b"\xef\xbb\xbf", Kind.UNKNOWN),
]


@pytest.mark.parametrize(("head", "kind"), [(h, k) for _, h, k in CASES], ids=[c[0] for c in CASES])
def test_sniff_tells_the_kind(head: bytes, kind: Kind) -> None:
    """Each sample of first bytes is recognised as the right kind."""
    assert sniff(head) is kind


def test_xml_named_file_holding_a_pdf_is_a_pdf(tmp_path: Path) -> None:
    """A file called .xml whose content is a PDF is a PDF: the name is never trusted."""
    path = tmp_path / "invoice.xml"
    path.write_bytes(PDF)
    with path.open("rb") as stream:
        assert sniff(stream.read(HEAD_BYTES)) is Kind.PDF


def test_pdf_named_file_holding_xml_is_xml(tmp_path: Path) -> None:
    """A file called .pdf whose content is XML is XML."""
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b'<?xml version="1.0"?><Invoice/>')
    with path.open("rb") as stream:
        assert sniff(stream.read(HEAD_BYTES)) is Kind.XML


def test_only_the_head_is_needed() -> None:
    """The first HEAD_BYTES of a long XML file are enough to tell it is XML."""
    data = b'<?xml version="1.0"?>\n<Invoice>' + b"<Note>x</Note>" * 1000 + b"</Invoice>"
    assert sniff(data[:HEAD_BYTES]) is Kind.XML


SAMPLES = sorted(FLOWS.glob("*/*.xml"))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_repo_samples_are_xml_or_empty(path: Path) -> None:
    """Every sample flow is XML, except the empty one, even when it is not well-formed."""
    with path.open("rb") as stream:
        head = stream.read(HEAD_BYTES)
    assert sniff(head) is (Kind.EMPTY if path.stat().st_size == 0 else Kind.XML)


def _corpus_params() -> list:
    rows = corpus_rows()
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(row, id=Path(row["file"]).name) for row in rows]


@pytest.mark.parametrize("row", _corpus_params())
def test_corpus_files_are_sniffed_by_content(row: dict[str, str]) -> None:
    """Every corpus file is PDF when the manifest says facturx-pdf, XML otherwise."""
    with (CORPUS / row["file"]).open("rb") as stream:
        head = stream.read(HEAD_BYTES)
    assert sniff(head) is (Kind.PDF if row["format"] == "facturx-pdf" else Kind.XML)


@given(st.binary(max_size=2 * HEAD_BYTES))
def test_sniff_is_total(head: bytes) -> None:
    """sniff never raises on arbitrary bytes and always returns a Kind."""
    assert isinstance(sniff(head), Kind)


@given(st.binary(max_size=200))
def test_pdf_magic_at_start_wins(rest: bytes) -> None:
    """Anything that starts with %PDF- is a PDF."""
    assert sniff(b"%PDF-" + rest) is Kind.PDF


@given(st.sampled_from(["", " ", "\n", "\r\n\t "]), st.text(alphabet="<>/?!-=\"' abcxyzé", max_size=60))
def test_text_starting_with_a_tag_is_xml_in_any_unicode_encoding(space: str, rest: str) -> None:
    """Text that starts with '<' (after optional whitespace) is XML in UTF-8, with or without its BOM."""
    text = space + "<" + rest
    assert sniff(text.encode("utf-8")) is Kind.XML
    assert sniff(b"\xef\xbb\xbf" + text.encode("utf-8")) is Kind.XML


def test_stored_zip_whose_first_member_is_a_pdf_is_a_zip() -> None:
    """A ZIP batch (stored, not deflated) holding a PDF is a ZIP: its magic at offset 0 is unambiguous."""
    data = zip_of("facture.pdf", PDF, zipfile.ZIP_STORED)
    assert data.startswith(b"PK\x03\x04")
    assert sniff(data[:HEAD_BYTES]) is Kind.ZIP


def test_xml_that_mentions_the_pdf_magic_is_xml() -> None:
    """An XML invoice whose first KiB contains the text '%PDF-' (e.g. in a note) is still XML."""
    data = b'<?xml version="1.0"?>\n<Invoice><Note>Copie jointe au format %PDF-1.7</Note></Invoice>'
    assert sniff(data) is Kind.XML


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_and_leading_whitespace_is_xml(codec: str) -> None:
    """UTF-16 XML with a BOM and a newline before the root (well-formed, parse_xml reads it) is XML."""
    data = "\ufeff\n<Invoice/>".encode(codec)
    assert sniff(data) is Kind.XML
