"""The rules process: a child process that runs the business rule layers of documents, killed when one takes longer
than its time budget (``limits.validate_seconds``).

Saxon runs native code that a Python signal cannot interrupt, and a thread cannot be stopped: the only way to take a
document's time back is to run its rule layers in a process of their own and kill it. :class:`RulesProcess` starts
one (a new interpreter, ``python -c``, sharing nothing but a socket: unlike a ``multiprocessing`` spawn it does not
import the parent's main module, so a script that uses edi as a library needs no ``__main__`` guard) when first
needed (or ahead: :meth:`RulesProcess.prepare_ahead` starts it and has it compile the XSLTs a run expects while the
parent gets on with the rest), has it compile each XSLT once (the compile does not count against a document's
budget; each compile is kept in :attr:`RulesProcess.compiles` for the caller to log), then hands it a document and
the XSLTs to run, and reads each layer's SVRL report back as it comes. Past the budget it kills the process (SIGKILL)
and says which layer ran out of time; the next document gets a new process, which compiles again what it is asked to
run. The child parses each document once for all its layers.

The child runs in a session of its own (a Ctrl-C for ``edi batch`` must not fail the document being validated: the
parent decides when to stop), exits when its socket closes (its parent is gone), and is ended by its own SIGALRM
(the default action, which no code in the process can delay) a few seconds past the budget, should its parent not
be there to kill it.

Documents may also be handed over without waiting (:meth:`RulesProcess.submit`), so that the child runs the rules of
the next documents while the parent gets on with the rest, and their runs read later (:meth:`RulesProcess.collect`),
in the order handed. The child says when it starts on a document and when it finishes each layer, on the clock both
processes share (``CLOCK_MONOTONIC``): a document's budget runs from when the child starts on it, whenever the parent
reads, and a layer finished past it has timed out as one still running has (the child is then killed). The documents
a killed (or dead) child had in hand and had not started on are handed to the next one: only the document it was on
fails. A document two children in a row ended before starting on, with no document to blame, dies with them.

Reads XSLTs through :class:`edi.validate.saxon.Saxon`; writes nothing. :meth:`RulesProcess.prepare`,
:meth:`RulesProcess.run` and :meth:`RulesProcess.submit` raise :class:`RulesProcessError` when the process cannot be
started or is found dead between documents; a death during a run is an outcome of that run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from edi.validate.saxon import SILENT_THREADS, Saxon, short

BACKSTOP_SECONDS = 5.0  # past the budget, the child kills itself if its parent did not
DONE, FAILED, TIMED_OUT, NOT_STARTED, DIED = "done", "failed", "timed out", "not started", "died"


class RulesProcessError(Exception):
    """The rules process could not be started, or died between documents."""


@dataclass(frozen=True, slots=True)
class LayerRun:
    """What became of one XSLT on one document: ``done`` (``text`` is the SVRL report), ``failed`` (a dynamic error,
    ``text`` says which), ``timed out`` (the budget ran out during it), ``not started`` (it ran out before) or
    ``died`` (the process died during it; ``text`` says how)."""

    outcome: str
    text: str = ""


class Ticket:
    """A document handed to the rules process (:meth:`RulesProcess.submit`), whose runs are read when asked for
    (:meth:`RulesProcess.collect`): kept, with the document, until then, to be handed again to a new process should
    the one it was handed to die (or be killed for another document) before it started on it."""

    __slots__ = ("document", "lost", "runs", "seconds", "xslts")

    def __init__(self, xslts: Sequence[Path], document: bytes, seconds: float) -> None:
        self.xslts = list(xslts)
        self.document: bytes | None = document
        self.seconds = seconds
        self.runs: list[LayerRun] | None = None  # known once read (or given up on)
        self.lost = 0  # rules processes that ended before starting on it, with no document of theirs to blame

    def done(self, runs: list[LayerRun]) -> None:
        self.runs, self.document = runs + [LayerRun(NOT_STARTED)] * (len(self.xslts) - len(runs)), None


class _Writer:
    """Sends the parent's requests in a thread of their own, in order: the parent never waits for the child to read
    (it may be busy with the documents before), and so the two never wait for each other (the child, answering, for
    the parent to read; the parent, sending, for the child to). A send that fails means the child is gone, which
    the parent learns when it reads."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        (name,) = SILENT_THREADS  # it never writes to standard error: Saxon's diagnostics may be kept off it
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def send(self, message: object) -> None:
        self._queue.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self) -> None:
        """Stop once what is queued is sent (or found unsendable: call it once the child is gone)."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        failed = False
        while (data := self._queue.get()) is not None:
            if not failed:
                try:
                    self._connection.send_bytes(data)
                except OSError:
                    failed = True


class RulesProcess:
    """The parent's handle on its rules process (one at a time; started on first use, replaced after a kill)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._writer: _Writer | None = None
        self._prepared: dict[Path, str | None] = {}
        self._waiting: deque[list[Path] | Ticket] = deque()  # compile requests and tickets sent, not yet read
        self._unsent: list[Ticket] = []  # tickets whose process ended before it started on them: to send again
        self.ran: dict[Path, None] = {}  # every XSLT asked to run on a document, in the order first asked
        self.compiles: list[tuple[Path, int, float]] = []  # (XSLT, child's pid, seconds) of each compile: the
        # caller takes them (a new child compiles again what it is asked)
        self._lock = threading.Lock()  # one caller at a time
        self.backstop = BACKSTOP_SECONDS
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        """The process id of the running child, if any."""
        return None if self._process is None else self._process.pid

    def prepare(self, xslts: Sequence[Path]) -> dict[Path, str | None]:
        """Have the child compile ``xslts`` (what it has not yet); why each cannot be, or None. No time limit."""
        with self._lock:
            return self._prepare(xslts)

    def prepare_ahead(self, xslts: Sequence[Path]) -> None:
        """Start the child now and have it compile ``xslts`` (what it has not yet, in this order) without waiting:
        the answers are read when an XSLT is first needed. Raises nothing: a child that cannot start is started
        again (and its failure told) when first needed."""
        with self._lock:
            try:
                self._ask(list(dict.fromkeys(xslts)), one_by_one=True)
            except RulesProcessError:
                self._stop()

    def run(self, xslts: Sequence[Path], document: bytes, seconds: float) -> list[LayerRun]:
        """Run ``xslts`` in order on a document (UTF-8 XML, with no DOCTYPE), all within ``seconds`` (what the child
        has not compiled is compiled first, outside the budget; one that does not compile has ``failed``)."""
        with self._lock:
            self.ran.update(dict.fromkeys(xslts))
            errors = self._prepare(xslts)
            while self._waiting:  # compiles asked ahead (and documents handed before) are read first
                self._read_next()
            runnable = [x for x in xslts if errors[x] is None]
            ticket = Ticket(runnable, document, seconds)
            if runnable:
                self._hand(ticket)
                self._collect(ticket)
            runs = iter(ticket.runs or [])
            return [next(runs) if errors[x] is None else LayerRun(FAILED, errors[x] or "") for x in xslts]

    def submit(self, xslts: Sequence[Path], document: bytes, seconds: float) -> Ticket:
        """Hand the child a document to run ``xslts`` on (compiled already: :meth:`prepare`), without waiting; its
        budget of ``seconds`` starts when the child starts on it, once done with the documents handed before.
        Raises :class:`RulesProcessError` when the child, with nothing in hand, is found dead (or cannot start)."""
        with self._lock:
            self.ran.update(dict.fromkeys(xslts))
            ticket = Ticket(xslts, document, seconds)
            if self._unsent:
                self._hand_again()
            self._hand(ticket)
            return ticket

    def collect(self, ticket: Ticket) -> list[LayerRun]:
        """The runs of a document handed by :meth:`submit`, waiting for them (and for the budget, at most)."""
        with self._lock:
            return self._collect(ticket)

    def close(self) -> None:
        """Stop the child (it has nothing to finish)."""
        with self._lock:
            self._stop()
            for ticket in self._unsent:
                ticket.done([LayerRun(DIED, "was stopped (edi is ending)")])
            self._unsent = []

    # -- requests and answers, in order ----------------------------------------------------------------------------

    def _prepare(self, xslts: Sequence[Path]) -> dict[Path, str | None]:
        wanted = list(dict.fromkeys(xslts))
        while missing := [x for x in wanted if x not in self._prepared]:  # again if a kill dropped a request
            self._ask(missing)
            while any(x in self._asked() for x in missing):
                self._read_next()  # in order: what was handed before is read first
        return {x: self._prepared[x] for x in xslts}

    def _asked(self) -> set[Path]:
        return {x for request in self._waiting if isinstance(request, list) for x in request}

    def _ask(self, xslts: list[Path], one_by_one: bool = False) -> None:
        """Send compile requests for what the child has not compiled nor been asked to."""
        asked = self._asked()
        new = [x for x in xslts if x not in self._prepared and x not in asked]
        if not new:
            return
        writer = self._start()
        for request in [[x] for x in new] if one_by_one else [new]:
            writer.send(("prepare", [str(x) for x in request]))
            self._waiting.append(request)

    def _hand(self, ticket: Ticket) -> None:
        """Send a document to the child (compiling first what it does not have, outside the budget). With nothing
        in hand, a child found dead raises :class:`RulesProcessError` (it died between documents)."""
        if not self._waiting and self._process is not None and self._process.poll() is not None:
            raise RulesProcessError(f"the rules process {self._stop()} before the document was sent")
        self._ask(ticket.xslts)
        writer = self._start()
        writer.send(("run", [str(x) for x in ticket.xslts], ticket.seconds + self.backstop))
        assert ticket.document is not None
        writer.send_bytes(ticket.document)  # as it is: no pickled copy of a 20 MB document
        self._waiting.append(ticket)

    def _hand_again(self) -> None:
        """Hand the documents of a process that ended before starting on them to a new one."""
        unsent, self._unsent = self._unsent, []
        for index, ticket in enumerate(unsent):
            try:
                self._hand(ticket)
            except RulesProcessError as exc:
                for lost in unsent[index:]:
                    lost.done([LayerRun(DIED, str(exc).removeprefix("the rules process "))] * len(lost.xslts))
                return

    def _collect(self, ticket: Ticket) -> list[LayerRun]:
        while ticket.runs is None:
            if ticket in self._unsent:
                self._hand_again()
            else:
                with contextlib.suppress(RulesProcessError):  # it died compiling: the rest goes to a new one
                    self._read_next()
        return ticket.runs

    def _read_next(self) -> None:
        """Read the answer to the oldest request: a compile (raises :class:`RulesProcessError` if the child dies
        during it) or a document."""
        request = self._waiting.popleft()
        if isinstance(request, Ticket):
            self._read_runs(request)
            return
        connection, process = self._connection, self._process
        assert connection is not None and process is not None  # a request was sent to it
        try:
            answer = connection.recv()
        except (EOFError, OSError):
            how = self._stop()
            self._lose(how)
            raise RulesProcessError(f"the rules process {how} while compiling") from None
        for path, (error, seconds) in answer.items():
            self._prepared[Path(path)] = error
            if error is None:
                self.compiles.append((Path(path), process.pid, seconds))

    def _read_runs(self, ticket: Ticket) -> None:
        """Read a document's runs: the child says when it started on it (the budget runs from then, on the clock
        both processes share), then answers each XSLT, saying when it finished it. Past the budget with no answer,
        or with one given late, the child is killed."""
        connection = self._connection
        assert connection is not None
        try:
            _, started = connection.recv()
        except (EOFError, OSError):  # it ended before starting on this document: not this one's doing
            how = self._stop()
            self._unsent.insert(0, ticket)
            self._lose(how)
            return
        deadline = started + ticket.seconds
        runs: list[LayerRun] = []
        while len(runs) < len(ticket.xslts):
            try:
                answer = connection.recv() if connection.poll(max(deadline - time.monotonic(), 0)) else None
            except (EOFError, OSError):
                how = self._stop()  # its own backstop ends it past the budget, should the parent be late
                runs.append(LayerRun(TIMED_OUT) if how == _BACKSTOPPED else LayerRun(DIED, how))
                break
            if answer is None or answer[2] > deadline:
                self._stop()
                runs.append(LayerRun(TIMED_OUT))
                break
            runs.append(LayerRun(DONE if answer[0] == "done" else FAILED, answer[1]))
        ticket.done(runs)

    def _lose(self, how: str) -> None:
        """The child ended with no document of its own to blame: each document it had in hand is handed to the
        next, but one that two children in a row ended before starting on dies with them."""
        for ticket in self._unsent:
            ticket.lost += 1
            if ticket.lost >= 2:
                ticket.done([LayerRun(DIED, how)] * len(ticket.xslts))
        self._unsent = [t for t in self._unsent if t.runs is None]

    def _start(self) -> _Writer:
        if self._writer is not None:
            return self._writer
        mine, theirs = socket.socketpair()
        command = [sys.executable, "-c", _CHILD, str(theirs.fileno()), json.dumps(sys.path)]
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            mine.close()
            raise RulesProcessError(f"cannot start the rules process: {exc.strerror or exc}") from None
        finally:
            theirs.close()  # only the child holds its end: its death reads as the end of the socket here
        self._process, self._connection, self._prepared = process, Connection(mine.detach()), {}
        self._writer = _Writer(self._connection)
        return self._writer

    def _stop(self) -> str:
        """Kill the child (if it still runs) and forget it; how it ended. The documents it had in hand and had not
        answered are to be handed to the next (:attr:`_unsent`)."""
        process, connection, writer = self._process, self._connection, self._writer
        self._process = self._connection = self._writer = None
        self._unsent = [r for r in self._waiting if isinstance(r, Ticket)] + self._unsent
        self._prepared, self._waiting = {}, deque()
        how = "was not running"
        if process is not None:
            if process.poll() is None:
                process.kill()
            code = process.wait()
            how = f"was stopped by signal {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        if writer is not None:  # the child is gone: what it still had to send fails at once
            writer.close()
        if connection is not None:
            connection.close()
        return how


_BACKSTOPPED = f"was stopped by signal {signal.SIGALRM.name}"


# What the child runs: the parent's import path, then serve() on the socket it was given.
_CHILD = "import json, sys; sys.path[:] = json.loads(sys.argv[2]); from edi.validate.rules_process import main; main()"


def main() -> None:
    """The child's entry point: ``python -c _CHILD <socket descriptor> <sys.path as JSON>``."""
    serve(Connection(int(sys.argv[1])))


def serve(connection: Connection) -> None:
    """The child: compile and run what it is asked, until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # in a session of its own: a Ctrl-C is the parent's to handle
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the backstop: the default action ends the process
    saxon = Saxon()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request[0] == "prepare":
            answer = {}
            for path in request[1]:
                started = time.perf_counter()
                answer[path] = (saxon.prepare(Path(path)), time.perf_counter() - started)
            connection.send(answer)
            continue
        _, xslts, alarm = request
        signal.setitimer(signal.ITIMER_REAL, alarm)
        connection.send(("started", time.monotonic()))  # the budget runs from now, on the clock the parent reads
        error: str | None = None
        try:
            node = saxon.parse(connection.recv_bytes().decode("utf-8"))
        except Exception as exc:  # not expected: edi's parser wrote the text
            node, error = None, f"the document could not be handed to Saxon: {short(exc)}"
        for xslt in xslts:
            if node is None or (error := saxon.prepare(Path(xslt))) is not None:
                connection.send(("failed", error, time.monotonic()))
                continue
            try:
                connection.send(("done", saxon.transform(Path(xslt), node), time.monotonic()))
            except Exception as exc:  # a dynamic error in the XSLT on this document
                connection.send(("failed", short(exc), time.monotonic()))
        signal.setitimer(signal.ITIMER_REAL, 0)
