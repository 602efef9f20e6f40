"""Tests for edi.ingest.complete (is a file that stopped growing whole?) and how scan_inbox uses it."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from edi.ingest.complete import is_complete
from edi.ingest.scan import scan_inbox
from tests.conftest import FLOWS
from tests.peak import alone

XML_SAMPLES = [
    FLOWS / "acme" / "01-ubl-invoice.xml",
    FLOWS / "acme" / "02-ubl-creditnote.xml",
    FLOWS / "acme" / "03-cii-invoice.xml",
    FLOWS / "opdemat" / "01-initech-cii-basic.xml",
    FLOWS / "opdemat" / "02-initech-ubl-voirie.xml",
]
INVOICE = XML_SAMPLES[0].read_bytes()
BODY = INVOICE.split(b"\n", 1)[1]  # the sample without its XML declaration
PDF = (FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes()
ZIP = (FLOWS / "opdemat" / "03-batch-partial.zip").read_bytes()
TAR_GZ = (FLOWS / "opdemat" / "04-batch.tar.gz").read_bytes()


@pytest.fixture
def judge(tmp_path: Path) -> Callable[[bytes], bool]:
    """is_complete of a real file holding the given bytes (one file, rewritten for each call)."""
    path = tmp_path / "upload"

    def complete(data: bytes) -> bool:
        path.write_bytes(data)
        return is_complete(path)

    return complete


@pytest.fixture
def cuts(tmp_path: Path) -> Callable[..., list[int]]:
    """The cut lengths at which is_complete of a real file holding ``data[:length]`` is not ``whole(length)``.

    The file is written once and truncated from the end, one length after the other (cheaper than rewriting it).
    """
    path = tmp_path / "upload"

    def wrong(data: bytes, whole: Callable[[int], bool], lengths: Iterable[int] | None = None) -> list[int]:
        wanted = sorted(set(range(1, len(data) + 1) if lengths is None else lengths), reverse=True)
        assert wanted and wanted[0] <= len(data) and wanted[-1] >= 1
        path.write_bytes(data)
        fd = os.open(path, os.O_WRONLY)
        try:
            found = []
            for n in wanted:
                os.ftruncate(fd, n)
                if is_complete(path) != whole(n):
                    found.append(n)
        finally:
            os.close(fd)
        return sorted(found)

    return wrong


def sampled(data: bytes, start: int = 1, step: int = 16, edges: int = 256) -> list[int]:
    """Cut lengths through ``data``: every one in its first and last ``edges`` bytes, every ``step``-th between."""
    size = len(data)
    return sorted(
        {
            *range(start, min(size, start + edges) + 1),
            *range(start, size + 1, step),
            *range(max(start, size - edges), size + 1),
        }
    )


def small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.xml", INVOICE)
        archive.writestr("b.xml", BODY)
    return buffer.getvalue()


def utf16(encoding: str, bom: bytes) -> tuple[bytes, int]:
    """The sample invoice declared and encoded in UTF-16, and the length of it without its trailing whitespace."""
    text = INVOICE.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    return bom + text.encode(encoding), len(bom + text.rstrip().encode(encoding))


# -- XML -------------------------------------------------------------------------------------------------------------


def test_every_cut_of_a_sample_invoice_is_not_complete(cuts) -> None:
    """Every cut of the sample UBL invoice is not complete, except the whole file and cuts in its trailing
    whitespace."""
    assert INVOICE.endswith(b"\n")  # there is trailing whitespace to cut into
    closed = len(INVOICE.rstrip())
    assert cuts(INVOICE, lambda n: n >= closed) == []


@pytest.mark.parametrize("sample", XML_SAMPLES[1:], ids=lambda p: p.name)
def test_xml_is_complete_only_once_its_root_is_closed(cuts, sample: Path) -> None:
    """The other samples (UBL credit note, CII with a prefixed root) cut through: complete only from the root's
    end tag on."""
    data = sample.read_bytes()
    closed = len(data.rstrip())
    assert cuts(data, lambda n: n >= closed, sampled(data, step=8)) == []


def test_xml_without_declaration_is_judged_by_its_root(cuts) -> None:
    """Without an XML declaration, the root is still found and must be closed."""
    assert cuts(BODY, lambda n: n >= len(BODY.rstrip()), sampled(BODY)) == []


def test_xml_with_a_utf8_bom_is_judged_past_the_bom(judge, cuts) -> None:
    """A UTF-8 byte order mark does not hide the root: cut is not complete, whole is (cuts past the BOM)."""
    data = b"\xef\xbb\xbf" + INVOICE
    assert judge(data)
    assert cuts(data, lambda n: n >= len(data.rstrip()), sampled(data, start=4)) == []


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-16-be", b"")],
    ids=["utf-16-le-bom", "utf-16-be-bom", "utf-16-le", "utf-16-be"],
)
def test_utf16_xml_is_complete_only_whole(judge, cuts, encoding: str, bom: bytes) -> None:
    """UTF-16 (LE or BE, with or without BOM): complete whole or cut in its trailing whitespace at a character
    boundary; any other cut (an odd length splits a character) is not complete."""
    data, closed = utf16(encoding, bom)
    assert judge(data)
    start = len(bom) + 2  # past the BOM and the first character (cuts inside them: see the magic-prefix test)
    assert cuts(data, lambda n: n >= closed and n % 2 == 0, sampled(data, start=start, step=15)) == []


@pytest.mark.parametrize(
    "data",
    [
        INVOICE.rstrip() + b"\n<!-- generated by acme-erp -->\n",
        INVOICE.rstrip() + b"\n<!-- one -->\n<!-- two -->\n\n",
        BODY.rstrip() + b"\n<?acme-erp batch='7'?>\n",
        BODY.rstrip() + b"\n<?acme-erp batch='7'?>\n<!-- and a comment -->\n",
        INVOICE.rstrip() + b"\r\n\t \r\n",
    ],
    ids=["comment", "two-comments", "pi-no-declaration", "pi-then-comment", "crlf-and-tabs"],
)
def test_comments_and_pis_after_the_root_are_allowed(judge, data: bytes) -> None:
    """Comments and processing instructions (and any whitespace) after the closed root keep the file complete."""
    assert judge(data)


@pytest.mark.parametrize(
    "data",
    [
        INVOICE.rstrip() + b"\n<?acme-erp batch='7'?>\n",
        b"<!-- exported by acme-erp -->\n" + BODY.rstrip() + b"\n<!-- end of export -->\n",
        BODY.replace(b"<cbc:ID>", b"<!-- number --><cbc:ID>", 1).rstrip() + b"\n<!-- end -->\n",
        b'<?xml version="1.0"?>\n<Invoice xmlns="urn:x"/>\n<?acme-erp batch="7"?>\n',
    ],
    ids=["pi-after-declared-invoice", "comment-before-and-after", "comment-inside-and-after", "empty-root-then-pi"],
)
def test_whole_xml_with_trailing_pi_or_comment_and_earlier_markup_is_complete(judge, data: bytes) -> None:
    """A whole invoice followed by a PI (or a comment) is complete even when a declaration, PI or comment
    came earlier in the file."""
    assert judge(data)


@pytest.mark.parametrize(
    "data",
    [
        b"<Invoice/>",
        b"<Invoice />\n",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:'
        b'Invoice-2"/>\n',
        b"<Invoice/>\n<!-- nothing in it -->\n",
        b"<ubl:Invoice xmlns:ubl='urn:x'/>",
    ],
    ids=["bare", "space-and-newline", "declaration-and-namespace", "trailing-comment", "prefixed"],
)
def test_an_empty_element_root_is_complete(judge, data: bytes) -> None:
    """A root with no content (``<Invoice/>``) is a whole document."""
    assert judge(data)


def test_a_cut_empty_element_root_is_not_complete(cuts) -> None:
    """Every cut of ``<Invoice xmlns="urn:x"/>`` short of its last byte is not complete."""
    data = b'<Invoice xmlns="urn:x"/>'
    assert cuts(data, lambda n: n == len(data)) == []


@pytest.mark.parametrize(
    "data",
    [
        b"<Invoice><Note/>",  # the last tag is an empty element, but not the root
        b"<Invoice><Note>a</Note>",  # the last tag is an end tag, but not the root's
        b"<Invoice>text after the root start",
        b"<!-- only a comment -->",
        b'<?xml version="1.0"?>\n',
        b"<Invoice></Invoic",
    ],
    ids=["inner-empty-element", "inner-end-tag", "text", "comment-only", "declaration-only", "end-tag-cut"],
)
def test_xml_whose_root_is_not_closed_is_not_complete(judge, data: bytes) -> None:
    """The last tag must be the root's own end tag (or the root an empty element)."""
    assert not judge(data)


@pytest.mark.parametrize(
    "prolog",
    [b"<!-- " + b"licence text " * 100 + b"-->\n", b"<!-- <b>licence</b> " * 60 + b"-->\n"],
    ids=["long-comment", "long-comment-with-tags"],
)
def test_whole_xml_after_a_long_prolog_is_complete(judge, prolog: bytes) -> None:
    """A whole invoice whose prolog is longer than 1 KiB is complete."""
    assert len(prolog) > 1024
    assert judge(b'<?xml version="1.0"?>\n' + prolog + BODY)


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be"])
def test_whole_utf32_xml_is_complete(judge, encoding: str) -> None:
    """A whole invoice in UTF-32 (which sniff recognises as XML and edi validates) is complete."""
    text = INVOICE.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-32"')
    assert judge(text.encode(encoding))


JUDGE = """
import sys
from pathlib import Path
from edi.ingest.complete import is_complete
print(*(is_complete(Path(name)) for name in sys.argv[1:]))
"""


def test_xml_whose_tail_is_not_closed_is_judged_quickly_whatever_it_holds(tmp_path: Path) -> None:
    """A small file of many comments, or a long run of whitespace, after an unclosed root is answered at once
    (in a separate process, killed after a few seconds)."""
    comments = tmp_path / "comments.xml"
    comments.write_bytes(b"<Invoice>" + b"<!--a-->" * 40 + b"x")
    spaces = tmp_path / "spaces.xml"
    spaces.write_bytes(b"<Invoice>" + b" " * 60_000 + b"x")
    command = [sys.executable, "-c", JUDGE, str(comments), str(spaces)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3)
    except subprocess.TimeoutExpired:
        pytest.fail("is_complete took more than 3 s")
    assert result.stdout.split() == ["False", "False"], result.stderr


# -- PDF, ZIP, tar.gz --------------------------------------------------------------------------------------------------


def test_pdf_is_complete_only_with_its_final_eof_marker(judge, cuts) -> None:
    """The sample PDF cut anywhere before the end of its ``%%EOF`` is not complete; from there on it is."""
    assert PDF.count(b"%%EOF") == 1
    end = PDF.rfind(b"%%EOF") + len(b"%%EOF")
    assert judge(PDF)
    assert cuts(PDF, lambda n: n >= end, range(len(b"%PDF-"), len(PDF) + 1)) == []


def test_pdf_without_eof_marker_is_not_complete(judge) -> None:
    """A PDF whose ``%%EOF`` is missing (or was not written yet) is not complete."""
    assert not judge(PDF.replace(b"%%EOF", b"%%EO_"))
    assert not judge(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")


@pytest.mark.parametrize("data", [ZIP, small_zip()], ids=["03-batch-partial.zip", "made-with-zipfile"])
def test_zip_is_not_complete_before_its_end_of_central_directory(judge, cuts, data: bytes) -> None:
    """A ZIP cut anywhere before its end-of-central-directory record is not complete; whole, it is."""
    assert judge(data)
    record = data.rfind(b"PK\x05\x06")
    assert cuts(data, lambda n: n == len(data), range(len(b"PK\x03\x04"), record + 4)) == []


@pytest.mark.parametrize("data", [ZIP, small_zip()], ids=["03-batch-partial.zip", "made-with-zipfile"])
def test_zip_cut_inside_its_end_record_is_not_complete(cuts, data: bytes) -> None:
    """Every cut of a ZIP inside its end-of-central-directory record (after the signature) is not complete."""
    record = data.rfind(b"PK\x05\x06")
    assert cuts(data, lambda n: n == len(data), range(record + 4, len(data))) == []


def test_tar_gz_is_complete_only_whole(judge, cuts) -> None:
    """The sample tar.gz cut anywhere (even in its 8-byte gzip trailer) is not complete; whole, it is."""
    assert judge(TAR_GZ)
    assert cuts(TAR_GZ, lambda n: n == len(TAR_GZ), range(2, len(TAR_GZ) + 1)) == []


def test_tar_gz_made_here_is_complete_only_whole(judge) -> None:
    """A tar.gz of two members: whole is complete, cut in the deflate stream or the trailer is not."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("a.xml", INVOICE), ("b.xml", BODY)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    assert judge(data)
    assert not judge(data[:-1]) and not judge(data[:-8]) and not judge(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [b"%", b"%PD", b"%PDF", b"P", b"PK", b"PK\x03", b"\x1f", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe<"],
    ids=["%", "%PD", "%PDF", "P", "PK", "PK03", "1f", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le-bom-half"],
)
def test_a_cut_inside_a_magic_number_or_bom_is_not_complete(judge, data: bytes) -> None:
    """The first bytes of a PDF, ZIP, gzip or BOM-marked XML upload, cut there, are not complete."""
    assert not judge(data)


# -- the rest ----------------------------------------------------------------------------------------------------------


def test_an_empty_file_is_never_complete(judge, tmp_path: Path) -> None:
    """An empty file is an upload that has not started: never complete, however old."""
    assert not judge(b"")
    old = tmp_path / "old-and-empty.xml"
    old.write_bytes(b"")
    os.utime(old, (0, 0))
    assert not is_complete(old)


@pytest.mark.parametrize(
    "data",
    [bytes(range(1, 256)).replace(b"<", b"") * 20, b"plain text, no markup", b"ID;AMOUNT\n1;2\n", b"\x89PNG\r\n"],
    ids=["bytes", "text", "csv", "png"],
)
def test_unknown_content_counts_as_complete(judge, data: bytes) -> None:
    """What cannot be judged is complete: the intake says what it is."""
    assert judge(data)


def test_a_path_that_cannot_be_read_is_not_complete(tmp_path: Path) -> None:
    """A missing path (or a folder) is not complete, and is_complete does not raise."""
    assert not is_complete(tmp_path / "gone.xml")
    assert not is_complete(tmp_path)


def test_a_gzip_bomb_is_answered_quickly_in_bounded_memory(tmp_path: Path) -> None:
    """64 MiB of zeros in 64 KiB of gzip is read through in well under a few seconds without holding it in memory;
    the same bomb cut short is not complete."""
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 128 * 1024
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(bomb)
    whole, peak, elapsed = alone(is_complete, path)
    assert whole
    assert elapsed < 5
    assert peak < 8 * 1024 * 1024
    path.write_bytes(bomb[:-16])
    assert not is_complete(path)


def test_bytes_that_are_not_a_gzip_stream_count_as_complete(judge) -> None:
    """A gzip magic number followed by garbage is not an upload in progress: complete (the intake refuses it)."""
    assert judge(b"\x1f\x8b" + b"\xff" * 64)


# -- scan_inbox and the grace period -----------------------------------------------------------------------------------

NOW = 1_795_000_000.0
IGNORE = ("*.tmp", "*.part")


def put(folder: Path, name: str, data: bytes, age: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_a_cut_file_waits_out_its_grace_then_is_ready(tmp_path: Path) -> None:
    """A file older than min_age but cut short is counted incomplete (not ready) within grace, ready after it."""
    cut = put(tmp_path, "cut.xml", INVOICE[:3000], age=60)
    whole = put(tmp_path, "whole.xml", INVOICE, age=60)
    within = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, grace=900)
    assert [r.path for r in within.ready] == [whole]
    assert (within.incomplete, within.young) == (1, 0)
    after = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 841, grace=900)
    assert sorted(r.path for r in after.ready) == [cut, whole]
    assert after.incomplete == 0


def test_an_empty_file_waits_out_its_grace(tmp_path: Path) -> None:
    """An empty file is an upload not started: incomplete within grace, then taken (and refused as empty)."""
    empty = put(tmp_path, "empty.xml", b"", age=60)
    assert scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, grace=900).incomplete == 1
    assert [r.path for r in scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 900, grace=900).ready] == [empty]


def test_with_min_age_zero_a_cut_file_is_truncated_not_arriving(tmp_path: Path) -> None:
    """min_age = 0 says senders rename finished files into place: a cut or empty file is taken at once (and
    refused), but a file still being written to (watch mode knows) waits all the same."""
    cut = put(tmp_path, "cut.pdf", PDF[:2000], age=1)
    empty = put(tmp_path, "empty.xml", b"", age=1)
    open_ = put(tmp_path, "open.xml", INVOICE, age=1)
    result = scan_inbox(tmp_path, min_age=0, ignore=IGNORE, now=NOW, grace=900, writing={open_})
    assert sorted(r.path for r in result.ready) == sorted([cut, empty]) and result.incomplete == 1


def test_without_grace_a_cut_file_is_taken_at_once(tmp_path: Path) -> None:
    """grace = 0: a cut file older than min_age is ready (it will be refused as truncated)."""
    cut = put(tmp_path, "cut.zip", ZIP[:100], age=60)
    result = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, grace=0)
    assert [r.path for r in result.ready] == [cut] and result.incomplete == 0


def test_a_settled_file_skips_min_age_but_not_the_completeness_check(tmp_path: Path) -> None:
    """A file its writer closed is taken before min_age if whole, but left as incomplete if cut short."""
    whole = put(tmp_path, "whole.xml", INVOICE, age=1)
    cut = put(tmp_path, "cut.pdf", PDF[:2000], age=1)
    unsettled = put(tmp_path, "young.xml", INVOICE, age=1)
    result = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, grace=900, settled={whole, cut})
    assert [r.path for r in result.ready] == [whole]
    assert (result.incomplete, result.young) == (1, 1)
    assert unsettled.exists()
