"""Tests for edi.ingest.xmlparse: safe parsing, with findings instead of exceptions and no DOCTYPE accepted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Finding, Layer
from tests.conftest import FLOWS

SECRET = "TOP-SECRET-7f3a9c"
ACCENTED = "Société à Noël, façade"


def refused(data: bytes) -> list[Finding]:
    """The findings of a document that must be refused (and a check that it has no tree)."""
    tree, findings = parse_xml(data)
    assert tree is None
    assert findings
    for finding in findings:
        assert finding.code is Code.IRR_SYNTAX
        assert finding.layer is Layer.PARSE
        assert finding.fatal
    return findings


def test_well_formed_document_is_parsed() -> None:
    """A well-formed document gives its tree and no finding."""
    tree, findings = parse_xml(b'<?xml version="1.0"?>\n<Invoice xmlns="urn:x"><ID>A-1</ID></Invoice>')
    assert findings == []
    assert tree is not None
    assert tree.getroot().tag == "{urn:x}Invoice"
    assert tree.getroot()[0].text == "A-1"


def test_truncated_document_gives_a_syntax_finding_with_its_line() -> None:
    """A document cut off in the middle gives IRR_SYNTAX at the parse layer, with the line where it breaks."""
    data = b'<?xml version="1.0"?>\n<Invoice>\n  <ID>A-1</ID>\n  <Note>cut he'
    (finding,) = refused(data)
    assert finding.line == 4
    assert finding.message.startswith("not well-formed XML: ")
    assert finding.rule is not None
    assert finding.rule.startswith("ERR_")


def test_not_well_formed_sample_is_refused_at_its_mismatched_end_tag() -> None:
    """The not-well-formed sample (whole, but a StreetName closed by </cbc:CityName>) is refused at that line."""
    data = (FLOWS / "acme" / "09-not-well-formed.xml").read_bytes()
    (finding,) = refused(data)
    (line,) = [n for n, text in enumerate(data.splitlines(), start=1) if b"<cbc:StreetName>27" in text]
    assert finding.line == line and finding.rule == "ERR_TAG_NAME_MISMATCH"
    assert "StreetName" in finding.message and "CityName" in finding.message


@pytest.mark.parametrize(
    "data",
    [b"<Invoice/>junk", b"<Invoice/><Invoice/>", b"<Invoice></Invoice>\n<!-- ok -->\ntext"],
    ids=["text-after-root", "second-root", "text-after-comment"],
)
def test_content_after_the_root_is_refused(data: bytes) -> None:
    """Anything but comments, PIs and whitespace after the root element makes the document not well-formed."""
    (finding,) = refused(data)
    assert "Extra content" in finding.message


def test_comment_and_whitespace_after_the_root_are_fine() -> None:
    """Comments and whitespace after the root element are well-formed."""
    tree, findings = parse_xml(b"<Invoice/>\n<!-- end -->\n")
    assert tree is not None
    assert findings == []


def test_doctype_with_internal_entity_is_refused() -> None:
    """A DOCTYPE declaring an internal entity is refused with rule DOCTYPE, before any entity is used."""
    (finding,) = refused(b'<!DOCTYPE Invoice [<!ENTITY x "expanded">]>\n<Invoice>&x;</Invoice>')
    assert finding.rule == "DOCTYPE"
    assert finding.line == 1
    assert "expanded" not in finding.message


def test_bare_doctype_is_refused() -> None:
    """Even a DOCTYPE that declares nothing is refused: an e-invoice never needs one."""
    (finding,) = refused(b"<!DOCTYPE Invoice>\n<Invoice/>")
    assert finding.rule == "DOCTYPE"


def test_doctype_sample_is_refused() -> None:
    """The sample with a DOCTYPE and an internal entity is refused with rule DOCTYPE."""
    (finding,) = refused((FLOWS / "acme" / "13-doctype.xml").read_bytes())
    assert finding.rule == "DOCTYPE"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


def _xxe_documents(secret: Path, tmp_path: Path) -> dict[str, bytes]:
    uri = secret.as_uri()
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "{uri}">', encoding="utf-8")
    return {
        "external-entity": f'<!DOCTYPE Invoice [<!ENTITY x SYSTEM "{uri}">]>\n<Invoice>&x;</Invoice>',
        "external-entity-in-attribute": f'<!DOCTYPE Invoice [<!ENTITY x SYSTEM "{uri}">]>\n<Invoice a="&x;"/>',
        "external-entity-then-broken": f'<!DOCTYPE Invoice [<!ENTITY x SYSTEM "{uri}">]>\n<Invoice>&x;</Nope>',
        "parameter-entity": f'<!DOCTYPE Invoice [<!ENTITY % p SYSTEM "{uri}"> %p;]>\n<Invoice/>',
        "external-dtd-is-the-secret": f'<!DOCTYPE Invoice SYSTEM "{uri}">\n<Invoice/>',
        "external-dtd-defining-an-entity": f'<!DOCTYPE Invoice SYSTEM "{dtd.as_uri()}">\n<Invoice>&leak;</Invoice>',
        "public-dtd": f'<!DOCTYPE Invoice PUBLIC "-//X//DTD X//EN" "{uri}">\n<Invoice/>',
    }


XXE = [
    "external-entity",
    "external-entity-in-attribute",
    "external-entity-then-broken",
    "parameter-entity",
    "external-dtd-is-the-secret",
    "external-dtd-defining-an-entity",
    "public-dtd",
]


@pytest.mark.parametrize("case", XXE, ids=XXE)
def test_external_resources_are_refused_and_never_read(secret: Path, tmp_path: Path, case: str) -> None:
    """External entities and DTDs are refused, and the content of the file they name appears in no finding."""
    data = _xxe_documents(secret, tmp_path)[case].encode()
    findings = refused(data)
    for finding in findings:
        assert SECRET not in finding.message
        assert SECRET not in repr(finding)


def test_xinclude_is_not_processed(secret: Path) -> None:
    """An XInclude element stays an element: the file it names is never read into the tree."""
    data = (
        '<Invoice xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="{secret.as_uri()}" parse="text"/></Invoice>'
    ).encode()
    tree, findings = parse_xml(data)
    assert findings == []
    assert tree is not None
    assert SECRET.encode() not in etree.tostring(tree)


def _billion_laughs(levels: int = 10, width: int = 10) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * width}">' for i in range(1, levels)]
    return f"<!DOCTYPE lolz [{''.join(entities)}]>\n"


@pytest.mark.parametrize(
    "body",
    ["<lolz>&lol9;</lolz>", '<lolz a="&lol9;"/>', "<lolz>" + "&lol9;" * 100 + "</lolz>"],
    ids=["in-content", "in-attribute", "many-references"],
)
def test_billion_laughs_is_refused_quickly(body: str) -> None:
    """The exponential entity bomb is refused in well under a second, without expanding it."""
    data = (_billion_laughs() + body).encode()
    started = time.monotonic()
    refused(data)
    assert time.monotonic() - started < 1.0


def test_quadratic_blowup_is_refused_quickly() -> None:
    """One large entity referenced many times (quadratic blow-up) is refused quickly."""
    data = (
        '<!DOCTYPE a [<!ENTITY x "' + "A" * 50_000 + '">]>\n<a b="' + "&x;" * 20_000 + '">' + "&x;" * 20_000 + "</a>"
    ).encode()
    started = time.monotonic()
    refused(data)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "data",
    [
        f'<?xml version="1.0" encoding="UTF-16"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode("utf-16"),
        b"\xff\xfe" + f"<Invoice><Note>{ACCENTED}</Note></Invoice>".encode("utf-16-le"),
        b"\xfe\xff"
        + f'<?xml version="1.0" encoding="UTF-16"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode("utf-16-be"),
        f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode("latin-1"),
        f'<?xml version="1.0" encoding="windows-1252"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode("cp1252"),
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode(),
        b"\xef\xbb\xbf"
        + f'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><Note>{ACCENTED}</Note></Invoice>'.encode(),
        b"\xef\xbb\xbf" + f"<Invoice><Note>{ACCENTED}</Note></Invoice>".encode(),
    ],
    ids=[
        "utf-16-declared",
        "utf-16-le-bom-only",
        "utf-16-be-bom",
        "iso-8859-1",
        "windows-1252",
        "utf-8",
        "utf-8-bom-before-declaration",
        "utf-8-bom-no-declaration",
    ],
)
def test_encodings_are_read_as_declared(data: bytes) -> None:
    """Text in UTF-16 (with BOM), ISO-8859-1, windows-1252 and UTF-8 (with or without BOM) is read exactly."""
    tree, findings = parse_xml(data)
    assert findings == []
    assert tree is not None
    assert tree.getroot()[0].text == ACCENTED


def test_latin1_bytes_without_declaration_are_refused() -> None:
    """ISO-8859-1 bytes with no declaration are not silently misread as UTF-8: the document is refused."""
    (finding,) = refused(f"<Invoice><Note>{ACCENTED}</Note></Invoice>".encode("latin-1"))
    assert "encoding" in finding.message.lower()


def test_unknown_encoding_is_a_finding() -> None:
    """An encoding declaration lxml does not know is a finding, not an exception."""
    refused(b'<?xml version="1.0" encoding="x-no-such-charset"?><Invoice/>')


def test_declaration_after_whitespace_is_refused() -> None:
    """An XML declaration must come first: whitespace before it makes the document not well-formed."""
    refused(b' <?xml version="1.0"?><Invoice/>')


@pytest.mark.parametrize("data", [b"", b"   \n", b"\x00\x01\x02", b"%PDF-1.7"], ids=["empty", "blank", "nul", "pdf"])
def test_non_xml_is_a_finding(data: bytes) -> None:
    """Empty, blank and binary input gives one IRR_SYNTAX finding and no tree."""
    assert len(refused(data)) == 1


SAMPLES = sorted(p for p in FLOWS.glob("*/*.xml") if p.name not in {"09-not-well-formed.xml", "13-doctype.xml"})
SAMPLES = [p for p in SAMPLES if p.stat().st_size > 0]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_well_formed_samples_parse(path: Path) -> None:
    """Every sample flow meant to be well-formed parses with no finding."""
    tree, findings = parse_xml(path.read_bytes())
    assert findings == []
    assert tree is not None


def test_parse_gives_line_numbers() -> None:
    """The tree keeps source lines, which later findings (XSD, recognition) report."""
    tree, _ = parse_xml(b"<Invoice>\n\n<ID>1</ID>\n</Invoice>")
    assert tree is not None
    assert tree.getroot()[0].sourceline == 3


@given(st.binary(max_size=400))
def test_parse_xml_is_total_on_bytes(data: bytes) -> None:
    """On arbitrary bytes parse_xml never raises: a tree and no finding, or None and at least one finding."""
    tree, findings = parse_xml(data)
    if tree is None:
        assert findings
        assert all(f.code is Code.IRR_SYNTAX and f.layer is Layer.PARSE for f in findings)
    else:
        assert findings == []


@given(st.text(alphabet="<>?/!&;#[]\"'= axé:%-\n", max_size=120))
def test_parse_xml_is_total_on_markup_like_text(text: str) -> None:
    """On text made of markup characters (likelier to reach deep parser paths) parse_xml never raises."""
    for codec in ("utf-8", "utf-16"):
        tree, findings = parse_xml(text.encode(codec))
        assert (tree is None) == bool(findings)
