"""The one loop over the stages, and the one place that sends a flow to its outcome.

:func:`decide` runs the flow stages, then every document through the document stages: pure decisions, no file
moved. :class:`Processor` wraps it with the effects, in an order that makes a crash at any point recoverable:
record the flow as received, decide, deliver accepted documents (idempotent names), write the acknowledgement,
record the outcome, archive the original bytes. Its single ``try`` sends a flow that fails for our own reason to
``failed/`` (status ``IN_EN_ATTENTE_RETRAITEMENT``, traceback logged, no acknowledgement until requeued).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import structlog

from edi.ack import build_ack, delivery_name, flow_record, to_json, to_xml
from edi.clock import Clock, iso
from edi.config import LimitsSettings, Settings
from edi.faults import fault_point
from edi.ingest.archives import Limits
from edi.ingest.expand import Expand, delivery_files, original_bytes
from edi.ingest.stages import (
    CheckFile,
    CheckPdfProfile,
    Extract,
    Parse,
    Recognise,
    RejectDuplicateFlow,
    RejectDuplicateInvoice,
    open_regular,
)
from edi.model import RULE_SETS, Document, Flow, FlowRejected, FlowStatus
from edi.route.directory import Directory
from edi.route.stages import AuthoriseSeller, Route
from edi.spool import Claim, Spool
from edi.tracking import Tracking
from edi.validate.catalogue import Catalogue
from edi.validate.schematron import BusinessRules, runner_for
from edi.validate.xsd import XsdValidation
from edi.workspace import Layout

log = structlog.get_logger()

FlowStage = Callable[[Flow], Flow]
ACK_MODE = 0o640  # acknowledgements: their sender's group may read them (docs/sftp.md), nobody else, whatever the umask


class DocumentStage(Protocol):
    """A step applied to each document of a flow."""

    def __call__(self, doc: Document, flow: Flow) -> Document: ...


@dataclass(frozen=True, slots=True)
class Stages:
    """The stages of a run, in order."""

    flow: Sequence[FlowStage]
    document: Sequence[DocumentStage]


def limits_of(limits: LimitsSettings) -> Limits:
    """The reading limits the configuration sets."""
    return Limits(
        limits.max_document_bytes, limits.max_uncompressed_bytes, limits.max_compression_ratio, limits.max_members
    )


def layers(settings: Settings, directory: Directory) -> Callable[[Document, Flow], tuple[str, ...]]:
    """What validation layers a document is due: its sender's (or the configured ones), plus its recipient's."""
    senders = {s.id: s for s in settings.senders}

    def layers_for(doc: Document, flow: Flow) -> tuple[str, ...]:
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
        XsdValidation(catalogue, layers_for),
        BusinessRules(runner_for(catalogue), layers_for, lambda flow: grace.get(flow.sender, ())),
    ]
    sellers: Mapping[str, Sequence[str]] = {s.id: s.sellers for s in settings.senders}
    document += [
        RejectDuplicateInvoice(tracking.earlier_invoice),
        AuthoriseSeller(sellers),
        Route(directory, settings.routing.rules, settings.routing.unknown_recipient),
    ]
    flow: list[FlowStage] = [
        CheckFile(settings.limits.max_flow_bytes),
        RejectDuplicateFlow(tracking.earlier_flow),
        Expand(limits_of(settings.limits), settings.limits.pdf_seconds),
    ]
    return Stages(flow, document)


def decide(flow: Flow, stages: Stages) -> Flow:
    """Run flow stages until the file itself is rejected, then each document through every document stage.

    Documents are read one at a time and their XML dropped once decided; each stage sees the documents of the
    flow decided before it. A file found unacceptable as a whole while its documents are read (a hostile archive)
    is rejected whole: no document of it stands.
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
            flow = replace(flow, documents=(*flow.documents, replace(doc, data=None, tree=None)))
    except FlowRejected as rejected:
        return replace(flow, documents=(), findings=(*flow.findings, rejected.finding))
    return flow


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one flow in a run."""

    flow_id: str
    sender: str
    file_name: str
    status: FlowStatus
    documents: int = 0
    accepted: int = 0


def display_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 are shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _digest(claim: Claim) -> tuple[int, str]:
    """Size and SHA-256 of the payload; a payload swapped for a link or special file hashes as empty (and is
    rejected by the intake as not a regular file) rather than being followed."""
    sha = hashlib.sha256()
    st = claim.payload.lstat()
    if not stat.S_ISREG(st.st_mode):
        return st.st_size, sha.hexdigest()
    with open_regular(claim.payload) as stream:
        while chunk := stream.read(1024 * 1024):
            sha.update(chunk)
        size = os.fstat(stream.fileno()).st_size
    return size, sha.hexdigest()


class Processor:
    """Takes a claimed flow to exactly one outcome: a final acknowledgement, or ``failed/``."""

    def __init__(
        self, layout: Layout, spool: Spool, tracking: Tracking, stages: Stages, clock: Clock, limits: Limits
    ) -> None:
        self.layout = layout
        self.spool = spool
        self.tracking = tracking
        self.stages = stages
        self.clock = clock
        self.limits = limits

    def process(self, claim: Claim) -> Outcome:
        """Decide and carry out what happens to ``claim``; never raises for a single flow's failure."""
        started = time.monotonic()
        bound = log.bind(flow_id=claim.flow_id, sender=claim.sender, file=display_name(claim.name))
        try:
            flow = self._received(claim)
            flow = decide(flow, self.stages)
            fault_point("pipeline.after_decide")
            self._deliver(flow)
            ack = build_ack(flow, self.clock.now())
            json_path, xml_path = self._ack_paths(claim)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            self.spool.write_atomic(json_path, to_json(ack), fault="ack.json.before_rename", mode=ACK_MODE)
            self.spool.write_atomic(xml_path, to_xml(ack), fault="ack.xml.before_rename", mode=ACK_MODE)
            fault_point("pipeline.after_ack")
            self.tracking.record_outcome(ack, self.clock.now())
            fault_point("pipeline.after_record")
            self.spool.archive(claim)
        except Exception as exc:
            return self._failed(claim, exc, bound)
        outcome = Outcome(
            flow.flow_id, flow.sender, flow.file_name, flow.status, len(flow.documents), int(ack["documents_accepted"])
        )
        bound.info(
            "flow",
            status=str(outcome.status),
            documents=outcome.documents,
            accepted=outcome.accepted,
            codes=sorted(
                {f["code"] for d in ack["documents"] for f in d["findings"]} | {f["code"] for f in ack["findings"]}
            ),
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return outcome

    def _ack_paths(self, claim: Claim) -> tuple[Path, Path]:
        folder = self.layout.sender_acks(claim.sender)
        return folder / f"{claim.flow_id}.json", folder / f"{claim.flow_id}.xml"

    def _received(self, claim: Claim) -> Flow:
        size, sha256 = _digest(claim)
        flow = Flow(
            flow_id=claim.flow_id,
            sender=claim.sender,
            file_name=display_name(claim.name),
            size=size,
            sha256=sha256,
            received_at=claim.received_at,
            deposited_at=claim.deposited_at,
            payload=claim.payload,
        )
        self.tracking.record_received(flow_record(flow), self.clock.now())
        fault_point("pipeline.after_received")
        return flow

    def _deliver(self, flow: Flow) -> None:
        accepted = {d.index: d for d in flow.documents if d.queue is not None}
        for index, data in original_bytes(flow.payload, flow.kind, self.limits, set(accepted)):
            doc = accepted.pop(index)
            assert doc.queue is not None
            for suffix, content in delivery_files(doc, data, self.limits):
                self.spool.deliver(doc.queue, delivery_name(flow.flow_id, doc, suffix), io.BytesIO(content))
            fault_point("pipeline.after_deliver")
        if accepted:  # the file read differently the second time: never acknowledge what was not delivered
            raise RuntimeError(f"documents {sorted(accepted)} could not be read again for delivery")

    def _failed(self, claim: Claim, exc: Exception, bound: structlog.typing.FilteringBoundLogger) -> Outcome:
        detail = "".join(traceback.format_exception(exc)).strip()
        bound.error("flow failed", status=str(FlowStatus.FAILED), error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        try:
            self.spool.withdraw(*self._ack_paths(claim))  # no final acknowledgement until the flow is requeued
            self.spool.fail(claim)
        except OSError as move_error:  # left in the spool: the next run's recovery takes it again
            bound.critical("flow left in the spool for recovery", error=str(move_error))
            claim.release()
        try:
            known = {
                "flow_id": claim.flow_id,
                "sender": claim.sender,
                "file_name": display_name(claim.name),
                "received_at": iso(claim.received_at),
            }
            self.tracking.record_failed(known, self.clock.now(), detail)
        except Exception as store_error:
            bound.critical("cannot record the failure", error=str(store_error))
        return Outcome(claim.flow_id, claim.sender, display_name(claim.name), FlowStatus.FAILED)
