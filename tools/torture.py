"""Crash torture: kill `edi batch` with SIGKILL at random moments, over and over, then check that nothing was lost.

Drops a mix of flows into a fresh workspace (invoices and credit notes, UBL and CII, invalid ones, duplicates of
earlier flows, a ZIP batch with one bad member, a tar.gz batch, a Factur-X PDF), then repeatedly starts the real
`edi batch` command and kills it (SIGKILL, the whole process group, so worker processes die too) after a random
delay: during start-up, claims, validation, delivery, acknowledgement, database commits, archiving. Between kills,
more files may be dropped. Finally one `edi batch` runs to its end, and the invariants are checked:

- every dropped file has exactly one final acknowledgement (JSON and XML), and the store says the same;
- every accepted document is in its queue exactly once (and nothing else is);
- every final flow has exactly its CDAR lifecycle messages (one per document, or one for a file refused whole), each
  whole and well-formed with the status its acknowledgement gives; no other ``.cdar.xml`` is in acks/;
- nothing is left in the inbox, in a process's hand (spool/active) or in spool/requeued, nothing failed;
- the store agrees with the files: one final row per acknowledgement, same status and documents, every accepted
  invoice key held by its document and no other.

The test suite runs a short version (tests/test_torture.py). The long one:

  .venv/bin/python tools/torture.py [--rounds 200] [--files 300] [--workers 1 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "flows"

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
[[senders]]
id = "acme"
sellers = ["*"]
[[senders]]
id = "opdemat"
sellers = ["*"]
[routing]
directory = "{directory}"
unknown_recipient = "unrouted"
[validation]
rules = ["xsd"]
"""

SAMPLES = [
    ("acme", "01-ubl-invoice.xml", "FA-2026-0001"),
    ("acme", "02-ubl-creditnote.xml", "AV-2026-0001"),
    ("acme", "03-cii-invoice.xml", "FA-2026-0002"),
    ("acme", "10-schema-invalid.xml", "FA-2026-0010"),
    ("acme", "09-not-well-formed.xml", None),
    ("acme", "15-facturx-invoice.pdf", None),
    ("opdemat", "01-initech-cii-basic.xml", "IN-2026-0042"),
    ("opdemat", "02-initech-ubl-voirie.xml", "IN-2026-0043"),
    ("opdemat", "03-batch-partial.zip", None),
    ("opdemat", "04-batch.tar.gz", None),
]


@dataclass
class Drop:
    """What was dropped: (sender, file name) for each file, in order."""

    files: list[tuple[str, str]] = field(default_factory=list)


def make_workspace(folder: Path) -> tuple[Path, Path]:
    """A fresh workspace under ``folder``; its config path and root."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(CONFIG.format(directory=FLOWS / "directory.toml"), encoding="utf-8")
    subprocess.run([*edi(config), "init"], check=True, capture_output=True)
    return config, folder / "ws"


def edi(config: Path) -> list[str]:
    """The edi command line for ``config``."""
    return [sys.executable, "-m", "edi", "--config", str(config)]


def drop_files(root: Path, drop: Drop, count: int, rng: random.Random) -> None:
    """Drop ``count`` more files: samples with fresh invoice numbers, some exact duplicates of files dropped before
    (same bytes: refused as duplicate flows), the binary samples as they are (the second time: duplicates)."""
    for _ in range(count):
        serial = len(drop.files)
        sender, name, number = rng.choice(SAMPLES)
        data = (FLOWS / sender / name).read_bytes()
        if number and rng.random() < 0.9:  # else the same bytes as the sample: a duplicate after the first
            data = data.replace(number.encode(), f"{number}-{serial:05d}".encode())
        stem, dot, ext = name.partition(".")
        target = f"t{serial:05d}-{stem}{dot}{ext}"
        staging = root / "tmp" / f".drop-{serial}"
        staging.write_bytes(data)
        os.utime(staging, (time.time() - 60, time.time() - 60))
        staging.rename(root / "inbox" / sender / target)  # in place at once, as a careful sender does
        drop.files.append((sender, target))


def in_hands(root: Path, besides: set[str] = frozenset()) -> int:  # type: ignore[assignment]
    """Flows in the processes' hands (claimed, not yet archived), but for the hands named ``besides``."""
    active = root / "spool" / "active"
    count = 0
    for hand in list(active.iterdir()) if active.is_dir() else []:
        if hand.name not in besides:
            with contextlib.suppress(FileNotFoundError):  # a hand removed while we looked
                count += sum(1 for p in hand.iterdir() if p.name != "lock")
    return count


def run_killed(config: Path, workers: int, delay: float, root: Path | None = None) -> tuple[int | None, float]:
    """Start `edi batch` and SIGKILL its whole process group ``delay`` seconds after it started or, with ``root``,
    after its first claim (so that the kill lands while flows are in hand); its exit status if it ended first
    (else None), and the seconds from its start or first claim to its end."""
    proc = subprocess.Popen(
        [*edi(config), "batch", "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if root is not None:  # wait for this run (or its workers) to hold flows: hands made before do not count
        before = {hand.name for hand in (root / "spool" / "active").iterdir()}
        deadline = time.monotonic() + 30
        while proc.poll() is None and in_hands(root, before) == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
    began = time.monotonic()
    try:
        return proc.wait(timeout=delay), time.monotonic() - began
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - began


def run_to_end(config: Path, workers: int) -> subprocess.CompletedProcess[str]:
    """One `edi batch` left to finish."""
    return subprocess.run(
        [*edi(config), "batch", "--workers", str(workers)], capture_output=True, text=True, timeout=600, check=False
    )


RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"  # CDAR's namespace


def _cdar_problems(root: Path, acks: dict[str, dict[str, Any]]) -> list[str]:
    """Each acknowledgement's CDAR messages are there, whole, with its statuses; no orphan message exists."""
    problems: list[str] = []
    wanted: dict[Path, str] = {}
    for ack in acks.values():
        folder = root / "acks" / str(ack["sender"])
        documents = ack["documents"]
        if not documents:
            unreadable = any(str(f["reason"]).startswith("IRR_") for f in ack["findings"])
            wanted[folder / f"{ack['flow_id']}.0000.cdar.xml"] = "501" if unreadable else "213"
        for doc in documents:
            wanted[folder / f"{ack['flow_id']}.{doc['index']:04d}.cdar.xml"] = str(doc["status"])
    for path, status in sorted(wanted.items()):
        try:
            tree = ET.parse(path)
        except (OSError, ET.ParseError) as exc:
            problems.append(f"{path.relative_to(root)}: CDAR message missing or partial ({type(exc).__name__})")
            continue
        codes = [e.text for e in tree.iter(f"{{{RAM}}}ProcessConditionCode")]
        if codes != [status]:
            problems.append(f"{path.relative_to(root)}: CDAR status {codes}, the acknowledgement {status}")
    orphans = set((root / "acks").glob("*/*.cdar.xml")) - set(wanted)
    problems += [f"{p.relative_to(root)}: CDAR message of no acknowledged document" for p in sorted(orphans)]
    return problems


def check(root: Path, drop: Drop) -> list[str]:
    """Every invariant that does not hold, as a sentence (an empty list: all hold)."""
    problems: list[str] = []
    acks: dict[str, dict[str, Any]] = {}
    for sender in ("acme", "opdemat"):
        for path in sorted((root / "acks" / sender).glob("*.json")):
            ack = json.loads(path.read_text(encoding="utf-8"))
            acks[str(ack["flow_id"])] = ack
            if not path.with_suffix(".xml").is_file():
                problems.append(f"{path.name}: no XML acknowledgement beside the JSON one")
    answered = Counter((str(a["sender"]), str(a["file_name"])) for a in acks.values())
    for key in drop.files:
        if answered[key] != 1:
            problems.append(f"{key[0]}/{key[1]}: {answered[key]} acknowledgements, not 1")
    extra = set(answered) - set(drop.files)
    problems += [f"{s}/{n}: acknowledged but never dropped" for s, n in sorted(extra)]
    failed = [a for a in acks.values() if a["status"] == "IN_EN_ATTENTE_RETRAITEMENT"]
    problems += [f"{a['flow_id']}: acknowledged as failed" for a in failed]

    problems += _cdar_problems(root, acks)

    expected: Counter[str] = Counter()
    for ack in acks.values():
        for doc in ack["documents"]:
            if doc["status"] == "200":
                expected.update(f"{doc['queue']}/{name}" for name in doc["delivered_as"])
    found: Counter[str] = Counter()
    for queue in (root / "queues").iterdir():
        for sub in ("new", "cur"):
            for path in (queue / sub).glob("*") if (queue / sub).is_dir() else ():
                found[f"{queue.name}/{path.name.split(':')[0]}"] += 1
    for name in sorted(set(expected) | set(found)):
        if found[name] != expected[name]:
            problems.append(f"queue file {name}: {found[name]} in the queue, {expected[name]} accepted")

    leftovers = [p for p in (root / "inbox").rglob("*") if p.is_file()]
    leftovers += [p for p in (root / "spool").rglob("*") if p.is_file()]
    leftovers += [p for p in (root / "failed").rglob("*") if p.is_file()]
    problems += [f"{p.relative_to(root)}: left behind" for p in leftovers]
    archived = [p for p in (root / "archive").rglob("*") if p.is_file() or p.is_symlink()]
    if len(archived) != len(acks):
        problems.append(f"{len(archived)} files archived for {len(acks)} flows")

    db = sqlite3.connect(root / "tracking.sqlite")
    try:
        rows = {
            r[0]: r[1:] for r in db.execute("SELECT flow_id, status, documents_total, documents_accepted FROM flows")
        }
        for flow_id, ack in acks.items():
            row = rows.pop(flow_id, None)
            if row != (ack["status"], ack["documents_total"], ack["documents_accepted"]):
                problems.append(f"{flow_id}: the store says {row}, the acknowledgement {ack['status']}")
        problems += [f"{flow_id}: in the store ({row[0]}) with no acknowledgement" for flow_id, row in rows.items()]
        held = set(db.execute("SELECT flow_id, idx FROM invoices"))
        accepted = set(
            db.execute("SELECT flow_id, idx FROM documents WHERE status = '200' AND invoice_number IS NOT NULL")
        )
        if held != accepted:
            problems.append(f"invoice keys held {sorted(held - accepted)[:3]}, accepted {sorted(accepted - held)[:3]}")
    finally:
        db.close()
    return problems


def torture(
    folder: Path, rounds: int, files: int, workers: int, seed: int, longest: float = 3.0, log: bool = False
) -> tuple[list[str], dict[str, int]]:
    """Drop ``files`` files, kill ``rounds`` runs at random moments (dropping a few more files now and then), let a
    last run finish, check; return the problems and some counts."""
    rng = random.Random(seed)
    config, root = make_workspace(folder)
    drop = Drop()
    drop_files(root, drop, files, rng)
    killed = ended = mid_flow = 0
    lasts = {False: longest, True: 1.0}  # how long a run that ended took, from its start / its first claim
    for number in range(rounds):
        if rng.random() < 0.5:  # keep work coming, so that most kills land in the middle of it
            drop_files(root, drop, rng.randint(1, max(1, files // 10)), rng)
        working = rng.random() < 0.7  # most kills while flows are in hand, the others anywhere (start-up too)
        delay = rng.uniform(0.0, min(longest, lasts[working]))  # within what such a run takes: most land mid-run
        status, took = run_killed(config, workers, delay, root if working else None)
        held = in_hands(root)
        if status is None:
            killed += 1
            mid_flow += held > 0
        else:
            ended += 1
            lasts[working] = max(took, 0.05)
        if log:
            what = f"killed, {held} flows in hand" if status is None else f"ended ({status})"
            print(f"  round {number + 1}: {what}", flush=True)
    final = run_to_end(config, workers)
    problems = check(root, drop)
    if final.returncode != 0:
        problems.insert(0, f"the last run exited {final.returncode}: {final.stderr[-800:]}")
    return problems, {"files": len(drop.files), "killed": killed, "mid_flow": mid_flow, "ended": ended}


def main() -> None:
    """The long version."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="runs killed at a random moment (default 200)")
    parser.add_argument("--files", type=int, default=300, help="files dropped at the start (default 300)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--longest", type=float, default=4.0, help="the longest wait before a kill, in seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    failures = 0
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="edi-torture-") as folder:
            started = time.monotonic()
            problems, counts = torture(
                Path(folder), args.rounds, args.files, workers, args.seed, args.longest, args.verbose
            )
            took = time.monotonic() - started
            print(
                f"workers {workers}: {counts['files']} files, {counts['killed']} runs killed "
                f"({counts['mid_flow']} with flows in hand), {counts['ended']} ended on their own, then one to the end "
                f"({took:.0f} s): " + ("every invariant holds" if not problems else f"{len(problems)} problems")
            )
            for problem in problems[:50]:
                print(f"  {problem}")
            failures += bool(problems)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
