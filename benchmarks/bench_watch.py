"""Drop-to-acknowledgement latency of `edi watch` at a steady arrival rate: p50, p90, p99 and max.

Starts the real `edi watch` on a fresh workspace, drops distinct invoices into the inbox at ``--rate`` files per
second for ``--seconds`` (each written under a temporary name and renamed into place, as a careful sender does, or
written in place with ``--in-place``), and measures, for each file, the time from the moment it was in place to the
moment its acknowledgement was (the acknowledgement file's modification time). Also prints the same latency for a
bare loop that only renames each dropped file into a folder, in the same run, as the floor of what a watcher can do.

  .venv/bin/python benchmarks/bench_watch.py [--rate 10] [--seconds 20] [--rules xsd,en16931]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INVOICE = (REPO / "flows" / "acme" / "01-ubl-invoice.xml").read_bytes()
CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 2
[[senders]]
id = "acme"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
[validation]
rules = {rules}
"""


def percentiles(values: list[float]) -> str:
    """p50 / p90 / p99 / max in milliseconds."""
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (
        f"p50 {pick(0.5):7.1f} ms  p90 {pick(0.9):7.1f} ms  p99 {pick(0.99):7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"
    )


def bare_mover(work: Path, rate: float, count: int) -> list[float]:
    """Latencies of the least a watcher can do: see the event (watchdog, set up as edi watch does), rename the file
    out."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler

    from edi.watch import new_observer, quick_move_pairing

    source, target, staging = work / "bare-in", work / "bare-out", work / "bare-staging"
    for folder in (source, target, staging):
        folder.mkdir()

    class Mover(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            raw = getattr(event, "dest_path", "") or event.src_path
            path = Path(raw.decode() if isinstance(raw, bytes) else raw)
            if event.event_type in ("moved", "created", "closed") and path.parent == source and path.exists():
                with contextlib.suppress(FileNotFoundError):
                    path.rename(target / path.name)

    quick_move_pairing()  # the same watchdog set-up as edi watch
    observer = new_observer()
    observer.schedule(Mover(), str(source))
    observer.start()
    time.sleep(0.5)
    placed: dict[str, float] = {}
    started = time.time()
    for number in range(count):
        time.sleep(max(0.0, started + number / rate - time.time()))
        name = f"f{number:06d}.xml"
        (staging / name).write_bytes(INVOICE)
        (staging / name).rename(source / name)
        placed[name] = time.time()
    deadline = time.time() + 30
    while len(list(target.iterdir())) < count and time.time() < deadline:
        time.sleep(0.05)
    observer.stop()
    observer.join()
    return [(target / name).stat().st_ctime - at for name, at in placed.items() if (target / name).exists()]


def main() -> None:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="files per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rules", default="xsd,en16931")
    parser.add_argument("--in-place", action="store_true", help="write files in place instead of renaming them in")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edi-watch-bench-"))
    try:
        config = work / "config.toml"
        rules = json.dumps(args.rules.split(","))
        config.write_text(CONFIG.format(rules=rules), encoding="utf-8")
        edi = [sys.executable, "-m", "edi", "--config", str(config)]
        subprocess.run([*edi, "init"], check=True, capture_output=True)
        inbox, acks, staging = work / "ws" / "inbox" / "acme", work / "ws" / "acks" / "acme", work / "staging"
        staging.mkdir()
        watcher = subprocess.Popen([*edi, "-v", "watch"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert watcher.stderr is not None
        for line in watcher.stderr:  # "watching" comes once the business rules are compiled (warm-up)
            if "watching" in line:
                break
        threading.Thread(target=watcher.stderr.read, daemon=True).start()  # keep draining it
        count = int(args.rate * args.seconds)
        dropped: dict[str, float] = {}
        started = time.time()
        for number in range(count):
            due = started + number / args.rate
            time.sleep(max(0.0, due - time.time()))
            name = f"inv-{number:06d}.xml"
            data = INVOICE.replace(b"FA-2026-0001", f"FA-2026-{number:06d}".encode())
            if args.in_place:
                (inbox / name).write_bytes(data)
            else:
                (staging / name).write_bytes(data)
                (staging / name).rename(inbox / name)
            dropped[name] = time.time()
        deadline = time.time() + 60
        while len(list(acks.glob("*.json"))) < count and time.time() < deadline:
            time.sleep(0.05)
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
        latencies = []
        for path in acks.glob("*.json"):
            ack = json.loads(path.read_text())
            latencies.append(path.stat().st_mtime - dropped[ack["file_name"]])
        print(f"edi watch, {count} files at {args.rate:g}/s ({'in place' if args.in_place else 'renamed in'}), "
              f"rules {args.rules}: {len(latencies)} acknowledged")  # fmt: skip
        print(f"  drop -> acknowledgement  {percentiles(latencies)}  (mean {statistics.mean(latencies) * 1000:.1f} ms)")

        # The floor, in the same run: a bare watchdog handler that only renames each file out as its event arrives.
        print(f"  bare watchdog mover (rename on event, same rate)  {percentiles(bare_mover(work, args.rate, count))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
