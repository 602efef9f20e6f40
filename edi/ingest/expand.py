"""Split a flow into its documents: one XML file, one Factur-X PDF, or every member of a ZIP / tar.gz batch.

What a file or member is comes from its bytes, never its name. :class:`Expand` (a flow stage) sets
``flow.kind`` and ``flow.members``, a generator that reads one document at a time (the whole archive is never in
memory). For delivery, :func:`original_bytes` reads the chosen documents' bytes again and :func:`delivery_files`
says which files each one is delivered as. Reads the claimed payload; writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from edi.ingest.archives import Limits, Member, members, reread
from edi.ingest.pdf import read_pdf
from edi.ingest.sniff import HEAD_BYTES, Kind, sniff
from edi.ingest.stages import open_regular
from edi.model import Code, Document, Finding, Flow, FlowRejected, Layer, evolve

KINDS = {Kind.XML: "xml", Kind.PDF: "pdf", Kind.ZIP: "zip", Kind.GZIP: "tar.gz"}


class Expand:
    """Tell what the file is from its content and give the flow its documents (lazily)."""

    def __init__(self, limits: Limits, pdf_seconds: float = 0) -> None:
        self.limits = limits
        self.pdf_seconds = pdf_seconds

    def __call__(self, flow: Flow) -> Flow:
        """The flow with its kind and document reader, or with the finding that says why it has none."""
        sha256 = flow.sha256
        if sha256 is None:  # CheckFile refuses a file too big to be hashed before this stage
            raise RuntimeError("a flow without a SHA-256 (over the size limit) reached the expansion")
        if flow.content is not None:
            head = flow.content[:HEAD_BYTES]
        else:
            with open_regular(flow.payload) as stream:
                head = stream.read(HEAD_BYTES)
        sniffed = sniff(head)
        if sniffed is Kind.EMPTY:
            return evolve(flow, findings=(*flow.findings, Finding(Code.IRR_VIDE_F, Layer.INTAKE, "the file is empty")))
        kind = KINDS.get(sniffed)
        if kind is None:
            finding = Finding(
                Code.IRR_TYPE_F,
                Layer.INTAKE,
                "not an invoice file: the content is neither XML, nor a PDF, nor a ZIP or tar.gz batch",
            )
            return evolve(flow, findings=(*flow.findings, finding))

        def read() -> Iterator[Document]:
            if kind == "pdf":
                yield self.document(1, flow.file_name, _whole(flow), sha256)
                return
            if kind == "xml":
                if flow.size > self.limits.max_document_bytes:
                    yield _too_big(Member(1, flow.file_name, flow.size, sha256, None), self.limits.max_document_bytes)
                else:
                    yield self.document(1, flow.file_name, _whole(flow), sha256)
                return
            count = 0
            for member in members(flow.payload, kind, self.limits):
                count += 1
                if member.data is None:
                    yield _too_big(member, self.limits.max_document_bytes)
                else:
                    yield self.document(member.index, member.name, member.data, member.sha256)
            if not count:
                raise FlowRejected(Finding(Code.IRR_VIDE_F, Layer.INTAKE, f"the {kind} archive holds no document"))

        return evolve(flow, kind=kind, members=read)

    def document(self, index: int, name: str, data: bytes, sha256: str | None = None) -> Document:
        """One document from its bytes: an XML invoice, or a PDF carrying one, or a finding saying it is neither."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        kind = sniff(data[:HEAD_BYTES])
        if kind is Kind.XML:
            return Document(index=index, name=name, size=len(data), sha256=digest, data=data)
        doc = Document(index=index, name=name, size=len(data), sha256=digest)
        if kind is Kind.PDF:
            pdf = read_pdf(data, max_xml_bytes=self.limits.max_document_bytes, seconds=self.pdf_seconds)
            return evolve(
                doc,
                data=pdf.xml,
                container="pdf",
                embedded_name=pdf.xml_name,
                attachments=pdf.attachments,
                declared_profile=pdf.declared_profile,
                findings=pdf.findings,
            )
        if kind is Kind.EMPTY:
            return doc.with_findings(Finding(Code.IRR_VIDE_F, Layer.INTAKE, "the document is empty"))
        return doc.with_findings(
            Finding(Code.IRR_TYPE_F, Layer.INTAKE, "neither an XML invoice nor a PDF carrying one")
        )


def _whole(flow: Flow) -> bytes:
    return _payload(flow.payload, flow.content)


def _payload(path: Path, content: bytes | None = None) -> bytes:
    """The file's bytes: ``content`` when they were read already, else read now."""
    if content is not None:
        return content
    with open_regular(path) as stream:
        return stream.read()


def _too_big(member: Member, limit: int) -> Document:
    finding = Finding(
        Code.IRR_TAILLE_F,
        Layer.INTAKE,
        f"the document is {member.size} bytes; the limit is {limit} bytes",
        rule="max_document_bytes",
    )
    return Document(index=member.index, name=member.name, size=member.size, sha256=member.sha256, findings=(finding,))


def original_bytes(
    payload: Path, kind: str | None, limits: Limits, wanted: set[int], content: bytes | None = None
) -> Iterator[tuple[int, bytes]]:
    """The bytes of the documents numbered ``wanted``, as sent, one at a time, in order (``content``: the file's
    bytes when they were read already)."""
    if not wanted:
        return
    if kind in ("zip", "tar.gz"):
        yield from reread(payload, kind, limits, wanted)
    elif 1 in wanted:
        yield 1, _payload(payload, content)


def delivery_files(doc: Document, data: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """What an accepted document is delivered as: ``(suffix, bytes)``, the XML first, then the PDF it came in."""
    if doc.container != "pdf":
        return [("xml", data)]
    pdf = read_pdf(data, max_xml_bytes=limits.max_document_bytes)
    if pdf.xml is None:  # it was read once; it must read the same way again
        raise RuntimeError(f"the PDF of document {doc.index} no longer yields its invoice XML")
    return [("xml", pdf.xml), ("pdf", data)]
