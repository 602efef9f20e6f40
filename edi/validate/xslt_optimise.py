"""Make a Schematron-generated XSLT cheap to run, without changing what it reports.

Pure: takes the parsed official stylesheet (lxml) and returns an equivalent one; the official file is never
changed or copied. ``tests/validate/test_xslt_optimise.py`` runs both on every corpus document and sample and checks
that they fire the same asserts and reports, with the same ids, flags, locations and texts.

Why the Factur-X XSLTs cost several times the CEN UBL one (measured in ``benchmarks/bench_rules.py``):

1. Every one of their code-list checks calls ``document('..._codedb.xml')``: each transformation parses that 35-270
   KiB file again, because a document pool lives for one transformation only. Here the code list is parsed once
   and passed in as the ``$edi-codedb`` parameter, and looked up through a key instead of a scan.
2. The ISO skeleton they were generated with walks the whole document once per pattern (66 patterns for EN16931,
   82 for EXTENDED, against 3 for the CEN UBL artefact), and before each of those walks runs a second, default-mode
   walk that outputs nothing (its only template for the nodes it visits discards text). Here each pattern's walk
   visits only the nodes its rules match, in the same document order, and the empty walks are dropped.

3. Each rule writes an ``svrl:fired-rule`` element for every node it matches, which edi never reads: the report on
   a 20 MB invoice held 220,000 of them (tens of MB, parsed again to read the findings). They are not written, nor
   are the empty ``svrl:active-pattern`` (one per pattern) and ``svrl:ns-prefix-in-attribute-values`` elements, and
   the report is not indented: what is left are the failed asserts and successful reports.
4. Costs that grew faster than the document (with the square of its lines): :mod:`edi.validate.xslt_scaling`.
5. Hundreds of asserts that a path is absent, each walking it from the root: :mod:`edi.validate.xslt_absent`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from lxml import etree

from edi.validate.xpath_text import split_steps, split_union, without_predicates
from edi.validate.xslt_absent import group_absent_paths
from edi.validate.xslt_scaling import XSL, hoist_constant_calls, key_sibling_lookups, number_locations

SVRL = "http://purl.oclc.org/dsdl/svrl"
CODEDB_PARAM = "edi-codedb"
CODEDB_KEY = "edi-code"

_DOCUMENT = re.compile(r"document\('([^']+)'\)")
_CODEDB_NAME = re.compile(r"^[\w.-]+_codedb\.xml$")  # a code list beside the XSLT: no folder, no scheme
_CODE_LOOKUP = re.compile(r"document\('[^']+'\)/codedb/cl\[@id=(\d+)\]/enumeration\[@value=(\$[A-Za-z_][\w.-]*)\]")


@dataclass(frozen=True, slots=True)
class Optimised:
    """An equivalent stylesheet, and the code list file (beside the original) it expects as ``$edi-codedb``."""

    stylesheet: etree._ElementTree
    codedb: str | None
    changes: tuple[str, ...]


def optimise(original: etree._ElementTree) -> Optimised:
    """An equivalent, cheaper copy of a Schematron-generated XSLT (the parts it cannot prove safe are left alone)."""
    tree = copy.deepcopy(original)
    changes = []
    codedb = _inline_codedb(tree)
    if codedb:
        changes.append(f"code lists from {codedb} parsed once, looked up by key")
    if _drop_silent_walks(tree):
        changes.append("no-op default-mode walks dropped")
    flattened = _flatten_pattern_walks(tree)
    if flattened:
        changes.append(f"{flattened} pattern walks visit only the nodes their rules match")
    fired = _drop_fired_rules(tree)
    if fired:
        changes.append(f"{fired} svrl:fired-rule elements not written")
    unread = _drop_unread_output(tree)
    if unread:
        changes.append(f"{unread} empty svrl elements not written, the report not indented")
    values, calls = hoist_constant_calls(tree)
    if values:
        changes.append(f"{calls} function calls on absolute paths made once per document ({values} values)")
    keys, lookups = key_sibling_lookups(tree)
    if keys:
        changes.append(f"{lookups} lookups of siblings by a child's value made by key ({keys} keys)")
    absent = group_absent_paths(tree)
    if absent:
        changes.append(f"{absent} asserts that a path is absent grouped under the steps their paths share")
    if number_locations(tree):
        changes.append("location steps numbered by xsl:number")
    return Optimised(tree, codedb, tuple(changes))


def _inline_codedb(tree: etree._ElementTree) -> str | None:
    """Replace ``document('X_codedb.xml')`` lookups with a key over a parameter; the name of X, if any."""
    names: set[str] = set()
    root = tree.getroot()
    for element in root.iter():
        for value in element.attrib.values():
            names.update(_DOCUMENT.findall(value))
    if len(names) != 1 or not _CODEDB_NAME.match(next(iter(names))):
        return None  # nothing to inline, or not a code list beside the XSLT: left to Saxon, which reads no file
    for element in root.iter():
        for attribute, value in element.attrib.items():
            if "document(" not in value:
                continue
            value = _CODE_LOOKUP.sub(
                lambda m: f"key('{CODEDB_KEY}', '{m.group(1)}|' || {m.group(2)}, ${CODEDB_PARAM})", value
            )
            element.set(attribute, _DOCUMENT.sub(f"${CODEDB_PARAM}", value))
    param = etree.Element(f"{{{XSL}}}param", name=CODEDB_PARAM)
    key = etree.Element(f"{{{XSL}}}key", name=CODEDB_KEY, match="enumeration", use="../@id || '|' || @value")
    root.insert(0, key)
    root.insert(0, param)
    return names.pop()


def _default_mode_templates(tree: etree._ElementTree) -> list[etree._Element]:
    return [
        t
        for t in tree.getroot().iter(f"{{{XSL}}}template")
        if t.get("mode") in (None, "#default") and t.get("match") is not None
    ]


def _drop_silent_walks(tree: etree._ElementTree) -> bool:
    """Drop the mode-less ``xsl:apply-templates`` inside ``svrl:active-pattern``, when the default mode can output
    nothing for the nodes it visits (its only templates are for the root, which it never visits, and text)."""
    if any(t.get("match").strip() not in ("/", "text()") for t in _default_mode_templates(tree)):
        return False
    dropped = False
    for pattern in tree.getroot().iter(f"{{{SVRL}}}active-pattern"):
        for child in list(pattern):
            if child.tag == f"{{{XSL}}}apply-templates" and child.get("select") is None and child.get("mode") is None:
                pattern.remove(child)
                dropped = True
    return dropped


def _flatten_pattern_walks(tree: etree._ElementTree) -> int:
    """For each pattern mode whose shape is the skeleton's, apply the rule templates to the nodes they match
    instead of walking every node; return how many modes were rewritten."""
    root = tree.getroot()
    by_mode: dict[str, list[etree._Element]] = {}
    for template in root.iter(f"{{{XSL}}}template"):
        mode = template.get("mode")
        if mode and re.fullmatch(r"M\d+", mode):
            by_mode.setdefault(mode, []).append(template)
    entries = {
        a.get("mode"): a
        for a in root.iter(f"{{{XSL}}}apply-templates")
        if a.get("select") == "/" and a.get("mode") in by_mode and _in_root_template(a)
    }
    count = 0
    for mode, templates in by_mode.items():
        rules, defaults = _split(templates, mode)
        entry = entries.get(mode)
        if entry is None or rules is None or defaults is None:
            continue
        patterns = []
        attributes = all((r[-1].get("select") or "").replace(" ", "") in _WALKS_ATTRIBUTES for r in rules)
        for rule in rules:
            alternatives = _alternatives(rule.get("match", ""), attributes=attributes)
            if alternatives is None:
                break
            patterns += alternatives
        else:
            for rule in rules:
                recursion = rule[-1]
                rule.remove(recursion)
            entry.set("select", _in_document_order(patterns))
            count += 1
    return count


def _in_document_order(paths: list[str]) -> str:
    """The nodes ``paths`` select, in document order, each once: what their union selects, written as a sequence
    followed by a step (``(a, b)/.``, which XPath sorts and deduplicates as ``a | b``). Saxon compiles a union of
    hundreds of paths slowly: as a union, the CII EN 16931 syntax pattern's 308 made the optimised stylesheet take
    0.60 s to compile (the official file, 0.23 s); as a sequence, 0.24 s. Both run alike."""
    return paths[0] if len(paths) == 1 else f"({', '.join(paths)})/."


def _drop_fired_rules(tree: etree._ElementTree) -> int:
    """Remove the empty ``svrl:fired-rule`` literal elements of the pattern modes' rules (those whose attributes
    compute nothing, so that removing them cannot remove an error); return how many."""
    dropped = 0
    for template in tree.getroot().iter(f"{{{XSL}}}template"):
        if not re.fullmatch(r"M\d+", template.get("mode") or ""):
            continue
        for fired in template.findall(f"{{{SVRL}}}fired-rule"):
            if len(fired) or (fired.text or "").strip() or any("{" in v for v in fired.attrib.values()):
                continue
            _remove_keeping_tail(fired)
            dropped += 1
    return dropped


def _drop_unread_output(tree: etree._ElementTree) -> int:
    """Remove the ``svrl:active-pattern`` elements that hold nothing but their name and the document's URI (once the
    silent walks inside them are dropped) and the ``svrl:ns-prefix-in-attribute-values`` ones, which edi never reads;
    write the report without indentation; return how many elements were removed (none when nothing is unindented)."""
    root = tree.getroot()
    outputs = root.findall(f"{{{XSL}}}output")
    if len(outputs) != 1 or outputs[0].get("method", "xml") != "xml":
        return 0
    dropped = 0
    for element in list(root.iter(f"{{{SVRL}}}active-pattern", f"{{{SVRL}}}ns-prefix-in-attribute-values")):
        if (element.text or "").strip() or any("{" in v for v in element.attrib.values()):
            continue
        if all(_constant_attribute(child) for child in element if isinstance(child.tag, str)):
            _remove_keeping_tail(element)
            dropped += 1
    if dropped:
        outputs[0].set("indent", "no")
    return dropped


def _constant_attribute(element: etree._Element) -> bool:
    """Whether ``element`` is an ``xsl:attribute`` of literal text or of the document's URI (nothing that can raise)."""
    if element.tag != f"{{{XSL}}}attribute" or "{" in (element.get("name") or "{"):
        return False
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return True
    return (
        len(children) == 1
        and children[0].tag == f"{{{XSL}}}value-of"
        and (children[0].get("select") or "").replace(" ", "") == "document-uri(/)"
        and not len(children[0])
    )


def _remove_keeping_tail(element: etree._Element) -> None:
    """Remove ``element``; the text after it (whitespace in a template) stays where it was."""
    parent = element.getparent()
    assert parent is not None
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _in_root_template(element: etree._Element) -> bool:
    parent = element.getparent()
    while parent is not None and parent.tag != f"{{{XSL}}}template":
        parent = parent.getparent()
    return parent is not None and parent.get("match") == "/" and parent.get("mode") is None


# How a skeleton's rule templates carry the walk on: over child elements and attributes, or child elements only.
_WALKS_ATTRIBUTES = {"@*|*", "*|@*", "@*|*|comment()|processing-instruction()"}
_WALKS_ELEMENTS = {"*", "*|comment()|processing-instruction()"}
_RECURSION = _WALKS_ATTRIBUTES | _WALKS_ELEMENTS


def _split(
    templates: list[etree._Element], mode: str
) -> tuple[list[etree._Element] | None, list[etree._Element] | None]:
    """The rule templates of a pattern mode and its two skeleton defaults, or Nones if the mode is not that shape."""
    rules, defaults = [], []
    for template in templates:
        match = (template.get("match") or "").strip()
        last = template[-1] if len(template) else None
        recurses = (
            last is not None
            and last.tag == f"{{{XSL}}}apply-templates"
            and last.get("mode") == mode
            and (last.get("select") or "").replace(" ", "") in _RECURSION
            and not len(last)
        )
        if (match == "text()" and template.get("priority") == "-1" and not len(template) and not template.text) or (
            match in ("@*|node()", "node()|@*") and template.get("priority") == "-2" and recurses and len(template) == 1
        ):
            defaults.append(template)
        elif recurses and _priority(template) > 0 and template.nsmap == template.getroottree().getroot().nsmap:
            rules.append(template)
        else:
            return None, None
    if len(defaults) != 2:
        return None, None
    walks = {(t[-1].get("select") or "").replace(" ", "") for t in [*rules, *defaults] if len(t)}
    if len(walks) != 1:  # the rules and the default must carry the walk on over the same nodes
        return None, None
    return rules, defaults


# Functions whose meaning differs between a pattern and an expression, and node tests the walk never visits.
def _priority(template: etree._Element) -> float:
    try:
        return float(template.get("priority", "0"))
    except ValueError:
        return 0.0


_UNSAFE = re.compile(
    r"\b(key|id|current|position|last|root|text|comment|processing-instruction|node)\s*\(|\b(union|intersect|except)\b"
)


def _alternatives(match: str, *, attributes: bool = True) -> list[str] | None:
    """A match pattern as select expressions that find the same nodes from the root, or None when unsure.

    With ``attributes`` False (a walk that visits elements only), a pattern that can match an attribute is refused:
    the walk would never have reached it.
    """
    match = " ".join(match.split())
    if not match or _UNSAFE.search(match):
        return None
    out = []
    for alternative in split_union(match):
        alternative = alternative.strip()
        last = without_predicates(split_steps(alternative)[-1])
        if not attributes and ("@" in last or "attribute" in last):
            return None
        if alternative == "/":
            out.append("/")
        elif alternative.startswith("/"):
            out.append(alternative)
        else:
            out.append("//" + alternative)
    return out
