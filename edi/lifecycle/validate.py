"""Check a CDAR lifecycle message edi wrote against the official artefacts, fail-closed.

Reads the CDAR D22B XSD (root and its 13 imported schemas) and the compiled BR-FR-CDV Schematron XSLT from the
installed ``pyfrctc`` package (located with ``importlib.util.find_spec``, without importing it; used as data, never
copied into edi). The XSD is compiled by lxml without network access (:func:`edi.validate.xsd.compile_schema`); the
XSLT runs in this process on edi's Saxon (no URI access at all), rewritten to check many messages in one
transformation, each on its own (:mod:`edi.lifecycle.cdv_batch`), and its report is read as the business rules' are
(:func:`edi.validate.schematron.svrl_findings`, the artefact's own flags: BR-FR-CDV-CL-06 is its one warning).

:func:`check` returns every finding (layer ``cdar``) and :func:`check_all` those of several messages (a group's);
a layer that cannot run is one fatal ``LAYER_NOT_RUN`` finding, never a pass. :func:`check_or_raise` (and
:func:`raise_if_fatal` on findings) raises :class:`CdarInvalid` on any fatal finding: a message edi built that fails
is a bug in edi, and must never be sent. :func:`artefacts` names the artefacts, with their versions and SHA-256, for
the acknowledgement to name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from lxml import etree

from edi.errors import CatalogueError, EdiError
from edi.lifecycle.cdv_batch import Batch
from edi.model import Code, Finding, Layer
from edi.validate.catalogue import RuleEntry
from edi.validate.saxon import SAFE_PARSER, Saxon, short
from edi.validate.schematron import Compiled, svrl_findings
from edi.validate.xsd import compile_schema, validate_xsd

PACKAGE = "pyfrctc"
XSD = ("cdar-xsd", "CrossDomainAcknowledgementAndResponse_100pD22B.xsd")
SCHEMATRON = ("cdar-schematron", "BR-FR-CDV-Schematron-CDAR.xslt")
# The compiled XSLT carries no version of its own (its SVRL says schemaVersion=""): the files this hash names were
# compared with FNFE France_RFE's `FNFE_RFE_INVOICE/CDAR/2xslt/BR-FR-CDV-Schematron-CDAR.xslt`, header
# "20260630_BR-FR-CDV-Schematron-CDAR_V1.4.0" (shared/docs/lifecycle.md B4). Another file is named by its hash only.
KNOWN_SCHEMATRONS = {"9ccbc00d9ca34b74d24e882d737ed5f7c6c8c9ae8e56577e5534da4201837fb0": "BR-FR-CDV V1.4.0"}


class CdarInvalid(EdiError):
    """A lifecycle message edi built fails the official CDAR XSD or the BR-FR-CDV fatal rules (a bug in edi)."""

    def __init__(self, findings: list[Finding]) -> None:
        fatal = [f for f in findings if f.fatal]
        rules = ", ".join(dict.fromkeys(f.rule or str(f.code) for f in fatal))
        super().__init__(f"the CDAR message fails {rules}: {fatal[0].message}" if fatal else "the CDAR message fails")
        self.findings = fatal


@dataclass(frozen=True, slots=True)
class Artefact:
    """One official artefact a message is checked against."""

    name: str  # the file name
    path: Path
    version: str
    sha256: str


def _located(folder: str, name: str) -> Path:
    """A file of the installed package, found without importing it (importing pyfrctc imports its dependencies,
    dnspython among them: 0.1 to 0.3 s at each start of a run and of each worker, for two file paths)."""
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogueError(f"the {PACKAGE} package is not installed: it provides the CDAR XSD and Schematron")
    path = Path(next(iter(spec.submodule_search_locations)), folder, name)
    if not path.is_file():
        raise CatalogueError(f"the installed {PACKAGE} package lacks {folder}/{name}")
    return path


@cache
def artefacts() -> tuple[Artefact, Artefact]:
    """The CDAR XSD and the BR-FR-CDV Schematron XSLT of the installed pyfrctc, with versions and SHA-256."""
    package = f"{PACKAGE} {metadata.version(PACKAGE)}"
    xsd_path = _located(*XSD)
    xsd_bytes = xsd_path.read_bytes()
    xsd_version = etree.fromstring(xsd_bytes, SAFE_PARSER).get("version") or "unknown"
    xslt_path = _located(*SCHEMATRON)
    xslt_sha = hashlib.sha256(xslt_path.read_bytes()).hexdigest()
    xslt_version = KNOWN_SCHEMATRONS.get(xslt_sha, "unknown")
    return (
        Artefact(xsd_path.name, xsd_path, f"CDAR {xsd_version} ({package})", hashlib.sha256(xsd_bytes).hexdigest()),
        Artefact(xslt_path.name, xslt_path, f"{xslt_version} ({package})", xslt_sha),
    )


@cache
def _saxon() -> Saxon:
    return Saxon()


_batches: dict[Path, Batch | str] = {}  # the XSLT -> the batch compiled from it, or why it does not compile


def _batch(schematron: Artefact) -> Batch | str:
    """The BR-FR-CDV rewrite (:mod:`edi.lifecycle.cdv_batch`) compiled once per process; why it cannot be, or it."""
    batch = _batches.get(schematron.path)
    if batch is None:
        try:
            batch = Batch(_saxon().processor(), schematron.path)
        except OSError as exc:
            batch = f"cannot read {schematron.name}: {exc.strerror}"
        except Exception as exc:  # Saxon and the optimiser raise many kinds: all mean "this layer cannot run"
            batch = f"{schematron.name} does not compile: {short(exc)}"
        _batches[schematron.path] = batch
    return batch


def check(message: bytes) -> list[Finding]:
    """Every finding of the official XSD and BR-FR-CDV Schematron on ``message`` (empty when it passes both)."""
    return check_all([message])[0]


def check_all(messages: Sequence[bytes]) -> list[list[Finding]]:
    """Every finding of each of ``messages``, as :func:`check` gives it, the Schematron run once for all of them."""
    trees: list[etree._ElementTree] = []
    results: list[list[Finding] | None] = []  # None: parsed, its findings to come
    for message in messages:
        try:
            trees.append(etree.fromstring(message, SAFE_PARSER).getroottree())
            results.append(None)
        except etree.XMLSyntaxError as exc:
            syntax = Finding(Code.IRR_SYNTAX, Layer.CDAR, f"the CDAR message is not well-formed XML: {short(exc)}")
            results.append([syntax])
    checked = iter(_check_trees(trees))
    return [found if found is not None else next(checked) for found in results]


def check_tree(tree: etree._ElementTree) -> list[Finding]:
    """Every finding of the official XSD and BR-FR-CDV Schematron on a parsed message (a partner's, as read)."""
    return _check_trees([tree])[0]


def _check_trees(trees: Sequence[etree._ElementTree]) -> list[list[Finding]]:
    """The findings of each parsed message: the XSD on each, the Schematron on all in one transformation (one message
    at a time again if that fails, so that a message the rules cannot run on fails alone)."""
    if not trees:
        return []
    xsd, schematron = artefacts()
    findings = [[_in_cdar(f, xsd) for f in _xsd_findings(tree, xsd)] for tree in trees]
    batch = _batch(schematron)
    if isinstance(batch, str):
        return [[*found, _not_run(schematron, batch)] for found in findings]
    compiled = Compiled(
        RuleEntry("cdar", "CDAR", ("*",), schematron.path, "flag", schematron.version), schematron.sha256
    )
    texts = [etree.tostring(tree, encoding="unicode") for tree in trees]
    try:
        reports: list[etree._Element | str] = list(batch.reports(texts))
    except Exception:  # Saxon raises many kinds: find which message it was, each on its own
        reports = [_alone(batch, text, schematron) for text in texts]
    return [
        [*found, _not_run(schematron, report)]
        if isinstance(report, str)
        else found + svrl_findings(report, Layer.CDAR, compiled, tree)
        for found, report, tree in zip(findings, reports, trees, strict=True)
    ]


def _alone(batch: Batch, text: str, schematron: Artefact) -> etree._Element | str:
    """The report of one message, or why the rules did not run on it."""
    try:
        return batch.reports([text])[0]
    except Exception as exc:  # Saxon raises many kinds: all mean "this layer did not run"
        return f"{schematron.name} failed on the message: {short(exc)}"


def check_or_raise(message: bytes) -> None:
    """Return when ``message`` passes the XSD and the fatal BR-FR-CDV rules; else raise :class:`CdarInvalid`."""
    raise_if_fatal(check(message))


def raise_if_fatal(findings: list[Finding]) -> None:
    """Raise :class:`CdarInvalid` when ``findings`` (of one message) hold a fatal one."""
    if any(f.fatal for f in findings):
        raise CdarInvalid(findings)


def _xsd_findings(tree: etree._ElementTree, xsd: Artefact) -> list[Finding]:
    compile_schema(xsd.path)  # raises CatalogueError when the installed schema does not compile
    try:
        return validate_xsd(tree, xsd.path)
    except etree.Error as exc:  # libxml2 gives up on some trees (an entity left unexpanded): never a pass
        return [
            Finding(
                Code.LAYER_NOT_RUN,
                Layer.CDAR,
                f"the CDAR XSD could not be run on the message, so it cannot be sent: {short(exc)}",
                rule_set_version=xsd.version,
                rule_set_sha256=xsd.sha256,
            )
        ]


def _in_cdar(finding: Finding, xsd: Artefact) -> Finding:
    return Finding(
        finding.code,
        Layer.CDAR,
        finding.message,
        rule=finding.rule,
        line=finding.line,
        xpath=finding.xpath,
        rule_set_version=xsd.version,
        rule_set_sha256=xsd.sha256,
    )


def _not_run(schematron: Artefact, why: str) -> Finding:
    return Finding(
        Code.LAYER_NOT_RUN,
        Layer.CDAR,
        f"the BR-FR-CDV rules did not run, so the CDAR message cannot be sent: {why}",
        rule_set_version=schematron.version,
        rule_set_sha256=schematron.sha256,
    )


def prepare() -> tuple[Artefact, Artefact]:
    """Load and compile both artefacts now (a run's start): a missing or broken pyfrctc stops the run before any flow
    is taken, rather than failing every flow. Raises :class:`CatalogueError`."""
    xsd, schematron = artefacts()
    compile_schema(xsd.path)
    batch = _batch(schematron)
    if isinstance(batch, str):
        raise CatalogueError(f"the BR-FR-CDV rules do not compile: {batch}")
    return xsd, schematron
