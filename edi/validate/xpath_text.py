"""Reading XPath expressions and patterns as text: split them where an operator is at the top level, tell what is
quoted, find the parenthesis that closes a call. Pure; raises nothing.

Used by :mod:`edi.validate.xslt_optimise` and :mod:`edi.validate.xslt_scaling`, which only rewrite what these
functions let them read with certainty, and leave the rest alone.
"""

from __future__ import annotations

import re


def split_union(pattern: str) -> list[str]:
    """Split a pattern on the top-level ``|`` (not inside brackets, parentheses or quotes)."""
    return split_top(pattern, "|")


def without_predicates(step: str) -> str:
    """A step with its ``[...]`` predicates removed."""
    out, depth = [], 0
    for ch in step:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def split_steps(path: str) -> list[str]:
    """Split a path on the top-level ``/``."""
    return split_top(path, "/")


def split_top(pattern: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not inside brackets, parentheses, braces (an EQName's ``Q{uri}``) or
    quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(pattern):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    parts.append(pattern[start:])
    return parts


def quoted(expression: str) -> list[bool]:
    """For each character of an XPath expression, whether it is inside a string literal."""
    flags, quote = [], ""
    for ch in expression:
        if quote:
            flags.append(True)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            flags.append(True)
        else:
            flags.append(False)
    return flags


def closing(expression: str, opening: int) -> int | None:
    """The index of the parenthesis that closes the one at ``opening``, skipping quotes and brackets."""
    depth, quote = 0, ""
    for i in range(opening, len(expression)):
        ch = expression[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                return i if ch == ")" else None
    return None


def outside_brackets(path: str) -> str:
    """``path`` without what its brackets and parentheses hold."""
    out, depth, quote = [], 0, ""
    for ch in path:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and depth:
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


# a prefix (of an element, attribute, variable or function name): not the tail of a longer name, nor an axis
_PREFIX = re.compile(r"(?:(?<=::)|(?<![\w.:-]))([A-Za-z_][\w.-]*):(?=[A-Za-z_*])")


def prefixes(expression: str) -> set[str]:
    """The namespace prefixes an expression uses (outside its string literals)."""
    in_string = quoted(expression)
    return {m.group(1) for m in _PREFIX.finditer(expression) if not in_string[m.start()]}
