"""``edi schedule``: run the jobs ``[schedule]`` declares (batch passes, retention, the daily report, notifications:
``notify`` sends what is due, ``digest`` the digests of the days that ended too) without crontabs, with APScheduler 3.
A batch pass sends the immediate notifications it queued once it is done, and calls the webhooks that are due.

Jobs run one at a time in one worker thread, so two batch passes never overlap, and a job that is still running
when it is due again is not started twice. A run missed while the process was down (or busy) is run once when it
can, within the job's ``misfire_grace_seconds`` (several missed runs coalesce into one). Each run is logged and kept
in the tracking store with its outcome (ok, failed, or skipped when another processor holds the workspace);
``edi schedule --list`` shows the next run of each job and how its last run went. SIGTERM or SIGINT lets the running
job finish its flow in hand and stops.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from edi import cron
from edi.clock import Clock, SystemClock
from edi.config import JobSettings, Settings
from edi.errors import ConfigError, WorkspaceBusy
from edi.jobs import day_report, retention
from edi.lock import processor_lock
from edi.model import FlowStatus
from edi.notify.send import send_due
from edi.outgoing import send_outgoing
from edi.runner import Session
from edi.store import history, open_store

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Planned:
    """A job as ``edi schedule --list`` shows it."""

    name: str
    job: str
    trigger: str
    next_run: datetime | None
    last: dict[str, Any] | None


def timezone_of(settings: Settings) -> tzinfo:
    """The time zone cron lines are read in (edi.config has checked that it exists)."""
    return ZoneInfo(settings.schedule.timezone)


def trigger_of(job: JobSettings, zone: tzinfo, now: datetime | None = None) -> BaseTrigger:
    """The APScheduler trigger of a job (an interval counts from ``now``, by default the real time). A cron line is
    read by edi.cron (which edi.config has checked it with): APScheduler is given only numbers and day names, so
    that it reads the line as a crontab does (its own weekday numbers start from Monday = 0)."""
    if job.cron is not None:
        line = cron.parse(job.cron)
        weekdays = "*" if line.weekday is None else ",".join(cron.WEEKDAYS[d] for d in line.weekday)
        return CronTrigger(
            minute=_listed(line.minute),
            hour=_listed(line.hour),
            day=_listed(line.day),
            month=_listed(line.month),
            day_of_week=weekdays,
            timezone=zone,
        )
    assert job.every_seconds is not None
    start = None if now is None else now + timedelta(seconds=job.every_seconds)
    return IntervalTrigger(seconds=job.every_seconds, timezone=zone, start_date=start)


def _listed(values: tuple[int, ...] | None) -> str:
    return "*" if values is None else ",".join(map(str, values))


def plan(settings: Settings, clock: Clock | None = None) -> list[Planned]:
    """Every job with its next run time and its last outcome."""
    now = (clock or SystemClock()).now()
    zone = timezone_of(settings)
    layout = settings.workspace.layout()
    last: dict[str, dict[str, Any]] = {}
    if layout.initialised or history(layout):  # a workspace with a lost store is refused here, before any job
        store = open_store(layout)
        try:
            last = store.last_runs()
        finally:
            store.close()
    planned = []
    for job in settings.schedule.jobs:
        trigger = trigger_of(job, zone, now)
        shown = f"cron {job.cron} ({settings.schedule.timezone})" if job.cron else f"every {job.every_seconds:g} s"
        planned.append(Planned(job.label, job.job, shown, trigger.get_next_fire_time(None, now), last.get(job.label)))
    return planned


class Scheduler:
    """The jobs of one configuration, ready to run."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        if not settings.schedule.jobs:
            raise ConfigError("no [[schedule.jobs]] in the configuration: nothing to schedule")
        self.settings = settings
        self.clock = clock or SystemClock()
        self.stop = threading.Event()
        self._stopping = threading.Lock()
        self._stopper: threading.Thread | None = None
        zone = timezone_of(settings)
        self.scheduler = BlockingScheduler(
            timezone=zone,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        for job in settings.schedule.jobs:
            self.scheduler.add_job(
                self._runner(job),
                trigger_of(job, zone),
                id=job.label,
                name=job.label,
                misfire_grace_time=max(1, math.ceil(job.misfire_grace_seconds)),  # None would be "however late"
            )

    def _runner(self, job: JobSettings) -> Callable[[], None]:
        actions: dict[str, Callable[[], str]] = {
            "batch": self._batch,
            "retention": lambda: _retention_detail(retention(self.settings, self.clock)),
            "report": lambda: f"written to {day_report(self.settings, clock=self.clock)[0]}",
            "notify": lambda: self._notify(digests=False),
            "digest": lambda: self._notify(digests=True),
        }
        action = actions[job.job]

        def run() -> None:
            started = self.clock.now()
            try:
                outcome, detail = "ok", action()
            except WorkspaceBusy as exc:
                outcome, detail = "skipped", str(exc)
            except Exception as exc:  # a job's failure is logged and kept, the scheduler goes on
                outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
                log.error("job failed", job=job.label, exc_info=exc)  # a short traceback, without locals (edi.logs)
            finished = self.clock.now()
            log.info("job", job=job.label, outcome=outcome, detail=detail, seconds=(finished - started).total_seconds())
            self._record(job.label, started, finished, outcome, detail)

        return run

    def _batch(self) -> str:
        with processor_lock(self.settings, "edi schedule (batch)"), Session(self.settings, self.clock) as session:
            report = session.run_once(should_stop=self.stop.is_set)
        counts = report.by_status
        integrated, partial = counts[FlowStatus.INTEGRATED], counts[FlowStatus.PARTIALLY_INTEGRATED]
        rejected = counts[FlowStatus.REJECTED]
        left = f", {len(report.unclaimable)} left behind (cannot be taken: see the log)" if report.unclaimable else ""
        detail = (
            f"{report.flows} flows: {integrated} integrated, {partial} partial, {rejected} rejected, "
            f"{report.failed} failed{left}"
        )
        # the pass's immediate notifications and its webhook calls, after it: the batch's own outcome stands
        return "; ".join([detail, *send_outgoing(self.settings, clock=self.clock, should_stop=self.stop.is_set)])

    def _notify(self, digests: bool) -> str:
        """The ``notify`` job (what is due) and the ``digest`` job (first the digests of the days that ended)."""
        if not self.settings.notifications.enabled:
            return "notifications are off ([notifications] has no smtp_host)"
        return send_due(self.settings, clock=self.clock, digests=digests).summary()

    def _record(self, job: str, started: datetime, finished: datetime, outcome: str, detail: str) -> None:
        layout = self.settings.workspace.layout()
        if not layout.initialised:
            return
        try:
            store = open_store(layout)
            try:
                store.record_run(job, started, finished, outcome, detail)
            finally:
                store.close()
        except Exception as exc:  # the run itself is logged already
            log.error("cannot record the run", job=job, error=str(exc))

    def run(self, handle_signals: bool = True) -> None:
        """Run the jobs until SIGTERM / SIGINT (or ``stop()``)."""
        previous: dict[int, Any] = {}
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda signum, frame: self.request_stop())
        try:
            for planned in plan(self.settings, self.clock):
                log.info("scheduled", job=planned.name, trigger=planned.trigger, next_run=str(planned.next_run))
            if self.stop.is_set():  # asked to stop while starting
                return
            self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
            self.scheduler.start()
            if self._stopper is not None:
                self._stopper.join()  # the running job has finished
            log.info("stopped")
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def request_stop(self) -> None:
        """Stop taking new flows and new runs; the running job finishes its flow in hand. Called from a signal
        handler, so it neither logs nor waits (the signal may land while this thread holds the log stream's lock,
        which the running job may need): the scheduler is shut down from another thread, which ``run`` joins."""
        self.stop.set()
        with self._stopping:
            if self.scheduler.running and self._stopper is None:  # else run() sees the request as it starts
                self._stopper = threading.Thread(target=self._shutdown, kwargs={"wait": True})
                self._stopper.start()

    def _started(self, event: object) -> None:
        if self.stop.is_set():  # the stop request came while the scheduler was starting
            self._shutdown(wait=False)

    def _shutdown(self, wait: bool) -> None:
        with contextlib.suppress(SchedulerNotRunningError):  # the other way of stopping got there first
            self.scheduler.shutdown(wait=wait)


def _retention_detail(report: Any) -> str:
    return f"{report.flows} flows older than {report.cutoff:%Y-%m-%d} ({report.action})"
