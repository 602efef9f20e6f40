"""Tell what a file is from its first bytes, never from its name.

Pure: takes bytes, returns a :class:`Kind`. Knows XML (in any encoding XML allows, with or without a byte order
mark), PDF, ZIP and gzip (tar.gz).
"""

from __future__ import annotations

from enum import StrEnum

HEAD_BYTES = 1024

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_NO_BOM_STARTS = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)


class Kind(StrEnum):
    """What a file is."""

    EMPTY = "empty"
    XML = "xml"
    PDF = "pdf"
    ZIP = "zip"
    GZIP = "gzip"
    UNKNOWN = "unknown"


def sniff(head: bytes) -> Kind:
    """The kind of a file whose first bytes (at least :data:`HEAD_BYTES` when the file has them) are ``head``.

    Magic numbers at offset 0 win; then XML (a ``<`` after an optional byte order mark and whitespace, in any
    encoding XML allows); then a PDF header anywhere in the first KiB, as PDF readers accept.
    """
    if not head:
        return Kind.EMPTY
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Kind.ZIP
    if head.startswith(b"\x1f\x8b"):
        return Kind.GZIP
    if head.startswith(b"%PDF-"):
        return Kind.PDF
    if _looks_like_xml(head):
        return Kind.XML
    if b"%PDF-" in head[:HEAD_BYTES]:
        return Kind.PDF
    return Kind.UNKNOWN


def xml_encoding(head: bytes) -> tuple[int, str]:
    """How XML starting with ``head`` is encoded, from its byte order mark or its first ``<``: the length of the
    mark (0 when there is none) and the Python codec (``ascii`` stands for any ASCII-compatible encoding)."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return len(bom), name
    for start, name in _NO_BOM_STARTS:
        if head.startswith(start):
            return 0, name
    return 0, "ascii"


def _looks_like_xml(head: bytes) -> bool:
    skip, encoding = xml_encoding(head)
    text = head[skip : HEAD_BYTES - HEAD_BYTES % 4].decode(encoding, errors="ignore")
    return text.lstrip(" \t\r\n").startswith("<")
