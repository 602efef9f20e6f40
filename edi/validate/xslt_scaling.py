"""Rewrites of a Schematron-generated XSLT for costs that grow faster than the document, without changing what it
reports (steps of :func:`edi.validate.xslt_optimise.optimise`, under the same equivalence tests).

Pure: each function changes the lxml tree it is given (the optimiser's copy of the official stylesheet) and returns
how much it changed; the parts it cannot prove safe are left alone. What grew with the square of an invoice's lines
(``benchmarks/bench_sizes.py`` measures time and memory per size):

1. BR-FR (UBL): 32 asserts, most of them on every line, call ``custom:isSpecialContract(/ubl:Invoice|/cn:CreditNote)``
   (or its MV and BD variants), whose ``normalize-space($context/cbc:ProfileID)`` reads every child of the root
   element, the lines among them: each line paid for all the others (35 s on a 20.4 MB, 27,700-line invoice, against
   6.7 s for EN16931; 3.5 s now). A call of one of the stylesheet's own functions whose arguments are absolute paths
   has the same value wherever it is made, so it is made once, as a global variable (which Saxon evaluates on first
   use: it raises what the call raised, where the call did).
2. BR-FR and EXTENDED-CTC-FR: in an invoice whose lines are grouped (billing frames S8, B8, M8, S9, B9, M9), each
   detail line looks its group line up among all its siblings, ``(../cac:InvoiceLine|../cac:CreditNoteLine)[cbc:ID
   = $parentlineID]``. Such a lookup of siblings by a child's value becomes a key, built once per document, whose
   result is filtered to the siblings.
3. Every rule set: each fired assert's location numbers each step of its path by counting the earlier siblings of
   the same name, comparing ``local-name()`` and ``namespace-uri()`` strings one sibling at a time; ``xsl:number``
   counts the same siblings by name code. Still one look at the earlier siblings per step: a finding on every line
   stays quadratic, only cheaper (8,000 lines without item names: EN16931 27 s, 17 s now; 4,000 grouped lines with
   findings on each: BR-FR 38 s, 13 s now). The time budget (``limits.validate_seconds``) bounds what is left.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from edi.validate.xpath_text import (
    closing,
    outside_brackets,
    prefixes,
    quoted,
    split_top,
    split_union,
    without_predicates,
)

XSL = "http://www.w3.org/1999/XSL/Transform"

# -- constant calls --------------------------------------------------------------------------------------------------

_CALL = re.compile(r"(?<![\w.:$@-])([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)\s*\(")
# Functions whose value depends on more than their arguments' nodes, or that could not be evaluated outside the call.
_CONTEXTUAL = re.compile(r"\b(current|current-group|current-grouping-key|regex-group|key|id|doc|document)\s*\(")
_PATH_CHARS = re.compile(r"^/[\w.:/*@-]*$")  # what an absolute path may hold outside its brackets and parentheses
_CONTEXT_CHANGERS = {f"{{{XSL}}}{name}" for name in ("for-each", "for-each-group", "iterate", "analyze-string")}
HOISTED_PREFIX = "edi-once-"


def hoist_constant_calls(tree: etree._ElementTree) -> tuple[int, int]:
    """Make each call of one of the stylesheet's own functions on absolute paths (``f(/a|/b)``) in a pattern's rules
    a reference to a global variable holding that call; return how many variables and how many calls were made.

    Only in ``select`` and ``test`` of XSLT instructions whose context is the rule's node (the source document: a
    pattern walk starts from its root), so that ``/`` is the same document in the call and in the variable.
    """
    root = tree.getroot()
    functions = _pure_functions(root)
    if not functions:
        return 0, 0
    hoisted: dict[str, str] = {}
    calls = 0
    for template, element, attribute, value in _rule_expressions(root):
        if ":" not in value or _context_changed(element, template):
            continue
        replaced, count = _replace_constant_calls(value, element, root, functions, hoisted)
        if count:
            element.set(attribute, replaced)
            calls += count
    for call, name in hoisted.items():
        root.append(etree.Element(f"{{{XSL}}}variable", name=name, select=call))
    return len(hoisted), calls


def _rule_expressions(root: etree._Element) -> Iterator[tuple[etree._Element, etree._Element, str, str]]:
    """Every ``select`` and ``test`` expression in the rule templates (modes ``M<n>``): (template, element, attribute,
    value), in document order. The caller may rewrite the attribute it was given."""
    for template in root.iter(f"{{{XSL}}}template"):
        if not re.fullmatch(r"M\d+", template.get("mode") or ""):
            continue
        for element in template.iter(f"{{{XSL}}}*"):
            for attribute in ("select", "test"):
                value = element.get(attribute)
                if value is not None:
                    yield template, element, attribute, value


def _pure_functions(root: etree._Element) -> set[str]:
    """The Clark names of the stylesheet's functions whose result depends only on their arguments (no message, no
    result document, not ``new-each-time``)."""
    names = set()
    for function in root.findall(f"{{{XSL}}}function"):
        prefix, _, local = (function.get("name") or "").rpartition(":")
        uri = function.nsmap.get(prefix) if prefix else None
        if uri is None or function.get("new-each-time", "no") not in ("no", "false", "0"):
            continue
        if (
            function.find(f".//{{{XSL}}}message") is not None
            or function.find(f".//{{{XSL}}}result-document") is not None
        ):
            continue
        names.add(f"{{{uri}}}{local}")
    return names


def _context_changed(element: etree._Element, template: etree._Element) -> bool:
    """Whether an instruction between ``element`` and its template changes the context node."""
    parent = element.getparent()
    while parent is not None and parent is not template:
        if parent.tag in _CONTEXT_CHANGERS:
            return True
        parent = parent.getparent()
    return False


def _replace_constant_calls(
    expression: str,
    element: etree._Element,
    root: etree._Element,
    functions: set[str],
    hoisted: dict[str, str],
) -> tuple[str, int]:
    """``expression`` with its constant calls replaced by variable references, and how many were."""
    in_string = quoted(expression)
    out, start, count = [], 0, 0
    for match in _CALL.finditer(expression):
        if match.start() < start or in_string[match.start()]:
            continue
        prefix, local = match.group(1), match.group(2)
        uri = element.nsmap.get(prefix)
        end = closing(expression, match.end() - 1)
        if uri is None or f"{{{uri}}}{local}" not in functions or end is None:
            continue
        arguments = split_top(expression[match.end() : end], ",")
        if not all(_absolute_path(a) for a in arguments):
            continue
        call = expression[match.start() : end + 1]
        if any(element.nsmap.get(p) != root.nsmap.get(p) for p in prefixes(call)):
            continue  # the call's prefixes do not mean the same at the top of the stylesheet
        name = hoisted.setdefault(call, f"{HOISTED_PREFIX}{len(hoisted) + 1}")
        out += [expression[start : match.start()], f"${name}"]
        start, count = end + 1, count + 1
    out.append(expression[start:])
    return "".join(out), count


def _absolute_path(argument: str) -> bool:
    """Whether ``argument`` is a union of absolute paths whose value does not depend on where it is evaluated."""
    if "$" in argument or "{" in argument or _CONTEXTUAL.search(argument):
        return False
    return all(_PATH_CHARS.match(outside_brackets(a.strip())) for a in split_union(argument))


# -- sibling lookups -------------------------------------------------------------------------------------------------

_QNAME = r"[A-Za-z_][\w.-]*:[A-Za-z_][\w.-]*"
_SIBLING_LOOKUP = re.compile(
    rf"""(?:\(\s*\.\./(?P<first>{_QNAME})\s*\|\s*\.\./(?P<second>{_QNAME})\s*\)|\.\./(?P<only>{_QNAME}))
        \s*\[\s*(?P<child>{_QNAME}(?:/{_QNAME})*)\s*=\s*\$(?P<variable>[A-Za-z_][\w.-]*)\s*\]""",
    re.VERBOSE,
)
_NODES_OR_STRING = re.compile(r"^(?:(?:normalize-space|string)\((?P<inner>.*)\)|(?P<path>.*))$", re.DOTALL)
_STEPS = re.compile(r"^(?:\.\.|\.|@?" + _QNAME + r")(?:/(?:\.\.|\.|@?" + _QNAME + r"))*$")
KEY_PREFIX = "edi-by-"


def key_sibling_lookups(tree: etree._ElementTree) -> tuple[int, int]:
    """Make each ``(../a:X | ../a:Y)[a:K = $v]`` (or ``../a:X[a:K/a:L = $v]``) in a pattern's rules a key lookup
    restricted to the siblings, ``key('edi-by-N', $v)[.. is current()/..]``; return how many keys and lookups.

    Only where the lookup starts the expression's path (so that ``..`` and ``current()`` are the same node) and ``$v``
    is a variable holding nodes or a string (compared as strings either way: a key and ``=`` then agree).
    """
    root = tree.getroot()
    keys: dict[tuple[str, str], str] = {}
    lookups = 0
    for template, element, attribute, value in _rule_expressions(root):
        if "../" not in value:
            continue
        replaced, count = _replace_lookups(value, element, template, root, keys)
        if count:
            element.set(attribute, replaced)
            lookups += count
    for (match, use), name in keys.items():
        key = etree.Element(f"{{{XSL}}}key", name=name, match=match, use=use)
        root.insert(_after_params(root), key)
    return len(keys), lookups


def _after_params(root: etree._Element) -> int:
    """Where a new declaration goes: after the leading parameters and keys (code lists' come first)."""
    index = 0
    while index < len(root) and root[index].tag in (f"{{{XSL}}}param", f"{{{XSL}}}key"):
        index += 1
    return index


def _replace_lookups(
    expression: str,
    element: etree._Element,
    template: etree._Element,
    root: etree._Element,
    keys: dict[tuple[str, str], str],
) -> tuple[str, int]:
    in_string = quoted(expression)
    out, start, count = [], 0, 0
    for match in _SIBLING_LOOKUP.finditer(expression):
        if in_string[match.start()] or not _starts_a_path(expression, match.start()):
            continue
        names = [n for n in (match.group("first"), match.group("second"), match.group("only")) if n]
        child, variable = match.group("child"), match.group("variable")
        if any(element.nsmap.get(p) != root.nsmap.get(p) for p in prefixes(" ".join([*names, child]))):
            continue
        if not _holds_nodes_or_a_string(variable, element, template, root):
            continue
        name = keys.setdefault((" | ".join(names), child), f"{KEY_PREFIX}{len(keys) + 1}")
        out += [expression[start : match.start()], f"key('{name}', ${variable})[.. is current()/..]"]
        start, count = match.end(), count + 1
    out.append(expression[start:])
    return "".join(out), count


def _starts_a_path(expression: str, index: int) -> bool:
    """Whether what starts at ``index`` is evaluated with the expression's own context item: outside any predicate
    and not a step after ``/`` or ``!``."""
    depth = 0
    in_string = quoted(expression)
    for i, ch in enumerate(expression[:index]):
        if in_string[i]:
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
    before = expression[:index].rstrip()
    return depth == 0 and not before.endswith(("/", "!"))


def _holds_nodes_or_a_string(
    variable: str, element: etree._Element, template: etree._Element, root: etree._Element
) -> bool:
    """Whether ``$variable``, as seen from ``element``, is an ``xsl:variable`` whose value is a path's nodes, or the
    ``normalize-space`` or ``string`` of one."""
    declaration = _declaration(variable, element, template, root)
    if declaration is None or declaration.get("as") is not None or len(declaration):
        return False
    found = _NODES_OR_STRING.match((declaration.get("select") or "").strip())
    if found is None:
        return False
    path = without_predicates((found.group("inner") or found.group("path") or "").strip())
    return bool(_STEPS.match(path))


def _declaration(
    variable: str, element: etree._Element, template: etree._Element, root: etree._Element
) -> etree._Element | None:
    """The ``xsl:variable`` named ``variable`` in scope at ``element``: a local one before it, else a global one."""
    current: etree._Element | None = element
    while current is not None and current is not template:
        sibling = current.getprevious()
        while sibling is not None:
            if sibling.tag == f"{{{XSL}}}variable" and sibling.get("name") == variable:
                return sibling
            if sibling.tag == f"{{{XSL}}}param" and sibling.get("name") == variable:
                return None
            sibling = sibling.getprevious()
        current = current.getparent()
    for declaration in root:
        if declaration.tag in (f"{{{XSL}}}variable", f"{{{XSL}}}param") and declaration.get("name") == variable:
            return declaration if declaration.tag == f"{{{XSL}}}variable" else None
    return None


# -- locations -------------------------------------------------------------------------------------------------------

_SAME_NAME_COUNT = (
    "count(preceding-sibling::*[local-name()=local-name(current()) and namespace-uri() = namespace-uri(current())])"
)


def number_locations(tree: etree._ElementTree) -> bool:
    """In the skeleton's ``schematron-get-full-path`` template for elements, number the step with ``xsl:number``
    (same expanded name, same count) instead of counting the earlier siblings by their names' strings."""
    changed = False
    for template in tree.getroot().findall(f"{{{XSL}}}template"):
        if template.get("mode") != "schematron-get-full-path" or (template.get("match") or "").strip() != "*":
            continue
        variables = [
            c for c in template if c.tag == f"{{{XSL}}}variable" and c.get("name") == "preceding" and not len(c)
        ]
        uses = [e for e in template.iter() if any("$preceding" in v for v in e.attrib.values())]
        if len(variables) != 1 or " ".join((variables[0].get("select") or "").split()) != _SAME_NAME_COUNT:
            continue
        if len(uses) != 1 or uses[0].tag != f"{{{XSL}}}value-of" or len(uses[0]) or uses[0].getparent() is not template:
            continue
        if (uses[0].get("select") or "").replace(" ", "") != "1+$preceding" or len(uses[0].attrib) != 1:
            continue
        number = etree.Element(f"{{{XSL}}}number")
        number.tail = uses[0].tail
        template.replace(uses[0], number)
        variables[0].getparent().remove(variables[0])  # and its tail: whitespace, stripped in a stylesheet
        changed = True
    return changed
