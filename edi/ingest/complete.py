"""Tell whether a file that stopped growing is whole, from its structure: an upload that stalls must not be taken
for a truncated file.

Reads the head and tail of the file (a gzip stream is read through, to its end-of-stream marker); writes nothing;
never raises (a file it cannot read is "not complete"). What it checks, by what the first bytes say the file is:

- XML: the root element is closed (the last tag is the root's end tag, or the root is empty-element).
- PDF: an ``%%EOF`` marker ends the file.
- ZIP: the end-of-central-directory record is there.
- gzip (tar.gz): the deflate stream reaches its end.
- empty: never complete (the writer has not written yet).
Anything else cannot be judged and counts as complete: the intake will say what it is.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import BinaryIO

from edi.ingest.sniff import HEAD_BYTES, Kind, sniff

TAIL_BYTES = 64 * 1024 + 22  # the largest ZIP comment plus its end-of-central-directory record
MAX_INFLATE = 1024 * 1024 * 1024  # inflating a gzip stream stops here: past it, it is refused anyway
CHUNK = 256 * 1024

_ROOT = re.compile(rb"<([A-Za-z_][\w.\-:]*)[\s/>]")
_ENCODINGS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be", b"<\x00": "utf-16-le", b"\x00<": "utf-16-be"}


def is_complete(path: Path) -> bool:
    """Whether the file at ``path`` looks whole."""
    try:
        with path.open("rb") as stream:
            head = stream.read(HEAD_BYTES)
            kind = sniff(head)
            if kind is Kind.EMPTY:
                return False
            if kind is Kind.GZIP:
                stream.seek(0)
                return _gzip_complete(stream)
            size = stream.seek(0, 2)
            stream.seek(max(0, size - TAIL_BYTES))
            tail = stream.read()
    except OSError:
        return False
    if kind is Kind.XML:
        return _xml_complete(head, tail)
    if kind is Kind.PDF:
        return b"%%EOF" in tail[-1024:]
    if kind is Kind.ZIP:
        return b"PK\x05\x06" in tail
    return True


def _xml_complete(head: bytes, tail: bytes) -> bool:
    encoding = next((enc for bom, enc in _ENCODINGS.items() if head.startswith(bom)), None)
    if encoding:
        head_text = head.decode(encoding, errors="ignore").encode("utf-8")
        tail_text = tail[len(tail) % 2 :].decode(encoding, errors="ignore").encode("utf-8")
    else:
        head_text, tail_text = head, tail
    body = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", head_text, flags=re.DOTALL)  # prolog: declaration, comments
    root = _ROOT.search(body)
    if root is None:
        return False
    name = root.group(1)
    end = re.sub(rb"(<!--.*?-->|<\?.*?\?>|\s)+$", b"", tail_text, flags=re.DOTALL)  # trailing comments, PIs
    if re.search(rb"</" + re.escape(name) + rb"\s*>$", end):
        return True
    opening = body[root.start() : body.find(b">", root.start()) + 1]
    return opening.endswith(b"/>") and end.endswith(b"/>")  # a root with no content: <Invoice/>


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
