"""Tests for edi.lifecycle.validate: the official CDAR XSD and BR-FR-CDV XSLT come from the installed pyfrctc, run
fail-closed, name their versions and SHA-256, and catch a broken message with the official rule id."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from edi.codes import Code
from edi.lifecycle.cdar import Reason, build
from edi.lifecycle.validate import KNOWN_SCHEMATRONS, CdarInvalid, artefacts, check, check_or_raise
from edi.model import Finding, Layer
from edi.validate.saxon import SAFE_PARSER
from tests.conftest import FLOWS, Workspace
from tests.lifecycle.test_cdar import subject

SVRL = "http://purl.oclc.org/dsdl/svrl"


def fatal(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.fatal]


def test_the_artefacts_are_pyfrctcs_files_with_their_versions_and_hashes() -> None:
    """The XSD (CDAR 100.D22B) and the BR-FR-CDV V1.4.0 XSLT are read from the installed pyfrctc package, their
    SHA-256 that of the files, the versions naming the package that shipped them."""
    xsd, schematron = artefacts()
    package = resources.files("pyfrctc")
    assert xsd.path.read_bytes() == package.joinpath("cdar-xsd", xsd.name).read_bytes()
    assert schematron.path.read_bytes() == package.joinpath("cdar-schematron", schematron.name).read_bytes()
    assert xsd.sha256 == hashlib.sha256(xsd.path.read_bytes()).hexdigest()
    assert schematron.sha256 == hashlib.sha256(schematron.path.read_bytes()).hexdigest()
    assert xsd.version.startswith("CDAR 100.D22B (pyfrctc ")
    assert schematron.version.startswith("BR-FR-CDV V1.4.0 (pyfrctc ")
    assert schematron.sha256 in KNOWN_SCHEMATRONS


def test_a_213_without_a_reason_fails_with_the_official_rule_id() -> None:
    """A broken message is caught: a 213 with no reason fails BR-FR-CDV-15 (fatal), and check_or_raise raises."""
    message = build(subject("213"))
    found = fatal(check(message))
    assert [f.rule for f in found] == ["BR-FR-CDV-15_MDT-113"]
    assert found[0].layer is Layer.CDAR and found[0].rule_set_sha256 == artefacts()[1].sha256
    with pytest.raises(CdarInvalid, match="BR-FR-CDV-15_MDT-113"):
        check_or_raise(message)
    check_or_raise(build(subject()))  # a valid one returns


def test_a_reason_code_a_213_may_not_carry_fails_both_reason_lists() -> None:
    """A reason outside the reform's lists fails BR-FR-CDV-CL-09 (all reasons) and CL-09 for 213."""
    message = build(subject("213", reasons=(Reason("X", "NOT_A_REASON", "m"),)))
    assert sorted(f.rule for f in fatal(check(message))) == ["BR-FR-CDV-CL-09_MDT-113", "BR-FR-CDV-CL-09_MDT-113_213"]


def test_a_message_against_the_xsd_fails_as_an_xsd_finding_of_the_cdar_layer() -> None:
    """An element the XSD does not allow is an IRR_SYNTAX finding, layer cdar, naming the XSD's version."""
    broken = build(subject()).replace(b"<ram:ID>REGULATED</ram:ID>", b"<ram:Bogus>REGULATED</ram:Bogus>")
    found = fatal(check(broken))
    assert found and all(f.layer is Layer.CDAR for f in found)
    assert any(f.code is Code.IRR_SYNTAX and "D22B" in (f.rule_set_version or "") for f in found)
    with pytest.raises(CdarInvalid):
        check_or_raise(broken)


def test_bytes_that_are_not_xml_are_a_fatal_finding() -> None:
    """Fail-closed: bytes that are not XML give a fatal finding, never a pass."""
    assert fatal(check(b"<rsm:x"))


BROKEN = {
    "no reason": subject("213"),
    "bad reason": subject("213", reasons=(Reason("X", "NOT_A_REASON", "m"),)),
    "bad type": subject("213", reasons=(Reason("X", "IRR_SYNTAX", "m"),)),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_edis_optimised_run_fires_what_the_official_xslt_fires(name: str) -> None:
    """edi's Saxon runs the XSLT through its optimiser: the same asserts (ids, flags, locations) fire as when the
    official file runs unchanged on the same message."""
    from saxonche import PySaxonProcessor

    message = build(BROKEN[name])
    tree = etree.fromstring(message, SAFE_PARSER)
    with PySaxonProcessor(license=False) as saxon:
        saxon.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "")
        executable = saxon.new_xslt30_processor().compile_stylesheet(
            stylesheet_text=artefacts()[1].path.read_text(encoding="utf-8")
        )
        node = saxon.parse_xml(xml_text=etree.tostring(tree, encoding="unicode"))
        report = etree.fromstring(str(executable.transform_to_string(xdm_node=node)).encode(), SAFE_PARSER)
    official = sorted((e.get("id"), e.get("flag"), e.get("location")) for e in report.iter(f"{{{SVRL}}}failed-assert"))
    ours = sorted((f.assert_id, str(f.severity), f.xpath) for f in check(message) if f.layer is Layer.CDAR)
    assert official and ours == official


def test_a_broken_pyfrctc_stops_a_run_in_one_line_before_any_flow_is_taken(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An installed pyfrctc without its CDAR artefacts: `edi batch` says so in one line (exit 1), the file stays."""
    shadow = tmp_path / "shadow" / "pyfrctc"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")  # a pyfrctc package without cdar-xsd/ and cdar-schematron/
    workspace.drop("acme", "01.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes(), age=20)
    env = {**os.environ, "PYTHONPATH": str(shadow.parent), "EDI_FAULTS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(workspace.config), "batch"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "pyfrctc" in done.stderr and "cdar-xsd" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert (workspace.inbox("acme") / "01.xml").exists()
