"""Tests for edi.validate.xslt_absent: asserts that a path is absent, grouped under the steps their paths share,
fire what they fired (on a synthetic rule set here; on the official files and the corpus in test_xslt_optimise.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from edi.validate.xslt_absent import group_absent_paths
from edi.validate.xslt_optimise import XSL, optimise
from tests.validate.test_xslt_optimise import CEN_UBL


@pytest.fixture(scope="module")
def saxon() -> Iterator[Any]:
    from saxonche import PySaxonProcessor

    yield PySaxonProcessor(license=False)


def assert_absent(test: str) -> str:
    """A Schematron assert as the skeleton writes it."""
    return (
        f'<xsl:choose><xsl:when test="{test}"/><xsl:otherwise>'
        f'<svrl:failed-assert test="{test}"><svrl:text>{test}</svrl:text></svrl:failed-assert>'
        "</xsl:otherwise></xsl:choose>"
    )


def report(test: str) -> str:
    """A Schematron report as the skeleton writes it."""
    return f'<xsl:if test="{test}"><svrl:successful-report test="{test}"/></xsl:if>'


RULES = [
    assert_absent("not(a/b)"),
    assert_absent("not(a/c/d)"),
    assert_absent("not(a/c/@e)"),
    report("a/c/f"),
    assert_absent("not(g)"),
    assert_absent("not(/h)"),
    assert_absent("not(@i)"),
    assert_absent("not((j|k)/l)"),
    assert_absent("not((j|k)/m)"),
    assert_absent("not(a[@x]/b)"),  # a predicate: could raise, kept as it is
    assert_absent("not(//n)"),  # any depth: kept
    assert_absent("not(o/text())"),  # not a name: kept
    assert_absent("not(p/q)"),
    assert_absent("not(p/s)"),
]
STYLESHEET = (
    '<xsl:stylesheet version="3.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
    'xmlns:svrl="http://purl.oclc.org/dsdl/svrl">'
    '<xsl:template match="/"><svrl:schematron-output><xsl:apply-templates select="/r" mode="M1"/>'
    "</svrl:schematron-output></xsl:template>"
    f'<xsl:template match="r" mode="M1" priority="1000">{"".join(RULES)}</xsl:template>'
    "</xsl:stylesheet>"
)
DOCUMENTS = [
    "<r/>",
    "<r><a/><j/></r>",
    "<r><a><b/><c><d/><f/></c></a></r>",
    '<r i="1"><a x="1"><c e="2"/></a><g/><h/><k><l/></k><n/><o>t</o><p><s/></p></r>',
    "<r><j><m/></j><p><q/></p><a><c><f/></c></a></r>",
]


def run(saxon: Any, stylesheet: etree._ElementTree, document: str) -> str:
    """The report ``stylesheet`` writes on ``document``."""
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=etree.tostring(stylesheet, encoding="unicode")
    )
    return str(executable.transform_to_string(xdm_node=saxon.parse_xml(xml_text=document)))


def conditions(element: etree._Element) -> list[str]:
    """The tests of the xsl:when and xsl:if below ``element``, in document order."""
    return [w.get("test") or "" for w in element.iter(f"{{{XSL}}}when", f"{{{XSL}}}if") if w is not element]


def test_consecutive_asserts_are_grouped_under_the_steps_they_share() -> None:
    """Asserts and reports on paths of child name steps sharing their start go under an xsl:if on it, level by
    level, and runs of one-step paths under the union of them; a predicate, a // or a non-name step ends a run."""
    grouped = etree.fromstring(STYLESHEET).getroottree()
    assert group_absent_paths(grouped) == 9 + 2
    template = grouped.getroot()[1]
    guards = [c.get("test") for c in template if c.tag == f"{{{XSL}}}if" and c.get("test") != "a/c/f"]
    assert guards == ["a", "(g|/h|@i)", "(j|k)", "p"]
    under_a = next(c for c in template if c.get("test") == "a")
    assert conditions(under_a) == ["not(a/b)", "a/c", "a/c/(d|@e|f)", "not(a/c/d)", "not(a/c/@e)", "a/c/f"]
    kept = [w.get("test") for w in template.findall(f"{{{XSL}}}choose/{{{XSL}}}when")]
    assert kept == ["not(a[@x]/b)", "not(//n)", "not(o/text())"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_grouped_asserts_fire_what_they_fired(saxon: Any, document: str) -> None:
    """On documents with none, some and all of the paths, the grouped rule set writes the same report."""
    original = etree.fromstring(STYLESHEET).getroottree()
    grouped = copy.deepcopy(original)
    group_absent_paths(grouped)
    assert run(saxon, grouped, document) == run(saxon, original, document)


def test_text_written_between_asserts_ends_a_group() -> None:
    """An assert followed by text the template writes is not moved: the text would change place."""
    rules = assert_absent("not(a/b)") + "x" + assert_absent("not(a/c)") + assert_absent("not(a/d)")
    stylesheet = etree.fromstring(STYLESHEET.replace("".join(RULES), rules)).getroottree()
    assert group_absent_paths(stylesheet) == 2
    assert stylesheet.getroot()[1][0].tag == f"{{{XSL}}}choose"


def test_cen_ubl_syntax_asserts_are_grouped() -> None:
    """The CEN UBL artefact's "shall not be used" asserts are grouped (one look at cac:TaxRepresentativeParty
    skips the 40 asserts below it) and its SVRL literals are unchanged."""
    original = etree.parse(str(CEN_UBL))
    optimised = optimise(original)
    assert any("asserts that a path is absent grouped" in c for c in optimised.changes)
    root = optimised.stylesheet.getroot()
    guard = next(i for i in root.iter(f"{{{XSL}}}if") if i.get("test") == "cac:TaxRepresentativeParty")
    assert len(list(guard.iter(f"{{{XSL}}}choose"))) > 30
    svrl = "{http://purl.oclc.org/dsdl/svrl}failed-assert"
    assert [a.get("test") for a in root.iter(svrl)] == [a.get("test") for a in original.getroot().iter(svrl)]


def test_an_assert_declaring_its_own_prefix_is_left_in_place() -> None:
    """An assert whose path uses a prefix it declares itself stays out of a group: the guard could not read it."""
    local = assert_absent("not(q:a/q:c)").replace("<xsl:choose>", '<xsl:choose xmlns:q="urn:q">', 1)
    rules = assert_absent("not(a/b)") + local + assert_absent("not(a/d)") + assert_absent("not(a/e)")
    stylesheet = etree.fromstring(STYLESHEET.replace("".join(RULES), rules)).getroottree()
    assert group_absent_paths(stylesheet) == 2
    assert [c.get("test") for c in stylesheet.getroot()[1] if c.tag == f"{{{XSL}}}if"] == ["a"]
