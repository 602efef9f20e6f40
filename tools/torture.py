"""Crash torture: kill `edi batch` with SIGKILL at random moments, over and over, then check that nothing was lost.

Drops a mix of flows into a fresh workspace (invoices and credit notes, UBL and CII, invalid ones, duplicates of
earlier flows, a ZIP batch with one bad member, a tar.gz batch, a Factur-X PDF, and recipients' CDAR status messages
about invoices dropped earlier, from a partner that speaks for every directory recipient), then repeatedly starts the
real
`edi batch` command and kills it (SIGKILL, the whole process group, so worker processes die too) after a random
delay: during start-up, claims, validation, delivery, acknowledgement, database commits, archiving. Between kills,
more files may be dropped. Finally one `edi batch` runs to its end, and the invariants are checked:

- every dropped file has exactly one final acknowledgement (JSON and XML), and the store says the same;
- every accepted document is in its queue exactly once (and nothing else is);
- every final flow has exactly its CDAR lifecycle messages (one per document, or one for a file refused whole), each
  whole and well-formed with the status its acknowledgement gives; no other ``.cdar.xml`` is in acks/;
- nothing is left in the inbox, in a process's hand (spool/active) or in spool/requeued, nothing failed;
- the store agrees with the files: one final row per acknowledgement, same status and documents, every accepted
  invoice key held by its document and no other;
- every status flow is answered once (above); every recorded lifecycle row has exactly its relay, whole, with its
  status, in its invoice's sender's folder, and its status flow's acknowledgement names it; no relay without a
  recorded row; no held row once every flow is final; each invoice's recorded statuses follow the order rules.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edi.lifecycle.cdar import Relay, build_relay
from edi.lifecycle.rules import Order, order

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
[[senders]]
id = "buyers-pa"
sellers = []
recipients = ["ville-exemple", "ch-exemple", "dupont"]
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


# the invoices a status may be about: (sample, seller id, BT-3, BT-2) of the samples whose number is made fresh
INVOICES = {
    "01-ubl-invoice.xml": ("123456782", "380", "2026-11-03"),
    "02-ubl-creditnote.xml": ("123456782", "381", "2026-11-04"),
    "03-cii-invoice.xml": ("123456782", "380", "2026-11-05"),
    "01-initech-cii-basic.xml": ("987654324", "380", "2026-11-16"),
    "02-initech-ubl-voirie.xml": ("987654324", "380", "2026-11-17"),
}
PARTNER = "buyers-pa"  # speaks for every directory recipient
STATUSES = [("204", None), ("205", None), ("208", "JUSTIF_ABS"), ("209", None), ("210", "DOUBLON"), ("211", None)]


@dataclass
class Drop:
    """What was dropped: (sender, file name) for each file, in order, and the invoices a status may be about
    (number, seller id, BT-3, BT-2)."""

    files: list[tuple[str, str]] = field(default_factory=list)
    invoices: list[tuple[str, str, str, str]] = field(default_factory=list)


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
    (same bytes: refused as duplicate flows), the binary samples as they are (the second time: duplicates), and,
    once invoices were dropped, a quarter of recipients' statuses about them (accepted, known, refused by the
    order or because the invoice was not accepted or not delivered to a directory recipient)."""
    for _ in range(count):
        serial = len(drop.files)
        if drop.invoices and rng.random() < 0.25:  # a recipient's status about an invoice dropped earlier
            _place(root, drop, PARTNER, f"t{serial:05d}-status.xml", status_message(rng.choice(drop.invoices), rng))
            continue
        sender, name, number = rng.choice(SAMPLES)
        data = (FLOWS / sender / name).read_bytes()
        if number and rng.random() < 0.9:  # else the same bytes as the sample: a duplicate after the first
            data = data.replace(number.encode(), f"{number}-{serial:05d}".encode())
            if name in INVOICES:
                drop.invoices.append((f"{number}-{serial:05d}", *INVOICES[name]))
        stem, dot, ext = name.partition(".")
        _place(root, drop, sender, f"t{serial:05d}-{stem}{dot}{ext}", data)


def _place(root: Path, drop: Drop, sender: str, target: str, data: bytes) -> None:
    """Put a file in a sender's inbox whole, at once, 60 seconds old."""
    serial = len(drop.files)
    staging = root / "tmp" / f".drop-{serial}"
    staging.write_bytes(data)
    os.utime(staging, (time.time() - 60, time.time() - 60))
    (root / "inbox" / sender).mkdir(parents=True, exist_ok=True)
    staging.rename(root / "inbox" / sender / target)  # in place at once, as a careful sender does
    drop.files.append((sender, target))


def status_message(
    invoice: tuple[str, str, str, str], rng: random.Random, chosen: tuple[str, str | None] | None = None
) -> bytes:
    """A recipient's CDAR status about ``invoice`` (``chosen``, or a random one of STATUSES, with its reason), as
    the buyer 404040404 sets it; built with edi's own relay builder (phase 23, issuer BY): a valid message."""
    number, seller, type_code, issued = invoice
    status, reason = chosen or rng.choice(STATUSES)
    moment = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
    relay = Relay(
        flow_id=f"PARTNER-{rng.randrange(10**9):09d}",
        index=1,
        sender=PARTNER,
        status=status,
        set_at=moment,
        decided_at=moment,
        invoice_number=number,
        issue_date=issued,
        type_code=type_code,
        seller_id=seller,
        issuer_id="404040404",
        issuer_scheme="0002",
        reason=reason,
    )
    return build_relay(relay)


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
            lifecycle = doc.get("lifecycle")
            if lifecycle is None:
                wanted[folder / f"{ack['flow_id']}.{doc['index']:04d}.cdar.xml"] = str(doc["status"])
            elif lifecycle["relay"]:  # a recipient's status, relayed to its invoice's sender
                wanted[root / "acks" / lifecycle["invoice"]["sender"] / lifecycle["relay"]] = str(lifecycle["status"])
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
    for sender in ("acme", "opdemat", PARTNER):
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
        problems += _lifecycle_problems(root, db, acks)
    finally:
        db.close()
    return problems


def _lifecycle_problems(root: Path, db: sqlite3.Connection, acks: dict[str, dict[str, Any]]) -> list[str]:
    """Every recorded lifecycle row has its relay, whole, with its status, named by its status flow's ack; no relay
    a recorded row does not name; no held row; each invoice's recorded statuses follow the order rules."""
    problems: list[str] = []
    rows = list(
        db.execute(
            "SELECT l.flow_id, l.idx, l.status, l.state, l.source_flow_id, l.source_idx, l.relay, f.sender "
            "FROM lifecycle l LEFT JOIN flows f ON f.flow_id = l.flow_id ORDER BY l.id"
        )
    )
    problems += [f"{r[4]}.{r[5]:04d}: a lifecycle row still held, its flow final" for r in rows if r[3] != "recorded"]
    recorded = {root / "acks" / str(r[7]) / str(r[6]): r for r in rows if r[3] == "recorded"}
    named = {
        root / "acks" / d["lifecycle"]["invoice"]["sender"] / d["lifecycle"]["relay"]: (a["flow_id"], d["index"])
        for a in acks.values()
        for d in a["documents"]
        if d.get("lifecycle") and d["lifecycle"]["relay"] and d["status"] == "200" and not d["lifecycle"]["known"]
    }
    for path, row in sorted(recorded.items()):
        if named.get(path) != (row[4], row[5]):
            problems.append(f"{path.relative_to(root)}: recorded, but its status flow's ack does not relay it")
        if not path.is_file():
            problems.append(f"{path.relative_to(root)}: recorded, relay missing")
    problems += [f"{p.relative_to(root)}: relayed with no recorded row" for p in sorted(set(named) - set(recorded))]
    status_flows = {str(r[0]) for r in db.execute("SELECT flow_id FROM flows WHERE sender = ?", [PARTNER])}
    relays = {  # the messages of status flows in the invoices' senders' folders (a flow's own are in its own)
        p
        for p in (root / "acks").glob("*/*.cdar.xml")
        if p.name.split(".")[0] in status_flows and p.parent.name != PARTNER
    }
    problems += [f"{p.relative_to(root)}: a relay file with no recorded row" for p in sorted(relays - set(recorded))]
    history: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        if row[3] == "recorded":
            before = history.setdefault((row[0], row[1]), [])
            if order(before, row[2])[0] is not Order.NEW:
                problems.append(f"{row[0]}.{row[1]:04d}: status {row[2]} recorded after {before}")
            before.append(row[2])
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
    statuses = sum(sender == PARTNER for sender, _ in drop.files)
    db = sqlite3.connect(root / "tracking.sqlite")
    try:
        (recorded,) = db.execute("SELECT count(*) FROM lifecycle WHERE state = 'recorded'").fetchone()
    finally:
        db.close()
    counts = {"files": len(drop.files), "killed": killed, "mid_flow": mid_flow, "ended": ended}
    return problems, counts | {"statuses": statuses, "recorded": recorded}


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
                f"workers {workers}: {counts['files']} files ({counts['statuses']} status flows, "
                f"{counts['recorded']} statuses recorded and relayed), {counts['killed']} runs killed "
                f"({counts['mid_flow']} with flows in hand), {counts['ended']} ended on their own, then one to the end "
                f"({took:.0f} s): " + ("every invariant holds" if not problems else f"{len(problems)} problems")
            )
            for problem in problems[:50]:
                print(f"  {problem}")
            failures += bool(problems)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
