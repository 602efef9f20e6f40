"""Tests for edi.validate.xslt_scaling: the rewrites of costs that grow faster than the document fire what the
official stylesheets fire (on synthetic rule sets here; on the official files and the corpus in
test_xslt_optimise.py), and make BR-FR's cost grow like the invoice."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from benchmarks.invoices import invoice, templates
from edi.validate.xslt_optimise import SVRL, XSL, optimise
from edi.validate.xslt_scaling import HOISTED_PREFIX, KEY_PREFIX
from tests.validate.test_xslt_optimise import BR_FR_UBL, CEN_UBL, HOISTED, KEYED, XSLTS, compile_optimised, rel


@pytest.fixture(scope="module")
def saxon() -> Iterator[Any]:
    from saxonche import PySaxonProcessor

    yield PySaxonProcessor(license=False)


# --- the official files --------------------------------------------------------------------------------------------


def xpath_attributes(tree: etree._ElementTree) -> list[str]:
    """The select and test attributes of the XSLT instructions in the pattern modes' templates."""
    return [
        value
        for template in tree.getroot().iter(f"{{{XSL}}}template")
        if re.fullmatch(r"M\d+", template.get("mode") or "")
        for element in template.iter(f"{{{XSL}}}*")
        for name, value in element.attrib.items()
        if name in ("select", "test")
    ]


@pytest.mark.parametrize("xslt", HOISTED, ids=[rel(x) for x in HOISTED])
def test_br_fr_special_contract_is_evaluated_once(xslt: Path) -> None:
    """BR-FR's custom:isSpecialContract* calls on the root become three global variables; the SVRL keeps the
    asserts' own test text."""
    original = etree.parse(str(xslt))
    optimised = optimise(original).stylesheet
    assert any("custom:isSpecialContract" in v for v in xpath_attributes(original))
    assert not any("custom:isSpecialContract" in v for v in xpath_attributes(optimised))
    hoisted = {
        v.get("name"): v.get("select")
        for v in optimised.getroot().findall(f"{{{XSL}}}variable")
        if (v.get("name") or "").startswith(HOISTED_PREFIX)
    }
    assert sorted(hoisted) == [f"{HOISTED_PREFIX}{i}" for i in (1, 2, 3)]
    assert all(re.fullmatch(r"custom:isSpecialContract(MV|BD)?\(/[^$]*\)", call) for call in hoisted.values())
    reported = f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"
    literal = [a.get("test") for a in optimised.getroot().iter(*reported)]
    assert literal == [a.get("test") for a in original.getroot().iter(*reported)]
    assert any("custom:isSpecialContract" in (t or "") for t in literal)


@pytest.mark.parametrize("xslt", KEYED, ids=[rel(x) for x in KEYED])
def test_line_lookups_are_keyed(xslt: Path) -> None:
    """The lookups of a line's group line among its siblings become key lookups filtered to the siblings."""
    optimised = optimise(etree.parse(str(xslt))).stylesheet
    keys = [k for k in optimised.getroot().findall(f"{{{XSL}}}key") if (k.get("name") or "").startswith(KEY_PREFIX)]
    assert len(keys) == KEYED[xslt][1]
    lookups = [v for v in xpath_attributes(optimised) if f"key('{KEY_PREFIX}" in v]
    assert len(lookups) == KEYED[xslt][0]
    assert all("[.. is current()/..]" in v for v in lookups)
    assert not [v for v in xpath_attributes(optimised) if re.search(r"\.\./(cac|ram):\w+\s*\)?\[[^]]*= \$parent", v)]


@pytest.mark.parametrize("xslt", XSLTS, ids=[rel(x) for x in XSLTS])
def test_location_steps_are_numbered(xslt: Path) -> None:
    """The skeleton's location template numbers each step with xsl:number, not by counting siblings by name."""
    optimised = optimise(etree.parse(str(xslt))).stylesheet
    (template,) = [
        t
        for t in optimised.getroot().findall(f"{{{XSL}}}template")
        if t.get("mode") == "schematron-get-full-path" and t.get("match") == "*"
    ]
    assert template.find(f"{{{XSL}}}number") is not None
    assert "preceding-sibling" not in etree.tostring(template, encoding="unicode")


def test_br_fr_cost_grows_like_the_invoice() -> None:
    """BR-FR (UBL) on an invoice of 8,000 lines costs at most twice as much per line as on one of 500: it grew with
    the square of the lines (each line's rules read every line), 51-76 times the time for 16 times the lines."""
    from saxonche import PySaxonProcessor

    saxon = PySaxonProcessor(license=False)
    executable = compile_optimised(saxon, BR_FR_UBL)

    def seconds(lines: int) -> float:
        node = saxon.parse_xml(xml_text=invoice(templates()[0], 1, lines).decode("utf-8"))
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            executable.transform_to_string(xdm_node=node)
            runs.append(time.perf_counter() - started)
        return min(runs)

    small, big = seconds(500), seconds(8000)
    assert big / small < 2 * 8000 / 500, f"{small:.3f} s for 500 lines, {big:.3f} s for 8,000"


# --- synthetic rule sets for the rewrites of costs that grow faster than the document -------------------------------


def rule_sheet(rules: dict[str, str], top: str = "") -> etree._ElementTree:
    """A one-pattern stylesheet in the skeleton's shape: each rule (match -> body) outputs what its body does."""
    templates = "".join(
        f'<xsl:template match="{match}" priority="{1000 - i}" mode="M1">{body}[{i}]'
        f'<xsl:apply-templates select="@*|*" mode="M1"/></xsl:template>'
        for i, (match, body) in enumerate(rules.items())
    )
    walk = '<xsl:apply-templates select="@*|*" mode="M1"/>'
    text = f"""<xsl:stylesheet version="3.0" xmlns:xsl="{XSL}" xmlns:svrl="{SVRL}" xmlns:f="urn:f" xmlns:d="urn:d"
        xmlns:xs="http://www.w3.org/2001/XMLSchema">
      {top}
      <xsl:template match="/"><svrl:schematron-output><xsl:apply-templates select="/" mode="M1"/>
        </svrl:schematron-output></xsl:template>
      {templates}
      <xsl:template match="text()" priority="-1" mode="M1"/>
      <xsl:template match="@*|node()" priority="-2" mode="M1">{walk}</xsl:template>
    </xsl:stylesheet>"""
    return etree.ElementTree(etree.fromstring(text))


def outputs(saxon: Any, tree: etree._ElementTree, documents: list[str]) -> list[str]:
    """What the stylesheet outputs on each document, or the error it raises."""
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=etree.tostring(tree, encoding="unicode")
    )
    found = []
    for doc in documents:
        try:
            found.append(str(executable.transform_to_string(xdm_node=saxon.parse_xml(xml_text=doc))))
        except Exception as exc:  # a Saxon dynamic error
            found.append(f"error: {type(exc).__name__}")
    return found


SPECIAL = """<xsl:function name="f:special" as="xs:boolean"><xsl:param name="c" as="element()?"/>
  <xsl:sequence select="normalize-space($c/p) = ('B8', 'S9')"/></xsl:function>"""
FRAMES_DOCS = [
    "<r><p>B8</p><l id='1'/><l id='2'/></r>",
    "<r><p>B1</p><l id='1'/></r>",
    "<r><l id='1'/></r>",
    "<r><p>B8</p><p>B8</p><l id='1'/></r>",  # two frames: normalize-space() of two nodes raises, where it is called
    "<r><p>B8</p><p>B8</p></r>",  # ... and nowhere here: no line, no call
]
HOISTABLE = {
    "test": ('<xsl:if test="f:special(/r)">special <xsl:value-of select="@id"/></xsl:if>', ""),
    "select": ('<xsl:value-of select="f:special(/r), f:special( /r )"/>', ""),
    "union": ('<xsl:value-of select="f:special(/r | /s)"/>', ""),
    "in-predicate": ('<xsl:value-of select="@id[f:special(/r)]"/>', ""),
    "predicate-in-path": ("<xsl:value-of select=\"f:special(/r[p = 'B8'])\"/>", ""),
}


@pytest.mark.parametrize(("body", "top"), HOISTABLE.values(), ids=HOISTABLE.keys())
def test_constant_calls_are_made_once_with_the_same_output(saxon: Any, body: str, top: str) -> None:
    """A call of a stylesheet function on absolute paths becomes a global variable: the same output, and the same
    error only where the call is made."""
    original = rule_sheet({"l": body}, SPECIAL + top)
    optimised = optimise(original)
    assert any(c.startswith(("1 function calls", "2 function calls")) for c in optimised.changes)
    assert "f:special(" not in "".join(xpath_attributes(optimised.stylesheet))
    expected = outputs(saxon, original, FRAMES_DOCS)
    assert outputs(saxon, optimised.stylesheet, FRAMES_DOCS) == expected
    assert expected[3].startswith("error") and not expected[4].startswith("error")


NOT_HOISTABLE = {
    "relative-argument": ('<xsl:value-of select="f:special(..)"/>', SPECIAL),
    "variable-in-argument": (
        '<xsl:variable name="v" select="\'B8\'"/><xsl:value-of select="f:special(/r[p = $v])"/>',
        SPECIAL,
    ),
    "current-in-argument": ('<xsl:value-of select="f:special(/r[l/@id = current()/@id])"/>', SPECIAL),
    "path-then-operator": ('<xsl:value-of select="f:special(/r/p/.. treat as element())"/>', SPECIAL),
    "in-for-each": ('<xsl:for-each select="@id"><xsl:value-of select="f:special(/r)"/></xsl:for-each>', SPECIAL),
    "in-a-string": ("<xsl:value-of select=\"'f:special(/r)'\"/>", SPECIAL),
    "not-ours": ('<xsl:value-of select="fn:exists(/r)" xmlns:fn="http://www.w3.org/2005/xpath-functions"/>', ""),
    "with-a-message": (
        '<xsl:value-of select="f:special(/r)"/>',
        SPECIAL.replace("<xsl:sequence", "<xsl:message>called</xsl:message><xsl:sequence"),
    ),
    "new-each-time": (
        '<xsl:value-of select="f:special(/r)"/>',
        SPECIAL.replace(' as="xs:boolean"', ' as="xs:boolean" new-each-time="yes"'),
    ),
    "other-prefix-binding": (
        '<xsl:value-of select="f:special(/r)" xmlns:f="urn:other"/>',
        SPECIAL.replace("f:special", "g:special").replace("<xsl:function", '<xsl:function xmlns:g="urn:other"'),
    ),
}


@pytest.mark.parametrize(("body", "top"), NOT_HOISTABLE.values(), ids=NOT_HOISTABLE.keys())
def test_calls_that_may_vary_are_left_alone(saxon: Any, body: str, top: str) -> None:
    """A call whose value may depend on where it is made (or that is not a pure stylesheet function) stays."""
    original = rule_sheet({"l": body}, top)
    optimised = optimise(original)
    assert not [c for c in optimised.changes if "function calls" in c]
    assert not optimised.stylesheet.getroot().findall(f"{{{XSL}}}variable")
    assert outputs(saxon, optimised.stylesheet, FRAMES_DOCS[:3]) == outputs(saxon, original, FRAMES_DOCS[:3])


def test_literal_test_attribute_keeps_its_call(saxon: Any) -> None:
    """The test attribute of an SVRL element is output text, not an expression: it is not rewritten."""
    original = rule_sheet(
        {"l": '<svrl:diagnostic test="f:special(/r)"/><xsl:value-of select="f:special(/r)"/>'}, SPECIAL
    )
    optimised = optimise(original).stylesheet
    assert 'test="f:special(/r)"' in etree.tostring(optimised, encoding="unicode")
    assert outputs(saxon, optimised, FRAMES_DOCS) == outputs(saxon, original, FRAMES_DOCS)


LINES_DOCS = [
    # l 2 and 4 point at 1, which two top-level lines carry; a nested line and an m also carry 1; l 5 at nothing
    "<r xmlns='urn:d'><l><id>1</id></l><l><id>2</id><up>1</up></l><m><id>1</id></m><l><id>1</id><id>9</id></l><g>"
    "<l><id>1</id></l></g><l><id>4</id><up>1</up><up>2</up></l><l><id>5</id><up>7</up></l><l><id> 1</id></l></r>",
    "<r xmlns='urn:d'><l><id>1</id><up/></l><l><id/><up></up></l></r>",  # empty values
]
LOOKUP = '<xsl:value-of select="{}"/>'
KEYABLE = {
    "union": ('<xsl:variable name="v" select="d:up"/>', "string-join((../d:l | ../d:m)[d:id = $v]/path(), ' ')"),
    "one-name": ('<xsl:variable name="v" select="d:up"/>', "count(../d:l[d:id = $v])"),
    "string-variable": ('<xsl:variable name="v" select="normalize-space(d:up[1])"/>', "count(../d:l[d:id = $v])"),
    "path-child": ('<xsl:variable name="v" select="d:up"/>', "count(../d:g[d:l/d:id = $v])"),
    "followed-by-a-path": (
        '<xsl:variable name="v" select="d:up"/>',
        "string-join((../d:l|../d:m)[d:id = $v]/d:id, ',')",
    ),
}


@pytest.mark.parametrize(("declaration", "lookup"), KEYABLE.values(), ids=KEYABLE.keys())
def test_sibling_lookups_by_key_give_the_same_output(saxon: Any, declaration: str, lookup: str) -> None:
    """A lookup of siblings by a child's value becomes a key lookup that finds the same siblings, in order."""
    original = rule_sheet({"d:l[d:up]": declaration + LOOKUP.format(lookup)})
    optimised = optimise(original)
    assert [c for c in optimised.changes if "lookups of siblings" in c] == [
        "1 lookups of siblings by a child's value made by key (1 keys)"
    ]
    expected = outputs(saxon, original, LINES_DOCS)
    assert outputs(saxon, optimised.stylesheet, LINES_DOCS) == expected
    assert any(re.search(r"[1-9]", e.split("R0", 1)[-1]) for e in expected)  # the lookups do find lines


def test_sibling_lookup_in_for_each_is_keyed_to_the_same_siblings(saxon: Any) -> None:
    """In xsl:for-each, .. and current() are both the iterated node: the keyed lookup finds the same lines."""
    lookup = '<xsl:value-of select="count(../d:l[d:id = $v])"/>'
    body = f'<xsl:variable name="v" select="d:up"/><xsl:for-each select=".">{lookup}</xsl:for-each>'
    original = rule_sheet({"d:l[d:up]": body})
    optimised = optimise(original)
    assert "key(" in "".join(xpath_attributes(optimised.stylesheet))
    assert outputs(saxon, optimised.stylesheet, LINES_DOCS) == outputs(saxon, original, LINES_DOCS)


NOT_KEYABLE = {
    "number-variable": ('<xsl:variable name="v" select="number(d:up[1])"/>', "count(../d:l[d:id = $v])"),
    "typed-variable": ('<xsl:variable name="v" select="d:up" as="element()*"/>', "count(../d:l[d:id = $v])"),
    "parameter": ('<xsl:param name="v" select="d:up"/>', "count(../d:l[d:id = $v])"),
    "global-parameter": ("", "count(../d:l[d:id = $gv])"),
    "in-a-predicate": ('<xsl:variable name="v" select="d:up"/>', "count(d:id[../../d:l[d:id = $v]])"),
    "after-a-step": ('<xsl:variable name="v" select="d:up"/>', "count(./../d:l[d:id = $v])"),
    "other-comparison": ('<xsl:variable name="v" select="d:up"/>', "count(../d:l[d:id != $v])"),
    "grandparent": ('<xsl:variable name="v" select="d:up"/>', "count(../../d:l[d:id = $v])"),
}


@pytest.mark.parametrize(("declaration", "lookup"), NOT_KEYABLE.values(), ids=NOT_KEYABLE.keys())
def test_lookups_that_a_key_might_not_match_are_left_alone(saxon: Any, declaration: str, lookup: str) -> None:
    """A lookup whose value may compare as a number, or whose siblings are not the context's, stays."""
    original = rule_sheet({"d:l[d:up]": declaration + LOOKUP.format(lookup)}, '<xsl:param name="gv" select="1"/>')
    optimised = optimise(original)
    assert not [c for c in optimised.changes if "lookups of siblings" in c]
    assert outputs(saxon, optimised.stylesheet, LINES_DOCS) == outputs(saxon, original, LINES_DOCS)


NAMES_DOC = (
    "<r xmlns:a='urn:a' xmlns:b='urn:a' xmlns:c='urn:c'><a:x/><b:x/><c:x/><x/><a:x><x/><x/></a:x><x/>"
    "<x xmlns='urn:a'/><y/><x/></r>"
)


def location_sheet(template: etree._Element) -> etree._ElementTree:
    """A rule set that reports the location of every element, with the skeleton's location ``template``."""
    sheet = rule_sheet({"*": '<xsl:apply-templates select="." mode="schematron-get-full-path"/>'})
    sheet.getroot().append(copy.deepcopy(template))
    return sheet


@cache
def official_location_template() -> etree._Element:
    """The CEN UBL artefact's schematron-get-full-path template for elements."""
    (template,) = [
        t
        for t in etree.parse(str(CEN_UBL)).getroot().findall(f"{{{XSL}}}template")
        if t.get("mode") == "schematron-get-full-path" and t.get("match") == "*"
    ]
    return template


def test_numbered_locations_are_the_same(saxon: Any) -> None:
    """xsl:number gives each step the number the official count gave, whatever the prefixes and namespaces."""
    original = location_sheet(official_location_template())
    optimised = optimise(original)
    assert optimised.changes[-1] == "location steps numbered by xsl:number"
    expected = outputs(saxon, original, [NAMES_DOC])
    assert outputs(saxon, optimised.stylesheet, [NAMES_DOC]) == expected
    assert "/*:x[namespace-uri()='urn:a'][4][0]" in expected[0] and "/r[1]/x[3][0]" in expected[0]


def test_location_template_of_another_shape_is_left_alone(saxon: Any) -> None:
    """A location template that also uses its count elsewhere is not rewritten."""
    template = copy.deepcopy(official_location_template())
    extra = etree.SubElement(template, f"{{{XSL}}}value-of", select="$preceding")
    extra.tail = ""
    original = location_sheet(template)
    optimised = optimise(original)
    assert "location steps numbered by xsl:number" not in optimised.changes
    assert outputs(saxon, optimised.stylesheet, [NAMES_DOC]) == outputs(saxon, original, [NAMES_DOC])
