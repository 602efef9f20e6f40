"""Takes claimed flows to exactly one outcome each, a group at a time, waiting for the disk once per group.

For a group, each step runs for every flow before the next step starts:

1. open each payload and ask the kernel to read it ahead, then hash each; record sizes and digests (one
   transaction);
2. read each flow (its documents' business rules handed to the rules processes, which run them meanwhile), then
   settle each once their findings are in (:func:`edi.pipeline.read`, :func:`edi.pipeline.collect`,
   :func:`edi.pipeline.settle`), then hold the keys of the group's invoices about to be accepted (one transaction:
   a key another flow holds makes a duplicate) and the recipients' statuses about to be accepted (one transaction:
   the order rules, :mod:`edi.lifecycle.intake`);
3. stage its deliveries and build one CDAR lifecycle message per invoice document and, for a status flow, the CDAR
   message relaying each new status to its invoice's sender (``acks/<invoice sender>/``); check every message of
   the group against the official artefacts in one call (:func:`edi.lifecycle.validate.check_all`: the Schematron
   runs once for the group, each message on its own; one that fails is a bug in edi and fails its flow alone);
   then stage the messages and the acknowledgement (written under temporary names);
4. barrier: all of that, the claims before it, and everything the previous group published, durable;
5. archive the payloads of the previous group (only now that their answers are durable);
6. publish: deliveries renamed into their queues, then the CDAR messages and relays, then the acknowledgement into
   place (the acknowledgement last: it says the flow is answered);
7. record every outcome (one transaction: a status flow's held statuses become recorded).

Steps 2 to 7 of a group run once the next group is read (step 1 and the reading of step 2): the rules processes run
the business rules of that group's documents while this process settles, stages and publishes the one before (the
store's lookups and holds run in the same order as if each group went through all its steps before the next was
read: a group settles after the one before it is held and before that one's outcomes are recorded).

Where there is ``syncfs`` (Linux), a group's barrier runs in a background thread while the next group is decided
(it starts once that group is claimed and its digests recorded: while ``syncfs`` writes, every rename and every
write to the store waits for the disk), and the group is published, recorded and answered once that is done: the
wait for the disk is hidden behind the next group's work. The last group is finished by :meth:`Processor.finish`
(a worker, at the end of a task) or :meth:`Processor.flush`, which also archives every payload answered (a
barrier, then the renames), at the end of each pass.

A flow that fails for our own reason at any step (a full disk, a permission or I/O error, a bug) leaves the group:
what it staged is removed, what it published is withdrawn (a delivery already taken by its consumer stays), it goes
to ``failed/`` with status ``IN_EN_ATTENTE_RETRAITEMENT`` and no acknowledgement, and the other flows go on. A crash at
any point leaves each flow in the process's hand, where the next run's recovery finds it: a flow whose outcome is
recorded and whose acknowledgement and CDAR messages are in place is only archived; any other is decided again
(deliveries are idempotent by name, the acknowledgement and the CDAR messages are replaced whole, and a message an
earlier decision left that this one does not name is removed).

Reads and writes through the spool and the tracking store; never raises for a flow's failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from edi.ack import build_ack, delivery_name, to_json, to_xml
from edi.clock import Clock, iso
from edi.faults import corrupted, fault_point
from edi.ingest.archives import Limits
from edi.ingest.expand import delivery_files, original_bytes
from edi.ingest.stages import open_regular, reserve_invoices
from edi.lifecycle.cdar import Relay, build, build_relay, file_name, subjects_from_ack
from edi.lifecycle.intake import hold_statuses
from edi.lifecycle.validate import CdarInvalid, artefacts, check_all, raise_if_fatal
from edi.logs import info_logged
from edi.model import Flow, FlowStatus
from edi.pipeline import Stages, collect, display_name, read, settle
from edi.spool import SYNCFS, Claim, Spool, Staged
from edi.tracking import Tracking
from edi.workspace import Layout

log = structlog.get_logger()

ACK_MODE = 0o640  # acknowledgements: their sender's group may read them (docs/sftp.md), nobody else, whatever the umask
IN_MEMORY_BYTES = 1024 * 1024  # a payload this small is read once, when hashed, and kept for the group's steps
EMPTY_SHA256 = hashlib.sha256().hexdigest()
FINAL = frozenset(str(s) for s in FlowStatus if s.final)
_RENAME_FAULTS = {"cdar": "cdar.before_rename", "relay": "relay.before_rename"}  # fault points before a rename
FADVISE_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)  # None where there is no posix_fadvise
FADVISE_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one flow in a run."""

    flow_id: str
    sender: str
    file_name: str
    status: FlowStatus
    documents: int = 0
    accepted: int = 0
    in_spool: bool = False  # failed, and could not be moved to failed/: left in the spool for the next recovery


@dataclass(slots=True)
class _Work:
    """One flow of a group, as it goes through the steps."""

    claim: Claim
    started: float
    opened: int | None = None  # the payload, opened and being read ahead until it is hashed
    flow: Flow | None = None
    ack: dict[str, Any] | None = None
    staged: list[tuple[Staged, str]] = field(default_factory=list)  # (file, fault point before its rename)
    deliveries: list[Path] = field(default_factory=list)  # where its documents are (or go) in their queues
    cdars: list[Path] = field(default_factory=list)  # where its CDAR lifecycle messages go, beside its ack
    messages: list[tuple[Path, bytes, str]] = field(default_factory=list)  # (path, CDAR message, kind), to check
    published: list[Path] = field(default_factory=list)
    error: BaseException | None = None
    recovered: bool = False  # taken back after a crash or a requeue: it may have been delivered already
    finish_only: bool = False  # recovered with its outcome recorded and its acknowledgement in place

    @property
    def live(self) -> bool:
        return self.error is None


def _read_ahead(path: Path) -> int | None:
    """Open a payload and ask the kernel to start reading what :func:`_digest` will read of it (up to
    ``IN_MEMORY_BYTES``), without waiting; the descriptor, or None for anything but a regular file (a link is not
    followed) or when it cannot be opened (:func:`_digest` then opens it, and says why it cannot). Read ahead for a
    whole group before the first payload is hashed, the reads of a backlog that has left the page cache overlap:
    each one waited for the disk in turn (100,000 flows in one run on this VM, whose host reclaims page-cache pages
    unused for a minute: hashing went from 28 to 109 us per flow over the run)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO is opened without blocking
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if FADVISE_WILLNEED is not None and st.st_size:
            os.posix_fadvise(fd, 0, min(st.st_size, IN_MEMORY_BYTES), FADVISE_WILLNEED)
    except OSError:  # advice only
        pass
    return fd


def _digest(
    path: Path, opened: int | None = None, max_bytes: int | None = None
) -> tuple[int, str | None, bytes | None]:
    """Size and SHA-256 of a payload, and its bytes when it is small enough to keep (``IN_MEMORY_BYTES``: read
    once, not again by each later step); a payload swapped for a link or special file hashes as empty (and is
    rejected by the intake as not a regular file) rather than being followed. A payload over ``max_bytes`` is not
    read at all: its size comes from its metadata and its SHA-256 is None (the intake refuses it by its size: a
    sparse 20 GiB file would take a minute to hash). ``opened``: the payload as :func:`_read_ahead` opened it
    (closed here)."""
    stream: BinaryIO
    if opened is not None:
        stream = os.fdopen(opened, "rb")
    else:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return st.st_size, EMPTY_SHA256, None
        stream = open_regular(path)
    with stream:
        st = os.fstat(stream.fileno())
        if max_bytes is not None and st.st_size > max_bytes:
            return st.st_size, None, None
        if st.st_size <= IN_MEMORY_BYTES:
            content = _read_at_most(stream.fileno(), st.st_size, IN_MEMORY_BYTES)
            if content is not None:
                _uncache(stream.fileno())
                return len(content), hashlib.sha256(content).hexdigest(), content
            stream.seek(0)  # it grew past the limit since: hashed as a big one
        digest = hashlib.file_digest(stream, "sha256")  # type: ignore[arg-type]  # a raw or buffered file
        size = os.fstat(stream.fileno()).st_size
    if max_bytes is not None and size > max_bytes:  # it grew past the limit while it was read
        return size, None, None
    return size, digest.hexdigest(), None


def _uncache(fd: int) -> None:
    """Tell the kernel that a payload read into memory is not needed in the page cache: nothing reads it again
    (it is archived as it is), and its pages, freed at once, are the first reused for the files the flow writes
    next (its delivery and acknowledgements), rather than pages never touched before. Measured on this VM (20,000
    flows, four rounds side by side): one worker +5 %, two workers +7 %; there a page never touched costs a page
    fault in the host, ~2.5 us, about twice that when two processes fault at once. Pages not written to disk yet
    (a file just uploaded) stay: the kernel starts writing them, as the next barrier would have. Advice only:
    errors are ignored."""
    if FADVISE_DONTNEED is not None:
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, FADVISE_DONTNEED)


def _read_at_most(fd: int, expected: int, limit: int) -> bytes | None:
    """Everything left in the file behind ``fd`` if that is at most ``limit`` bytes, else None. The first read asks
    for ``expected`` + 1 bytes (its size when looked at): one buffer of the right size, not one of ``limit`` bytes
    trimmed afterwards (a big allocation costs more than the read)."""
    parts: list[bytes] = []
    total, want = 0, min(expected, limit) + 1
    while total <= limit:
        chunk = os.read(fd, want)
        if not chunk:  # the end of the file
            return parts[0] if len(parts) == 1 else b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        want = min(limit + 1 - total, 1 << 16)  # it grew since it was looked at, or the read came short
    return None


class Processor:
    """Takes claimed flows to exactly one outcome each: a final acknowledgement, or ``failed/``."""

    def __init__(
        self,
        layout: Layout,
        spool: Spool,
        tracking: Tracking,
        stages: Stages,
        clock: Clock,
        limits: Limits,
        max_flow_bytes: int | None = None,
    ) -> None:
        self.layout = layout
        self.max_flow_bytes = max_flow_bytes  # a payload over this is never read (refused by its size)
        self.spool = spool
        self.tracking = tracking
        self.stages = stages
        self.clock = clock
        self.limits = limits
        self._acks: dict[str, Path] = {}  # sender -> its acknowledgement folder, made once
        self._answered: list[Claim] = []  # flows answered and recorded, archived after the next barrier
        # a group read and not decided yet: decided once the next group is read (its documents' business rules run
        # in the rules processes meanwhile), or at the end
        self._read_last: list[_Work] | None = None
        # a group staged, and its barrier once started (with the next group, after that group's claims)
        self._pending: tuple[list[_Work], Future[None] | None] | None = None
        # a group's barrier runs in this thread while the next group is decided (syncfs only: the fsync fallback
        # keeps a set of paths that two threads must not share)
        self._syncer = ThreadPoolExecutor(1, "edi-barrier") if SYNCFS is not None else None

    def process(self, claim: Claim) -> Outcome:
        """Decide and carry out what happens to one flow, archive included."""
        outcomes = self.process_group([claim]) + self.flush()
        return outcomes[-1]

    def flush(self) -> list[Outcome]:
        """Finish the group waiting for its barrier, if any, then make what was published durable and archive the
        payloads of the flows answered (the end of a pass); the outcomes of the group it finished."""
        outcomes = self.finish()
        if not self._answered:
            return outcomes
        try:
            self.spool.barrier()
        except OSError as exc:  # answered and recorded; the next run's recovery archives them
            log.error("flows left in the spool for archiving", error=f"{type(exc).__name__}: {exc}")
            self._answered = []
            return outcomes
        self._archive()
        return outcomes

    def _archive(self) -> None:
        answered, self._answered = self._answered, []
        for claim in answered:
            try:
                self.spool.archive(claim)
            except OSError as exc:  # answered and recorded already: the next run's recovery archives it
                log.error(
                    "flow left in the spool for archiving", flow_id=claim.flow_id, error=f"{type(exc).__name__}: {exc}"
                )

    def process_group(self, claims: Sequence[Claim], recovered: bool = False) -> list[Outcome]:
        """Take every claimed flow of a group to its outcome, in the order of the steps above; ``recovered`` flows
        may be finished already but for their archiving. The group is read now and decided with the next one
        (:meth:`finish` or :meth:`flush` decide the last); returns the outcomes of the groups this call finished:
        the one read before, or, with ``syncfs``, the one before that (the one decided then waits for its barrier,
        which runs in the background while the next group is read and decided)."""
        works = [_Work(claim, time.monotonic(), recovered=recovered) for claim in claims]
        if recovered:
            for work in works:
                self._check_finished(work)
        try:
            self._each(works, self._read_ahead)
            self._each(works, self._hash)
        finally:
            for work in works:  # opened and not hashed (the hash closes what it is given)
                if work.opened is not None:
                    os.close(work.opened)
                    work.opened = None
        self._group(works, self._record_digests)
        self._start_barrier()
        self._each(works, self._read)
        previous, self._read_last = self._read_last, works  # decided with the next group (or at the end)
        return self._decide(previous) if previous is not None else []

    def _decide(self, works: list[_Work]) -> list[Outcome]:
        """Settle, reserve and stage a group read before (while the rules processes run the business rules of the
        group read since), then finish the group staged before it; the outcomes of that one (or, without
        ``syncfs``, of both)."""
        self._each(works, self._settle)
        self._group(works, self._reserve)
        self._each(works, self._stage)
        self._group(works, self._check_messages)
        self._each(works, self._stage_answers)
        finished = self._finish_pending()
        if self._syncer is not None:
            self._pending = (works, None)  # its barrier starts with the next group (or at the end)
            return finished
        try:
            self.spool.barrier()
        except Exception as exc:
            return finished + self._complete(works, exc)
        return finished + self._complete(works, None)

    def finish(self) -> list[Outcome]:
        """Take the group read last and the group waiting for its barrier, if any, to their outcomes (a worker, at
        the end of what it was handed); unlike :meth:`flush`, the payloads answered wait for the next barrier to be
        archived."""
        if self._read_last is None:
            return self._finish_pending()
        self._start_barrier()  # the group staged before runs its barrier while the last one is decided, as usual
        outcomes = self._decide(self._read_last)
        self._read_last = None
        return outcomes + self._finish_pending()

    def _start_barrier(self) -> None:
        """Start the barrier of the group staged last in the background, if it waits for one. It starts once the
        next group is claimed and its digests recorded, not as soon as its own group is staged: while ``syncfs``
        writes, each rename and each write to the store waits for the disk (measured: a claim took 90 µs instead
        of 35), and deciding the next group writes nothing."""
        if self._pending is not None and self._pending[1] is None and self._syncer is not None:
            self._pending = (self._pending[0], self._syncer.submit(self.spool.barrier))

    def _finish_pending(self) -> list[Outcome]:
        """Wait for the barrier of the group staged last (run here if not started), then take that group to its
        outcomes."""
        if self._pending is None:
            return []
        works, barrier = self._pending
        self._pending = None
        try:
            if barrier is None:
                self.spool.barrier()
            else:
                barrier.result()
        except Exception as exc:
            return self._complete(works, exc)
        return self._complete(works, None)

    def _complete(self, works: list[_Work], barrier_error: Exception | None) -> list[Outcome]:
        """After a group's barrier: archive what earlier groups answered (their answers are durable now), publish
        this group, record its outcomes. A failed barrier fails the group (nothing of it is known to be durable)
        and the earlier groups wait for the next one."""
        if barrier_error is not None:
            for work in works:
                if work.live and not work.finish_only:
                    work.error = barrier_error
        else:
            self._archive()
        self._each(works, self._publish)
        self._group(works, self._record_outcomes)
        outcomes = [self._end(work) for work in works]
        self._answered += [w.claim for w in works if w.error is None]
        return outcomes

    def close(self) -> list[Outcome]:
        """Finish everything (:meth:`flush`) and stop the background barrier thread."""
        try:
            return self.flush()
        finally:
            if self._syncer is not None:
                self._syncer.shutdown(wait=True)
                self._syncer = None

    # -- the steps -----------------------------------------------------------------------------------------------

    def _each(self, works: list[_Work], step: Any) -> None:
        for work in works:
            if work.live and not work.finish_only:
                try:
                    step(work)
                except Exception as exc:
                    work.error = exc

    def _group(self, works: list[_Work], step: Any) -> None:
        live = [w for w in works if w.live and not w.finish_only]
        if not live:
            return
        try:
            step(live)
        except Exception as exc:  # the whole group shares the fate of a transaction or a barrier
            for work in live:
                work.error = exc

    def _check_finished(self, work: _Work) -> None:
        json_path, xml_path = self._ack_paths(work.claim)
        status = self.tracking.status(work.claim.flow_id)
        work.finish_only = status in FINAL and json_path.exists() and xml_path.exists() and _cdars_in_place(json_path)

    def _read_ahead(self, work: _Work) -> None:
        work.opened = _read_ahead(work.claim.payload)

    def _hash(self, work: _Work) -> None:
        claim = work.claim
        opened, work.opened = work.opened, None
        size, sha256, content = _digest(claim.payload, opened, self.max_flow_bytes)
        work.flow = Flow(
            flow_id=claim.flow_id,
            sender=claim.sender,
            file_name=display_name(claim.name),
            size=size,
            sha256=sha256,
            received_at=claim.received_at,
            deposited_at=claim.deposited_at,
            payload=claim.payload,
            content=content,
        )

    def _record_digests(self, live: list[_Work]) -> None:
        self.tracking.record_digests([(w.claim.flow_id, w.flow.size, w.flow.sha256) for w in live if w.flow])
        fault_point("pipeline.after_received")

    def _read(self, work: _Work) -> None:
        assert work.flow is not None
        work.flow = read(work.flow, self.stages)

    def _settle(self, work: _Work) -> None:
        assert work.flow is not None
        work.flow = settle(collect(work.flow), self.stages)  # the business rules ran while the group was read
        fault_point("pipeline.after_decide")

    def _reserve(self, live: list[_Work]) -> None:
        if self.stages.reserve is None:
            return
        flows = [w.flow for w in live if w.flow is not None]
        held = reserve_invoices(flows, self.stages.reserve)
        if self.stages.hold is not None:
            held = hold_statuses(held, self.stages.hold)
        decided = iter(held)
        for work in live:
            if work.flow is not None:
                work.flow = next(decided)

    def _stage(self, work: _Work) -> None:
        flow = work.flow
        assert flow is not None
        accepted = {d.index: d for d in flow.documents if d.queue is not None}
        for index, data in original_bytes(flow.payload, flow.kind, self.limits, set(accepted), flow.content):
            doc = accepted.pop(index)
            assert doc.queue is not None
            for suffix, content in delivery_files(doc, data, self.limits):
                name = delivery_name(flow.flow_id, doc, suffix)
                work.deliveries.append(self.spool.delivery_path(doc.queue, name))
                staged = self.spool.stage_delivery(doc.queue, name, content, again=work.recovered)
                if staged is not None:
                    work.staged.append((staged, "deliver.before_rename"))
        if accepted:  # the file read differently the second time: never acknowledge what was not delivered
            raise RuntimeError(f"documents {sorted(accepted)} could not be read again for delivery")
        work.ack = build_ack(flow, self.clock.now())
        folder = self._ack_paths(work.claim, make=True)[0].parent
        for name, message in _cdar_messages(work.ack):
            work.messages.append((folder / name, message, "cdar"))
        for sender, name, message in _relays(flow, work.ack):  # a status flow's statuses, to their invoices' senders
            work.messages.append((self._folder(sender) / name, message, "relay"))

    def _check_messages(self, live: list[_Work]) -> None:
        """Check every CDAR message of the group against the official artefacts in one call; a flow with a message
        that fails (a bug in edi) fails, with :class:`edi.lifecycle.validate.CdarInvalid`, and nothing of it is sent.
        """
        works = [w for w in live if w.messages]
        findings = check_all([message for w in works for _, message, _ in w.messages])
        start = 0
        for work in works:
            mine, start = findings[start : start + len(work.messages)], start + len(work.messages)
            try:
                for found in mine:
                    raise_if_fatal(found)
            except CdarInvalid as exc:
                work.error = exc

    def _stage_answers(self, work: _Work) -> None:
        """Stage the flow's CDAR messages (checked), then its acknowledgement."""
        assert work.ack is not None
        for path, message, kind in work.messages:
            work.cdars.append(path)
            work.staged.append((self.spool.stage(path, message, ACK_MODE, f"write.{kind}"), kind))
        json_path, xml_path = self._ack_paths(work.claim, make=True)
        json_ack = self.spool.stage(json_path, to_json(work.ack), ACK_MODE, "write.ack")
        work.staged.append((json_ack, "ack.json.before_rename"))
        xml_ack = self.spool.stage(xml_path, to_xml(work.ack), ACK_MODE, "write.ack")
        work.staged.append((xml_ack, "ack.xml.before_rename"))

    def _publish(self, work: _Work) -> None:
        delivered = False
        while work.staged:
            staged, fault = work.staged[0]
            if fault.startswith(("ack", "cdar", "relay")) and not delivered:
                fault_point("pipeline.after_deliver")
                delivered = True
            if fault.startswith("ack") and work.recovered:  # before the acknowledgement says the flow is answered
                self.spool.withdraw(*self._stale_cdars(work.claim, set(work.cdars)))
            work.published.append(self.spool.publish(staged, _RENAME_FAULTS.get(fault, fault)))
            work.staged.pop(0)
        fault_point("pipeline.after_ack")

    def _record_outcomes(self, live: list[_Work]) -> None:
        self.tracking.record_outcomes([w.ack for w in live if w.ack is not None], self.clock.now())
        fault_point("pipeline.after_record")

    # -- the end of a flow ---------------------------------------------------------------------------------------

    def _end(self, work: _Work) -> Outcome:
        claim = work.claim
        if work.error is not None:
            return self._failed(
                work, log.bind(flow_id=claim.flow_id, sender=claim.sender, file=display_name(claim.name))
            )
        if work.finish_only:
            log.info(
                "flow finished",
                flow_id=claim.flow_id,
                sender=claim.sender,
                file=display_name(claim.name),
                detail="recovered with its acknowledgement in place: archived",
            )
            row = self.tracking.claimed(claim.flow_id) or {}
            return Outcome(
                claim.flow_id,
                claim.sender,
                display_name(claim.name),
                FlowStatus(row.get("status") or FlowStatus.REJECTED),
                int(row.get("documents_total") or 0),
                int(row.get("documents_accepted") or 0),
            )
        flow, ack = work.flow, work.ack
        assert flow is not None and ack is not None
        outcome = Outcome(
            flow.flow_id, flow.sender, flow.file_name, flow.status, len(flow.documents), int(ack["documents_accepted"])
        )
        if info_logged():  # not built at all when it would be dropped: this runs for every flow
            log.info(
                "flow",
                flow_id=claim.flow_id,
                sender=claim.sender,
                file=display_name(claim.name),
                status=str(outcome.status),
                documents=outcome.documents,
                accepted=outcome.accepted,
                codes=sorted(
                    {f["code"] for d in ack["documents"] for f in d["findings"]} | {f["code"] for f in ack["findings"]}
                ),
                ms=round((time.monotonic() - work.started) * 1000, 1),
            )
        return outcome

    def _folder(self, sender: str) -> Path:
        """A sender's acknowledgement folder, made if missing (once per run)."""
        folder = self._acks.get(sender)
        if folder is None:
            folder = self.layout.sender_acks(sender)
            folder.mkdir(parents=True, exist_ok=True)
            self._acks[sender] = folder
        return folder

    def _ack_paths(self, claim: Claim, make: bool = False) -> tuple[Path, Path]:
        folder = self._acks.get(claim.sender)
        if folder is None:
            folder = self.layout.sender_acks(claim.sender)
            if make:
                folder.mkdir(parents=True, exist_ok=True)
                self._acks[claim.sender] = folder
        return folder / f"{claim.flow_id}.json", folder / f"{claim.flow_id}.xml"

    def _stale_cdars(self, claim: Claim, keep: set[Path]) -> list[Path]:
        """The CDAR messages of this flow in its sender's folder that ``keep`` does not name (left by an earlier
        decision of the same flow, or by a flow that then failed), and the statuses it relayed to invoices' senders
        that its lifecycle rows (held or recorded) name and ``keep`` does not. Their indexes run from 1 without a gap
        (or are 0 alone): looked up by name up to the first missing one, never by listing the folder."""
        folder = self._ack_paths(claim)[0].parent
        stale, index = [], 0
        try:
            relays = self.tracking.relays_of(claim.flow_id)  # a status flow's relays, as its rows name them
        except sqlite3.Error as exc:  # a failing store: what this run staged is withdrawn by name all the same
            log.error("cannot look up the flow's relays", flow_id=claim.flow_id, error=str(exc))
            relays = []
        for sender, name in relays:
            path = self.layout.sender_acks(sender) / name
            if path not in keep and path.exists():
                stale.append(path)
        while True:
            path = folder / file_name(claim.flow_id, index)
            if path not in keep:
                if path.exists():
                    stale.append(path)
                elif index > 0:
                    return stale
            index += 1

    def _failed(self, work: _Work, bound: structlog.typing.FilteringBoundLogger) -> Outcome:
        claim, exc = work.claim, work.error
        assert exc is not None
        detail = "".join(traceback.format_exception(exc)).strip()
        bound.error("flow failed", status=str(FlowStatus.FAILED), error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        for staged, _ in work.staged:
            self.spool.unstage(staged)
        try:  # no acknowledgement until the flow is requeued, and nothing of it left for a consumer to take
            self.spool.withdraw(
                *self._ack_paths(claim), *self._stale_cdars(claim, set()), *work.cdars, *work.deliveries
            )
            self.spool.fail(claim)
        except OSError as move_error:  # left in the spool as claimed: the next run's recovery takes it again
            bound.critical("flow left in the spool for recovery", error=str(move_error))
            return Outcome(claim.flow_id, claim.sender, display_name(claim.name), FlowStatus.FAILED, in_spool=True)
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


def _cdar_messages(ack: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The CDAR lifecycle message (file name, bytes) of each document of a flow (one, index 0, for a file refused
    whole), to be checked against the official CDAR XSD and BR-FR-CDV rules (:meth:`Processor._check_messages`);
    ``ack`` gains the links to them and the artefacts' versions and SHA-256. Raises
    :class:`edi.errors.CatalogueError` (the artefacts cannot be loaded)."""
    ack["cdar_artefacts"] = [{"name": a.name, "version": a.version, "sha256": a.sha256} for a in artefacts()]
    documents = {int(d["index"]): d for d in ack["documents"]}
    messages = []
    for subject in subjects_from_ack(ack):
        if subject.index and documents[subject.index].get("lifecycle"):  # a recipient's status: its ack answers it
            continue
        message = corrupted("cdar.built", build(subject))
        name = file_name(subject.flow_id, subject.index)
        (documents[subject.index] if subject.index else ack)["cdar"] = name
        messages.append((name, message))
    return messages


def _relays(flow: Flow, ack: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """The CDAR message relaying each status of a status flow accepted as new (not known) to its invoice's sender:
    (that sender, file name, bytes), to be checked like edi's own messages; ``ack`` gains the names (``relay``)."""
    documents = {int(d["index"]): d for d in ack["documents"]}
    decided = _instant(ack["processed_at"])
    relays = []
    for doc in flow.documents:
        report = doc.lifecycle
        if report is None or report.invoice is None or report.known or not doc.accepted or not report.status:
            continue
        invoice = report.invoice
        relay = Relay(
            flow_id=flow.flow_id,
            index=doc.index,
            sender=invoice.sender,
            status=report.status,
            set_at=_instant(report.set_at) if report.set_at else decided,
            decided_at=decided,
            invoice_number=invoice.invoice_number or report.invoice_number or "",
            issue_date=invoice.issue_date,
            type_code=invoice.type_code,
            seller_id=invoice.seller_id,
            issuer_id=report.issuer_id or invoice.buyer_id or flow.sender,  # MDT-38 is required in phase 23
            issuer_scheme=report.issuer_scheme if report.issuer_id else None,
            issuer_role=report.issuer_role,
            issuer_name=report.issuer_name,
            reason=report.reason,
            text=report.text,
            characteristics=report.characteristics,
        )
        message = corrupted("relay.built", build_relay(relay))
        name = file_name(flow.flow_id, doc.index)
        documents[doc.index]["lifecycle"]["relay"] = name
        relays.append((invoice.sender, name, message))
    return relays


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cdars_in_place(json_path: Path) -> bool:
    """Whether every CDAR message the acknowledgement at ``json_path`` names is in place: edi's own beside it (one
    made before edi wrote them names none), a status flow's relays in their invoices' senders' folders."""
    try:
        ack = json.loads(json_path.read_bytes())
    except (OSError, ValueError):
        return False
    documents = ack.get("documents") or []
    names = [d.get("cdar") for d in documents] + [ack.get("cdar")]
    if not all((json_path.parent / name).exists() for name in names if name):
        return False
    acks = json_path.parent.parent
    for doc in documents:
        lifecycle = doc.get("lifecycle") or {}
        if lifecycle.get("relay") and not (acks / lifecycle["invoice"]["sender"] / lifecycle["relay"]).exists():
            return False
    return True
