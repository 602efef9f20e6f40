"""Tell whether a file that stopped growing is whole, from its structure: an upload that stalls must not be taken
for a truncated file.

Reads the head and tail of the file (a gzip stream is read through, to its end-of-stream marker); writes nothing;
never raises (a file it cannot read is "not complete"). What it checks, by what the first bytes say the file is:

- XML: the root element is closed (the last tag is the root's end tag, or the root is empty-element).
- PDF: an ``%%EOF`` marker ends the file (only end-of-line characters may follow it).
- ZIP: the end-of-central-directory record is there, whole, with the comment it announces.
- gzip (tar.gz): the deflate stream reaches its end.
- empty: never complete (the writer has not written yet).
Anything else cannot be judged and counts as complete: the intake will say what it is.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Literal

from edi.ingest.sniff import HEAD_BYTES, Kind, sniff, xml_encoding

TAIL_BYTES = 64 * 1024 + 22  # the largest ZIP comment plus its end-of-central-directory record
MAX_PROLOG = 1024 * 1024  # past this much prolog without a root, the file cannot be judged: the intake will say
MAX_INFLATE = 1024 * 1024 * 1024  # inflating a gzip stream stops here: past it, it is refused anyway
CHUNK = 256 * 1024

_ROOT = re.compile(r"<([A-Za-z_][\w.\-:]*)(?=[\s/>])")
_MAGICS = (b"%PDF-", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b")
_WHITESPACE = " \t\r\n"
_EOCD = struct.Struct("<4s4H2LH")  # signature, disk numbers, entry counts, directory size and offset, comment length


def is_complete(path: Path) -> bool:
    """Whether the file at ``path`` looks whole."""
    try:
        with path.open("rb") as stream:
            head = stream.read(HEAD_BYTES)
            if any(len(head) < len(magic) and magic.startswith(head) for magic in _MAGICS):
                return False  # the first bytes of a PDF, ZIP or gzip header, and nothing more yet
            kind = sniff(head)
            if kind is Kind.EMPTY:
                return False
            if kind is Kind.GZIP:
                stream.seek(0)
                return _gzip_complete(stream)
            size = stream.seek(0, 2)
            if kind is Kind.XML or xml_encoding(head)[0]:  # XML, or a byte order mark with not a character yet
                return _xml_complete(stream, head, size)
            stream.seek(max(0, size - TAIL_BYTES))
            tail = stream.read()
    except OSError:
        return False
    if kind is Kind.PDF:  # the last revision's marker ends the file (an earlier one may end what arrived so far)
        return tail.rstrip(b"\r\n\t \x00").endswith(b"%%EOF")
    if kind is Kind.ZIP:
        return _zip_complete(tail)
    return True


def _zip_complete(tail: bytes) -> bool:
    """The file ends with a whole end-of-central-directory record and the comment it announces."""
    at = len(tail)
    while (at := tail.rfind(b"PK\x05\x06", 0, at)) >= 0:
        if len(tail) - at >= _EOCD.size and at + _EOCD.size + _EOCD.unpack_from(tail, at)[-1] == len(tail):
            return True
    return False


def _xml_complete(stream: BinaryIO, head: bytes, size: int) -> bool:
    """The root element is closed: after it, only whitespace, comments and processing instructions."""
    skip, codec = xml_encoding(head)
    width = 4 if "32" in codec else 2 if "16" in codec else 1
    if codec == "ascii":
        codec = "latin-1"  # one byte, one character: tags are ASCII in every ASCII-compatible encoding
    if (size - skip) % width:
        return False  # cut inside a character
    root = _root(stream, skip, codec, size)
    if root is None:
        return False
    if root is True:
        return True
    name, empty = root
    start = max(skip, size - TAIL_BYTES)
    start += (start - skip) % width and width - (start - skip) % width
    stream.seek(start)
    tail = stream.read().decode(codec, errors="replace")
    end = _strip_misc(tail)
    if empty and tail.endswith("/>", 0, end) and tail.rfind("<", 0, end) == tail.rfind("<" + name, 0, end):
        return True  # <Invoice/>: the root has no content, and its tag is the file's last one
    close = tail.rfind("</", 0, end)
    return close >= 0 and re.fullmatch(rf"</{re.escape(name)}\s*>", tail[close:end]) is not None


def _root(stream: BinaryIO, skip: int, codec: str, size: int) -> tuple[str, bool] | Literal[True] | None:
    """The root element's name and whether its start tag is an empty element; None if the file ends before it
    (or before that tag's end), True if a prolog of more than :data:`MAX_PROLOG` hides it (cannot be judged)."""
    read = 4096
    while True:
        stream.seek(skip)
        text = stream.read(read).decode(codec, errors="ignore")
        whole = skip + read >= size
        pos = _skip_prolog(text)
        if pos is not None and (found := _ROOT.match(text, pos)):
            tag_end = text.find(">", found.end())
            if tag_end >= 0:
                return found.group(1), text[tag_end - 1] == "/"
        if whole:
            return None
        if read >= MAX_PROLOG:
            return True
        read *= 4


def _skip_prolog(text: str) -> int | None:
    """Where the root's ``<`` is, past declaration, comments, processing instructions and doctype; None if the
    text ends first."""
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            pos = -1 if end < 0 else end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            pos = -1 if end < 0 else end + 3
        elif text.startswith("<!", pos):  # <!DOCTYPE ...>, with an internal subset in brackets maybe
            bracket, close = text.find("[", pos), text.find(">", pos)
            if 0 <= bracket < close:
                close = text.find(">", text.find("]", bracket))
            pos = -1 if close < 0 else close + 1
        else:
            return pos if pos < len(text) else None
        if pos < 0:
            return None


def _strip_misc(tail: str) -> int:
    """Where ``tail`` ends once trailing whitespace, comments and processing instructions are cut off (linear)."""
    end = len(tail)
    while True:
        while end and tail[end - 1] in _WHITESPACE:
            end -= 1
        if tail.endswith("-->", 0, end):
            start = tail.rfind("<!--", 0, end - 3)
        elif tail.endswith("?>", 0, end):
            start = tail.rfind("<?", 0, end - 2)
        else:
            return end
        if start < 0:
            return end
        end = start


def _gzip_complete(stream: BinaryIO, budget: int = MAX_INFLATE) -> bool:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    produced = 0
    while chunk := stream.read(CHUNK):
        try:
            produced += len(inflate.decompress(chunk, CHUNK))  # output is thrown away: only the end marker matters
            while inflate.unconsumed_tail and produced <= budget:
                produced += len(inflate.decompress(inflate.unconsumed_tail, CHUNK))
        except zlib.error:
            return True  # not a valid gzip stream: not an upload in progress, the intake will refuse it
        if inflate.eof or produced > budget:
            return True  # whole, or a bomb the intake will refuse: either way nothing more is coming
    return inflate.eof
