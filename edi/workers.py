"""Worker processes for ``--workers N``: the main process and N - 1 others, each a whole processor of its own, fed
groups of inbox files.

Each worker (a ``spawn``-ed process, so nothing is shared by accident) opens its own :class:`edi.runner.Session`:
its own connection to the tracking store, its own compiled schemas and rule sets, its own hand in the spool. The
main process scans the inboxes, hands out tasks of :data:`GROUPS_PER_TASK` groups of ready files, at most
:data:`TASKS_QUEUED_PER_WORKER` per worker at a time (memory stays flat), and processes groups itself in between (so
it works while the others start); a worker claims each file by renaming it into its hand (a file another process took
first is simply not its), takes a task's groups to their outcomes as the main process does (a group's barrier runs in
the background while the next group is decided) and sends the outcomes back; what it answered is made durable and
archived with its next group, or once it has been idle for a moment, or at its exit. Workers ignore SIGINT and
SIGTERM: the parent decides when to stop, lets the groups in hand finish, then closes the pool. A worker dies with
its parent (Linux ``PR_SET_PDEATHSIG``), so a killed parent never leaves a worker holding flows; whatever a dead
worker held is in its hand, which recovery takes back. When a worker dies, the executor gives up every task out
(``BrokenProcessPool``) and asks the others to end with SIGTERM, which they ignore: the pool kills them (SIGKILL;
what they held is recovered like the dead one's), or one blocked sending a result nobody reads would hold the run
forever, and it keeps the files of every task whose outcomes were lost (:attr:`WorkerPool.lost`), so that the
flows answered in them are still counted. A worker whose session closed cleanly ends its process as soon
as its last finalizer has run, without the interpreter's teardown (freeing its compiled schemas and modules took
~70 ms, which the parent spent waiting at the end of every run with workers).

Reads the configuration it is given; raises nothing of its own (a dead worker marks the pool ``broken``).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from edi.config import Settings
from edi.errors import EdiError
from edi.ingest.scan import Ready
from edi.logs import configure_logging, current_level

if TYPE_CHECKING:
    from edi.processor import Outcome
    from edi.runner import Session

log = structlog.get_logger()

PR_SET_PDEATHSIG = 1
_session: Session | None = None  # in a worker: its own session, for its whole life
_lock = threading.Lock()  # in a worker: its session is used by one thread at a time (groups, or the idle flush)
_idle: threading.Timer | None = None  # in a worker: the flush due once it has been idle for a while
_closed = False  # in a worker: its session closed cleanly at exit (everything durable): nothing left to tear down
IDLE_FLUSH_SECONDS = 0.2
# groups in one task: a worker waits for the disk only at the end of a task (the barrier of its last group, which has
# nothing left to overlap with), not once per group: ~140 us per flow, 8 % of a worker's time, with a task of one
# group (syncfs of 4.4 ms per group of 32); with 2 groups the worker spent 0.33 to 0.38 s of ~9 s in that barrier over
# 10,000 flows, with 4 groups 0.16 to 0.17 s. With groups of 128 (20,000 flows, two workers, medians of four rounds):
# 2 groups a task 1,301 flows/s against 1,370 with 4 in one set; 8 groups 1,387 against 1,422 with 4 in another (and
# idler workers at the end of the run)
GROUPS_PER_TASK = 4
# tasks handed to each worker at a time: one in hand, one waiting. The main process looks for finished tasks only
# between two groups of its own (28 ms each), and fills their places then: a worker waited for work 0.07 s in a
# 10,000-flow run with 2 workers (10.4 s). Queued groups are file names, not claimed yet: memory stays flat.
TASKS_QUEUED_PER_WORKER = 2

Wire = list[tuple[str, bytes, int, float]]  # a group as sent to a worker: (sender, path, size, mtime) per file
# what a task sends back: the outcomes of its flows, the files it could not claim (path, why), and the error that
# stopped it when the workspace could not be used (the groups before it were answered: their outcomes are counted)
TaskResult = tuple[list["Outcome"], list[tuple[bytes, str]], EdiError | None]


def default_workers(settings: Settings, cores: int | None = None) -> int:
    """The workers when none are asked for: one per core, or one per two cores (at least one) when business rules
    run, since each worker's rules processes (one per syntax) run beside it. On two cores with XSD + EN 16931, two
    workers made 0.76-0.99x what one made (benchmarks/bench_batch.py; docs/performance.md)."""
    cores = cores if cores is not None else os.cpu_count() or 1
    return max(1, cores // 2 if settings.business_rules else cores)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError, TypeError):  # not Linux: a worker notices its parent is gone when its pipe closes
        pass
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(1)


def _start(settings: Settings, level: str, parent: int) -> None:
    """Set up a worker process: die with the parent, leave signals to it, log as it does, open a session."""
    global _session
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(level)
    from edi.runner import Session, collect_less

    collect_less()
    _session = Session(settings)  # its rules process compiles ahead what the last pass used; the rest on first use
    multiprocessing.util.Finalize(None, _close, exitpriority=10)
    multiprocessing.util.Finalize(None, _leave, exitpriority=-100)  # after every other finalizer


def _run(groups: list[Wire]) -> TaskResult:
    """In a worker: claim and process the groups of a task, each group's barrier running while the next group is
    decided; the outcomes of them all, the files it could not claim with why, and the error that stopped it, if the
    workspace could not be used (the groups after it are not claimed). What it answered is made durable and archived
    with the worker's next group, or once the worker has had nothing to do for ``IDLE_FLUSH_SECONDS`` (the pass is
    over), or at its exit."""
    global _idle
    assert _session is not None
    with _lock:
        if _idle is not None:
            _idle.cancel()
        outcomes: list[Outcome] = []
        error: EdiError | None = None
        for group in groups:
            items = [(sender, Ready(Path(os.fsdecode(path)), size, mtime)) for sender, path, size, mtime in group]
            try:
                outcomes += _session.claim_and_process(items)
            except EdiError as exc:
                error = exc
                break
        outcomes += _session.processor.finish()  # the last group's: its outcomes go back with its task
        _session.log_compiles()
        unclaimable = [(os.fsencode(path), why) for path, why in _session.unclaimable.items()]
        _session.unclaimable = {}
        _idle = threading.Timer(IDLE_FLUSH_SECONDS, _flush)
        _idle.daemon = True
        _idle.start()
    return outcomes, unclaimable, error


def _ready() -> None:
    """In a worker: nothing; a task that only makes the pool start a process (:meth:`WorkerPool.start`)."""


def _close() -> None:
    """At a worker's exit: no flush left to come; make everything durable and let the session go."""
    global _closed
    with _lock:
        if _idle is not None:
            _idle.cancel()
        if _session is not None:
            _session.close()
            _closed = True


def _leave() -> None:
    """At a worker's exit, the last finalizer: once its session closed cleanly (:func:`_close`), flush the standard
    streams and end the process now. What is left is the interpreter's teardown, which frees every object one by
    one (compiled schemas: ~15 ms each) while the parent waits for the process to end. If the session did not close
    cleanly, the process exits the usual way."""
    if not _closed:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _flush() -> None:
    with _lock:
        if _session is not None:
            _session.processor.flush()


class WorkerPool:
    """``workers`` worker processes besides the main one, started as work comes (or at once: :meth:`start`)."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.workers = workers
        self.broken = False
        self.lost: list[tuple[str, Path]] = []  # (sender, inbox file) of each task given up when a worker died
        self.unclaimable: dict[Path, str] = {}  # inbox files the workers could not claim, and why (the caller empties)
        self.pids: set[int] = set()  # every worker process started (their hands are named after them)
        self._queued = TASKS_QUEUED_PER_WORKER * workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(settings, current_level(), os.getpid()),
        )

    def start(self) -> None:
        """Start every worker process now (each imports edi, opens its session and compiles its schemas: ~0.35 s,
        and starts its rules process, which compiles ahead the stylesheets the last pass used),
        not when the first tasks are handed out: they get ready while this process recovers and scans."""
        for _ in range(self.workers):  # the executor starts a process per task submitted while none is idle
            try:
                self._executor.submit(_ready)
            except BrokenProcessPool:
                self.broken = True
                return

    def run(
        self,
        groups: deque[list[tuple[str, Ready]]],
        should_stop: Callable[[], bool],
        here: Callable[[list[tuple[str, Ready]]], list[Outcome]],
        more: Callable[[Collection[Path]], list[list[tuple[str, Ready]]]] | None = None,
        ahead: tuple[Callable[[Collection[Path]], None], int] | None = None,
    ) -> Iterator[Outcome]:
        """Hand the groups out, :data:`GROUPS_PER_TASK` to a task, at most :data:`TASKS_QUEUED_PER_WORKER` tasks
        per worker at a time and never more than the workers' share of the groups left (theirs and those not handed
        out: the main process is one of the workers + 1), and take the next group ``here`` (in the main process)
        whenever the workers have enough; yield outcomes as tasks finish. When the groups run out, ask ``more`` for
        others (given the files of the tasks handed out and not finished, which it must not give again) while the
        workers still have work, until it gives none; with ``ahead`` (a function and a number of groups), tell the
        function once the groups left are that few, giving it the files handed out and not finished and those left
        (the next scan may start then, in the background). Stops taking groups when ``should_stop`` says so, a
        worker dies (``broken``) or the workspace cannot be used (an :class:`EdiError` from a group, here or in a
        worker: the store cannot record claims), and returns once the tasks out are done, their outcomes yielded;
        then raises that error, if any. Groups are taken from the left of ``groups`` itself, so that the caller does
        not keep those handed out alive."""
        self.error: EdiError | None = None
        todo = groups
        # a task handed out -> its (sender, file) pairs and its number of groups
        pending: dict[Future[TaskResult], tuple[list[tuple[str, Path]], int]] = {}
        told = False  # ``ahead`` was told about the groups in ``todo``

        def in_flight() -> list[Path]:
            return [path for files, _ in pending.values() for _, path in files]

        def stopping() -> bool:
            return self.broken or self.error is not None or should_stop()

        while True:
            finished = [(f, pending[f][0]) for f in pending if f.done()]
            for future, _ in finished:  # their places are free before the next tasks are handed out
                del pending[future]
            while todo and len(pending) < self._queued and not stopping():
                size = task_groups(len(todo), sum(count for _, count in pending.values()), self.workers)
                if not size:
                    break  # the workers hold their share of what is left: the rest is this process's
                task = [todo.popleft() for _ in range(size)]
                try:
                    future = self._executor.submit(_run, [_wire(group) for group in task])
                except BrokenProcessPool:
                    self.broken = True
                    break
                self.pids.update(self._processes())
                pending[future] = ([(sender, r.path) for group in task for sender, r in group], len(task))
            for future, files in finished:
                yield from self._outcomes(future, files)
            if ahead is not None and not told and len(todo) <= ahead[1] and more is not None and not stopping():
                told = True
                ahead[0](in_flight() + [r.path for g in todo for _, r in g])
            if not todo and more is not None and not stopping():
                todo.extend(more(in_flight()) or ())
                told = False
                if not todo:
                    more = None  # nothing more in this pass
                continue  # hand the new groups out first
            if todo and not stopping():
                try:
                    yield from here(todo.popleft())
                except EdiError as exc:  # the tasks out are still answered and counted: then it is raised
                    self.error = exc
            elif pending:
                wait(pending, return_when=FIRST_COMPLETED)  # taken at the top of the loop
            elif self.error is not None:
                raise self.error
            else:
                return

    def take_unclaimable(self) -> dict[Path, str]:
        """The files the workers could not claim since the last call, with why (the pool forgets them)."""
        taken, self.unclaimable = self.unclaimable, {}
        return taken

    def _processes(self) -> list[int]:
        """The pids of the worker processes now (the executor keeps them in a private dict: none if it changed)."""
        processes = getattr(self._executor, "_processes", None)
        try:
            return list(processes or ())
        except RuntimeError:  # changed while it was read (copied in one step under the GIL: not expected)
            return []

    def _outcomes(self, future: Future[TaskResult], files: list[tuple[str, Path]]) -> list[Outcome]:
        try:
            outcomes, unclaimable, error = future.result()
            self.unclaimable.update((Path(os.fsdecode(path)), why) for path, why in unclaimable)
            if error is not None:
                self.error = self.error or error
            return outcomes
        except BrokenProcessPool:
            self.broken = True
            self.lost += files
        except EdiError as exc:  # the workspace cannot be used (the store cannot record): the pass stops here
            self.error = self.error or exc
        except Exception as exc:  # a bug in a worker: its claimed flows stay in its hand for recovery
            log.error("a group failed in a worker", error=f"{type(exc).__name__}: {exc}")
        return []

    def close(self) -> None:
        """Let the workers finish what they hold and exit; when one died (the pool is broken), kill the others first:
        they ignore the SIGTERM the executor sends them, and one may be blocked sending a result that nobody reads
        any more (the executor would wait for it forever)."""
        if self.broken:  # the executor's own processes, not reaped yet: no pid here can be another process's
            for pid in self._processes():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._executor.shutdown(wait=True, cancel_futures=True)


def task_groups(left: int, held: int, workers: int) -> int:
    """How many groups the next task gets: :data:`GROUPS_PER_TASK`, or fewer at the end of a pass, so that the
    workers never hold more than their share of what is left (``left`` groups not handed out, ``held`` handed out
    and not finished; the main process makes ``workers`` + 1). Without it, the workers could hold two whole tasks
    while the main process, its last group done, waits for them. 0: they hold their share already."""
    share = (left + held) * workers // (workers + 1) - held
    return max(0, min(GROUPS_PER_TASK, share))


def _wire(group: list[tuple[str, Ready]]) -> Wire:
    return [(sender, os.fsencode(r.path), r.size, r.mtime) for sender, r in group]
