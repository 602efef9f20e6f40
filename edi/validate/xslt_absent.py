"""Asserts that a path is absent, grouped under the path they share (a step of
:func:`edi.validate.xslt_optimise.optimise`, under the same equivalence tests).

Pure: changes the lxml tree it is given (the optimiser's copy of the official stylesheet) and returns how many
asserts it grouped; what it cannot prove safe is left alone.

The CEN UBL artefact's syntax pattern runs 727 asserts on the root element, most saying that an element UBL allows
and EN 16931 does not use is absent: ``not(cac:TaxRepresentativeParty/cac:PostalAddress/cbc:ID)``, then
``not(cac:TaxRepresentativeParty/cac:PostalAddress/cbc:AddressTypeCode)`` ... Each walks its path from the root
(those under the lines walk every line): 40 % of that stylesheet's time on a one-line invoice. Consecutive asserts
whose paths start with the same steps are put under an ``xsl:if`` on that shared start, level by level (a trie of
the paths, in the asserts' own order): when the document has no ``cac:TaxRepresentativeParty``, one look at the
root's children skips all the asserts below it.

Safe because the paths are made of child name steps only (no predicate, no function: nothing that could raise or
read another document): when a path's start is empty, so is the path, its ``not(path)`` assert holds and its
``path`` report does not fire, writing nothing; when the start is not empty the asserts run as before, in order.
``xsl:if`` does not change the context node.
"""

from __future__ import annotations

import re

from lxml import etree

from edi.validate.xslt_scaling import XSL

MIN_GROUP = 2  # asserts sharing a start: one look at it instead of one walk each

_NAME = r"[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?"
_STEP = rf"(?:@?{_NAME}|\(\s*{_NAME}(?:\s*\|\s*{_NAME})*\s*\))"
_PATH = rf"/?\s*{_STEP}(?:\s*/\s*{_STEP})*"  # a/b, /a/b, (a|b)/c/@d ... child (or last, attribute) name steps
_ABSENT = re.compile(rf"^not\(\s*(?P<path>{_PATH})\s*\)$")
_PRESENT = re.compile(rf"^(?P<path>{_PATH})$")

Steps = tuple[str, ...]  # a path's steps, whitespace removed; the first starts with "/" for an absolute path


def group_absent_paths(tree: etree._ElementTree) -> int:
    """Put consecutive asserts ``not(path)`` (and reports ``path``) of a pattern's rule whose paths share their
    first steps under an ``xsl:if`` on those steps, level by level; return how many asserts were grouped."""
    grouped = 0
    for template in list(tree.getroot().iter(f"{{{XSL}}}template")):
        if not re.fullmatch(r"M\d+", template.get("mode") or ""):
            continue
        run: list[tuple[etree._Element, Steps]] = []
        for child in list(template):
            if not isinstance(child.tag, str):
                continue
            steps = _steps(child) if child.nsmap == template.nsmap else None  # the guard sees the template's prefixes
            if steps is None or (child.tail or "").strip():  # not such an assert, or text written after it
                grouped += _group(run, 0)
                run = []
            else:
                run.append((child, steps))
        grouped += _group(run, 0)
    return grouped


def _group(run: list[tuple[etree._Element, Steps]], depth: int) -> int:
    """Wrap each stretch of ``run`` (consecutive siblings sharing their first ``depth`` steps) that shares step
    ``depth`` too in an ``xsl:if`` on their first ``depth + 1`` steps, and group within it; wrap each stretch whose
    paths end at step ``depth`` in an ``xsl:if`` on the union of those paths. Return how many asserts were wrapped
    at the top level."""
    grouped, start = 0, 0
    while start < len(run):
        leaf = len(run[start][1]) == depth + 1
        key = run[start][1][: depth + 1]
        end = start + 1
        while end < len(run) and (len(run[end][1]) == depth + 1) == leaf and (leaf or run[end][1][: depth + 1] == key):
            end += 1
        stretch = run[start:end]
        if len(stretch) >= MIN_GROUP:
            if leaf:
                last = "|".join(dict.fromkeys(steps[depth] for _, steps in stretch))
                _wrap([element for element, _ in stretch], "/".join([*key[:depth], f"({last})"]))
            elif not key[-1].lstrip("/").startswith("@"):
                _wrap([element for element, _ in stretch], "/".join(key))
                _group(stretch, depth + 1)
            grouped += len(stretch)
        start = end
    return grouped


def _wrap(elements: list[etree._Element], test: str) -> None:
    """Move ``elements`` (consecutive siblings, in order) into an ``xsl:if`` on ``test`` where the first was."""
    wrapper = etree.Element(f"{{{XSL}}}if", test=test)
    elements[0].addprevious(wrapper)
    for element in elements:
        tail, element.tail = element.tail, None
        wrapper.append(element)
        wrapper.tail = (wrapper.tail or "") + (tail or "")


def _steps(element: etree._Element) -> Steps | None:
    """The steps of the path of an assert ``not(path)`` (an ``xsl:choose`` whose first ``xsl:when`` is empty) or a
    report ``path`` (an ``xsl:if``), or None if ``element`` is neither."""
    if element.tag == f"{{{XSL}}}choose":
        whens = [c for c in element if isinstance(c.tag, str)]
        if not whens or whens[0].tag != f"{{{XSL}}}when" or len(whens[0]) or (whens[0].text or "").strip():
            return None
        if len(whens) > 2 or (len(whens) == 2 and whens[1].tag != f"{{{XSL}}}otherwise"):
            return None
        match = _ABSENT.match(" ".join((whens[0].get("test") or "").split()))
    elif element.tag == f"{{{XSL}}}if":
        match = _PRESENT.match(" ".join((element.get("test") or "").split()))
    else:
        return None
    if match is None:
        return None
    path = match.group("path").replace(" ", "")
    absolute = path.startswith("/")
    steps = _split(path.lstrip("/"))
    if steps is None or any(s.startswith("@") for s in steps[:-1]):
        return None
    return ("/" + steps[0], *steps[1:]) if absolute else steps


def _split(path: str) -> Steps | None:
    """``path``'s steps (split at the slashes outside parentheses)."""
    steps, depth, start = [], 0, 0
    for index, char in enumerate(path):
        depth += (char == "(") - (char == ")")
        if char == "/" and depth == 0:
            steps.append(path[start:index])
            start = index + 1
    steps.append(path[start:])
    return tuple(steps) if all(steps) else None
