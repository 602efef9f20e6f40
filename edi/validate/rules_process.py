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

Reads XSLTs through :class:`edi.validate.saxon.Saxon`; writes nothing. :meth:`RulesProcess.prepare` and
:meth:`RulesProcess.run` raise :class:`RulesProcessError` when the process cannot be started or dies outside a
document's run; a death during a run is an outcome of that run.
"""

from __future__ import annotations

import atexit
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from edi.validate.saxon import Saxon, short

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


class RulesProcess:
    """The parent's handle on its rules process (one at a time; started on first use, replaced after a kill)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._prepared: dict[Path, str | None] = {}
        self._asked: list[list[Path]] = []  # compile requests sent and not answered yet (answered in order)
        self.ran: dict[Path, None] = {}  # every XSLT asked to run on a document, in the order first asked
        self.compiles: list[tuple[Path, int, float]] = []  # (XSLT, child's pid, seconds) of each compile: the
        # caller takes them (a new child compiles again what it is asked)
        self._lock = threading.Lock()  # one request at a time on the socket
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
                connection = self._start()
                for xslt in dict.fromkeys(xslts):
                    if xslt not in self._prepared and not any(xslt in request for request in self._asked):
                        connection.send(("prepare", [str(xslt)]))
                        self._asked.append([xslt])
            except (RulesProcessError, OSError):
                self._stop()

    def run(self, xslts: Sequence[Path], document: bytes, seconds: float) -> list[LayerRun]:
        """Run ``xslts`` in order on a document (UTF-8 XML, with no DOCTYPE), all within ``seconds`` (what the child
        has not compiled is compiled first, outside the budget; one that does not compile has ``failed``)."""
        with self._lock:
            self.ran.update(dict.fromkeys(xslts))
            errors = self._prepare(xslts)
            self._answers(len(self._asked))  # compiles asked ahead come before this run: not on its budget
            runnable = [x for x in xslts if errors[x] is None]
            runs = iter(self._run(runnable, document, seconds) if runnable else [])
            return [next(runs) if errors[x] is None else LayerRun(FAILED, errors[x] or "") for x in xslts]

    def _run(self, xslts: list[Path], document: bytes, seconds: float) -> list[LayerRun]:
        connection, process = self._connection, self._process
        assert connection is not None and process is not None  # _prepare started the child
        sent = process.poll() is None  # else it died since the last document: not this one's doing
        if sent:
            try:
                connection.send(("run", [str(x) for x in xslts], seconds + self.backstop))
                connection.send_bytes(document)  # as it is: no pickled copy of a 20 MB document
            except OSError:
                sent = False
        if not sent:  # say so; the next call starts another
            raise RulesProcessError(f"the rules process {self._stop()} before the document was sent")
        deadline = time.monotonic() + seconds
        runs: list[LayerRun] = []
        while len(runs) < len(xslts):
            left = deadline - time.monotonic()
            try:
                answer = connection.recv() if left > 0 and connection.poll(left) else None
            except (EOFError, OSError):
                runs.append(LayerRun(DIED, self._stop()))
                break
            if answer is None:
                self._stop()
                runs.append(LayerRun(TIMED_OUT))
                break
            runs.append(LayerRun(DONE if answer[0] == "done" else FAILED, answer[1]))
        return runs + [LayerRun(NOT_STARTED)] * (len(xslts) - len(runs))

    def close(self) -> None:
        """Stop the child (it has nothing to finish)."""
        with self._lock:
            self._stop()

    def _prepare(self, xslts: Sequence[Path]) -> dict[Path, str | None]:
        wanted = [x for x in dict.fromkeys(xslts) if x not in self._prepared]
        due = [i for i, request in enumerate(self._asked) if any(x in request for x in wanted)]
        if due:  # asked ahead: answered in order, read up to the last one needed
            self._answers(due[-1] + 1)
        missing = [x for x in wanted if x not in self._prepared]
        if missing:
            connection = self._start()
            try:
                connection.send(("prepare", [str(x) for x in missing]))
            except OSError:
                raise RulesProcessError(f"the rules process {self._stop()} while compiling") from None
            self._asked.append(missing)
            self._answers(len(self._asked))
        return {x: self._prepared[x] for x in xslts}

    def _answers(self, count: int) -> None:
        """Read the answers of the first ``count`` compile requests not answered yet (path -> error, seconds)."""
        for _ in range(count):
            connection, process = self._connection, self._process
            assert connection is not None and process is not None  # a request was sent to it
            try:
                answer = connection.recv()
            except (EOFError, OSError):
                raise RulesProcessError(f"the rules process {self._stop()} while compiling") from None
            self._asked.pop(0)
            for path, (error, seconds) in answer.items():
                self._prepared[Path(path)] = error
                if error is None:
                    self.compiles.append((Path(path), process.pid, seconds))

    def _start(self) -> Connection:
        if self._connection is not None:
            return self._connection
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
        self._process, self._connection, self._prepared, self._asked = process, Connection(mine.detach()), {}, []
        return self._connection

    def _stop(self) -> str:
        """Kill the child (if it still runs) and forget it; how it ended."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        self._prepared, self._asked = {}, []
        if connection is not None:
            connection.close()
        if process is None:
            return "was not running"
        if process.poll() is None:
            process.kill()
        code = process.wait()
        if code < 0:
            return f"was stopped by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"


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
        try:
            node = saxon.parse(connection.recv_bytes().decode("utf-8"))
        except Exception as exc:  # not expected: edi's parser wrote the text
            node, error = None, f"the document could not be handed to Saxon: {short(exc)}"
        for xslt in xslts:
            if node is None:
                connection.send(("failed", error))
                continue
            try:
                connection.send(("done", saxon.transform(Path(xslt), node)))
            except Exception as exc:  # a dynamic error in the XSLT on this document
                connection.send(("failed", short(exc)))
        signal.setitimer(signal.ITIMER_REAL, 0)
