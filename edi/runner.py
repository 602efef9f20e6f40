"""Runs: ``init`` a workspace, one ``batch`` pass (what cron, ``edi watch`` and ``edi schedule`` all trigger),
``recover``, ``requeue``.

A batch first recovers what a crash (or ``edi requeue``) left in the spool, then claims the finished files of every
declared sender's inbox, oldest first, a group at a time (:data:`GROUP_FLOWS`), and takes each group to its outcomes
(:mod:`edi.processor`), in this process or in worker processes (:mod:`edi.workers`: started before the recovery
and the first scan when the inboxes hold more than two groups' worth of files, so that they are ready when the
first groups are handed out). The inboxes are looked at (:mod:`edi.inboxes`) :data:`SCAN_LIMIT` files at a time, so
memory does not grow with the backlog; with a backlog, the next look runs in a background thread while the last
look's groups are processed (:data:`LOOK_AHEAD_GROUPS`). Reads the configuration it is given and the workspace; raises
:class:`EdiError` subclasses when the run cannot start (bad directory, a routing rule naming an unknown queue,
unusable workspace).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sqlite3
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from edi.api.events import policy_for as webhook_policy_for
from edi.clock import Clock, FlowIds, SystemClock, iso
from edi.config import Settings
from edi.deposits import deposits_folder, recover_deposits, safe_name
from edi.errors import EdiError, WorkspaceError
from edi.inboxes import SenderScan, backlog, claim_error
from edi.inboxes import scan_inboxes as _scan  # a module global: tests look at each scan
from edi.ingest.scan import Ready, Sighting, Skipped
from edi.lifecycle.validate import prepare as prepare_cdar
from edi.lock import processor_lock
from edi.model import FlowStatus
from edi.notify.policy import policy_for
from edi.pipeline import build_stages, display_name, limits_of
from edi.processor import Outcome, Processor
from edi.queues import known_queues, load_routing
from edi.requeue import requeue as requeue  # `edi requeue`: here too, where the other verbs are
from edi.spool import Claim, Spool, claim_from_meta, name_in_meta
from edi.store import WORKSPACE_ID, open_store
from edi.validate.catalogue import RuleEntry, load_catalogue
from edi.validate.schematron import runner_for
from edi.workers import WorkerPool

log = structlog.get_logger()

STALE_TMP_SECONDS = 6 * 3600
# flows claimed and taken to their outcome together: per group, four store transactions and two waits for the disk
# (syncfs), whose cost is the same for 32 flows or 128. 20,000 flows, four rounds (docs/performance.md): with 128
# instead of 32, one worker +3 % (769 against 746 flows/s, medians), two workers +12 % (1,370 against 1,222: two
# processes share the disk's writeback and the store's write lock); 256 gave no more and left the workers idler at the
# end of a run
GROUP_FLOWS = 128
GROUP_BYTES = 32 * 1024 * 1024  # ... and no more bytes than this in one group
POOL_FILES = 2 * GROUP_FLOWS  # worker processes are started for a pass with more files than this, not for fewer
UNKNOWN_SENDER = "?"  # a recovered flow whose origin neither the store nor its metadata knows
# inbox files looked at per scan, oldest first (the rest waits for the next scan of the pass). Each scan stats every
# file still in the inbox, so a backlog of N files costs N * N / (2 * SCAN_LIMIT) stats in all; one kept file
# holds ~0.45 KiB until it is handed out (~14 MiB at this limit, whatever the backlog)
SCAN_LIMIT = 32768
# with this many groups of a scan left, the next scan starts in a background thread (a scan of a 100,000-file backlog
# takes ~1.1 s, in which neither this process nor the workers would have work; 64 groups take 2-4 s)
LOOK_AHEAD_GROUPS = 64
# Python's cycle collector runs when the container objects made exceed those freed by this many (its default: 700).
# A flow's objects live for its group (~0.1 s) and are freed by reference counting; at 700 the collector ran about
# every 14 flows, going through each group's live objects again and again: 20,000 flows, one worker, 1,380 young, 126
# middle and 11 full collections, 0.53 s (2.9 % of the run); at 20,000, 6 and 1, 0.02 s
GC_YOUNG_OBJECTS = 20_000
STOP_POLL_SECONDS = 0.2  # a wait within a pass asks this often whether to stop
# in the workspace: the business-rule XSLTs the last pass ran (JSON list of paths), which the next session has the
# rules process compile ahead, while it does the rest of its start (a cron run of 100 files spends most of its time
# compiling stylesheets otherwise). Only a hint: a wrong or missing one costs a compile when first needed
RULES_USED = "rules-used.json"


def collect_less() -> None:
    """Have Python's cycle collector run only once :data:`GC_YOUNG_OBJECTS` more container objects were made than
    freed, for a process that processes flows (the command line's and each worker's); garbage in reference cycles
    is still collected, in larger batches."""
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


class PassStopped(WorkspaceError):
    """A pass stopped because the workspace could not be used any more (the store cannot record claims); its
    ``report`` says what the pass did before."""

    def __init__(self, message: str, report: BatchReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True, slots=True)
class InitReport:
    """What ``edi init`` made."""

    root: Path
    created: list[Path]
    senders: list[str]
    queues: list[str]


@dataclass(slots=True)
class BatchReport:
    """What one batch run did. Outcomes are counted; each one is also kept in ``outcomes`` unless the run was
    asked not to (a run of 100,000 flows keeps its memory flat)."""

    by_status: Counter[FlowStatus] = field(default_factory=Counter)
    documents: int = 0  # documents processed in flows that reached an outcome
    outcomes: list[Outcome] = field(default_factory=list)
    keep_outcomes: bool = True
    recovered: int = 0
    young: int = 0  # files waiting out min_age_seconds
    incomplete: int = 0  # files that stopped growing but look cut short (a stalled upload), within their grace
    skipped: list[Skipped] = field(default_factory=list)
    stopped: bool = False  # asked to stop: files still ready were left for the next run
    # inbox files (or sender folders) that cannot be taken, and why: each run will leave them behind until an
    # operator sees to them (a file that cannot be renamed: immutable, on another filesystem; a linked sender folder)
    unclaimable: dict[Path, str] = field(default_factory=dict)
    left_in_spool: int = 0  # failed flows that could not be moved to failed/: the next run's recovery takes them

    @property
    def left_behind(self) -> bool:
        """Whether the run left files it cannot take (:attr:`unclaimable`)."""
        return bool(self.unclaimable)

    @property
    def flows(self) -> int:
        """Flows that reached an outcome (failed included)."""
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        """Flows that failed for our own reason."""
        return self.by_status[FlowStatus.FAILED]

    def add(self, outcome: Outcome) -> None:
        """Count one outcome (and keep it, unless told not to)."""
        self.by_status[outcome.status] += 1
        self.documents += outcome.documents
        self.left_in_spool += outcome.in_spool
        if self.keep_outcomes:
            self.outcomes.append(outcome)


def init_workspace(settings: Settings) -> InitReport:
    """Create the workspace folders, one inbox and acks folder per sender, the queues and the tracking store."""
    layout = settings.workspace.layout()
    senders = [s.id for s in settings.senders]
    queues = known_queues(settings, load_routing(settings))
    created = layout.create(senders, queues)
    open_store(layout, init=True).close()  # made for a new workspace; refused when lost from one with history
    return InitReport(layout.root, created, senders, queues)


class Session:
    """What processing needs, set up once for one run or for the life of ``edi watch``: the store, the stages
    (with their compiled schemas and rules), the spool and its hand, and up to ``workers`` processes. Close it when
    done."""

    def __init__(self, settings: Settings, clock: Clock | None = None, workers: int = 1) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.layout = settings.workspace.layout()
        self.tracking = open_store(self.layout)  # a lost store is refused before anything else is looked at
        # the notifications each outcome calls for are queued with it (none when notifications are off)
        self.tracking.notifications = policy_for(settings, self.tracking.meta(WORKSPACE_ID))
        self.tracking.webhooks = webhook_policy_for(settings)  # and the webhooks' events (none without allowed hosts)
        try:
            self.layout.check_writable()
            self.directory = directory = load_routing(settings)
            self.catalogue = load_catalogue()
            self.rules = runner_for(self.catalogue, settings.limits.validate_seconds)
            # with files in the inboxes, the stylesheets the last pass used are compiled by the rules processes
            # while this one gets on with the rest (the CDAR artefacts, the scan, the first documents); a run that
            # finds nothing to do compiles nothing
            ahead = self._rules_used_before()
            self._rules_written = [str(e.xslt) for e in ahead]  # what the hint says now (or the default ahead)
            if backlog(settings, self.layout, 0):
                self.rules.prepare_ahead(ahead)
            prepare_cdar()  # the artefacts every flow's CDAR messages are checked against
            self.layout.create([s.id for s in settings.senders])
        except BaseException:
            self.tracking.close()
            raise
        self.spool = Spool(self.layout)
        stages = build_stages(settings, self.tracking, directory, self.catalogue)
        self.processor = Processor(
            self.layout,
            self.spool,
            self.tracking,
            stages,
            self.clock,
            limits_of(settings.limits),
            settings.limits.max_flow_bytes,
        )
        self.ids = FlowIds(self.clock)
        self.workers = max(1, workers)
        self._pool: WorkerPool | None = None
        self._pool_refused = False  # a worker died in this pass: the rest of it runs here
        self._parked_checked = False  # failed/ looked through for failures the store missed (first recovery)
        self._started = self.clock.now()  # when the pass under way started
        self.unclaimable: dict[Path, str] = {}  # inbox files this process could not claim in the pass, and why
        self._told: set[Path] = set()  # what cannot be taken, logged once for the session (watch: not every pass)
        self._sightings: dict[str, Sighting] = {}  # inbox files dated in the future: how and since when seen

    def close(self) -> None:
        """Stop the worker processes, make everything durable, let the hand go, release the store."""
        try:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            left = self.processor.close()
            if left:  # a pass always ends with a flush: nothing should be left, but say so if something was
                log.warning("flows finished while closing", flows=len(left))
        finally:
            self.spool.close()
            self.tracking.close()

    def wanted_rules(self) -> list[RuleEntry]:
        """The catalogue's business-rule entries that the configuration can ask for."""
        wanted = set(self.settings.validation.rules)
        for sender in self.settings.senders:
            wanted.update(sender.rules or ())
        for recipient in self.directory.recipients:
            wanted.update(recipient.rules)
        return [e for e in self.catalogue.rules if e.rule_set in wanted]

    def _rules_used_before(self) -> list[RuleEntry]:
        """The XSLTs that the last pass of this workspace ran (:data:`RULES_USED`) and the configuration can still
        ask for, in the order they were first needed; without one (or when it cannot be read: it is only a hint),
        those of the wanted rule sets that cover any profile (EN 16931 for UBL and for CII)."""
        wanted = self.wanted_rules()
        try:
            named = json.loads((self.layout.root / RULES_USED).read_bytes())
        except (OSError, ValueError):
            named = None
        if not isinstance(named, list):
            return [e for e in wanted if "*" in e.profiles]
        known = {str(e.xslt): e for e in wanted}
        return [known[n] for n in named if isinstance(n, str) and n in known]

    def remember_rules(self) -> None:
        """Write down (:data:`RULES_USED`) the XSLTs this process ran, when they are not those already written:
        the next run has them compiled ahead. A failure to write is logged; nothing else depends on it."""
        ran = [str(x) for x in self.rules.ran()]
        if not ran or ran == self._rules_written:
            return
        try:
            self.spool.write_atomic(self.layout.root / RULES_USED, json.dumps(ran).encode())
            self._rules_written = ran
        except OSError as exc:
            log.warning("cannot write the stylesheets used", error=f"{type(exc).__name__}: {exc}")

    def log_compiles(self) -> None:
        """Log each stylesheet the rules process compiled since the last call (``stylesheet compiled``: this process,
        its rules process, the seconds it took): in ``edi watch`` and ``edi schedule``, workers included, each is
        compiled once in a process's life (a rules process killed past its budget is replaced, and the new one
        compiles again what it is asked to run)."""
        for xslt, pid, seconds in self.rules.take_compiles():
            log.info(
                "stylesheet compiled", xslt=xslt.name, process=os.getpid(), rules_process=pid, seconds=round(seconds, 3)
            )

    def warm_up(self) -> int:
        """Compile now every business-rule XSLT the configuration can ask for, so that the first file of a long run
        does not wait for it; return how many were compiled."""
        entries = self.wanted_rules()
        for entry in entries:
            self.rules.compiled(entry)
        self.log_compiles()
        return len(entries)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one pass ------------------------------------------------------------------------------------------------

    def run_once(
        self,
        *,
        settled: Collection[Path] = (),
        writing: Collection[Path] = (),
        on_start: Callable[[int], None] | None = None,
        on_flow: Callable[[Outcome], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        keep_outcomes: bool = True,
        second_look: bool = True,
    ) -> BatchReport:
        """One pass: recover what crashes (or ``edi requeue``) left, then claim and process what is ready, oldest
        first, a group at a time, in this process or spread over the workers.

        ``settled`` files were closed or renamed into place by their writer (watch mode): they need not wait
        ``min_age_seconds``; ``writing`` files were written to and not closed since (watch mode): they wait like an
        upload cut short. ``should_stop`` is asked between groups: when it says yes, no new flow is taken. Files
        modified after the pass started are left for the next one, so that a pass ends. Files dated in the future
        are judged by stability (:func:`edi.ingest.scan.scan_inbox`): with ``second_look`` (a cron run, which no
        later pass of this process follows), when the inbox holds nothing else, the pass waits for the ones not seen
        steady yet to be ``min_age_seconds`` old to it and looks once more.
        """
        report = BatchReport(keep_outcomes=keep_outcomes)
        clock, self._started = self.clock, self.clock.now()
        started = self._started.timestamp()
        self._pool_refused = False
        self.unclaimable = report.unclaimable  # filled as claims fail, here and (see _dispatch) in the workers

        def done(outcome: Outcome) -> None:
            report.add(outcome)
            if on_flow:
                on_flow(outcome)

        if self.workers > 1 and self._pool is None and backlog(self.settings, self.layout, POOL_FILES):
            self._new_pool().start()  # the workers get ready while this process recovers and scans
        self.spool.sweep_tmp(STALE_TMP_SECONDS, started)
        leave: set[Path] = set()  # stalled, or not claimable: not looked at again in this pass
        looked = 0  # scans so far
        looked_again = False  # the one more look for files dated in the future was taken
        unsteady: list[Path] = []  # files dated in the future that the last look did not find steady yet
        more = 1  # ready files the last scan left for a later one (before the first scan: look)
        scanner: ThreadPoolExecutor | None = None  # runs the next scan ahead, once there is a backlog
        ahead: Future[SenderScan] | None = None  # the next scan, running or done

        def scan_now(exclude: Collection[Path]) -> SenderScan:
            return _scan(
                self.settings,
                self.layout,
                clock,
                settled,
                writing,
                SCAN_LIMIT,
                started,
                exclude,
                sightings=self._sightings,
            )

        def look_ahead(unclaimed: Collection[Path]) -> None:
            """Start the next scan in the background if the last one left files for it; ``unclaimed`` files are
            handed out or about to be, not claimed yet: the scan leaves them out."""
            nonlocal scanner, ahead
            if ahead is None and more and not should_stop():
                scanner = scanner or ThreadPoolExecutor(1, "edi-scan")
                ahead = scanner.submit(scan_now, leave | set(unclaimed))

        def look(in_flight: Collection[Path] = ()) -> list[list[tuple[str, Ready]]]:
            """The groups of the next scan, or of the one started ahead (none: nothing more in this pass).
            ``in_flight`` files are in groups handed out and maybe not claimed yet: they are not handed out again."""
            nonlocal looked, more, ahead, looked_again, unsteady
            if self._pool is not None:  # what the workers could not claim is not handed out again in this pass
                report.unclaimable.update(self._pool.take_unclaimable())
            leave.update(report.unclaimable)
            while True:
                if not more or should_stop():
                    # files dated in the future that were never seen steady: a cron run looks once more, once they
                    # have had min_age_seconds to change (watch looks again soon anyway)
                    if not (second_look and unsteady and not looked_again and self._wait_steady(unsteady, should_stop)):
                        return []
                    looked_again, more, unsteady = True, 1, []
                if ahead is not None:  # it left out every file handed out, or to be, when it started
                    found, ahead = ahead.result(), None
                    found.ready[:] = [(sender, item) for sender, item in found.ready if item.path not in leave]
                else:
                    found = scan_now(leave | set(in_flight) if in_flight else leave)
                leave.update(found.stalled)
                report.unclaimable.update(found.refused)
                for folder, why in found.refused.items():
                    self._tell_once(folder, "sender folder not looked into", why=why)
                for path in found.future:
                    self._tell_once(path, "file dated in the future, taken once steady", level="warning")
                unsteady = found.unsteady
                report.young = found.young  # as the last look saw it: left for the next run
                if not looked:
                    report.skipped = found.skipped
                    for skipped in found.skipped:
                        log.warning("inbox entry skipped", path=str(skipped.path), why=skipped.why)
                    if on_start:
                        on_start(report.recovered + len(found.ready) + found.more)
                looked += 1
                report.incomplete += len(found.stalled)
                more = found.more
                if found.ready:
                    return list(_groups(found.ready))
                if not found.stalled:  # when every candidate looked at was stalled, look past them
                    more = 0

        try:
            report.recovered = self.recover(on_flow=done, should_stop=should_stop)
            # groups are taken from the left as they are processed or handed out, and so let go: the next scan's
            # groups do not come on top of the whole of the last one's (memory stays that of one scan)
            groups = deque(look())
            while groups:
                if self._use_pool(sum(len(g) for g in groups) + more):
                    if not self._dispatch(groups, done, should_stop, look, look_ahead):
                        break  # the workers took every group the scans gave
                    more, ahead = 1, None  # a worker died: what it held is recovered, the rest is scanned again
                else:
                    while groups and not should_stop():
                        if ahead is None and more and len(groups) <= LOOK_AHEAD_GROUPS:
                            look_ahead([item.path for later in groups for _, item in later])
                        for outcome in self.claim_and_process(groups.popleft(), leave):
                            done(outcome)
                groups = deque(look())
            for outcome in self.processor.flush():  # the last group's (its barrier ran while nothing else was left)
                done(outcome)
        except EdiError as exc:  # the workspace cannot be used any more: what was done is said, with why it stopped
            with contextlib.suppress(Exception):  # the group in hand, if it can still be finished
                for outcome in self.processor.flush():
                    done(outcome)
            raise PassStopped(str(exc), report) from None
        finally:
            if scanner is not None:
                scanner.shutdown(wait=True)
            if self._pool is not None:
                report.unclaimable.update(self._pool.take_unclaimable())
        report.stopped = should_stop()
        self.remember_rules()
        self.log_compiles()
        return report

    def claim_and_process(self, items: Sequence[tuple[str, Ready]], leave: set[Path] | None = None) -> list[Outcome]:
        """Claim these inbox files (recorded first, then renamed into this process's hand) and take every one
        claimed to its outcome. A file another process took first is not ours; one that cannot be renamed is
        logged, kept in :attr:`unclaimable` with why, and added to ``leave``."""
        now = self.clock.now()
        hand = self.spool.hand.name
        try:
            # a file deposited through the API is claimed under the flow id its 202 gave, with the client's name
            deposits = self.tracking.deposits_named([(sender, item.path.name) for sender, item in items])
            planned = []
            for sender, item in items:
                flow_id, name = deposits.get((sender, item.path.name), (None, None))
                if flow_id is None:
                    planned.append((sender, item, self.ids.new(), item.path.name))
                else:
                    planned.append((sender, item, flow_id, safe_name(str(name))))
            known = self.tracking.record_claims([_claim_row(s, i, f, now, hand, n) for s, i, f, n in planned], now)
        except (sqlite3.Error, OSError) as exc:  # nothing claimed: the files stay in the inbox for a run that can
            # record them
            raise WorkspaceError(f"cannot record claims in the tracking store: {exc}") from None
        if known:  # deposits another process recorded first: its claim, not ours (a new id is never known)
            if leave is not None:
                leave.update(i.path for _, i, f, _ in planned if f in known)
            planned = [p for p in planned if p[2] not in known]
        claims: list[Claim] = []
        missed: list[str] = []
        for sender, item, flow_id, name in planned:
            try:
                payload = self.spool.claim(item.path, flow_id)
            except OSError as exc:
                self.unclaimable[item.path] = why = claim_error(exc)
                self._tell_once(item.path, "cannot claim", why=why, error=f"{type(exc).__name__}: {exc}")
                if leave is not None:
                    leave.add(item.path)
                payload = None
            if payload is None:
                missed.append(flow_id)
                continue
            deposited = datetime.fromtimestamp(item.mtime, UTC)
            claims.append(Claim(flow_id, sender, name, payload, now, deposited))
        self.tracking.forget_claims(missed)
        return self.processor.process_group(claims) if claims else []

    def _tell_once(self, path: Path, event: str, level: str = "error", **details: str) -> None:
        """Log, once in the life of the session, something about ``path`` that every pass of ``edi watch`` would
        meet again (a file that cannot be taken: the summary of each ``edi batch`` names it)."""
        if path not in self._told:
            self._told.add(path)
            log.log(logging.ERROR if level == "error" else logging.WARNING, event, path=str(path), **details)

    def _wait_steady(self, unsteady: Sequence[Path], should_stop: Callable[[], bool]) -> bool:
        """Wait until the files dated in the future that the last look found unsteady have looked the same for
        ``min_age_seconds`` (or until asked to stop); False if asked to stop."""
        min_age = self.settings.intake.min_age_seconds
        since = [s.since for p in unsteady if (s := self._sightings.get(os.fspath(p))) is not None]
        due = max(since, default=self.clock.now().timestamp()) + min_age
        while not should_stop():
            left = due - self.clock.now().timestamp()
            if left <= 0:
                return True
            self.clock.sleep(min(left, STOP_POLL_SECONDS))
        return False

    # -- recovery ------------------------------------------------------------------------------------------------

    def recover(
        self,
        *,
        on_flow: Callable[[Outcome], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Finish or roll back what crashed processes left (their hands) and take back what ``edi requeue`` put
        back; return how many flows were taken to an outcome. Claims recorded but never renamed are forgotten (the
        file is still in the inbox)."""
        if not self._parked_checked:  # once per session: failed/ may hold many flows an operator has not seen to
            self._record_parked()
            self._parked_checked = True
        self._recover_deposits()
        claims: list[Claim] = []
        for dead, payloads in self.spool.orphans():
            present = {p.name for p in payloads}
            for payload in payloads:
                claims.append(self._recovered_claim(payload, None))
            unclaimed = [
                f for f in self.tracking.claims_of(dead) if f not in present and not (self.layout.failed / f).exists()
            ]
            self.tracking.forget_claims(unclaimed)
        for payload, meta in self.spool.requeued():
            claims.append(self._recovered_claim(payload, meta))
        for claim in [c for c in claims if c.sender == UNKNOWN_SENDER]:  # never deleted: parked for an operator
            log.critical("a flow in the spool has no record: kept in failed/", flow_id=claim.flow_id)
            self.spool.fail(claim)
            self.tracking.record_failed(
                {"flow_id": claim.flow_id, "sender": claim.sender, "file_name": claim.name,
                 "received_at": iso(claim.received_at)},
                self.clock.now(),
                "found in the spool without any record of where it came from",
            )  # fmt: skip
        claims = [c for c in claims if c.sender != UNKNOWN_SENDER]
        recovered = 0
        for start in range(0, len(claims), GROUP_FLOWS):
            group = claims[start : start + GROUP_FLOWS]
            if should_stop():  # leave them in this hand: the next run takes them back
                break
            for claim in group:
                log.info("recovering flow", flow_id=claim.flow_id, sender=claim.sender)
            for outcome in self.processor.process_group(group, recovered=True):
                recovered += 1
                if on_flow:
                    on_flow(outcome)
        for outcome in self.processor.flush():
            recovered += 1
            if on_flow:
                on_flow(outcome)
        return recovered

    def _recover_deposits(self) -> None:
        """Put in their inbox the API deposits a crashed server recorded but never renamed there, and remove those
        it never recorded (:func:`edi.deposits.recover_deposits`): the scan that follows claims the former."""
        done = recover_deposits(self.layout, self.tracking)
        for flow_id in done.placed:
            log.info("deposit recovered into its inbox", flow_id=flow_id)
        for flow_id in done.removed:
            log.info("unrecorded deposit removed", flow_id=flow_id)
        for flow_id, why in done.left.items():
            self._tell_once(deposits_folder(self.layout) / flow_id, "deposit left in tmp/deposits", why=why)

    def _record_parked(self) -> None:
        """Record as failed the flows in ``failed/`` whose failure the store could not record at the time (a full
        disk), so that ``edi flows --status IN_EN_ATTENTE_RETRAITEMENT`` lists them."""
        for flow_id in self.spool.failed_ids():
            if self.tracking.status(flow_id) not in (None, FlowStatus.RECEIVED):
                continue
            meta = self.spool.failed_meta(flow_id) or {}
            known = {
                "flow_id": flow_id,
                "sender": meta.get("sender") if isinstance(meta.get("sender"), str) else UNKNOWN_SENDER,
                "file_name": display_name(name_in_meta(meta)),
                "received_at": meta.get("received_at") if isinstance(meta.get("received_at"), str) else None,
            }
            self.tracking.record_failed(known, self.clock.now(), "found in failed/ with its failure unrecorded")

    def _recovered_claim(self, payload: Path, meta: dict[str, Any] | None) -> Claim:
        """The claim of a flow taken back into this hand, from its metadata or its row in the store."""
        flow_id = payload.name
        row = self.tracking.claimed(flow_id)
        if meta is not None:
            with contextlib.suppress(KeyError, ValueError):
                claim = claim_from_meta(meta, payload)
                if row is None:  # the store lost it (it is what failed): record it again
                    self.tracking.record_claims(
                        [_claim_row(claim.sender, None, flow_id, claim.received_at, self.spool.hand.name, claim=claim)],
                        claim.received_at,
                    )
                return claim
        if row is None:  # bytes nobody knows the origin of (see recover)
            return Claim(flow_id, UNKNOWN_SENDER, flow_id, payload, self.clock.now(), None)
        name = os.fsdecode(bytes.fromhex(row["raw_name"])) if row.get("raw_name") else row["file_name"]
        deposited = row.get("deposited_at")
        received = _parse(row["received_at"]) or self.clock.now()
        return Claim(flow_id, row["sender"], name, payload, received, _parse(deposited))

    # -- workers -------------------------------------------------------------------------------------------------

    def _use_pool(self, ready: int) -> bool:
        """Worker processes pay off when there is more than a couple of groups of work."""
        if self.workers <= 1 or self._pool_refused or (self._pool is None and ready <= POOL_FILES):
            return False
        pool = self._pool or self._new_pool()
        return not pool.broken

    def _new_pool(self) -> WorkerPool:
        self._pool = WorkerPool(self.settings, self.workers - 1)  # this process is a worker too
        return self._pool

    def _dispatch(
        self,
        groups: deque[list[tuple[str, Ready]]],
        done: Callable[[Outcome], None],
        should_stop: Callable[[], bool],
        look: Callable[[Collection[Path]], list[list[tuple[str, Ready]]]],
        look_ahead: Callable[[Collection[Path]], None],
    ) -> bool:
        """Run the groups in the worker processes (taken from the left of ``groups``), and those of the next scans
        (``look``, asked before the workers run out of work, and started ahead in the background with ``look_ahead``:
        they do not wait for a scan); True if a worker died (the pool is then closed and what the workers held is
        recovered here)."""
        assert self._pool is not None
        ahead = (look_ahead, LOOK_AHEAD_GROUPS)
        for outcome in self._pool.run(groups, should_stop, self.claim_and_process, look, ahead):
            done(outcome)
        if not self._pool.broken:
            return False
        log.error("a worker process died: its flows are recovered, the rest of this pass goes on in this process")
        lost, pids = self._pool.lost, self._pool.pids
        self._pool.close()
        self._pool, self._pool_refused = None, True
        recovered: set[str] = set()

        def counted(outcome: Outcome) -> None:
            recovered.add(outcome.flow_id)
            done(outcome)

        self.recover(on_flow=counted, should_stop=should_stop)
        for outcome in self._answered_in_lost_tasks(lost, pids, recovered):
            done(outcome)
        return True

    def _answered_in_lost_tasks(
        self, lost: Sequence[tuple[str, Path]], pids: Collection[int], recovered: Collection[str]
    ) -> list[Outcome]:
        """The outcomes of the flows the workers answered (and archived) in tasks whose results died with the pool,
        from the store: claimed by a worker in this pass from one of the ``lost`` files, final, and not among the
        flows just ``recovered`` (counted already). Files of those tasks that were never claimed are still in the
        inbox: the rest of the pass takes them."""
        wanted = {(sender, display_name(path.name)) for sender, path in lost}
        if not wanted:
            return []
        return [
            Outcome(
                row["flow_id"],
                row["sender"],
                row["file_name"],
                FlowStatus(row["status"]),
                int(row["documents_total"] or 0),
                int(row["documents_accepted"] or 0),
            )
            for row in self.tracking.final_flows_of_processes(pids, self._started)
            if (row["sender"], row["file_name"]) in wanted and row["flow_id"] not in recovered
        ]


def run_batch(
    settings: Settings,
    *,
    clock: Clock | None = None,
    workers: int = 1,
    on_start: Callable[[int], None] | None = None,
    on_flow: Callable[[Outcome], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    keep_outcomes: bool = True,
) -> BatchReport:
    """Process everything that is ready once: recovered flows first, then new files, oldest first, with up to
    ``workers`` processes.

    Holds the workspace's processor lock for the run when ``workspace.exclusive`` (raises WorkspaceBusy if another
    processor holds it).
    """
    with processor_lock(settings, "edi batch"), Session(settings, clock, workers) as session:
        return session.run_once(
            on_start=on_start, on_flow=on_flow, should_stop=should_stop, keep_outcomes=keep_outcomes
        )


def recover(settings: Settings, *, clock: Clock | None = None, on_flow: Callable[[Outcome], None] | None = None) -> int:
    """Finish or roll back what crashed processes left and take back requeued flows, nothing else; return how many
    flows reached an outcome (``edi recover``; every run also starts with it)."""
    with processor_lock(settings, "edi recover"), Session(settings, clock) as session:
        return session.recover(on_flow=on_flow)


def _groups(ready: list[tuple[str, Ready]]) -> Iterator[list[tuple[str, Ready]]]:
    """Ready files in groups of at most :data:`GROUP_FLOWS` files and :data:`GROUP_BYTES` bytes, in order."""
    group: list[tuple[str, Ready]] = []
    size = 0
    for sender, item in ready:
        if group and (len(group) >= GROUP_FLOWS or size + item.size > GROUP_BYTES):
            yield group
            group, size = [], 0
        group.append((sender, item))
        size += item.size
    if group:
        yield group


def _claim_row(
    sender: str,
    item: Ready | None,
    flow_id: str,
    now: datetime,
    hand: str,
    name: str | None = None,
    claim: Claim | None = None,
) -> dict[str, Any]:
    """The row recorded for a flow just before its file is renamed into the spool (or taken back from failed/);
    ``name`` is the flow's file name when it is not the inbox file's (a deposit: the name its client gave)."""
    deposited: datetime | None
    if item is not None:
        name, received, deposited = name or item.path.name, now, datetime.fromtimestamp(item.mtime, UTC)
    else:
        assert claim is not None
        name, received, deposited = claim.name, claim.received_at, claim.deposited_at
    assert name is not None
    raw = os.fsencode(name)
    shown = display_name(name)
    return {
        "flow_id": flow_id,
        "sender": sender,
        "file_name": shown,
        "raw_name": raw.hex() if shown.encode("utf-8") != raw else None,
        "received_at": iso(received),
        "deposited_at": iso(deposited) if deposited else None,
        "claimed_by": hand,
    }


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
