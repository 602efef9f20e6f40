"""Tests for edi.validate.xpath_text: XPath read as text, split where its operators are at the top level."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.validate.xpath_text import closing, outside_brackets, prefixes, quoted, split_union

SPLITS = {
    "single": ("a", ["a"]),
    "two": ("a|b", ["a", "b"]),
    "spaces-kept": ("a | b", ["a ", " b"]),
    "brackets": ("a[b|c]|d", ["a[b|c]", "d"]),
    "nested": ("a[b[c|d]|e]|f", ["a[b[c|d]|e]", "f"]),
    "parentheses": ("f(a|b)|c", ["f(a|b)", "c"]),
    "single-quotes": ("a[@x='|']|b", ["a[@x='|']", "b"]),
    "double-quotes": ('a[@x="|"]|b', ['a[@x="|"]', "b"]),
    "doubled-quote": ("a[@x='it''s|x']|b", ["a[@x='it''s|x']", "b"]),
    "leading-bar": ("|a", ["", "a"]),
}


@pytest.mark.parametrize(("pattern", "parts"), SPLITS.values(), ids=SPLITS.keys())
def test_split_union(pattern: str, parts: list[str]) -> None:
    """split_union splits on the | outside brackets, parentheses and quotes, keeping everything else."""
    assert split_union(pattern) == parts


@given(st.text(alphabet="ab|[]()'\" ", max_size=30))
def test_split_union_loses_nothing(pattern: str) -> None:
    """Joining the parts with | gives back the pattern, whatever it is."""
    assert "|".join(split_union(pattern)) == pattern


def test_quoted_marks_string_literals() -> None:
    """Every character of a string literal, quotes included, is marked; doubled quotes stay inside."""
    assert quoted("a='x|y'") == [False, False, True, True, True, True, True]
    assert quoted("'it''s'|b") == [True] * 7 + [False, False]
    assert quoted('"a\'b"') == [True] * 5


CLOSINGS = {
    "simple": ("f(a)", 1, 3),
    "nested": ("f(g(a), b)", 1, 9),
    "bracket-inside": ("f(a[b(c)])", 1, 9),
    "quoted-parenthesis": ("f(')')", 1, 5),
    "unclosed": ("f(a", 1, None),
    "closed-by-a-bracket": ("f(a]", 1, None),
}


@pytest.mark.parametrize(("expression", "opening", "expected"), CLOSINGS.values(), ids=CLOSINGS.keys())
def test_closing(expression: str, opening: int, expected: int | None) -> None:
    """closing finds the parenthesis that closes a call, past nested calls, brackets and quotes, or None."""
    assert closing(expression, opening) == expected


def test_outside_brackets_and_prefixes() -> None:
    """outside_brackets keeps a path's steps without their predicates; prefixes lists the prefixes outside quotes."""
    assert outside_brackets("/a:b[c = ')'][d]/e(f)/g") == "/a:b/e/g"
    found = prefixes("cac:A[@x = 'no:prefix'] | child::cbc:B[@a:x] | $v:w | f:g(.) | Q{u}c | *:d | e:* | x:y:z")
    assert found == {"cac", "cbc", "a", "v", "f", "e", "x"}
