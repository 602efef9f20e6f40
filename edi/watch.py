"""``edi watch``: process files within a second of arriving, by triggering the same pass ``edi batch`` runs.

Filesystem events on the inbox (watchdog: inotify on Linux) only trigger a pass; what is ready is decided, as
always, by the scan. A file its writer closed after writing, or renamed into place, is taken as soon as it is
structurally whole, without waiting ``min_age_seconds``; other events (every write of an upload) only wake the loop.
A periodic rescan catches what a filesystem does not report (network mounts). SIGTERM or SIGINT stops taking new
flows; the flow in hand is finished and the process exits 0. Holds the workspace's processor lock for its lifetime.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import FileClosedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from edi.clock import Clock
from edi.config import Settings
from edi.lock import processor_lock
from edi.outgoing import send_outgoing
from edi.runner import BatchReport, Session

log = structlog.get_logger()
logging.getLogger("watchdog").setLevel(logging.CRITICAL)  # its shutdown race chatter is not news


def quick_move_pairing() -> None:
    """watchdog holds every IN_MOVED_FROM for 0.5 s, hoping to pair it with its IN_MOVED_TO, and every event
    behind it waits too: each claim (a rename out of the inbox) would delay the next file's events by half a second.
    The two halves of one rename are read together from inotify, so a short window pairs them just as well."""
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not Linux, or another watchdog: its own defaults apply
        return
    InotifyMoveEventGrouper.delay = 0.02


YOUNG_POLL = 0.25  # seconds between looks while a file waits out min_age_seconds
STALLED_POLL = 5.0  # seconds between looks while an upload looks cut short


@dataclass(slots=True)
class WatchSummary:
    """What a watch did before it stopped."""

    passes: int = 0
    flows: int = 0
    failed: int = 0


class _Inbox(FileSystemEventHandler):
    """Collects the files writers have finished with (closed after writing, renamed into place) and those still
    being written (written to, not closed since), and wakes the loop on any change."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.settled: set[Path] = set()
        self.writing: set[Path] = set()
        self.guard = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Note closed-after-write and renamed-into-place files, and files written to; wake the loop for
        everything."""
        if event.event_type in ("opened", "closed_no_write"):
            return  # reading a file (ours included) is no news
        if not event.is_directory:
            with self.guard:
                source = _path(event.src_path)
                if isinstance(event, FileClosedEvent):
                    self.writing.discard(source)
                    self.settled.add(source)
                elif isinstance(event, FileMovedEvent):
                    self.writing.discard(source)
                    if event.dest_path:  # renamed into place (from the inbox, or from outside it)
                        self.settled.add(_path(event.dest_path))
                elif event.event_type == "deleted":
                    self.writing.discard(source)
                elif event.event_type == "modified":  # data written: the writer may not be done
                    self.writing.add(source)
                    self.settled.discard(source)
        self.wake.set()

    def take_settled(self) -> tuple[set[Path], frozenset[Path]]:
        """The settled files noted since the last call, and the files being written now."""
        with self.guard:
            taken, self.settled = self.settled, set()
            return taken, frozenset(self.writing)


def _path(path: str | bytes) -> Path:
    return Path(path.decode() if isinstance(path, bytes) else path)


def new_observer() -> Any:
    """An observer that reports a file renamed in from an unwatched folder as a move (not as a creation, which
    watchdog's default inotify emitter makes of it): that rename is the writer saying "done"."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux: the platform's observer, and min_age for renamed-in files
        return Observer()
    return InotifyObserver(generate_full_events=True)


def watch(
    settings: Settings,
    *,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    on_pass: Callable[[BatchReport], None] | None = None,
    handle_signals: bool = True,
    workers: int = 1,
) -> WatchSummary:
    """Run until ``stop`` is set (SIGTERM / SIGINT set it when ``handle_signals``), with up to ``workers``
    processes when a pass has enough to do."""
    stop = stop or threading.Event()
    wake = threading.Event()
    summary = WatchSummary()
    previous: dict[int, Any] = {}
    if handle_signals:

        def on_signal(signum: int, frame: object) -> None:
            # No logging here: the signal may land while this very thread holds the log stream's lock.
            stop.set()
            wake.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        with processor_lock(settings, "edi watch"), Session(settings, clock, workers) as session:
            inbox = _Inbox(wake)
            quick_move_pairing()
            observer = new_observer()
            observer.schedule(inbox, str(session.layout.inbox), recursive=True)
            observer.start()  # before warming up: files closed meanwhile are noted, not missed
            session.warm_up()
            log.info("watching", inbox=str(session.layout.inbox), rescan_seconds=settings.watch.rescan_seconds)
            try:
                _loop(session, inbox, wake, stop, settings.watch.rescan_seconds, summary, on_pass)
            finally:
                observer.stop()
                observer.join(timeout=10)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    log.info("stopped", passes=summary.passes, flows=summary.flows, failed=summary.failed)
    return summary


def _loop(
    session: Session,
    inbox: _Inbox,
    wake: threading.Event,
    stop: threading.Event,
    rescan: float,
    summary: WatchSummary,
    on_pass: Callable[[BatchReport], None] | None,
) -> None:
    while not stop.is_set():
        wake.clear()
        settled, writing = inbox.take_settled()
        report = session.run_once(
            settled=settled, writing=writing, should_stop=stop.is_set, keep_outcomes=False, second_look=False
        )
        summary.passes += 1
        summary.flows += report.flows
        summary.failed += report.failed
        if on_pass:
            on_pass(report)
        # the notifications and webhook calls due, in this thread, between two passes (a server or a callback that
        # is down is logged; the next pass is not held up any longer)
        send_outgoing(session.settings, clock=session.clock, store=session.tracking, should_stop=stop.is_set)
        # Files waiting out min_age become ready by the clock alone, and stalled uploads may resume without an
        # event the filesystem reports: look again soon for the first, now and then for the second.
        delay = YOUNG_POLL if report.young else min(rescan, STALLED_POLL) if report.incomplete else rescan
        wake.wait(timeout=delay)
