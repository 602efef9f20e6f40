"""Tests for edi.validate.rules_process: a real child process runs the official XSLTs, is killed past the time
budget (and by itself should its parent be gone), and is replaced for the next document."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from benchmarks.invoices import nameless_invoice, templates
from edi.validate.catalogue import official_schemas
from edi.validate.rules_process import (
    DIED,
    DONE,
    FAILED,
    NOT_STARTED,
    TIMED_OUT,
    LayerRun,
    RulesProcess,
    RulesProcessError,
)
from tests.conftest import FLOWS

CEN_UBL = official_schemas() / "ubl-2.1" / "EN16931-UBL-validation.xslt"
BR_FR_UBL = official_schemas() / "ubl-2.1" / "BR-FR-Flux2-Schematron-UBL.xslt"


def document(data: bytes) -> bytes:
    """A document as the runner hands it over: UTF-8, no XML declaration."""
    return etree.tostring(etree.fromstring(data), encoding="utf-8", xml_declaration=False)


SMALL = document((FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())


@cache
def slow() -> bytes:
    """An invoice whose EN 16931 rules take several seconds: 8,000 lines, each with a finding."""
    return document(nameless_invoice(templates()[0], 1, 8000))


@pytest.fixture
def process() -> Iterator[RulesProcess]:
    rules = RulesProcess()
    yield rules
    rules.close()


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended, all its threads with it (reaped, or a zombie not waited for yet)."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except FileNotFoundError:
        return True
    return status["State"].split()[0] == "Z" and status["Threads"].strip() == "1"


def wait_until_gone(pid: int, seconds: float) -> float:
    """Seconds until ``pid`` ends (fails after ``seconds``)."""
    started = time.monotonic()
    while not gone(pid):
        assert time.monotonic() - started < seconds, f"process {pid} still runs after {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_layers_run_in_order_and_report_svrl(process: RulesProcess) -> None:
    """Each XSLT's SVRL report comes back, in the order asked, from a child process in a session of its own."""
    runs = process.run([CEN_UBL, BR_FR_UBL], SMALL, 30)
    assert [r.outcome for r in runs] == [DONE, DONE]
    assert all("schematron-output" in r.text for r in runs)
    assert process.pid is not None and process.pid != os.getpid()
    assert os.getsid(process.pid) != os.getsid(0)  # a Ctrl-C on the terminal does not reach it


def test_an_xslt_that_does_not_compile_is_failed_and_the_others_run(process: RulesProcess, tmp_path: Path) -> None:
    """prepare says why an XSLT does not compile; in a run it has failed, and the other layers still run."""
    broken = tmp_path / "broken.xslt"
    broken.write_text('<xsl:stylesheet version="3.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><nope/>')
    errors = process.prepare([broken, CEN_UBL])
    assert errors[CEN_UBL] is None and "broken.xslt does not compile" in (errors[broken] or "")
    runs = process.run([broken, CEN_UBL], SMALL, 30)
    assert [r.outcome for r in runs] == [FAILED, DONE]
    assert runs[0].text == errors[broken]


def test_past_the_budget_the_process_is_killed_and_the_next_document_gets_another(process: RulesProcess) -> None:
    """A document whose layers outrun the budget: the running layer timed out, the next did not start, the process
    is gone within moments of the budget, and the next document runs in a new process."""
    process.prepare([CEN_UBL, BR_FR_UBL])  # compiling is outside the budget
    first = process.pid
    assert first is not None
    started = time.monotonic()
    runs = process.run([CEN_UBL, BR_FR_UBL], slow(), 1.0)
    took = time.monotonic() - started
    assert [r.outcome for r in runs] == [TIMED_OUT, NOT_STARTED]
    assert 1.0 <= took < 3.0, took
    assert gone(first) and process.pid is None
    again = process.run([CEN_UBL], SMALL, 30)
    assert [r.outcome for r in again] == [DONE]
    assert process.pid not in (None, first)


def test_a_process_killed_during_a_run_is_reported_as_died(process: RulesProcess) -> None:
    """When the rules process dies under a document (the OOM killer, say), its layer died, saying how."""
    process.prepare([CEN_UBL, BR_FR_UBL])
    pid = process.pid
    assert pid is not None
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    runs = process.run([CEN_UBL, BR_FR_UBL], slow(), 60)
    assert [r.outcome for r in runs] == [DIED, NOT_STARTED]
    assert runs[0].text == "was stopped by signal SIGKILL"
    assert [r.outcome for r in process.run([CEN_UBL], SMALL, 30)] == [DONE]


def test_a_process_that_died_between_documents_raises_and_is_replaced(process: RulesProcess) -> None:
    """A rules process found dead when a document is sent: RulesProcessError, and the next call starts another."""
    process.prepare([CEN_UBL])
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until_gone(pid, 10)
    with pytest.raises(RulesProcessError, match="was stopped by signal SIGKILL before the document was sent"):
        process.run([CEN_UBL], SMALL, 30)
    assert [r.outcome for r in process.run([CEN_UBL], SMALL, 30)] == [DONE]


ORPHAN = """
import os, signal, sys
from pathlib import Path
from edi.validate.rules_process import RulesProcess
xslt, document, during = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes(), sys.argv[3] == "during"
rules = RulesProcess()
rules.backstop = 0.5
rules.prepare([xslt])
print(rules.pid, flush=True)
if during:  # die while the child works on a document it was given 1 s for
    import threading
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGKILL)).start()
    rules.run([xslt], document, 1.0)
os._exit(0)  # no clean-up: as a killed worker ends
"""


@pytest.mark.parametrize("when", ["between", "during"])
def test_a_rules_process_whose_parent_is_gone_ends(tmp_path: Path, when: str) -> None:
    """Its parent killed between documents, the rules process ends at once (its socket closes); killed during one,
    it ends by itself once the budget and the backstop are spent (here 1 + 0.5 s), not when the document is done."""
    path = tmp_path / "slow.xml"
    path.write_bytes(slow())
    command = [sys.executable, "-c", ORPHAN, str(CEN_UBL), str(path), when]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    pid = int(done.stdout.split()[0])
    took = wait_until_gone(pid, 10)
    assert took < (1.0 if when == "between" else 3.0), took


def test_compiles_asked_ahead_start_the_process_at_once_and_are_read_when_needed(process: RulesProcess) -> None:
    """prepare_ahead starts the child and returns without waiting; the first run reads every compile asked before
    it (outside its budget), and an XSLT asked again, ahead or not, is never compiled twice."""
    process.prepare_ahead([CEN_UBL, BR_FR_UBL])
    assert process.pid is not None and process.compiles == []
    assert [r.outcome for r in process.run([BR_FR_UBL], SMALL, 30)] == [DONE]
    assert [xslt for xslt, pid, _ in process.compiles if pid == process.pid] == [CEN_UBL, BR_FR_UBL]
    process.prepare_ahead([CEN_UBL, BR_FR_UBL])
    assert [r.outcome for r in process.run([CEN_UBL, BR_FR_UBL], SMALL, 30)] == [DONE, DONE]
    assert len(process.compiles) == 2
    assert list(process.ran) == [BR_FR_UBL, CEN_UBL]


# --- documents handed without waiting ------------------------------------------------------------------------------


def test_documents_handed_without_waiting_come_back_in_order_as_run_gives_them(process: RulesProcess) -> None:
    """submit returns before the child is done (a slow document takes seconds); collect gives, document by document,
    what run gives."""
    process.prepare([CEN_UBL, BR_FR_UBL])
    started = time.monotonic()
    tickets = [process.submit([CEN_UBL, BR_FR_UBL], data, 60) for data in (slow(), SMALL, SMALL)]
    assert time.monotonic() - started < 0.5
    first = process.pid
    runs = [process.collect(ticket) for ticket in reversed(tickets)][::-1]
    assert time.monotonic() - started > 1.0  # the slow one's rules did take their time
    expected = process.run([CEN_UBL, BR_FR_UBL], SMALL, 60)
    assert runs[1] == runs[2] == expected and [r.outcome for r in runs[0]] == [DONE, DONE]
    assert process.pid == first


def test_a_document_read_late_is_judged_by_when_the_child_finished_it(process: RulesProcess) -> None:
    """The budget runs from when the child starts on a document: one it finished in time is done however late the
    parent reads it; one still running past its budget when read has timed out, and its child is killed at once."""
    process.prepare([CEN_UBL])
    quick = process.submit([CEN_UBL], SMALL, 1.0)
    time.sleep(1.5)
    assert [r.outcome for r in process.collect(quick)] == [DONE]
    pid = process.pid
    assert pid is not None
    late = process.submit([CEN_UBL], slow(), 1.0)
    time.sleep(1.5)
    started = time.monotonic()
    assert [r.outcome for r in process.collect(late)] == [TIMED_OUT]
    assert time.monotonic() - started < 0.5 and gone(pid) and process.pid is None


def test_documents_behind_one_past_its_budget_go_to_a_new_process_with_their_own_budget(
    process: RulesProcess,
) -> None:
    """A document past its budget fails alone: those handed after it, which its child had not started on, run in
    the next child (after it compiles, outside their budget) and are done."""
    process.prepare([CEN_UBL, BR_FR_UBL])
    first = process.pid
    slow_one = process.submit([CEN_UBL, BR_FR_UBL], slow(), 1.0)
    behind = [process.submit([CEN_UBL, BR_FR_UBL], SMALL, 1.0) for _ in range(3)]
    assert [r.outcome for r in process.collect(slow_one)] == [TIMED_OUT, NOT_STARTED]
    assert first is not None and gone(first)
    for ticket in behind:
        assert [r.outcome for r in process.collect(ticket)] == [DONE, DONE]
    assert process.pid not in (None, first)


def test_a_child_killed_under_one_document_fails_it_alone(process: RulesProcess) -> None:
    """A child killed (the OOM killer, say) while on a document: that document died; the ones handed after it run in
    a new child."""
    process.prepare([CEN_UBL])
    pid = process.pid
    assert pid is not None
    doomed = process.submit([CEN_UBL], slow(), 60)
    behind = [process.submit([CEN_UBL], SMALL, 30) for _ in range(2)]
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    assert process.collect(doomed)[0] == LayerRun(DIED, "was stopped by signal SIGKILL")
    assert [[r.outcome for r in process.collect(ticket)] for ticket in behind] == [[DONE], [DONE]]


def test_a_child_ended_by_its_backstop_before_the_parent_reads_has_timed_out(process: RulesProcess) -> None:
    """Read after the child ended itself (its backstop, past budget and backstop), the document timed out, as it
    would have had the parent killed it at the budget."""
    process.backstop = 0.2
    process.prepare([CEN_UBL])
    pid = process.pid
    assert pid is not None
    ticket = process.submit([CEN_UBL], slow(), 0.5)
    wait_until_gone(pid, 10)
    assert [r.outcome for r in process.collect(ticket)] == [TIMED_OUT]
