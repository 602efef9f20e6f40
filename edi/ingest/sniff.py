"""Tell what a file is from its first bytes, never from its name.

Pure: takes bytes, returns a :class:`Kind`. Knows XML (in any encoding XML allows, with or without a byte order
mark), PDF, ZIP and gzip (tar.gz).
"""

from __future__ import annotations

from enum import StrEnum

HEAD_BYTES = 1024

_BOMS = (b"\xef\xbb\xbf", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe")
_UTF16_STARTS = (b"<\x00", b"\x00<")
_UTF32_STARTS = (b"<\x00\x00\x00", b"\x00\x00\x00<")


class Kind(StrEnum):
    """What a file is."""

    EMPTY = "empty"
    XML = "xml"
    PDF = "pdf"
    ZIP = "zip"
    GZIP = "gzip"
    UNKNOWN = "unknown"


def sniff(head: bytes) -> Kind:
    """The kind of a file whose first bytes (at least :data:`HEAD_BYTES` when the file has them) are ``head``."""
    if not head:
        return Kind.EMPTY
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:HEAD_BYTES]:
        return Kind.PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Kind.ZIP
    if head.startswith(b"\x1f\x8b"):
        return Kind.GZIP
    body = head
    for bom in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    if body.startswith(_UTF32_STARTS) or body.startswith(_UTF16_STARTS):
        return Kind.XML
    if body.lstrip(b" \t\r\n").startswith(b"<"):
        return Kind.XML
    return Kind.UNKNOWN
