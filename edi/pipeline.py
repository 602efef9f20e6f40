"""The stages a configuration asks for, and the one loop over them.

:func:`decide` runs the flow stages, then every document through the document stages: decisions, no file moved. It is
two steps, which :mod:`edi.processor` (which wraps them with the effects) runs for a whole group of flows each:
:func:`read` (the flow stages, then the stages that read each document's XML) and :func:`settle` (the stages that decide
on the facts read: duplicates, the seller, the route). A document stage may leave part of its work to another process
(the business rules, in the rules processes): :func:`collect` waits for it before :func:`settle`, so that the rules of a
group's documents run while the next documents are read. Running one step for every flow of a group before the next
keeps each step's code and data in the CPU's caches (a duplicate lookup right after an XSD validation took four times as
long as one right after another lookup). Last of all, the processor holds each accepted invoice's key in the tracking
store (:attr:`Stages.reserve`), so that two processes deciding at once cannot both accept it, and each recipient's
status about to be accepted (:attr:`Stages.hold`), so that two cannot both pass the order rules. A CDAR lifecycle
message (a recipient's status) runs through the same loop: the invoice layers skip it, :mod:`edi.lifecycle.intake` reads
and checks it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edi.config import LimitsSettings, Settings
from edi.ingest.archives import Limits
from edi.ingest.expand import Expand
from edi.ingest.stages import (
    CheckFile,
    CheckPdfProfile,
    Extract,
    Parse,
    Recognise,
    RejectDuplicateFlow,
    RejectDuplicateInvoice,
    Reserve,
)
from edi.lifecycle.intake import CheckStatus, Hold, ReadStatus
from edi.model import RULE_SETS, Document, Flow, FlowRejected, evolve
from edi.route.directory import Directory
from edi.route.stages import AuthoriseSeller, Route
from edi.tracking import Tracking
from edi.validate.catalogue import Catalogue
from edi.validate.schematron import BusinessRules, runner_for
from edi.validate.xsd import XsdValidation

FlowStage = Callable[[Flow], Flow]


class DocumentStage(Protocol):
    """A step applied to each document of a flow."""

    def __call__(self, doc: Document, flow: Flow) -> Document: ...


@dataclass(frozen=True, slots=True)
class Stages:
    """The stages of a run, in order."""

    flow: Sequence[FlowStage]
    document: Sequence[DocumentStage]  # while the document's XML is at hand (its tree is dropped after them)
    reserve: Reserve | None = None  # holds the invoice keys of a decided group (reserve_invoices), last of all
    settle: Sequence[DocumentStage] = ()  # on what the document stages found, once every document is read
    hold: Hold | None = None  # checks the order of a decided group's statuses and holds them (hold_statuses), last


def limits_of(limits: LimitsSettings) -> Limits:
    """The reading limits the configuration sets."""
    return Limits(
        limits.max_document_bytes, limits.max_uncompressed_bytes, limits.max_compression_ratio, limits.max_members
    )


def layers(settings: Settings, directory: Directory) -> Callable[[Document, Flow], tuple[str, ...]]:
    """What validation layers a document is due: its sender's (or the configured ones), plus its recipient's."""
    senders = {s.id: s for s in settings.senders}

    def layers_for(doc: Document, flow: Flow) -> tuple[str, ...]:
        if doc.syntax == "CDAR":  # a recipient's status: checked against the CDAR artefacts (edi.lifecycle.intake)
            return ()
        sender = senders.get(flow.sender)
        base = sender.rules if sender is not None and sender.rules is not None else settings.validation.rules
        recipient = directory.find(doc.invoice.buyer) if doc.invoice is not None else None
        extra = recipient.rules if recipient is not None else ()
        return tuple(r for r in RULE_SETS if r in base or r in extra)

    return layers_for


def build_stages(settings: Settings, tracking: Tracking, directory: Directory, catalogue: Catalogue) -> Stages:
    """The stages the configuration asks for."""
    layers_for = layers(settings, directory)
    grace = {s.id: s.grace for s in settings.senders}
    document: list[DocumentStage] = [
        Parse(),
        Recognise(),
        CheckPdfProfile(),
        Extract(),
        ReadStatus(),
        XsdValidation(catalogue, layers_for),
        BusinessRules(
            runner_for(catalogue, settings.limits.validate_seconds),
            layers_for,
            lambda flow: grace.get(flow.sender, ()),
            deferred=True,  # the rules of the next documents run while the processor does the rest: collect()
        ),
    ]
    sellers: Mapping[str, Sequence[str]] = {s.id: s.sellers for s in settings.senders}
    settling: list[DocumentStage] = [
        RejectDuplicateInvoice(tracking.earlier_invoice),
        AuthoriseSeller(sellers),
        Route(directory, settings.routing.rules, settings.routing.unknown_recipient),
        CheckStatus({s.id: s.recipients for s in settings.senders}, tracking.find_invoices),
    ]
    flow: list[FlowStage] = [
        CheckFile(settings.limits.max_flow_bytes),
        RejectDuplicateFlow(tracking.earlier_flow),
        Expand(limits_of(settings.limits), settings.limits.pdf_seconds),
    ]
    return Stages(flow, document, tracking.reserve_invoices, settling, tracking.hold_statuses)


def decide(flow: Flow, stages: Stages) -> Flow:
    """Run flow stages until the file itself is rejected, then each document through every document stage, then
    every settling stage (:func:`read`, :func:`collect`, then :func:`settle`)."""
    return settle(collect(read(flow, stages)), stages)


def read(flow: Flow, stages: Stages) -> Flow:
    """Run flow stages until the file itself is rejected, then each document through every document stage.

    Documents are read one at a time and their XML dropped once through the document stages. A file found
    unacceptable as a whole while its documents are read (a hostile archive) is rejected whole: no document of it
    stands.
    """
    for flow_stage in stages.flow:
        flow = flow_stage(flow)
        if flow.rejected_whole:
            return flow
    if flow.members is None:
        return flow
    try:
        for doc in flow.members():
            for doc_stage in stages.document:
                doc = doc_stage(doc, flow)
            flow = evolve(flow, documents=(*flow.documents, evolve(doc, data=None, tree=None)))
    except FlowRejected as rejected:
        return evolve(flow, documents=(), findings=(*flow.findings, rejected.finding))
    return flow


def collect(flow: Flow) -> Flow:
    """The :func:`read` flow with what its document stages left waiting for another process applied (the business
    rules, :class:`edi.validate.schematron.BusinessRules` deferred): waits for it."""
    if not any(doc.awaiting is not None for doc in flow.documents):
        return flow
    documents = tuple(
        doc if doc.awaiting is None else doc.awaiting(evolve(doc, awaiting=None)) for doc in flow.documents
    )
    return evolve(flow, documents=documents)


def settle(flow: Flow, stages: Stages) -> Flow:
    """Take each document of a :func:`read` flow, in order, through every settling stage; each stage sees the flow
    with the documents settled before it (an invoice repeated within one flow is a duplicate of the first)."""
    if not stages.settle or not flow.documents:
        return flow
    settled: tuple[Document, ...] = ()
    for doc in flow.documents:
        before = evolve(flow, documents=settled)
        for settle_stage in stages.settle:
            doc = settle_stage(doc, before)
        settled += (doc,)
    return evolve(flow, documents=settled)


def display_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 are shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")
