"""The values a flow is made of: Flow, Document, Finding, Party, Invoice and their statuses.

Stdlib only; imports nothing of edi but the code table. Every value is frozen: a stage returns a new value
(``dataclasses.replace``), it never mutates one. Statuses are derived from findings, never stored beside them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from edi.codes import CODES, Code, DocumentStatus

__all__ = [
    "Code",
    "Document",
    "DocumentStatus",
    "Finding",
    "Flow",
    "FlowRejected",
    "FlowStatus",
    "Invoice",
    "Layer",
    "Party",
    "Severity",
    "StatusReport",
]


class Severity(StrEnum):
    """How much a finding weighs: a fatal finding rejects its document (or flow)."""

    FATAL = "fatal"
    WARNING = "warning"


class Layer(StrEnum):
    """Which step of the processing produced a finding."""

    INTAKE = "intake"
    PDF = "pdf"
    PARSE = "parse"
    XSD = "xsd"
    EN16931 = "en16931"  # business rules: each rule set is its own layer
    FACTURX = "facturx"
    BR_FR = "br-fr"
    EXTENDED_CTC_FR = "extended-ctc-fr"
    ROUTING = "routing"
    CDAR = "cdar"  # edi's own lifecycle messages, checked against the official CDAR artefacts (edi.lifecycle)
    LIFECYCLE = "lifecycle"  # a recipient's lifecycle status: its invoice, the status, its reason, their order


# The validation layers a configuration may ask for, in the order they run.
RULE_SETS = ("xsd", "en16931", "facturx", "br-fr", "extended-ctc-fr")


class FlowStatus(StrEnum):
    """Flow-level status, in Chorus Pro's "Suivi des flux" vocabulary."""

    RECEIVED = "IN_RECU"
    INTEGRATED = "IN_INTEGRE"
    PARTIALLY_INTEGRATED = "IN_INTEGRE_PARTIEL"
    REJECTED = "IN_REJETE"
    FAILED = "IN_EN_ATTENTE_RETRAITEMENT"

    @property
    def final(self) -> bool:
        """Whether the flow has its one final acknowledgement."""
        return self in (FlowStatus.INTEGRATED, FlowStatus.PARTIALLY_INTEGRATED, FlowStatus.REJECTED)


_Value = TypeVar("_Value")


def evolve(value: _Value, **changes: Any) -> _Value:
    """A copy of a frozen value with some fields changed: what ``dataclasses.replace`` does, without running
    ``__init__`` again (these values have no ``__post_init__``), at a third of its cost: every stage makes one per
    document (measured on a Document: 1.5 us, against 4.3 for ``replace`` and 2.6 for a loop over its fields).
    Raises TypeError for a field the value does not have."""
    cls = value.__class__
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _copier(cls)
    new: _Value = copier(value, changes)
    if changes:  # the copier took every field it knows out of it
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(changes))}")
    return new


_COPIERS: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}


def _copier(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    """A function that copies a ``slots=True`` dataclass field by field, taking the fields found in ``changes`` out
    of it instead: one line per field, made once per class (as ``dataclasses`` makes ``__init__``), setting each
    slot through its descriptor (a frozen value refuses ``setattr``)."""
    names: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]  # slots=True dataclasses: their fields
    if not all(name.isidentifier() for name in names):
        raise TypeError(f"{cls.__name__} has slots that are not identifiers")
    lines = ["def copy(value, changes):", "    new = _new(_cls)"]
    lines += [f"    _set_{name}(new, changes.pop({name!r}) if {name!r} in changes else value.{name})" for name in names]
    lines.append("    return new")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{name}": getattr(cls, name).__set__ for name in names})
    exec("\n".join(lines), scope)  # noqa: S102  # the source is made above from the class's own slot names
    copier: Callable[[Any, dict[str, Any]], Any] = scope["copy"]
    return copier


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or warning) found in a flow or a document, with where it is."""

    code: Code
    layer: Layer
    message: str
    severity: Severity = Severity.FATAL
    rule: str | None = None  # the rule broken: for business rules the CEN id when the artefact names one ...
    assert_id: str | None = None  # ... and the id the artefact gives the assert that fired (FX-SCH-A-000144)
    line: int | None = None
    xpath: str | None = None
    rule_set_version: str | None = None  # for business rules: the artefact that ran ...
    rule_set_sha256: str | None = None  # ... and the SHA-256 of its official file

    @property
    def fatal(self) -> bool:
        """Whether this finding rejects what it is attached to."""
        return self.severity is Severity.FATAL

    @property
    def reason(self) -> str:
        """The reform reason code this finding rolls up to."""
        return CODES[self.code].reason


_SIRET = re.compile(r"^\d{14}\Z")
_SIREN = re.compile(r"^\d{9}\Z")
_FR_VAT = re.compile(r"^FR[0-9A-Z]{2}(\d{9})\Z")


def normalise(identifier: str) -> str:
    """An identifier as compared: without spaces, upper case."""
    return "".join(identifier.split()).upper()


def siren_of(identifier: str) -> str | None:
    """The SIREN inside a SIRET or a French VAT number, if the identifier is one."""
    value = normalise(identifier)
    if _SIRET.match(value):
        return value[:9]
    vat = _FR_VAT.match(value)
    return vat.group(1) if vat else None


@dataclass(frozen=True, slots=True)
class Party:
    """A seller or buyer as the invoice names it (EN 16931 BG-4 / BG-7)."""

    name: str | None = None
    legal_id: str | None = None  # BT-30 / BT-47
    legal_scheme: str | None = None  # 0002 SIREN, 0009 SIRET, ...
    vat_id: str | None = None  # BT-31 / BT-48
    ids: tuple[str, ...] = ()  # BT-29 / BT-46 (and CII GlobalID)
    endpoint: str | None = None  # BT-34 / BT-49 electronic address
    endpoint_scheme: str | None = None

    @property
    def main_id(self) -> str | None:
        """The identifier an operator recognises first: legal id, then VAT id, then address, then other ids."""
        return self.legal_id or self.vat_id or self.endpoint or next(iter(self.ids), None)

    @property
    def identifiers(self) -> tuple[str, ...]:
        """Every identifier the invoice gives for this party, most specific first, without repeats."""
        found = (self.legal_id, self.vat_id, self.endpoint, *self.ids)
        return tuple(dict.fromkeys(i for i in found if i))

    @property
    def key(self) -> str | None:
        """One stable key for the party whatever identifier an invoice uses: its SIREN when one can be told
        (a SIREN, a SIRET, a French VAT number), else its first identifier, normalised."""
        for identifier in self.identifiers:
            value = normalise(identifier)
            if _SIREN.match(value) and identifier == self.legal_id:
                return value
            if siren := siren_of(value):
                return siren
        return normalise(self.identifiers[0]) if self.identifiers else None


@dataclass(frozen=True, slots=True)
class Invoice:
    """The facts of an invoice that routing, tracking and acknowledgements need."""

    number: str | None = None  # BT-1
    type_code: str | None = None  # BT-3
    issue_date: str | None = None  # BT-2, ISO 8601 date
    currency: str | None = None  # BT-5
    seller: Party = field(default_factory=Party)
    buyer: Party = field(default_factory=Party)
    buyer_reference: str | None = None  # BT-10, Chorus Pro service code
    order_reference: str | None = None  # BT-13, purchase order / engagement number


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One ``SpecifiedDocumentCharacteristic`` (MDG-43) of a recipient's status, relayed as it came (the amount
    cashed that a 212 must carry)."""

    type_code: str  # MDT-207: MEN, MPA, ...
    amount: str | None = None  # MDT-215
    currency: str | None = None
    percent: str | None = None  # MDT-224


@dataclass(frozen=True, slots=True)
class InvoiceRef:
    """The accepted invoice a recipient's status is about, as edi recorded it when it accepted it."""

    flow_id: str
    index: int
    sender: str  # who deposited it: the status is relayed to acks/<sender>/
    invoice_number: str | None = None
    seller_id: str | None = None
    issue_date: str | None = None
    type_code: str | None = None
    recipient: str | None = None  # the directory recipient it was delivered to
    buyer_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A lifecycle status a recipient returned in a CDAR message (one invoice per message), and what edi found."""

    status: str | None = None  # MDT-105
    reason: str | None = None  # MDT-113
    text: str | None = None  # MDT-114
    set_at: str | None = None  # MDT-78, ISO 8601 UTC
    invoice_number: str | None = None  # MDT-87 (BT-1)
    type_code: str | None = None  # MDT-91 (BT-3)
    issue_date: str | None = None  # MDT-100 (BT-2), ISO 8601 date
    seller_id: str | None = None  # MDT-129
    references: int = 1  # how many invoices the message references
    issuer_id: str | None = None  # MDT-38: who set the status (the buyer, or a party acting for it)
    issuer_scheme: str | None = None
    issuer_role: str | None = None  # MDT-40
    issuer_name: str | None = None
    characteristics: tuple[Characteristic, ...] = ()
    invoice: InvoiceRef | None = None  # the invoice found, once checked
    known: bool = False  # a status the invoice already has: accepted, never relayed twice


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a flow: an invoice or credit note, or what stands in its place when unreadable.

    ``data`` (the invoice XML) and ``tree`` (its parsed form) are held only while the document stages run and are
    dropped before the outcome is written, so a flow of many documents holds one in memory at a time.
    """

    index: int
    name: str  # the file name, or the member path inside an archive
    size: int
    sha256: str  # of the bytes as sent: the XML, or the PDF that carries it
    data: bytes | None = field(default=None, compare=False, repr=False)
    container: str | None = None  # "pdf" when the XML came embedded in a PDF (Factur-X / ZUGFeRD)
    embedded_name: str | None = None  # the embedded file the XML was read from (factur-x.xml, ...)
    attachments: tuple[str, ...] = ()  # the other files embedded in the PDF
    declared_profile: str | None = None  # the profile the PDF's XMP metadata declares
    syntax: str | None = None  # UBL, CII
    kind: str | None = None  # Invoice, CreditNote
    profile: str | None = None  # en16931, peppol-bis3, extended, ...
    specification_id: str | None = None  # BT-24 as written
    invoice: Invoice | None = None
    layers: tuple[str, ...] = ()  # the validation layers that ran on it (xsd, en16931, ...)
    recipient: str | None = None  # directory id of the recipient
    route: str | None = None  # the queue routing chose (delivered only if accepted)
    findings: tuple[Finding, ...] = ()
    tree: object | None = field(default=None, compare=False, repr=False)
    lifecycle: StatusReport | None = None  # a CDAR status message: what it says, what edi found
    # the rest of a stage that waits for another process (the business rules, run beside this one): it returns the
    # document it is given with what that process found; edi.pipeline.collect applies it
    awaiting: Callable[[Document], Document] | None = field(default=None, compare=False, repr=False)

    @property
    def accepted(self) -> bool:
        """Whether no fatal finding stands against this document."""
        return not any(f.fatal for f in self.findings)

    @property
    def status(self) -> DocumentStatus:
        """200 when accepted, else the gravest status its fatal findings call for (501 over 213)."""
        statuses = {CODES[f.code].status for f in self.findings if f.fatal}
        if DocumentStatus.IRRECEVABLE in statuses:
            return DocumentStatus.IRRECEVABLE
        if statuses:
            return DocumentStatus.REJETEE
        return DocumentStatus.DEPOSEE

    @property
    def reason(self) -> str | None:
        """The reform reason code of the first fatal finding of the gravest status, None when accepted."""
        status = self.status
        for f in self.findings:
            if f.fatal and CODES[f.code].status is status:
                return f.reason
        return None

    @property
    def queue(self) -> str | None:
        """The queue the document is delivered to: its route when accepted, else none."""
        return self.route if self.accepted else None

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The files an accepted document is delivered as: its XML, and the PDF it came in if it did."""
        return ("xml", "pdf") if self.container == "pdf" else ("xml",)

    def with_findings(self, *findings: Finding) -> Document:
        """A copy with more findings."""
        return evolve(self, findings=self.findings + findings)


@dataclass(frozen=True, slots=True)
class Flow:
    """One file a sender dropped, with the documents it holds and what was found.

    ``members`` is set by the intake once it knows what the file is: it yields the documents one at a time,
    reading each from the file as it goes (an archive is never held whole in memory). It raises
    :class:`FlowRejected` when the file turns out to be unacceptable as a whole (a corrupt or hostile archive).
    """

    flow_id: str
    sender: str
    file_name: str
    size: int
    sha256: str | None  # None for a file over limits.max_flow_bytes: refused by its size, never read
    received_at: datetime
    payload: Path = field(compare=False)
    deposited_at: datetime | None = None
    kind: str | None = None  # what the file is: xml, pdf, zip, tar.gz (from its content)
    documents: tuple[Document, ...] = ()
    findings: tuple[Finding, ...] = ()
    duplicate_of: str | None = None
    members: Callable[[], Iterator[Document]] | None = field(default=None, compare=False, repr=False)
    content: bytes | None = field(default=None, compare=False, repr=False)  # the file's bytes, if read whole once

    @property
    def rejected_whole(self) -> bool:
        """Whether a fatal flow-level finding rejects the file itself."""
        return any(f.fatal for f in self.findings)

    @property
    def status(self) -> FlowStatus:
        """Roll-up of the documents: all accepted, some, or none (or the file itself rejected)."""
        if self.rejected_whole or not self.documents:
            return FlowStatus.REJECTED
        accepted = sum(d.accepted for d in self.documents)
        if accepted == len(self.documents):
            return FlowStatus.INTEGRATED
        return FlowStatus.PARTIALLY_INTEGRATED if accepted else FlowStatus.REJECTED


class FlowRejected(Exception):
    """Raised while reading a flow's documents when the file as a whole must be refused; carries the finding."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding

    def __reduce__(self) -> tuple[type[FlowRejected], tuple[Finding]]:
        """Pickled with its finding, so that it crosses to and from worker processes whole."""
        return (FlowRejected, (self.finding,))
