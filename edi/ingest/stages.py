"""The intake stages: check the file, reject a duplicate flow, parse, recognise, extract, check a PDF's declared
profile, reject a duplicate invoice. (Splitting a flow into documents is :mod:`edi.ingest.expand`.)

Flow stages take and return a :class:`Flow`; document stages take a :class:`Document` (and its flow) and return it.
They read the claimed payload but never move, write or delete anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from edi.ingest.extract import extract_invoice
from edi.ingest.recognise import recognise
from edi.ingest.xmlparse import parse_xml
from edi.model import Code, Document, Finding, Flow, Layer, Severity, evolve

EarlierFlow = Callable[[str, str, str], str | None]
EarlierInvoice = Callable[[str, str, str, str, str], tuple[str, int] | None]
PDF_PROFILES = frozenset({"minimum", "basicwl", "basic", "en16931", "extended", "xrechnung"})


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
        regular = flow.content is not None or stat.S_ISREG(flow.payload.lstat().st_mode)  # content: read as one
        if not regular:
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
        return evolve(flow, findings=(*flow.findings, finding))


class RejectDuplicateFlow:
    """Reject a file whose bytes this sender already deposited (``DOUBLON``), naming the earlier flow."""

    def __init__(self, earlier: EarlierFlow) -> None:
        self.earlier = earlier

    def __call__(self, flow: Flow) -> Flow:
        """Look the SHA-256 up among the sender's earlier flows (a file refused by its size has none)."""
        if flow.sha256 is None:
            return flow
        first = self.earlier(flow.sender, flow.sha256, flow.flow_id)
        if first is None:
            return flow
        finding = Finding(
            Code.DOUBLON,
            Layer.INTAKE,
            f"the same file (SHA-256 {flow.sha256[:16]}...) was already deposited by {flow.sender!r} as flow {first}",
            rule="DUPLICATE_FLOW",
        )
        return evolve(flow, findings=(*flow.findings, finding), duplicate_of=first)


class Parse:
    """Parse the document's XML safely (``IRR_SYNTAX`` when it is not well-formed or declares a DOCTYPE)."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its tree, or with the findings that say why it has none."""
        if doc.data is None:  # nothing to parse: the intake already said why
            return doc
        tree, findings = parse_xml(doc.data)
        return evolve(doc, tree=tree, findings=doc.findings + tuple(findings))


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
                f"the root element {tag} is not a UBL 2.1 Invoice or CreditNote, a UN/CEFACT CrossIndustryInvoice, "
                "or a CDAR D22B lifecycle message",
                line=root.sourceline,
                xpath="/*",
            )
            return evolve(doc, tree=None, findings=(*doc.findings, finding))
        doc = evolve(
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
            return evolve(doc, tree=None, findings=(*doc.findings, finding))
        return doc


class Extract:
    """Read the invoice facts (number, date, parties, references) that routing and tracking need."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its invoice facts."""
        if doc.tree is None or doc.syntax is None or doc.syntax == "CDAR":  # a status: edi.lifecycle.intake reads it
            return doc
        return evolve(doc, invoice=extract_invoice(doc.tree.getroot(), doc.syntax))  # type: ignore[attr-defined]


class CheckPdfProfile:
    """Warn when a PDF's XMP metadata declares another profile than its invoice XML (``XMP_PROFILE_MISMATCH``)."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document, with a warning if the two disagree."""
        declared, actual = doc.declared_profile, doc.profile
        if doc.container != "pdf" or not declared or actual not in PDF_PROFILES or declared == actual:
            return doc
        return doc.with_findings(
            Finding(
                Code.XMP_PROFILE_MISMATCH,
                Layer.PDF,
                f"the PDF's XMP metadata declares the {declared} profile; its {doc.embedded_name} is {actual}",
                severity=Severity.WARNING,
            )
        )


class RejectDuplicateInvoice:
    """Reject an invoice already accepted for the same seller, number, kind and year (``DOUBLON``).

    A credit note is not a duplicate of an invoice. Earlier documents of the same flow count, as do accepted
    documents of every earlier flow (``earlier``: seller key, number, kind, year, this flow id -> (flow id, index)).
    """

    def __init__(self, earlier: EarlierInvoice) -> None:
        self.earlier = earlier

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document, rejected if it repeats an accepted invoice."""
        key = invoice_key(doc)
        if key is None:
            return doc
        found = next(
            ((flow.flow_id, d.index) for d in flow.documents if d.accepted and invoice_key(d) == key), None
        ) or self.earlier(*key, flow.flow_id)
        if found is None:
            return doc
        return doc.with_findings(duplicate_invoice(key, found, flow))


InvoiceKey = tuple[str, str, str, str]
Reserve = Callable[[Sequence[tuple[InvoiceKey, str, int]]], list[tuple[str, int]]]


def reserve_invoices(flows: Sequence[Flow], reserve: Reserve) -> list[Flow]:
    """Hold the key of every invoice about to be accepted in ``flows`` (decided, in order), all at once (``reserve``:
    (key, flow id, index) of each -> its holder, in one transaction); a document whose key another holds (a flow
    decided at the same moment by another process, or an earlier flow of the same group) is a duplicate after all
    (``DOUBLON``). The last step of deciding."""
    asks = [
        (key, flow.flow_id, doc.index)
        for flow in flows
        for doc in flow.documents
        if doc.accepted and (key := invoice_key(doc)) is not None
    ]
    if not asks:
        return list(flows)
    holders = dict(zip(((flow_id, idx) for _, flow_id, idx in asks), reserve(asks), strict=True))
    decided = []
    for flow in flows:
        documents = tuple(_held(doc, flow, holders) for doc in flow.documents)
        changed = any(new is not old for new, old in zip(documents, flow.documents, strict=True))
        decided.append(evolve(flow, documents=documents) if changed else flow)
    return decided


def _held(doc: Document, flow: Flow, holders: dict[tuple[str, int], tuple[str, int]]) -> Document:
    holder = holders.get((flow.flow_id, doc.index))
    if holder is None or holder == (flow.flow_id, doc.index):
        return doc
    key = invoice_key(doc)
    assert key is not None
    return doc.with_findings(duplicate_invoice(key, holder, flow))


def duplicate_invoice(key: tuple[str, str, str, str], found: tuple[str, int], flow: Flow) -> Finding:
    """The finding of a document that repeats the invoice ``found`` (flow id, document index) holds."""
    seller, number, kind, year = key
    where = "this flow" if found[0] == flow.flow_id else f"flow {found[0]}"
    return Finding(
        Code.DOUBLON,
        Layer.INTAKE,
        f"{kind} {number} of seller {seller} for {year} was already accepted: {where}, document {found[1]}",
        rule="DUPLICATE_INVOICE",
    )


def invoice_key(doc: Document) -> tuple[str, str, str, str] | None:
    """What makes an invoice unique: seller, number (BT-1), kind (invoice or credit note), year (BT-2)."""
    invoice = doc.invoice
    if invoice is None or not invoice.number or not invoice.issue_date or doc.kind is None:
        return None
    seller = invoice.seller.key
    if seller is None:
        return None
    return seller, invoice.number, doc.kind, invoice.issue_date[:4]
