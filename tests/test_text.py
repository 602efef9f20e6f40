"""edi.text.printable: every control, separator, bidirectional control and lone surrogate escaped visibly."""

from __future__ import annotations

import os
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.pipeline import display_name
from edi.text import printable, printable_all

BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def must_escape(code: int) -> bool:
    """What the module promises to escape, stated from Unicode's own categories."""
    return unicodedata.category(chr(code)) in ("Cc", "Zl", "Zp", "Cs") or code in BIDI


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\n\tb", "a\\r\\n\\tb"),
        ("\x00\x1b[2J\x7f", "\\x00\\x1b[2J\\x7f"),
        ("\x9b31m", "\\x9b31m"),
        ("\x85", "\\x85"),
        ("abc\u202etxt.exe", "abc\\u202etxt.exe"),
        ("\u2028\u2029\u061c\u200e\u200f\u2066\u2069", "\\u2028\\u2029\\u061c\\u200e\\u200f\\u2066\\u2069"),
        ("facture-é-€-請求書-🧾.xml", "facture-é-€-請求書-🧾.xml"),
        ("C:\\in\\x.xml", "C:\\in\\x.xml"),
    ],
    ids=[
        "line-feed",
        "crlf-tab",
        "c0-esc-del",
        "c1-csi",
        "c1-nel",
        "rlo",
        "separators-and-bidi",
        "unicode",
        "backslash",
    ],
)
def test_printable_escapes_controls_visibly_and_keeps_the_rest(text: str, shown: str) -> None:
    """Controls, separators and bidi controls read as \\n, \\xNN, \\uNNNN; letters, emoji and backslashes stay."""
    assert printable(text) == shown


def test_printable_escapes_exactly_the_controls_separators_bidi_controls_and_surrogates() -> None:
    """Over every code point: categories Cc, Zl, Zp, Cs and the bidi controls become one visible escape each, every
    other character is kept as it is."""
    escaped = [chr(code) for code in range(0x110000) if must_escape(code)]
    kept = "".join(chr(code) for code in range(0x110000) if not must_escape(code))
    assert printable(kept) == kept
    shown = printable("|".join(escaped)).split("|")
    assert len(shown) == len(escaped) == 65 + 1 + 1 + 2048 + len(BIDI)
    assert all(re.fullmatch(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[ntr])", s) for s in shown)


def test_a_byte_that_is_not_utf8_reads_as_the_store_writes_it() -> None:
    """A file name's undecodable byte reads \\xNN, the same text display_name keeps in the store and the ack."""
    name = os.fsdecode(b"facture-\xff\x9b.xml")
    assert printable(name) == display_name(name) == "facture-\\xff\\x9b.xml"


@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_one_value_is_always_one_line_without_controls(text: str) -> None:
    """Whatever a value holds, its rendering has no control and no line break, and rendering it again changes
    nothing."""
    shown = printable(text)
    assert len(shown.splitlines()) <= 1
    assert not any(unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") for char in shown)
    assert printable(shown) == shown


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Zl", "Zp", "Cs"))))
def test_text_without_controls_is_left_alone_but_for_bidi_controls(text: str) -> None:
    """Text holding no control is shown exactly as it is, bidi controls aside."""
    assert printable(text) == "".join(printable(c) if ord(c) in BIDI else c for c in text)


def test_printable_all_escapes_every_string_of_a_record_and_keeps_the_rest() -> None:
    """printable_all goes through dicts, lists and tuples (keys too), escaping strings, leaving other values."""
    record = {"file\n": "a\nb", "size": 3, "none": None, "docs": [{"n": ("x\x9b", 1.5)}]}
    assert printable_all(record) == {"file\\n": "a\\nb", "size": 3, "none": None, "docs": [{"n": ("x\\x9b", 1.5)}]}
