"""The intake stages: check the file, reject a duplicate flow, split it into documents, parse, recognise, extract.

Flow stages take and return a :class:`Flow`; document stages take a :class:`Document` (and its flow) and return it.
They read the claimed payload but never move, write or delete anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from edi.ingest.extract import extract_invoice
from edi.ingest.recognise import recognise
from edi.ingest.sniff import HEAD_BYTES, Kind, sniff
from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Document, Finding, Flow, Layer

EarlierFlow = Callable[[str, str, str], str | None]


def open_regular(path: Path) -> BinaryIO:
    """Open a file for reading without following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    return os.fdopen(fd, "rb")


def _size(size: int) -> str:
    """A byte count, exact, with a readable unit beside it from 1 KiB up: ``1048577 bytes (1.0 MiB)``."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{size} bytes ({value:.1f} {unit})"


class CheckFile:
    """Reject an empty file (``IRR_VIDE_F``), a file over the size limit (``IRR_TAILLE_F``) or a non-regular one."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def __call__(self, flow: Flow) -> Flow:
        """Check what can be told about the file without reading it."""
        mode = flow.payload.lstat().st_mode
        if not stat.S_ISREG(mode):
            finding = Finding(Code.IRR_TYPE_F, Layer.INTAKE, "not a regular file (a link or a special file)")
        elif flow.size == 0:
            finding = Finding(Code.IRR_VIDE_F, Layer.INTAKE, "the file is empty")
        elif flow.size > self.max_bytes:
            finding = Finding(
                Code.IRR_TAILLE_F,
                Layer.INTAKE,
                f"the file is {_size(flow.size)}; the limit is {_size(self.max_bytes)}",
            )
        else:
            return flow
        return replace(flow, findings=(*flow.findings, finding))


class RejectDuplicateFlow:
    """Reject a file whose bytes this sender already deposited (``DOUBLON``), naming the earlier flow."""

    def __init__(self, earlier: EarlierFlow) -> None:
        self.earlier = earlier

    def __call__(self, flow: Flow) -> Flow:
        """Look the SHA-256 up among the sender's earlier flows."""
        first = self.earlier(flow.sender, flow.sha256, flow.flow_id)
        if first is None:
            return flow
        finding = Finding(
            Code.DOUBLON,
            Layer.INTAKE,
            f"the same file (SHA-256 {flow.sha256[:16]}...) was already deposited by {flow.sender!r} as flow {first}",
            rule="DUPLICATE_FLOW",
        )
        return replace(flow, findings=(*flow.findings, finding), duplicate_of=first)


class Expand:
    """Tell what the file is from its content and split it into documents (one XML file is one document)."""

    def __call__(self, flow: Flow) -> Flow:
        """The flow with its documents, or with the finding that says why it has none."""
        with open_regular(flow.payload) as stream:
            head = stream.read(HEAD_BYTES)
        kind = sniff(head)
        if kind is Kind.XML:
            payload = flow.payload
            document = Document(
                index=1,
                name=flow.file_name,
                size=flow.size,
                sha256=flow.sha256,
                open=lambda: open_regular(payload),
            )
            return replace(flow, documents=(document,))
        if kind in (Kind.PDF, Kind.ZIP, Kind.GZIP):
            message = f"a {kind.value.upper()} file: only XML invoices (UBL 2.1, UN/CEFACT CII) are accepted for now"
        else:
            message = "not an XML invoice: the content is neither XML nor a PDF, ZIP or tar.gz file"
        return replace(flow, findings=(*flow.findings, Finding(Code.IRR_TYPE_F, Layer.INTAKE, message)))


class Parse:
    """Parse the document's XML safely (``IRR_SYNTAX`` when it is not well-formed or declares a DOCTYPE)."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its tree, or with the findings that say why it has none."""
        with doc.open() as stream:
            data = stream.read()
        tree, findings = parse_xml(data)
        return replace(doc, tree=tree, findings=doc.findings + tuple(findings))


class Recognise:
    """Name the syntax, kind and profile (``IRR_TYPE_F`` for an unknown root or a format we do not take)."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with what it is."""
        if doc.tree is None:
            return doc
        root = doc.tree.getroot()  # type: ignore[attr-defined]
        found = recognise(root)
        if found is None:
            tag = root.tag if isinstance(root.tag, str) else "?"
            finding = Finding(
                Code.IRR_TYPE_F,
                Layer.PARSE,
                f"the root element {tag} is not a UBL 2.1 Invoice or CreditNote, or a UN/CEFACT CrossIndustryInvoice",
                line=root.sourceline,
                xpath="/*",
            )
            return replace(doc, tree=None, findings=(*doc.findings, finding))
        doc = replace(
            doc, syntax=found.syntax, kind=found.kind, profile=found.profile, specification_id=found.specification_id
        )
        if not found.supported:
            finding = Finding(
                Code.IRR_TYPE_F,
                Layer.PARSE,
                "ZUGFeRD 1.0 (CrossIndustryDocument) is not accepted: send Factur-X / ZUGFeRD 2.x "
                "(CrossIndustryInvoice) or UBL 2.1",
                line=root.sourceline,
                xpath="/*",
            )
            return replace(doc, tree=None, findings=(*doc.findings, finding))
        return doc


class Extract:
    """Read the invoice facts (number, date, parties, references) that routing and tracking need."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its invoice facts."""
        if doc.tree is None or doc.syntax is None:
            return doc
        return replace(doc, invoice=extract_invoice(doc.tree.getroot(), doc.syntax))  # type: ignore[attr-defined]
