"""Runs: ``init`` a workspace, one ``batch`` pass (what cron, ``edi watch`` and ``edi schedule`` all trigger),
``requeue``.

A batch first recovers what a crash (or ``edi requeue``) left in the spool, then claims every finished file of every
declared sender's inbox, oldest first, and takes each flow to its outcome. Reads the configuration it is given and
the workspace; raises :class:`EdiError` subclasses when the run cannot start (bad directory, unusable workspace).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from edi.clock import Clock, FlowIds, SystemClock
from edi.config import REJECT, Settings
from edi.errors import UnknownFlowError, WorkspaceError
from edi.ingest.scan import Ready, Skipped, scan_inbox
from edi.lock import processor_lock
from edi.model import FlowStatus
from edi.pipeline import Outcome, Processor, build_stages, limits_of
from edi.route.directory import load_directory
from edi.spool import Spool
from edi.tracking import Tracking
from edi.validate.catalogue import load_catalogue
from edi.validate.schematron import runner_for
from edi.workspace import Layout

log = structlog.get_logger()

STALE_TMP_SECONDS = 6 * 3600


@dataclass(frozen=True, slots=True)
class InitReport:
    """What ``edi init`` made."""

    root: Path
    created: list[Path]
    senders: list[str]
    queues: list[str]


@dataclass(slots=True)
class BatchReport:
    """What one batch run did."""

    outcomes: list[Outcome] = field(default_factory=list)
    recovered: int = 0
    young: int = 0  # files waiting out min_age_seconds
    incomplete: int = 0  # files that stopped growing but look cut short (a stalled upload), within their grace
    skipped: list[Skipped] = field(default_factory=list)
    stopped: bool = False  # asked to stop: files still ready were left for the next run

    @property
    def by_status(self) -> Counter[FlowStatus]:
        """Number of flows per final status."""
        return Counter(o.status for o in self.outcomes)

    @property
    def documents(self) -> int:
        """Documents processed in flows that reached an outcome."""
        return sum(o.documents for o in self.outcomes)

    @property
    def failed(self) -> int:
        """Flows that failed for our own reason."""
        return self.by_status[FlowStatus.FAILED]


def known_queues(settings: Settings) -> list[str]:
    """Every queue the configuration and directory can route to."""
    directory = load_directory(settings.routing.directory)
    names = [r.id for r in directory.recipients] + [r.queue for r in settings.routing.rules]
    if settings.routing.unknown_recipient != REJECT:
        names.append(settings.routing.unknown_recipient)
    return sorted(set(names))


def init_workspace(settings: Settings) -> InitReport:
    """Create the workspace folders, one inbox and acks folder per sender, the queues and the tracking store."""
    layout = settings.workspace.layout()
    senders = [s.id for s in settings.senders]
    queues = known_queues(settings)
    created = layout.create(senders, queues)
    Tracking(layout.database).close()
    return InitReport(layout.root, created, senders, queues)


class Session:
    """What processing needs, set up once for one run or for the life of ``edi watch``: the store, the stages
    (with their compiled schemas and rules), the spool. Close it when done."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.layout = settings.workspace.layout()
        self.layout.check_writable()
        self.directory = directory = load_directory(settings.routing.directory)
        self.catalogue = load_catalogue()
        self.layout.create([s.id for s in settings.senders])
        self.tracking = Tracking(self.layout.database)
        self.spool = Spool(self.layout)
        stages = build_stages(settings, self.tracking, directory, self.catalogue)
        self.processor = Processor(
            self.layout, self.spool, self.tracking, stages, self.clock, limits_of(settings.limits)
        )
        self.ids = FlowIds(self.clock)

    def close(self) -> None:
        """Release the store."""
        self.tracking.close()

    def warm_up(self) -> int:
        """Compile now every business-rule XSLT the configuration can ask for, so that the first file of a long run
        does not wait for it; return how many were compiled."""
        wanted = set(self.settings.validation.rules)
        for sender in self.settings.senders:
            wanted.update(sender.rules or ())
        for recipient in self.directory.recipients:
            wanted.update(recipient.rules)
        runner = runner_for(self.catalogue)
        entries = [e for e in self.catalogue.rules if e.rule_set in wanted]
        for entry in entries:
            runner.compiled(entry)
        return len(entries)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_once(
        self,
        *,
        settled: Collection[Path] = (),
        writing: Collection[Path] = (),
        on_start: Callable[[int], None] | None = None,
        on_flow: Callable[[Outcome], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BatchReport:
        """One pass: recover what is left in the spool, then claim and process what is ready, oldest first.

        ``settled`` files were closed or renamed into place by their writer (watch mode): they need not wait
        ``min_age_seconds``; ``writing`` files were written to and not closed since (watch mode): they wait like an
        upload cut short. ``should_stop`` is asked between flows: when it says yes, no new flow is taken.
        """
        report = BatchReport()
        clock, spool = self.clock, self.spool
        spool.sweep_tmp(STALE_TMP_SECONDS, clock.now().timestamp())
        orphans = list(spool.orphans())
        ready, report.young, report.incomplete, report.skipped = _scan(
            self.settings, self.layout, clock, settled, writing
        )
        for skipped in report.skipped:
            log.warning("inbox entry skipped", path=str(skipped.path), why=skipped.why)
        if on_start:
            on_start(len(orphans) + len(ready))
        for claim in orphans:
            if should_stop():
                claim.release()
                continue
            log.info("recovering flow", flow_id=claim.flow_id, sender=claim.sender)
            report.recovered += 1
            _done(report, self.processor.process(claim), on_flow)
        for sender, item in ready:
            if should_stop():
                report.stopped = True
                break
            claimed = spool.claim(item.path, sender, self.ids.new(), clock.now())
            if claimed is not None:
                _done(report, self.processor.process(claimed), on_flow)
        return report


def run_batch(
    settings: Settings,
    *,
    clock: Clock | None = None,
    on_start: Callable[[int], None] | None = None,
    on_flow: Callable[[Outcome], None] | None = None,
) -> BatchReport:
    """Process everything that is ready once: recovered flows first, then new files, oldest first.

    Holds the workspace's processor lock for the run when ``workspace.exclusive`` (raises WorkspaceBusy if another
    processor holds it).
    """
    with processor_lock(settings, "edi batch"), Session(settings, clock) as session:
        return session.run_once(on_start=on_start, on_flow=on_flow)


def _done(report: BatchReport, outcome: Outcome, on_flow: Callable[[Outcome], None] | None) -> None:
    report.outcomes.append(outcome)
    if on_flow:
        on_flow(outcome)


def _scan(
    settings: Settings, layout: Layout, clock: Clock, settled: Collection[Path] = (), writing: Collection[Path] = ()
) -> tuple[list[tuple[str, Ready]], int, int, list[Skipped]]:
    now = clock.now().timestamp()
    ready: list[tuple[str, Ready]] = []
    young = incomplete = 0
    skipped: list[Skipped] = []
    declared = {s.id for s in settings.senders}
    for sender in sorted(declared):
        scan = scan_inbox(
            layout.sender_inbox(sender),
            min_age=settings.intake.min_age_seconds,
            ignore=settings.intake.ignore,
            now=now,
            grace=settings.intake.incomplete_grace_seconds,
            settled=settled,
            writing=writing,
        )
        ready += [(sender, item) for item in scan.ready]
        young += scan.young
        incomplete += scan.incomplete
        skipped += scan.skipped
    try:
        for entry in os.scandir(layout.inbox):
            if entry.name not in declared and not entry.name.startswith("."):
                skipped.append(Skipped(Path(entry.path), "not the inbox of a declared sender"))
    except FileNotFoundError:
        pass
    ready.sort(key=lambda pair: (pair[1].mtime, pair[0], os.fsencode(pair[1].path.name)))
    return ready, young, incomplete, skipped


def requeue(
    settings: Settings, flow_ids: list[str], *, all_failed: bool = False, clock: Clock | None = None
) -> list[str]:
    """Put failed flows back in the spool (the next batch processes them); return the ids requeued."""
    clock = clock or SystemClock()
    layout = settings.workspace.layout()
    layout.check_writable()
    spool = Spool(layout)
    tracking = Tracking(layout.database)
    try:
        wanted = spool.failed_ids() if all_failed else [_failed_id(spool, tracking, f) for f in flow_ids]
        done = []
        for flow_id in wanted:
            if spool.requeue(flow_id):
                tracking.record_requeued(flow_id, clock.now())
                done.append(flow_id)
        return done
    finally:
        tracking.close()


def _failed_id(spool: Spool, tracking: Tracking, given: str) -> str:
    if given in spool.failed_ids():
        return given
    try:
        flow_id = tracking.resolve(given)
    except UnknownFlowError:
        raise UnknownFlowError(
            f"no failed flow {given!r} (see `edi flows --status IN_EN_ATTENTE_RETRAITEMENT`)"
        ) from None
    if flow_id not in spool.failed_ids():
        raise WorkspaceError(
            f"flow {flow_id} is not in failed/ (status {tracking.status(flow_id)}): nothing to requeue"
        )
    return flow_id
