"""Several processes on one workspace: `edi batch --workers N`, `edi watch --workers N`, and independent `edi batch`
runs started by two cron jobs. Every file is claimed by exactly one process, answered once and delivered once, and
the tracking store agrees with the files.

Real `edi` processes started through the CLI, real folders, real SQLite, the sample flows of flows/. Which process
claimed a flow is read from the ``claimed_by`` column of the store: the name of the claiming process's hand,
``<pid>-<random>``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.invoices import nameless_invoice, templates
from edi import runner
from edi import workers as worker_processes
from edi.config import load_settings
from edi.ingest.scan import Ready
from edi.runner import GROUP_FLOWS
from tests.conftest import FLOWS

CONFIG = """
[workspace]
root = "ws"
exclusive = {exclusive}
[intake]
min_age_seconds = 0
[[senders]]
id = "acme"
sellers = ["*"]
[[senders]]
id = "opdemat"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
[validation]
rules = ["xsd"]
[watch]
rescan_seconds = 1
"""

SAMPLES = [  # (sender, sample, its invoice number: None when the file holds no acceptable invoice)
    ("acme", "01-ubl-invoice.xml", "FA-2026-0001"),
    ("acme", "02-ubl-creditnote.xml", "AV-2026-0001"),
    ("acme", "03-cii-invoice.xml", "FA-2026-0002"),
    ("opdemat", "01-initech-cii-basic.xml", "IN-2026-0042"),
    ("opdemat", "02-initech-ubl-voirie.xml", "IN-2026-0043"),
    ("acme", "09-not-well-formed.xml", None),
]
SENDERS = ("acme", "opdemat")
RECEIVED, FAILED = "IN_RECU", "IN_EN_ATTENTE_RETRAITEMENT"
TIMEOUT = 180.0  # seconds a run may take on a busy machine before the test gives up


@dataclass
class Dropped:
    """What a test dropped, in order: sender, file name, bytes, and the invoice the file carries (None: none that
    can be accepted)."""

    files: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)

    @property
    def names(self) -> set[tuple[str, str]]:
        return {(sender, name) for sender, name, _, _ in self.files}


def drop(root: Path, dropped: Dropped, count: int, prefix: str) -> None:
    """Drop ``count`` files, finished a minute ago, oldest first in drop order (the order they are claimed in):
    samples with an invoice number of their own; from the second group on, every tenth file re-sends the invoice of
    the file one group earlier with other bytes (one of the two is refused DOUBLON), and every tenth other one is an
    exact copy of it (refused as a duplicate flow). Files are renamed into place, as a careful sender does."""
    staging = root.parent / "staging"
    staging.mkdir(exist_ok=True)
    base = time.time() - 60
    for number in range(count):
        serial = len(dropped.files)
        if number >= GROUP_FLOWS and number % 10 in (3, 7):
            sender, _, data, invoice = dropped.files[serial - GROUP_FLOWS]
            data = data + b"\n" if number % 10 == 3 else data
        else:
            sender, sample, original = SAMPLES[serial % len(SAMPLES)]
            data = (FLOWS / sender / sample).read_bytes()
            invoice = None
            if original is not None:
                invoice = f"{original}-{prefix}{serial:05d}"
                data = data.replace(original.encode(), invoice.encode())
        name = f"{prefix}{serial:05d}.xml"
        path = staging / name
        path.write_bytes(data)
        os.utime(path, (base + number / 1000, base + number / 1000))
        path.rename(root / "inbox" / sender / name)
        dropped.files.append((sender, name, data, invoice))


def read_acks(root: Path) -> dict[str, dict]:
    """Every final acknowledgement (JSON), by flow id."""
    acks = {}
    for sender in SENDERS:
        for path in sorted((root / "acks" / sender).glob("*.json")):
            ack = json.loads(path.read_text(encoding="utf-8"))
            acks[path.stem] = ack
    return acks


def ack_count(root: Path) -> int:
    return sum(1 for sender in SENDERS for _ in (root / "acks" / sender).glob("*.json"))


def answered(root: Path) -> Counter[tuple[str, str]]:
    """How many acknowledgements each (sender, file name) has."""
    return Counter((a["sender"], a["file_name"]) for a in read_acks(root).values())


def in_inbox(root: Path) -> set[tuple[str, str]]:
    return {(sender, p.name) for sender in SENDERS for p in (root / "inbox" / sender).iterdir()}


def store(root: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(root / "tracking.sqlite", timeout=60))


def hands(root: Path) -> Counter[str]:
    """How many flows each process's hand (``<pid>-<random>``) claimed, by the store."""
    with store(root) as db:
        return Counter(dict(db.execute("SELECT claimed_by, COUNT(*) FROM flows GROUP BY claimed_by").fetchall()))


def pid_of(hand: str) -> int:
    return int(hand.split("-", 1)[0])


def problems(root: Path, dropped: Dropped) -> list[str]:
    """Every invariant of "each flow processed exactly once" that does not hold, as a sentence."""
    found: list[str] = []
    acks = read_acks(root)
    for flow_id, ack in acks.items():
        if ack["flow_id"] != flow_id:
            found.append(f"{flow_id}.json: the acknowledgement of flow {ack['flow_id']}")
        if not (root / "acks" / ack["sender"] / f"{flow_id}.xml").is_file():
            found.append(f"{flow_id}: no XML acknowledgement beside the JSON one")
        if ack["status"] in (RECEIVED, FAILED):
            found.append(f"{flow_id}: acknowledged with status {ack['status']}")
    counts = Counter((a["sender"], a["file_name"]) for a in acks.values())
    for key in sorted(dropped.names | set(counts)):
        if counts[key] != 1 or key not in dropped.names:
            found.append(f"{key[0]}/{key[1]}: {counts[key]} acknowledgements, dropped {int(key in dropped.names)}")

    accepted: dict[tuple[str, str], list[dict]] = {
        (a["sender"], a["file_name"]): [d for d in a["documents"] if d["status"] == "200"] for a in acks.values()
    }
    holders: Counter[str] = Counter()
    for sender, name, _, invoice in dropped.files:
        docs = accepted.get((sender, name), [])
        if invoice is None and docs:
            found.append(f"{sender}/{name}: holds no acceptable invoice, yet {len(docs)} documents were accepted")
        if invoice is not None:
            holders[invoice] += len(docs)
    invoices = {invoice for _, _, _, invoice in dropped.files if invoice is not None}
    found += [f"invoice {i}: accepted {holders[i]} times, not once" for i in sorted(invoices) if holders[i] != 1]

    wanted = Counter(f"{d['queue']}/{n}" for docs in accepted.values() for d in docs for n in d["delivered_as"])
    delivered = Counter(
        f"{q.name}/{p.name.split(':')[0]}" for q in (root / "queues").iterdir() for p in q.glob("*/*") if p.is_file()
    )
    for name in sorted(set(wanted) | set(delivered)):
        if wanted[name] != delivered[name]:
            found.append(f"queue file {name}: {delivered[name]} delivered, {wanted[name]} accepted")
    found += [f"{p.relative_to(root)}: left in a queue's tmp/" for p in (root / "queues").glob("*/tmp/*")]

    for folder in ("inbox", "spool", "failed", "tmp"):
        found += [f"{p.relative_to(root)}: left behind" for p in (root / folder).rglob("*") if not p.is_dir()]
    found += [f"{p.relative_to(root)}: a hand left behind" for p in (root / "spool" / "active").iterdir()]
    archived = [p for p in (root / "archive").rglob("*") if not p.is_dir()]
    if len(archived) != len(acks):
        found.append(f"{len(archived)} files archived for {len(acks)} flows")

    with store(root) as db:
        rows = {
            r[0]: r[1:]
            for r in db.execute("SELECT flow_id, status, documents_total, documents_accepted, file_name FROM flows")
        }
        for flow_id, ack in acks.items():
            row = rows.pop(flow_id, None)
            said = (ack["status"], ack["documents_total"], ack["documents_accepted"], ack["file_name"])
            if row != said:
                found.append(f"{flow_id}: the store says {row}, the acknowledgement {said}")
        found += [f"{flow_id}: a row {row} with no acknowledgement" for flow_id, row in rows.items()]
        flow_events: dict[str, list[str]] = {}
        for flow_id, status in db.execute("SELECT flow_id, status FROM events WHERE idx IS NULL ORDER BY id"):
            flow_events.setdefault(flow_id, []).append(status)
        for flow_id, ack in acks.items():
            if flow_events.pop(flow_id, None) != [RECEIVED, ack["status"]]:
                found.append(f"{flow_id}: flow events are not [{RECEIVED}, {ack['status']}]")
        found += [f"{flow_id}: events {events} of no flow" for flow_id, events in flow_events.items()]
        held = set(db.execute("SELECT flow_id, idx FROM invoices"))
        kept = set(db.execute("SELECT flow_id, idx FROM documents WHERE status = '200'"))
        if held != kept:
            found.append(
                f"invoice keys held by {sorted(held - kept)[:3]}; accepted, not held: {sorted(kept - held)[:3]}"
            )
    return found


@dataclass
class Setup:
    """A fresh workspace (after `edi init`) and the `edi` processes started on it."""

    config: Path
    started: list[subprocess.Popen[str]]

    @property
    def root(self) -> Path:
        return self.config.parent / "ws"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "edi", "--config", str(self.config), *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `edi <args>` in the background, in a process group of its own (its workers with it)."""
        process = subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.started.append(process)
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=TIMEOUT, check=False)

    def holder(self) -> int | None:
        """The pid the workspace's processor lock names, if any."""
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads((self.root / "processor.lock").read_text(encoding="utf-8"))["pid"])
        return None


@pytest.fixture
def make_setup(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    """Write the configuration, run `edi init`; every process a test started is gone at its end."""
    started: list[subprocess.Popen[str]] = []

    def make(exclusive: bool = True, rules: str = '["xsd"]') -> Setup:
        config = tmp_path / "config.toml"
        text = CONFIG.format(exclusive=str(exclusive).lower()).replace('rules = ["xsd"]', f"rules = {rules}", 1)
        config.write_text(text, encoding="utf-8")
        setup = Setup(config, started)
        init = setup.run("init")
        assert init.returncode == 0, init.stderr
        return setup

    yield make
    for process in started:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)


def wait_for(what: str, condition: Callable[[], object], process: subprocess.Popen[str], every: float = 0.01) -> None:
    """Poll ``condition`` every so often until it holds; fail if ``process`` ends first or it takes longer than
    TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, f"the process ended before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT} s"
        time.sleep(every)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, from /proc: each of its tasks' list of children, or, on a kernel that keeps no
    such list, every process's parent."""
    found: list[int] = []
    lists = list(Path(f"/proc/{pid}/task").glob("*/children"))
    for listed in lists:
        with contextlib.suppress(OSError, ValueError):
            found += [int(child) for child in listed.read_text().split()]
    if not lists:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(stat.parent.name))
    return found


def is_pool_worker(pid: int) -> bool:
    """Whether ``pid`` is a multiprocessing worker started by spawn (not, say, its resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    ("args", "processes"),
    [(["--workers", "2"], {2}), (["--workers", "1"], {1}), ([], {1} if CORES == 1 else set(range(2, CORES + 1)))],
    ids=["workers-2", "workers-1", "default-cores"],
)
def test_batch_with_workers_answers_every_file_once_in_that_many_processes(make_setup, args, processes) -> None:
    """`edi batch` on 300 files, with 2 workers, 1, or as many as cores (the default): one acknowledgement per file,
    each accepted document delivered once, each invoice accepted once, nothing left in the inbox or the spool, the
    store agrees; the flows were claimed by that many processes, the batch among them, each with one hand for the
    whole run (a worker keeps its session, compiled schemas included, from group to group)."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 300, "a")  # more than POOL_FILES: worth starting workers for
    process = setup.start("batch", *args)
    code, out, err = finish(process)
    assert code == 0, err
    assert out.startswith("300 flows"), out
    assert problems(setup.root, dropped) == []
    claimed = hands(setup.root)
    assert sum(claimed.values()) == 300
    pids = Counter(pid_of(hand) for hand in claimed)
    assert len(pids) in processes and process.pid in pids, claimed  # the batch works too, beside its workers
    assert set(pids.values()) == {1}, claimed  # one hand per process


def test_by_default_business_rules_take_a_worker_per_two_cores(make_setup) -> None:
    """`edi batch` with EN 16931 and no --workers, on 300 files: each worker's rules processes run beside it, so it
    starts one worker per two cores (one process on one or two cores), and answers every file once."""
    setup = make_setup(rules='["xsd", "en16931"]')
    dropped = Dropped()
    drop(setup.root, dropped, 300, "a")
    process = setup.start("batch")
    code, out, err = finish(process)
    assert code == 0, err
    assert out.startswith("300 flows"), out
    assert problems(setup.root, dropped) == []
    pids = Counter(pid_of(hand) for hand in hands(setup.root))
    expected = {1} if CORES < 4 else set(range(2, CORES // 2 + 1))  # a worker may find no task left: not more
    assert len(pids) in expected and process.pid in pids, pids


@pytest.mark.parametrize(
    ("rules", "sender_rules", "cores", "workers"),
    [
        (["xsd"], None, 8, 8),
        (["xsd"], None, 1, 1),
        (["xsd", "en16931"], None, 8, 4),
        (["xsd", "en16931"], None, 3, 1),
        (["xsd", "en16931"], None, 1, 1),
        (["xsd"], ["xsd", "br-fr"], 8, 4),  # one sender's rules are enough
        (["xsd"], ["xsd"], 8, 8),
    ],
)
def test_default_workers(
    tmp_path: Path, rules: list[str], sender_rules: list[str] | None, cores: int, workers: int
) -> None:
    """One worker per core with the XSD alone; one per two cores (at least one) when any business rules run."""
    extra = f"rules = {json.dumps(sender_rules)}\n" if sender_rules is not None else ""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[workspace]\nroot = "ws"\n[[senders]]\nid = "acme"\nsellers = ["*"]\n{extra}'
        f"[validation]\nrules = {json.dumps(rules)}\n",
        encoding="utf-8",
    )
    assert worker_processes.default_workers(load_settings(config), cores) == workers


def test_workers_reject_documents_past_the_validation_budget_and_go_on(make_setup) -> None:
    """`edi batch --workers 2` with limits.validate_seconds = 1 on 300 files and six invoices whose rules outrun it,
    among them: every process, worker or batch, rejects those six (LAYER_NOT_RUN, VALIDATE_TIMEOUT: without a
    budget their rules would have run and found BR-25 on every line) and answers everything else as usual."""
    setup = make_setup()
    text = setup.config.read_text(encoding="utf-8").replace('rules = ["xsd"]', 'rules = ["xsd", "en16931"]')
    setup.config.write_text(text + "[limits]\nvalidate_seconds = 1\n", encoding="utf-8")
    dropped, slow = Dropped(), nameless_invoice(templates()[0], 1, 8000)
    for part in range(6):
        drop(setup.root, dropped, 50, f"{part}-")
        path = setup.root / "inbox" / "acme" / f"slow-{part}.xml"
        path.write_bytes(slow.replace(b"FA-2026-0001-0000001", f"FA-2026-0001-SLOW{part}".encode()))
        os.utime(path, (time.time() - 60, time.time() - 60))
    process = setup.start("batch", "--workers", "2")
    code, out, err = finish(process)
    assert code == 0, err
    assert out.startswith("306 flows"), out
    acks = [a for a in read_acks(setup.root).values() if a["file_name"].startswith("slow-")]
    assert len(acks) == 6
    for ack in acks:
        (document,) = ack["documents"]
        rules = {(f["code"], f["rule"]) for f in document["findings"] if f["layer"] == "en16931"}
        assert rules == {("LAYER_NOT_RUN", "VALIDATE_TIMEOUT")}, (ack["file_name"], rules)
    with store(setup.root) as db:
        slow_hands = {h for (h,) in db.execute("SELECT claimed_by FROM flows WHERE file_name LIKE 'slow-%'")}
    assert len({pid_of(hand) for hand in hands(setup.root)}) == 2
    # the six are spread over the order files are handed out in: the batch and its worker each had some (four runs
    # of four: always both)
    assert {pid_of(hand) == process.pid for hand in slow_hands} == {True, False}, slow_hands


def test_two_batches_on_a_shared_workspace_never_process_a_flow_twice(make_setup) -> None:
    """With `exclusive = false`, two `edi batch` processes started together on the same files, three rounds of 200
    fresh files (with and without workers): both exit 0, every file is answered once, every accepted document is
    delivered once, each invoice re-sent by another file is accepted once, and the store agrees."""
    setup = make_setup(exclusive=False)
    dropped = Dropped()
    both_worked = 0
    for number, workers in enumerate([("2", "2"), ("1", "2"), ("1", "1")]):
        drop(setup.root, dropped, 200, f"r{number}-")
        before = hands(setup.root)
        first, second = (setup.start("batch", "--workers", w) for w in workers)
        for process in (first, second):
            code, _, err = finish(process)
            assert code == 0, err
        assert problems(setup.root, dropped) == [], f"round {number}"
        now = {pid_of(hand) for hand in hands(setup.root) - before}
        both_worked += {first.pid, second.pid} <= now
    assert both_worked, "in no round did both processes claim flows: the race was not run"


def test_a_second_batch_on_an_exclusive_workspace_exits_75_and_takes_nothing(make_setup) -> None:
    """With the default `exclusive = true`, a batch started while another holds the workspace exits 75 at once,
    naming the holder, and claims nothing; the first one then finishes every file once."""
    setup = make_setup(exclusive=True)
    dropped = Dropped()
    drop(setup.root, dropped, 200, "x")
    first = setup.start("batch", "--workers", "1")
    wait_for("the processor lock", lambda: setup.holder() == first.pid, first, every=0.002)
    os.kill(first.pid, signal.SIGSTOP)  # it holds the lock and does nothing: the second one meets it, surely
    try:
        acks_before = len(read_acks(setup.root))
        second = setup.run("batch")
        acks_after = len(read_acks(setup.root))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 75, second.stderr
    assert f"edi batch (pid {first.pid}" in second.stderr
    assert acks_after == acks_before
    code, _, err = finish(first)
    assert code == 0, err
    assert problems(setup.root, dropped) == []
    assert {pid_of(hand) for hand in hands(setup.root)} == {first.pid}


def test_sigterm_stops_a_batch_with_workers_cleanly_and_the_next_batch_finishes(make_setup) -> None:
    """SIGTERM to `edi batch --workers 2` on 1,600 files once the first answers are out: exit 0 without a traceback,
    every file either answered once or untouched in the inbox, no flow left claimed in the spool or the store; the
    next `edi batch` answers the rest, each file once."""
    setup = make_setup()
    dropped = Dropped()
    # more than the pool holds at once (two tasks queued for the worker, a group in the batch's own hand: 1,152)
    drop(setup.root, dropped, 1600, "t")
    process = setup.start("batch", "--workers", "2")
    wait_for("a first acknowledgement", lambda: ack_count(setup.root), process, every=0.002)
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "stopped on request" in out, out

    counts, left = answered(setup.root), in_inbox(setup.root)
    assert set(counts.values()) == {1}, counts.most_common(3)
    assert set(counts) | left == dropped.names and not set(counts) & left
    assert left, "the run ended before the signal: nothing shows it stopped early"
    assert list((setup.root / "spool" / "active").iterdir()) == []
    with store(setup.root) as db:
        assert db.execute("SELECT COUNT(*) FROM flows WHERE status = ?", [RECEIVED]).fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM flows").fetchone() == (len(counts),)

    again = setup.run("batch", "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{len(left)} flows"), again.stdout
    assert problems(setup.root, dropped) == []


def kill_a_worker_holding_flows(setup: Setup, process: subprocess.Popen[str], after_acks: int = 0) -> list[str]:
    """Wait until a worker process of ``process`` holds claimed flows in its hand (once more than ``after_acks``
    acknowledgements of the first sender exist), SIGKILL it, and return the flows it held."""
    held: list[str] = []

    def a_worker_holds_flows() -> bool:
        if after_acks and sum(1 for _ in (setup.root / "acks" / SENDERS[0]).glob("*.json")) <= after_acks:
            return False
        for pid in filter(is_pool_worker, children(process.pid)):
            for hand in (setup.root / "spool" / "active").glob(f"{pid}-*"):
                with contextlib.suppress(OSError):
                    held[:] = [p.name for p in hand.iterdir() if p.name != "lock"]
                if held:
                    os.kill(pid, signal.SIGKILL)
                    return True
        return False

    wait_for("a worker holding flows", a_worker_holds_flows, process, every=0.002)
    return held


def test_a_worker_killed_in_the_middle_of_a_group_is_recovered_by_the_batch(make_setup) -> None:
    """SIGKILL to the worker process of `edi batch --workers 2` while it holds claimed flows: the batch takes back
    what the worker held, finishes the run itself and exits 0; every file is answered once and delivered once, and
    one more `edi batch` has nothing left to do."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 300, "k")
    process = setup.start("batch", "--workers", "2")
    held = kill_a_worker_holding_flows(setup, process)
    code, _, err = finish(process)
    assert code == 0, err
    assert "a worker process died" in err
    acks = read_acks(setup.root)
    assert set(held) <= set(acks), "flows the worker held were not finished"
    assert problems(setup.root, dropped) == []

    again = setup.run("batch")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 flows"), again.stdout
    assert problems(setup.root, dropped) == []


def test_a_worker_killed_beside_others_ends_the_run_and_every_answer_is_counted(make_setup) -> None:
    """SIGKILL to one of the workers of `edi batch --workers 3` while it holds flows: the others, which ignore
    SIGTERM and may be blocked sending a result nobody reads, do not hold the run up (it hung there); every file is
    answered once, and the summary counts every flow answered, those whose outcomes died with the pool included."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 1500, "w")
    process = setup.start("batch", "--workers", "3")
    kill_a_worker_holding_flows(setup, process, after_acks=300)
    code, out, err = finish(process)
    assert code == 0, err
    assert "a worker process died" in err
    assert problems(setup.root, dropped) == []
    documents = sum(ack["documents_total"] for ack in read_acks(setup.root).values())
    assert out.startswith(f"1500 flows, {documents} documents:"), out


def test_scans_run_while_the_worker_holds_groups_and_never_give_a_file_twice(make_setup, monkeypatch) -> None:
    """`run_batch` with 2 workers on 300 files (in this process, the inbox looked at 40 files at a time, in groups
    of 8): the next scans run while groups handed to the worker are not finished (the worker does not wait for them),
    leave those groups' files out (no file is given by two scans), and every file is answered once, by both
    processes."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 300, "s")
    monkeypatch.setattr(runner, "SCAN_LIMIT", 40)
    monkeypatch.setattr(runner, "GROUP_FLOWS", 8)  # a look of one group would be this process's alone (its share)
    scans: list[tuple[set[Path], list[Path]]] = []  # per scan: the files it was told to leave out, those it gave
    real_scan = runner._scan

    def spy(*args: Any, **kwargs: Any) -> runner.SenderScan:
        result = real_scan(*args, **kwargs)
        scans.append((set(args[-1]), [item.path for _, item in result.ready]))
        return result

    monkeypatch.setattr(runner, "_scan", spy)
    report = runner.run_batch(load_settings(setup.config), workers=2, keep_outcomes=False)
    assert report.flows == 300
    given = [path for _, ready in scans for path in ready]
    assert len(given) == len(set(given)) == 300, "a file was given by two scans"
    assert len(scans) >= 300 // 40
    assert any(in_flight for in_flight, _ in scans[1:]), "every scan waited for the worker to finish its groups"
    assert problems(setup.root, dropped) == []
    assert len(hands(setup.root)) == 2


def test_a_pass_lets_go_of_the_groups_it_has_processed(make_setup, monkeypatch) -> None:
    """`run_batch` with 1 worker on 120 files looked at 40 at a time, in groups of 4: whenever a group is taken, no
    file of a group processed before it is still held (a pass holds what is left of its scans, not the whole of
    them: with a large backlog, the last scan's files and the next one's are never both held in full)."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 120, "s")
    monkeypatch.setattr(runner, "SCAN_LIMIT", 40)
    monkeypatch.setattr(runner, "GROUP_FLOWS", 4)
    done: set[Path] = set()
    still_held: list[Path] = []
    real = runner.Session.claim_and_process

    def watching(self: runner.Session, items: Any, leave: Any = None) -> list[Any]:
        still_held.extend(o.path for o in gc.get_objects() if isinstance(o, Ready) and o.path in done)
        done.update(item.path for _, item in items)
        return real(self, items, leave)

    monkeypatch.setattr(runner.Session, "claim_and_process", watching)
    report = runner.run_batch(load_settings(setup.config), workers=1, keep_outcomes=False)
    assert report.flows == 120 and len(done) == 120
    assert still_held == []
    assert problems(setup.root, dropped) == []


@pytest.mark.parametrize(("files", "started"), [(runner.POOL_FILES + 1, True), (runner.POOL_FILES, False)])
def test_with_a_backlog_the_workers_start_before_the_first_scan(make_setup, monkeypatch, files, started) -> None:
    """`run_batch` with 3 workers (in this process): with more than two groups' worth of files in the inboxes, both
    worker processes are running when the first scan starts (they get ready while it runs); with two groups' worth,
    none is started at all (this process takes them). Every file is answered once either way."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, files, "e")
    seen: list[list[int]] = []  # per scan: the pool's worker processes running when it started
    real_scan = runner._scan
    ours = Path("/proc/self/cmdline").read_bytes()

    def exec_done(pid: int) -> bool:
        """A child forked and not yet exec'ed shows this process's command line, one being exec'ed none at all."""
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # exited
            return Path(f"/proc/{pid}/cmdline").read_bytes() not in (ours, b"")
        except (OSError, IndexError):  # gone
            return True

    def spy(*args: Any, **kwargs: Any) -> runner.SenderScan:
        deadline = time.monotonic() + 30
        while not all(map(exec_done, children(os.getpid()))) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append([pid for pid in children(os.getpid()) if is_pool_worker(pid)])
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(runner, "_scan", spy)
    report = runner.run_batch(load_settings(setup.config), workers=3, keep_outcomes=False)
    assert report.flows == files
    assert problems(setup.root, dropped) == []
    assert len(seen[0]) == (2 if started else 0), f"worker processes at each scan: {seen}"
    if not started:
        assert len(hands(setup.root)) == 1


def test_with_a_backlog_the_next_scan_runs_while_the_last_ones_files_are_claimed(make_setup, monkeypatch) -> None:
    """`run_batch` in one process on 300 files, the inbox looked at 40 files at a time: a next scan starts in the
    background before the files of the scans before it are all claimed, leaves them out (no file is given by two
    scans), and every file is answered once."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 300, "a")
    monkeypatch.setattr(runner, "SCAN_LIMIT", 40)
    claimed: list[Path] = []
    scans: list[tuple[int, int, list[Path]]] = []  # per scan: files claimed and given before it started, it gave
    real_scan, real_group = runner._scan, runner.Session.claim_and_process

    def spy(*args: Any, **kwargs: Any) -> runner.SenderScan:
        at, given = len(claimed), sum(len(found) for _, _, found in scans)
        result = real_scan(*args)
        scans.append((at, given, [item.path for _, item in result.ready]))
        return result

    def group(self: runner.Session, items: Any, *args: Any) -> Any:
        claimed.extend(item.path for _, item in items)
        return real_group(self, items, *args)

    monkeypatch.setattr(runner, "_scan", spy)
    monkeypatch.setattr(runner.Session, "claim_and_process", group)
    report = runner.run_batch(load_settings(setup.config), workers=1, keep_outcomes=False)
    assert report.flows == 300
    given = [path for _, _, found in scans for path in found]
    assert len(given) == len(set(given)) == 300, "a file was given by two scans"
    assert any(at < before for at, before, _ in scans[1:]), f"every scan waited for the claims: {scans}"
    assert problems(setup.root, dropped) == []


def test_a_worker_task_answers_all_its_groups_and_waits_for_the_disk_in_the_background(make_setup, monkeypatch) -> None:
    """A worker's task of three groups (its function run here, with a session of its own): the outcome of every file
    of the three groups comes back with the task; the barriers of the first two groups ran in the background thread
    while the next group was decided, and the last group's, with nothing left to decide, in the worker's own thread
    as the task ended."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 3 * GROUP_FLOWS, "t")
    session = runner.Session(load_settings(setup.config))
    barriers: list[str] = []
    real_barrier = session.spool.barrier

    def barrier() -> None:
        barriers.append(threading.current_thread().name)
        real_barrier()

    monkeypatch.setattr(session.spool, "barrier", barrier)
    monkeypatch.setattr(worker_processes, "_session", session)
    files = sorted(
        ((sender, path) for sender in SENDERS for path in (setup.root / "inbox" / sender).iterdir()),
        key=lambda item: item[1].name,
    )
    wire = [(sender, os.fsencode(path), path.stat().st_size, path.stat().st_mtime) for sender, path in files]
    try:
        outcomes, unclaimable, error = worker_processes._run(
            [wire[n : n + GROUP_FLOWS] for n in range(0, len(wire), GROUP_FLOWS)]
        )
    finally:
        worker_processes._close()  # as at a worker's exit: the idle flush called off, everything archived
    assert sorted(o.file_name for o in outcomes) == sorted(name for _, name, _, _ in dropped.files)
    assert (unclaimable, error) == ([], None)
    assert problems(setup.root, dropped) == []
    main = threading.current_thread().name
    assert barriers[:3] == ["edi-barrier_0", "edi-barrier_0", main], barriers  # then the flush at exit, here too


def test_a_groups_barrier_starts_only_once_the_next_group_is_claimed_and_its_digests_recorded(
    make_setup, monkeypatch
) -> None:
    """Three groups in one process: the barrier of each group but the last starts after every claim of the next
    group and after its digests are recorded (renames and store writes made while `syncfs` runs wait for the disk);
    the last group's runs at the end of the pass."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 3 * GROUP_FLOWS, "b")
    session = runner.Session(load_settings(setup.config))
    events: list[str] = []  # appended from this thread and from the barrier's (list.append is atomic)
    real_barrier, real_claim, real_digests = session.spool.barrier, session.spool.claim, session.tracking.record_digests

    def barrier() -> None:
        events.append("barrier")
        real_barrier()

    def claim(*args: Any, **kwargs: Any) -> Any:
        events.append("claim")
        return real_claim(*args, **kwargs)

    def record_digests(*args: Any, **kwargs: Any) -> Any:
        events.append("digests")
        return real_digests(*args, **kwargs)

    monkeypatch.setattr(session.spool, "barrier", barrier)
    monkeypatch.setattr(session.spool, "claim", claim)
    monkeypatch.setattr(session.tracking, "record_digests", record_digests)
    try:
        session.run_once()
    finally:
        session.close()
    assert problems(setup.root, dropped) == []
    barriers = [n for n, event in enumerate(events) if event == "barrier"]
    digests = [n for n, event in enumerate(events) if event == "digests"]
    claims = [n for n, event in enumerate(events) if event == "claim"]
    assert len(digests) == 3 and len(barriers) >= 3 and len(claims) == 3 * GROUP_FLOWS, events
    for group in (0, 1):  # this group's barrier starts after the next group's last claim and its digests
        assert claims[(group + 2) * GROUP_FLOWS - 1] < digests[group + 1] < barriers[group], (group, events)
    assert barriers[2] > digests[2], events  # the last: at the end


def test_a_task_that_finished_is_replaced_before_the_main_process_takes_its_next_group(make_setup, monkeypatch) -> None:
    """`run_batch` with 2 workers on 640 files (in this process), each group of the main process's own slowed down by
    half a second: whenever a task handed to the worker finished while the main process was busy with a group, the
    next task is handed out before the main process takes another group (the worker does not wait a whole group of
    the main process for work it could have had)."""
    setup = make_setup()
    dropped = Dropped()
    drop(setup.root, dropped, 640, "q")
    monkeypatch.setattr(runner, "GROUP_FLOWS", 32)  # 20 groups: tasks finish while the main process has groups left
    events: list[tuple[float, str]] = []  # appended by this thread and by the pool's (list.append is atomic)
    real_group, real_submit = runner.Session.claim_and_process, ProcessPoolExecutor.submit

    def slow_group(self: runner.Session, *args: Any) -> Any:
        events.append((time.monotonic(), "group"))
        time.sleep(0.5)
        try:
            return real_group(self, *args)
        finally:
            events.append((time.monotonic(), "group end"))

    def submit(self: ProcessPoolExecutor, *args: Any) -> Any:
        future = real_submit(self, *args)
        if args[0] is not worker_processes._run:  # the tasks that only start the workers
            return future
        events.append((time.monotonic(), f"task {len(args[1])}"))
        future.add_done_callback(lambda _: events.append((time.monotonic(), "task done")))
        return future

    monkeypatch.setattr(runner.Session, "claim_and_process", slow_group)  # the worker (spawned) runs the real one
    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    report = runner.run_batch(load_settings(setup.config), workers=2, keep_outcomes=False)
    assert report.flows == 640
    assert problems(setup.root, dropped) == []
    events.sort()
    kinds = ["task" if kind[5:].isdigit() else kind for _, kind in events]
    sizes = [int(kind[5:]) for _, kind in events if kind[5:].isdigit()]  # groups in each task, in order
    starts = [i for i, kind in enumerate(kinds) if kind == "group"]
    checked = 0
    for start, following in itertools.pairwise(starts):
        end = kinds.index("group end", start)
        # at the end of the pass the worker gets no more than its share of what is left (task_groups): what it
        # holds when this group ends, and the groups neither handed out nor taken here by then
        handed = sum(sizes[: kinds[:end].count("task")])
        held = sum(sizes[kinds[:end].count("task done") : kinds[:end].count("task")])  # tasks end in order
        left = 640 // 32 - handed - kinds[: end + 1].count("group end")
        if "task done" in kinds[start:end] and worker_processes.task_groups(left, held, 1):
            checked += 1  # a place freed while the main process was busy, and the worker's share not all held
            assert "task" in kinds[end:following], f"no task handed out between two groups of its own: {kinds}"
    assert checked, f"no task finished during a group of the main process: nothing was checked ({kinds})"


def test_tasks_shrink_at_the_end_of_a_pass_so_that_the_workers_hold_no_more_than_their_share() -> None:
    """A task has GROUPS_PER_TASK groups while many are left; at the end of a pass, fewer, and none once the
    workers hold their share of what is left (the main process is one process of workers + 1): it takes the rest."""
    task = worker_processes.task_groups
    full = worker_processes.GROUPS_PER_TASK
    assert task(left=150, held=full, workers=1) == full  # a backlog: whole tasks
    assert task(left=6, held=4, workers=1) == 1  # 10 left: the worker's 5 are the 4 it holds and 1 more
    assert task(left=4, held=6, workers=1) == 0  # it holds more than its 5 already
    assert task(left=3, held=0, workers=1) == 1
    assert task(left=2, held=0, workers=7) == 1  # 7 of 8 processes are workers: one group to them, one here
    for workers in (1, 2, 3, 7):
        for left in range(0, 40):
            for held in range(0, 3 * full * workers):
                size = task(left, held, workers)
                assert 0 <= size <= min(full, left)
                if size:  # what the workers then hold is at most their share of all that is left
                    assert (held + size) * (workers + 1) <= (left + held) * workers
                else:  # they hold their share, or nothing is left to hand out
                    assert left == 0 or (held + 1) * (workers + 1) > (left + held) * workers


def test_a_worker_runs_the_cycle_collector_only_every_so_many_objects(make_setup) -> None:
    """A worker process, like the command line, runs Python's cycle collector once GC_YOUNG_OBJECTS more container
    objects were made than freed."""
    setup = make_setup()
    pool = worker_processes.WorkerPool(load_settings(setup.config), 1)
    try:
        threshold = pool._executor.submit(gc.get_threshold).result(timeout=TIMEOUT)
    finally:
        pool.close()
    assert threshold[0] == runner.GC_YOUNG_OBJECTS  # a spawned interpreter starts at Python's default, 700


def _hand_and_a_teardown_mark(marker: str) -> str:
    """In a worker: make its hand (as a first claim would) and have the interpreter's teardown write ``marker``."""
    atexit.register(Path(marker).write_text, "torn down")
    assert worker_processes._session is not None
    return str(worker_processes._session.spool.hand)


def test_a_worker_whose_session_closed_cleanly_ends_without_the_interpreters_teardown(
    make_setup, tmp_path, monkeypatch
) -> None:
    """A worker process, at its exit, first closes its session (everything durable, its empty hand let go), then ends
    at once, with status 0: the interpreter's teardown, atexit handlers included, does not run. Where the session
    did not close cleanly, the last finalizer leaves the process to exit the usual way."""
    setup = make_setup()
    pool = worker_processes.WorkerPool(load_settings(setup.config), 1)
    marker = tmp_path / "torn-down"
    try:
        hand = Path(pool._executor.submit(_hand_and_a_teardown_mark, str(marker)).result(timeout=TIMEOUT))
        processes = list(pool._executor._processes.values())
        assert hand.is_dir()
    finally:
        pool.close()
    assert [p.exitcode for p in processes] == [0]
    assert not hand.exists()  # the session closed before the process ended
    assert not marker.exists()  # ... and the teardown did not run
    monkeypatch.setattr(worker_processes, "_closed", False)
    assert worker_processes._leave() is None  # returns: this process goes on


def start_watch(setup: Setup) -> subprocess.Popen[str]:
    """`edi watch --workers 2`, once it holds the workspace."""
    watch = setup.start("watch", "--workers", "2")
    wait_for("the processor lock", lambda: setup.holder() == watch.pid, watch)
    return watch


def drop_at_once(setup: Setup, watch: subprocess.Popen[str], dropped: Dropped, count: int, prefix: str) -> None:
    """Drop ``count`` files while the watch is stopped (SIGSTOP), so that they all appear to it at once and its next
    pass sees every one of them; then wait until each has its acknowledgement."""
    os.kill(watch.pid, signal.SIGSTOP)
    try:
        drop(setup.root, dropped, count, prefix)
    finally:
        os.kill(watch.pid, signal.SIGCONT)
    wait_for(f"{len(dropped.files)} acknowledgements", lambda: ack_count(setup.root) >= len(dropped.files), watch)


def test_watch_with_two_workers_answers_files_dropped_at_once_exactly_once(make_setup) -> None:
    """`edi watch --workers 2`, twice given 300 files that appear at once (more than POOL_FILES: worth starting
    workers for): each file answered once and delivered once, by the watch and one worker that lives on between
    passes (one hand each); SIGTERM stops it with exit 0."""
    setup = make_setup()
    dropped = Dropped()
    watch = start_watch(setup)
    drop_at_once(setup, watch, dropped, 300, "w0-")
    drop_at_once(setup, watch, dropped, 300, "w1-")
    claimed = hands(setup.root)
    watch.send_signal(signal.SIGTERM)
    code, out, err = finish(watch)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert "watch stopped: 600 flows" in out, out
    assert problems(setup.root, dropped) == []
    pids = Counter(pid_of(hand) for hand in claimed)
    assert len(pids) == 2 and watch.pid in pids, claimed
    assert set(pids.values()) == {1}, claimed


def test_watch_with_workers_archives_what_a_pass_answered_before_the_next_pass(make_setup) -> None:
    """Once `edi watch --workers 2` has answered 300 files dropped at once (workers started), every one of them is
    archived and no process's hand keeps a payload, while the watch runs on (as at the end of any pass)."""
    setup = make_setup()
    dropped = Dropped()
    watch = start_watch(setup)
    drop_at_once(setup, watch, dropped, 300, "p")
    active = setup.root / "spool" / "active"

    def held() -> dict[str, int]:
        return {h.name: n for h in active.iterdir() if (n := sum(p.name != "lock" for p in h.iterdir()))}

    def archived() -> int:
        return sum(1 for p in (setup.root / "archive").rglob("*") if not p.is_dir())

    deadline = time.monotonic() + 5  # the end of the pass is milliseconds away; later passes come every second
    while (held() or archived() < 300) and time.monotonic() < deadline:
        assert watch.poll() is None
        time.sleep(0.05)
    assert held() == {}
    assert archived() == 300
    watch.send_signal(signal.SIGTERM)
    assert finish(watch)[0] == 0


def test_the_checker_sees_a_flow_processed_twice(make_setup) -> None:
    """The invariants these tests check can fail: a file answered twice, a document delivered twice, an invoice
    accepted twice, a file left in the inbox, a hand left in the spool and a claim left in the store are each
    reported."""
    setup = make_setup()
    root = setup.root
    dropped = Dropped()
    drop(root, dropped, GROUP_FLOWS + 40, "c")
    done = setup.run("batch", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert problems(root, dropped) == []

    (ack,) = [
        p for p in (root / "acks" / "acme").glob("*.json") if json.loads(p.read_bytes())["file_name"] == "c00000.xml"
    ]
    again = json.loads(ack.read_bytes()) | {"flow_id": "20990101T000000000000-abcdef"}
    (ack.parent / "20990101T000000000000-abcdef.json").write_text(json.dumps(again), encoding="utf-8")
    # a file that re-sends the invoice of a file one group earlier with other bytes (refused as DOUBLON)
    sender, name, _, invoice = next(
        f for n, f in enumerate(dropped.files) if n >= GROUP_FLOWS and n % 10 == 3 and f[3] is not None
    )
    (resent,) = [p for p in (root / "acks" / sender).glob("*.json") if json.loads(p.read_bytes())["file_name"] == name]
    twice = json.loads(resent.read_bytes())
    twice["documents"][0]["status"] = "200"
    resent.write_text(json.dumps(twice), encoding="utf-8")
    delivered = next((root / "queues" / "unrouted" / "new").iterdir())
    (delivered.parent / f"{delivered.name}-copy").write_bytes(delivered.read_bytes())
    (root / "inbox" / "acme" / "stuck.xml").write_bytes(b"<x/>")
    (root / "spool" / "active" / "1-abcdef").mkdir()
    with store(root) as db:
        db.execute("INSERT INTO flows (flow_id, status) VALUES ('20990101T000000000001-abcdef', 'IN_RECU')")
        db.commit()

    found = "\n".join(problems(root, dropped))
    assert "acme/c00000.xml: 2 acknowledgements" in found
    assert "20990101T000000000000-abcdef: no XML acknowledgement" in found
    assert f"invoice {invoice}: accepted 2 times" in found
    assert f"queue file unrouted/{delivered.name}-copy: 1 delivered, 0 accepted" in found
    assert "inbox/acme/stuck.xml: left behind" in found
    assert "spool/active/1-abcdef: a hand left behind" in found
    assert "20990101T000000000001-abcdef: a row ('IN_RECU'" in found
