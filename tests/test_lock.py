"""Tests for edi.lock: one processor per workspace, across processes, stale locks taken over, opt-out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from edi.errors import WorkspaceBusy
from edi.lock import LOCK_NAME, processor_lock
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace

HOLD = """
import sys, time
from pathlib import Path
from edi.config import load_settings
from edi.lock import processor_lock

with processor_lock(load_settings(Path(sys.argv[1])), sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""

BARE_FLOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start processes that hold the processor lock (they say "held" once they do); kill them after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(ws: Workspace, command: str = "edi watch", script: str = HOLD) -> subprocess.Popen[str]:
        args = [str(ws.root / LOCK_NAME)] if script is BARE_FLOCK else [str(ws.config), command]
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held", "the holder did not take the lock"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def edi(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the edi command in a real process."""
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def lock_text(ws: Workspace) -> str:
    return (ws.root / LOCK_NAME).read_text(encoding="utf-8")


def test_a_second_processor_is_refused_naming_the_holder(workspace: Workspace, holder) -> None:
    """While another process holds the lock, processor_lock raises WorkspaceBusy naming its pid, command and
    start time."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    proc = holder(workspace, "edi watch")
    with pytest.raises(WorkspaceBusy) as busy, processor_lock(workspace.settings, "edi batch"):
        pytest.fail("the block ran while another process held the lock")
    message = str(busy.value)
    assert f"{workspace.root} is being processed by edi watch (pid {proc.pid}, since " in message
    assert len(message.splitlines()) == 1
    since = datetime.fromisoformat(message.split("since ")[1].split(")")[0])
    assert before <= since <= datetime.now(UTC)
    assert json.loads(lock_text(workspace))["pid"] == proc.pid  # the refused processor left the holder's text alone


def test_edi_batch_exits_75_while_another_processor_holds_the_workspace(workspace: Workspace, holder) -> None:
    """`edi batch` exits 75 with a one-line message naming the holder, and leaves the inbox alone."""
    dropped = workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    proc = holder(workspace, "edi schedule (batch)")
    result = edi(workspace, "batch")
    assert result.returncode == 75, result.stderr
    assert f"is being processed by edi schedule (batch) (pid {proc.pid}, since " in result.stderr
    assert "Traceback" not in result.stderr
    assert dropped.exists() and workspace.acks("acme") == []


def test_a_holder_that_wrote_nothing_is_still_refused(workspace: Workspace, holder) -> None:
    """A lock held by a process that did not say who it is: refused, naming "another edi process"."""
    holder(workspace, script=BARE_FLOCK)
    refused = pytest.raises(WorkspaceBusy, match="being processed by another edi process; try again")
    with refused, processor_lock(workspace.settings, "edi batch"):
        pytest.fail("the block ran while another process held the lock")


def test_a_lock_left_by_a_killed_processor_is_taken_over_and_logged(workspace: Workspace, holder) -> None:
    """SIGKILL the holder: its text stays in the lock file, the next `edi batch` runs and logs whose lock it was."""
    proc = holder(workspace, "edi watch")
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert json.loads(lock_text(workspace))["pid"] == proc.pid  # stale: the text is there, the flock is gone

    workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    result = edi(workspace, "batch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 flows")
    assert len(workspace.acks("acme")) == 1
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    stale = [e for e in logged if e["event"] == "stale processor lock taken over"]
    assert len(stale) == 1
    assert stale[0]["level"] == "warning"
    assert stale[0]["previous"]["pid"] == proc.pid and stale[0]["previous"]["command"] == "edi watch"
    assert lock_text(workspace) == ""


def test_a_stale_lock_is_taken_over_in_process_too(workspace: Workspace, holder) -> None:
    """After its holder died, processor_lock takes the lock and writes its own pid and command in it."""
    proc = holder(workspace)
    proc.kill()
    proc.wait(timeout=10)
    with processor_lock(workspace.settings, "edi batch"):
        held = json.loads(lock_text(workspace))
        assert held["pid"] == os.getpid() and held["command"] == "edi batch"
    assert lock_text(workspace) == ""


def test_the_lock_says_who_holds_it_and_is_cleared_after_release(workspace: Workspace) -> None:
    """While held the lock file names pid, command and start time; after the block it is empty (not stale)."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    with processor_lock(workspace.settings, "edi batch"):
        held = json.loads(lock_text(workspace))
    assert held["pid"] == os.getpid() and held["command"] == "edi batch"
    assert before <= datetime.fromisoformat(held["since"]) <= datetime.now(UTC)
    assert (workspace.root / LOCK_NAME).exists() and lock_text(workspace) == ""
    with processor_lock(workspace.settings, "edi batch"):  # released: the next one takes it at once
        pass


def test_the_lock_is_released_when_the_block_raises(workspace: Workspace) -> None:
    """An error inside the block releases the lock and clears its text."""
    with pytest.raises(RuntimeError), processor_lock(workspace.settings, "edi batch"):
        raise RuntimeError("boom")
    assert lock_text(workspace) == ""
    with processor_lock(workspace.settings, "edi batch"):
        pass


def test_when_not_exclusive_two_processors_hold_it_at_once(make_workspace, holder) -> None:
    """workspace.exclusive = false: the lock is a no-op, another process and this one both go ahead."""
    ws = make_workspace(DEFAULT_CONFIG.replace('root = "ws"', 'root = "ws"\nexclusive = false'))
    assert ws.settings.workspace.exclusive is False
    holder(ws, "edi watch")
    with processor_lock(ws.settings, "edi batch"), processor_lock(ws.settings, "edi schedule (batch)"):
        pass
    ws.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    result = edi(ws, "batch")
    assert result.returncode == 0, result.stderr
    assert len(ws.acks("acme")) == 1


def test_no_workspace_means_no_lock_and_no_error(make_workspace) -> None:
    """Without a workspace folder the lock is skipped (the run itself says the workspace is missing)."""
    ws = make_workspace(init=False)
    assert not ws.root.exists()
    with processor_lock(ws.settings, "edi batch"):
        pass
    assert not ws.root.exists()


@pytest.mark.parametrize("kind", ["symlink", "folder"])
def test_a_lock_path_that_cannot_be_opened_is_a_one_line_error(workspace: Workspace, kind: str) -> None:
    """processor.lock that is a symbolic link (never followed) or a folder: `edi batch` exits 1 with one line
    naming it, and nothing is processed."""
    lock = workspace.root / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(workspace.root / "elsewhere")
    else:
        lock.mkdir()
    dropped = workspace.drop("acme", "inv.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    result = edi(workspace, "batch")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and LOCK_NAME in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert dropped.exists()
