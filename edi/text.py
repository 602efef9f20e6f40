"""Text for people: :func:`printable` shows every character that could act on a terminal or break a line as a
visible escape, so that what a sender controls (a file name, an invoice number, a rule text) is shown, never obeyed.

Escaped: the C0 controls (U+0000-U+001F), DEL (U+007F), the C1 controls (U+0080-U+009F; U+009B is the 8-bit CSI,
as able to drive a terminal as ESC [), the line and paragraph separators (U+2028, U+2029), the bidirectional
controls that reorder what follows them (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), and lone
surrogates (bytes of a file name that are not UTF-8, as ``os.fsdecode`` gives them: no terminal can be sent one).
Tab, line feed and carriage return read ``\\t``, ``\\n``, ``\\r``; the other characters below U+0100 ``\\xNN``; the
rest ``\\uNNNN``; a surrogate U+DC80-U+DCFF, which stands for the byte 0xNN, reads ``\\xNN``, as
:func:`edi.pipeline.display_name` writes such a byte in the store and the acknowledgements.

A backslash is left as it is, not doubled. The store and the acknowledgement already hold a byte of a file name
that is not UTF-8 as the four characters ``\\xff``: an operator must read the same text in ``edi flows`` as in the
acknowledgement (and be able to paste it into grep), not ``\\\\xff``. The price is that a name holding the two
characters ``\\n`` reads like one holding a line feed: this rendering is not an identity (look-alike letters never
let it be one); the flow id is, and every ``--json`` output gives each value exactly. What it does guarantee is
what a terminal needs: nothing in it is a control, and one value is one line.

Reads and writes nothing; never raises.
"""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character, line or paragraph separator, bidirectional control and lone
    surrogate shown as a visible escape (``\\n``, ``\\x9b``, ``\\u202e``); everything else as it is."""
    return _UNSAFE.sub(_escape, text)


def printable_all(value: Any) -> Any:
    """``value`` with :func:`printable` applied to every string in it, keys included, through dicts, lists and
    tuples (a record read from the store, about to be rendered for people)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_all(k): printable_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_all(v) for v in value]
    if isinstance(value, tuple):
        return tuple(printable_all(v) for v in value)
    return value
