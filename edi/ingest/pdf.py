"""Read a Factur-X / ZUGFeRD PDF: its embedded invoice XML, its other embedded files, and the profile its XMP
metadata declares.

Takes the PDF's bytes (bounded by the configured limits) and returns a :class:`PdfInvoice`; never raises on bad
input: an unreadable, encrypted or XML-less PDF comes back with the finding that says so. pypdf does the PDF parsing
with its own resource limits; this module adds a time budget and a size cap on the embedded XML, and parses the XMP
packet with edi's safe XML parser.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from lxml import etree

from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Finding, Layer

# Names the Factur-X, ZUGFeRD 2.x and XRechnung specifications give the invoice XML, most specific first.
INVOICE_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")

# fx:ConformanceLevel (and the ZUGFeRD equivalents) as written in XMP, to edi's profile names.
XMP_LEVELS = {
    "MINIMUM": "minimum",
    "BASIC WL": "basicwl",
    "BASICWL": "basicwl",
    "BASIC": "basic",
    "EN 16931": "en16931",
    "EN16931": "en16931",
    "COMFORT": "en16931",
    "EXTENDED": "extended",
    "XRECHNUNG": "xrechnung",
}

logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on every odd PDF; findings say what matters


MAX_XMP_BYTES = 1024 * 1024  # an XMP packet is a few KiB; a bigger one is not read


class _TimeUp(BaseException):  # not an Exception: no ``except Exception`` in pypdf may swallow it
    pass


class _Damaged(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PdfInvoice:
    """What a PDF carries."""

    xml_name: str | None = None
    xml: bytes | None = None
    attachments: tuple[str, ...] = ()
    declared_profile: str | None = None
    findings: tuple[Finding, ...] = ()


def _finding(code: Code, rule: str, message: str) -> Finding:
    return Finding(code, Layer.PDF, message, rule=rule)


def read_pdf(data: bytes, *, max_xml_bytes: int, seconds: float = 0) -> PdfInvoice:
    """The invoice XML and metadata of a PDF (``seconds`` > 0 bounds the time, in the main thread)."""
    try:
        with _deadline(seconds):
            return _read(data, max_xml_bytes)
    except _TimeUp:
        return PdfInvoice(
            findings=(_finding(Code.IRR_SYNTAX, "PDF_TIMEOUT", f"the PDF could not be read within {seconds:g} s"),)
        )
    except RecursionError:
        return PdfInvoice(findings=(_finding(Code.IRR_SYNTAX, "PDF_UNREADABLE", "the PDF is nested too deeply"),))


def _read(data: bytes, max_xml_bytes: int) -> PdfInvoice:
    from pypdf import PdfReader  # imported here: only flows that carry PDFs pay for it

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            message = "the PDF is encrypted; a Factur-X PDF (PDF/A-3) must not be"
            return PdfInvoice(findings=(_finding(Code.IRR_TYPE_F, "PDF_ENCRYPTED", message),))
        embedded = [(_name(entry.name), entry) for entry in reader.attachment_list]
        declared = _declared_profile(reader)
    except Exception as exc:  # pypdf raises many kinds of errors on hostile input
        return PdfInvoice(findings=(_finding(Code.IRR_SYNTAX, "PDF_UNREADABLE", f"not a readable PDF: {_short(exc)}"),))
    names = [name for name, _ in embedded]
    chosen = _choose(names)
    if chosen is None:
        listed = f" (it embeds {', '.join(names)})" if names else ""
        message = f"the PDF carries no embedded invoice XML{listed}"
        return PdfInvoice(
            attachments=tuple(names),
            declared_profile=declared,
            findings=(_finding(Code.IRR_TYPE_F, "PDF_NO_INVOICE_XML", message),),
        )
    others = tuple(n for i, n in enumerate(names) if i != chosen)
    name, entry = embedded[chosen]
    found = PdfInvoice(xml_name=name, attachments=others, declared_profile=declared)
    try:
        xml = _stream_bytes(entry._embedded_file, max_xml_bytes)
    except Exception as exc:  # damaged streams, and pypdf's own errors
        message = f"the embedded {name} cannot be read: {_short(exc)}"
        return replace(found, findings=(_finding(Code.IRR_SYNTAX, "PDF_UNREADABLE", message),))
    if xml is None:
        message = f"the embedded {name} is larger than {max_xml_bytes} bytes"
        return replace(found, findings=(_finding(Code.IRR_TAILLE_F, "max_document_bytes", message),))
    return replace(found, xml=xml)


def _name(value: object) -> str:
    """An embedded file's name as text, whatever the PDF put there."""
    return value if isinstance(value, str) else repr(value)


def _stream_bytes(stream: Any, cap: int) -> bytes | None:
    """The decoded bytes of a PDF stream, or None past ``cap`` bytes.

    Plain and Flate streams (what Factur-X uses) are inflated here, never beyond the cap, and a damaged or cut one
    is an error rather than pypdf's silent partial repair; other filters go through pypdf with its own limits.
    """
    filters = stream.get("/Filter")
    names = [str(f) for f in (filters if isinstance(filters, list) else [filters] if filters else [])]
    raw = getattr(stream, "_data", None)  # the stream's bytes as stored in the file
    if isinstance(raw, bytes) and not names:
        return raw if len(raw) <= cap else None
    if isinstance(raw, bytes) and names == ["/FlateDecode"] and not stream.get("/DecodeParms"):
        inflate = zlib.decompressobj()
        try:
            out = inflate.decompress(raw, cap + 1)
        except zlib.error as exc:
            raise _Damaged(f"damaged compressed data ({exc})") from None
        if len(out) > cap:
            return None
        if not inflate.eof:
            raise _Damaged("the compressed data is cut short")
        return out
    data = stream.get_data()
    return data if len(data) <= cap else None


def _choose(names: list[str]) -> int | None:
    """Index of the invoice XML among embedded file names: a standard name first, else the first ``*.xml``."""
    lowered = [n.lower().rsplit("/", 1)[-1] for n in names]
    for wanted in INVOICE_NAMES:
        if wanted in lowered:
            return lowered.index(wanted)
    return next((i for i, n in enumerate(lowered) if n.endswith(".xml")), None)


def _declared_profile(reader: object) -> str | None:
    """The conformance level the XMP metadata declares, as a profile name (None when it declares none)."""
    try:
        metadata = reader.trailer["/Root"].get("/Metadata")  # type: ignore[attr-defined]
        if metadata is None:
            return None
        packet = _stream_bytes(metadata.get_object(), MAX_XMP_BYTES)
    except Exception:  # no readable metadata is the same as none
        return None
    if packet is None:
        return None
    tree, _ = parse_xml(packet)
    if tree is None:
        return None
    for value in _conformance_levels(tree.getroot()):
        level = " ".join(value.split()).upper()
        return XMP_LEVELS.get(level, level.lower())
    return None


_LEVEL_ELEMENTS = etree.XPath("//*[local-name()='ConformanceLevel']/text()")
_LEVEL_ATTRIBUTES = etree.XPath("//@*[local-name()='ConformanceLevel']")


def _conformance_levels(root: etree._Element) -> Iterator[str]:
    for found in (_LEVEL_ELEMENTS(root), _LEVEL_ATTRIBUTES(root)):
        for value in found:
            if str(value).strip():
                yield str(value)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise _TimeUp in this block after ``seconds`` (only in the main thread, where signals are delivered)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def time_up(signum: int, frame: object) -> None:
        raise _TimeUp

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, time_up)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)  # a timer the caller had running
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # give the caller its timer back, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001), interval)
