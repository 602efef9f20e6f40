"""The real `edi watch` process: files taken as soon as their writer is done, never before; stalled uploads wait out
their grace; SIGTERM finishes the flow in hand and exits 0; one processor per workspace."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.invoices import nameless_invoice, templates
from tests.conftest import FLOWS

INVOICE = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = {min_age}
incomplete_grace_seconds = {grace}
[[senders]]
id = "acme"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
[watch]
rescan_seconds = {rescan}
"""


def invoice(number: int) -> bytes:
    """A distinct valid invoice (its own number, so never a duplicate)."""
    return INVOICE.replace(b"FA-2026-0001", f"FA-2026-9{number:03d}".encode())


class Watcher:
    """A running `edi watch` on a fresh workspace."""

    def __init__(self, root: Path, process: subprocess.Popen[str], config: Path, log: Path) -> None:
        self.root = root
        self.process = process
        self.config = config
        self.log = log  # its standard error

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def inbox(self) -> Path:
        return self.root / "ws" / "inbox" / "acme"

    def acks(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.root / "ws" / "acks" / "acme").glob("*.json"))]

    def wait_for_acks(self, count: int, timeout: float) -> float:
        """Seconds until ``count`` acknowledgements exist (fails after ``timeout``)."""
        started = time.monotonic()
        while len(self.acks()) < count:
            assert time.monotonic() - started < timeout, f"{len(self.acks())} acks after {timeout} s"
            assert self.process.poll() is None, self.stderr()
            time.sleep(0.01)
        return time.monotonic() - started

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return self.process.returncode, out, self.stderr()


@pytest.fixture
def start_watch(tmp_path: Path) -> Iterator[Callable[..., Watcher]]:
    """Start `edi watch` (after `edi init`) with the given intake timings; it is stopped at the end of the test."""
    started: list[Watcher] = []

    def start(
        min_age: float = 30, grace: float = 60, rescan: float = 30, wait: bool = True, extra: str = "", workers: int = 1
    ) -> Watcher:
        config = tmp_path / "config.toml"
        config.write_text(CONFIG.format(min_age=min_age, grace=grace, rescan=rescan) + extra, encoding="utf-8")
        edi = [sys.executable, "-m", "edi", "--config", str(config)]
        subprocess.run([*edi, "init"], check=True, capture_output=True)
        log = tmp_path / f"watch-{len(started)}.log"
        with log.open("wb") as err:  # a file, not a pipe: read while it runs, and never full
            command = [*edi, "-v", "watch", "--workers", str(workers)]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        watcher = Watcher(tmp_path, process, config, log)
        started.append(watcher)
        if wait:  # until the inbox is watched: the startup log line says so
            deadline = time.monotonic() + 60
            while '"event": "watching"' not in watcher.stderr() and time.monotonic() < deadline:
                assert process.poll() is None, watcher.stderr()
                time.sleep(0.05)
        return watcher

    yield start
    for watcher in started:
        if watcher.process.poll() is None:
            watcher.process.kill()
            watcher.process.wait()


def test_a_file_closed_by_its_writer_is_taken_at_once(start_watch) -> None:
    """Closed after writing, a whole file is processed in well under a second, without waiting min_age (30 s)."""
    watcher = start_watch(min_age=30)
    (watcher.inbox / "a.xml").write_bytes(invoice(1))
    latency = watcher.wait_for_acks(1, timeout=10)
    assert latency < 2.0, latency
    (ack,) = watcher.acks()
    assert ack["file_name"] == "a.xml" and ack["status"] == "IN_INTEGRE"
    code, out, _ = watcher.stop()
    assert code == 0 and "watch stopped: 1 flows" in out


def test_a_file_still_open_is_never_taken(start_watch) -> None:
    """A file its writer keeps open (an upload in progress) is not taken, even whole; it is once closed."""
    watcher = start_watch(min_age=30)
    with (watcher.inbox / "slow.xml").open("wb") as upload:
        upload.write(invoice(2)[:1000])
        upload.flush()
        time.sleep(1.5)
        upload.write(invoice(2)[1000:])
        upload.flush()
        time.sleep(1.5)
        assert watcher.acks() == [] and (watcher.inbox / "slow.xml").exists()
    watcher.wait_for_acks(1, timeout=10)
    assert watcher.acks()[0]["status"] == "IN_INTEGRE"
    assert watcher.stop()[0] == 0


def test_a_file_renamed_into_place_is_taken_at_once(start_watch) -> None:
    """Written under a temporary name (*.part), renamed when done: taken right after the rename, exactly once."""
    watcher = start_watch(min_age=30)
    part = watcher.inbox / "b.xml.part"
    part.write_bytes(invoice(3))
    time.sleep(1.0)
    assert watcher.acks() == [] and part.exists()
    part.rename(watcher.inbox / "b.xml")
    assert watcher.wait_for_acks(1, timeout=10) < 2.0
    time.sleep(1.0)
    assert len(watcher.acks()) == 1
    assert watcher.stop()[0] == 0


def test_a_stalled_upload_waits_its_grace_then_is_refused_once(start_watch) -> None:
    """Closed but cut short (an interrupted upload): left alone for the grace period, then refused as truncated."""
    watcher = start_watch(min_age=1, grace=4)
    (watcher.inbox / "cut.xml").write_bytes(invoice(4)[:2000])
    time.sleep(2.5)
    assert watcher.acks() == [] and (watcher.inbox / "cut.xml").exists()
    watcher.wait_for_acks(1, timeout=15)
    (ack,) = watcher.acks()
    assert ack["status"] == "IN_REJETE" and ack["documents"][0]["reason"] == "IRR_SYNTAX"
    assert watcher.stop()[0] == 0


def test_a_stalled_upload_that_resumes_is_accepted(start_watch) -> None:
    """An upload that stalls past min_age and then completes (a resume) is taken whole, not refused as truncated."""
    watcher = start_watch(min_age=1, grace=30)
    target = watcher.inbox / "resumed.xml"
    data = invoice(5)
    target.write_bytes(data[:1500])
    time.sleep(2.5)
    assert watcher.acks() == []
    with target.open("ab") as resume:
        resume.write(data[1500:])
    watcher.wait_for_acks(1, timeout=10)
    assert watcher.acks()[0]["status"] == "IN_INTEGRE"
    assert watcher.stop()[0] == 0


def test_files_present_at_start_and_missed_events_are_found(start_watch, tmp_path: Path) -> None:
    """Files already in the inbox when watch starts are taken once they are min_age old (the rescan path)."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(min_age=0.5, grace=60, rescan=1), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "edi", "--config", str(config), "init"], check=True, capture_output=True)
    inbox = tmp_path / "ws" / "inbox" / "acme"
    for number in range(3):
        (inbox / f"early-{number}.xml").write_bytes(invoice(10 + number))
    watcher = start_watch(min_age=0.5, rescan=1, wait=False)
    watcher.wait_for_acks(3, timeout=30)
    assert watcher.stop()[0] == 0


def test_sigterm_finishes_the_flow_in_hand_and_leaves_the_rest_whole(start_watch) -> None:
    """SIGTERM in the middle of many files: exit 0; every file is either acknowledged or untouched in the inbox."""
    watcher = start_watch(min_age=0)
    names = [f"m{number:03d}.xml" for number in range(60)]
    for number, name in enumerate(names):
        (watcher.inbox / name).write_bytes(invoice(100 + number))
    watcher.wait_for_acks(1, timeout=10)
    code, _, _ = watcher.stop()
    assert code == 0
    done = {ack["file_name"] for ack in watcher.acks()}
    left = {p.name for p in watcher.inbox.iterdir()}
    assert done | left == set(names) and not done & left
    assert list((watcher.root / "ws" / "spool" / "active").iterdir()) == []
    batch = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(watcher.config), "batch"], capture_output=True, text=True
    )
    assert batch.returncode == 0
    assert {ack["file_name"] for ack in watcher.acks()} == set(names) and len(watcher.acks()) == len(names)


def test_a_second_processor_is_refused_with_the_holder_named(start_watch) -> None:
    """While edi watch runs, a second watch or a batch exits 75 and says which process holds the workspace."""
    watcher = start_watch()
    for command in ("watch", "batch"):
        second = subprocess.run(
            [sys.executable, "-m", "edi", "--config", str(watcher.config), command],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 75
        assert f"edi watch (pid {watcher.process.pid}" in second.stderr
    assert watcher.stop()[0] == 0


def test_a_lock_left_by_a_killed_watch_is_taken_over(start_watch) -> None:
    """A watch killed with SIGKILL leaves its lock file; the next processor takes it over and works."""
    watcher = start_watch()
    watcher.process.kill()
    watcher.process.wait()
    assert json.loads((watcher.root / "ws" / "processor.lock").read_text())["pid"] == watcher.process.pid
    (watcher.inbox / "after.xml").write_bytes(invoice(7))
    os.utime(watcher.inbox / "after.xml", (time.time() - 60, time.time() - 60))
    batch = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(watcher.config), "-v", "batch"], capture_output=True, text=True
    )
    assert batch.returncode == 0 and "stale processor lock taken over" in batch.stderr
    assert len(watcher.acks()) == 1


def test_a_file_dated_in_the_future_is_taken_once_steady_with_a_warning(start_watch, tmp_path: Path) -> None:
    """A file dated a year ahead (a sender's skewed clock, `rsync -t`), there before watch starts (no event): taken
    once it stayed unchanged for min_age, with a warning naming it; one renamed into place is taken at once."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(min_age=1, grace=60, rescan=30), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "edi", "--config", str(config), "init"], check=True, capture_output=True)
    inbox = tmp_path / "ws" / "inbox" / "acme"
    ahead = time.time() + 365 * 86400
    early = inbox / "skewed.xml"
    early.write_bytes(invoice(20))
    os.utime(early, (ahead, ahead))
    watcher = start_watch(min_age=1, rescan=30, wait=False)
    watcher.wait_for_acks(1, timeout=20)
    staged = inbox / ".rsync-tmp"
    staged.write_bytes(invoice(21))
    os.utime(staged, (ahead, ahead))
    staged.rename(inbox / "renamed.xml")
    assert watcher.wait_for_acks(2, timeout=10) < 5.0
    assert sorted(a["file_name"] for a in watcher.acks()) == ["renamed.xml", "skewed.xml"]
    code, _, err = watcher.stop()
    assert code == 0
    assert "file dated in the future" in err and "skewed.xml" in err


BUDGET = '[limits]\nvalidate_seconds = 1\n[validation]\nrules = ["xsd", "en16931"]\n'


def test_watch_rejects_a_document_past_the_validation_budget_and_keeps_watching(start_watch) -> None:
    """`edi watch` with limits.validate_seconds = 1: an invoice whose rules outrun it is rejected within moments
    (LAYER_NOT_RUN, VALIDATE_TIMEOUT); the long-lived process goes on, and validates the next invoice as usual."""
    watcher = start_watch(
        min_age=30, extra='[limits]\nvalidate_seconds = 1\n[validation]\nrules = ["xsd", "en16931"]\n'
    )
    part = watcher.inbox / "slow.xml.part"
    part.write_bytes(nameless_invoice(templates()[0], 1, 8000))
    part.rename(watcher.inbox / "slow.xml")
    assert watcher.wait_for_acks(1, timeout=30) < 6.0  # its rules alone take longer without a budget
    (slow,) = watcher.acks()
    assert slow["status"] == "IN_REJETE"
    findings = slow["documents"][0]["findings"]
    assert {(f["code"], f["rule"]) for f in findings if f["layer"] == "en16931"} == {
        ("LAYER_NOT_RUN", "VALIDATE_TIMEOUT")
    }
    (watcher.inbox / "a.xml").write_bytes(invoice(8))
    watcher.wait_for_acks(2, timeout=30)
    assert [a["status"] for a in watcher.acks() if a["file_name"] == "a.xml"] == ["IN_INTEGRE"]
    assert watcher.stop()[0] == 0


def test_watch_sends_the_notifications_of_a_pass_before_the_next(start_watch) -> None:
    """A running `edi watch` mails a refused file's 501 between two passes, once, to its sender's addresses (a real
    SMTP server on 127.0.0.1), and keeps watching."""
    from tests.smtp_server import SmtpServer, free_port

    port = free_port()
    server = SmtpServer(port)
    try:
        watcher = start_watch(
            min_age=0,
            extra='[[senders]]\nid = "beta"\nsellers = ["*"]\nemail = ["ops@beta.example"]\n'
            f'[notifications]\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsecurity = "none"\n'
            'from_address = "edi@platform.example"\n',
        )
        (watcher.root / "ws" / "inbox" / "beta" / "broken.xml").write_bytes(b"<NotAnInvoice/>")
        deadline = time.monotonic() + 30
        while not server.received and time.monotonic() < deadline:
            time.sleep(0.05)
        (watcher.inbox / "ok.xml").write_bytes(invoice(1))
        watcher.wait_for_acks(1, timeout=30)
        code, _, err = watcher.stop()
        assert code == 0, err
        (got,) = server.received
        assert got.rcpt_tos == ["ops@beta.example"]
        assert str(got.message["Subject"]).strip().startswith("[edi] 501 Irrecevable: file broken.xml (flow ")
    finally:
        server.stop()


def test_watch_with_workers_compiles_each_stylesheet_once_per_process(start_watch, tmp_path: Path) -> None:
    """`edi watch --workers 2` running the EN 16931 rules: two passes, each with more files than one process takes
    (so that the worker process has its share of both), compile each stylesheet once in each process's life (logged
    as ``stylesheet compiled``), never again in the second pass."""
    watcher = start_watch(min_age=30, rescan=1, workers=2, extra='[validation]\nrules = ["xsd", "en16931"]\n')
    for number in (1, 2):  # a whole inbox of old files at once: one pass, big enough for the worker to take part
        full = tmp_path / f"pass-{number}"
        full.mkdir()
        old = time.time() - 60
        for index in range(300):
            path = full / f"p{number}-{index:03d}.xml"
            path.write_bytes(invoice(number * 300 + index))
            os.utime(path, (old, old))
        watcher.inbox.rename(tmp_path / f"empty-{number}")
        full.rename(watcher.inbox)
        watcher.wait_for_acks(300 * number, timeout=240)
    code, _, err = watcher.stop()
    assert code == 0, err
    with sqlite3.connect(tmp_path / "ws" / "tracking.sqlite") as store:
        rows = store.execute("SELECT file_name, claimed_by FROM flows").fetchall()
    hands = {number: {hand.split("-")[0] for name, hand in rows if name.startswith(f"p{number}-")} for number in (1, 2)}
    assert len(hands[1]) == 2 and hands[1] == hands[2], hands  # this process and one worker, in both passes
    compiled = [json.loads(line) for line in err.splitlines() if '"stylesheet compiled"' in line]
    counts = Counter((str(e["process"]), e["xslt"]) for e in compiled)
    assert {process for process, _ in counts} == hands[1], err
    assert {xslt for process, xslt in counts} >= {"EN16931-UBL-validation.xslt"}
    assert set(counts.values()) == {1}, counts


def test_watch_calls_the_webhooks_of_a_pass_before_the_next(start_watch) -> None:
    """A running `edi watch` calls a client's webhook (a real HTTP server on 127.0.0.1) between two passes, once per
    event, signed, and keeps watching."""
    from datetime import UTC, datetime

    from edi.api import signing, webhooks
    from edi.api.clients import add_client
    from edi.config import load_settings
    from edi.store import open_store
    from tests.hook_server import serve

    server = serve()
    hooks = next(server)
    try:
        watcher = start_watch(min_age=0, extra=f'[api]\nwebhook_allowed_hosts = ["127.0.0.1:{hooks.port}"]\n')
        layout = load_settings(watcher.config).workspace.layout()
        store = open_store(layout)
        try:
            client, _ = add_client(store, "erp", "acme", datetime.now(UTC))
            key = signing.workspace_key(layout, make=True)
            assert key is not None
            asked = {"callback_url": hooks.url(), "flow_types": ["CustomerInvoice"], "flow_direction": None}
            made = webhooks.create(store, client, asked | {"ack_status": None}, key, datetime.now(UTC))
        finally:
            store.close()
        (watcher.inbox / "ok.xml").write_bytes(invoice(1))
        deadline = time.monotonic() + 30
        while not hooks.got() and time.monotonic() < deadline:
            time.sleep(0.05)
        (ack,) = watcher.acks()
        code, _, err = watcher.stop()
        assert code == 0, err
        (call,) = hooks.got()
        assert json.loads(call.body)["flowId"] == ack["flow_id"]
        stamp = int(call.headers["afnor-signature-timestamp"])
        assert call.headers["afnor-signature"] == signing.signature(
            signing.signing_key(key, made["webhookId"]), call.body, stamp
        )
    finally:
        server.close()
