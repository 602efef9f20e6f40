"""How long `edi store rebuild` takes, and whether it gives back the store a real batch made.

Generates N single-invoice flows (benchmarks/invoices.py), runs `edi batch --workers W` on them in a fresh workspace,
keeps what the store says of each flow (the rows tests/test_rebuild.py compares), deletes the store, then times
`edi store rebuild` (a new process, as an operator runs it; its peak resident memory from /proc) and compares
the rows again. Then `edi store rebuild --force` over the rebuilt store, timed too (the same work, plus opening the
old store). Measured, never asserted.

Usage:

  .venv/bin/python benchmarks/bench_rebuild.py [--flows 20000] [--workers 1] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_batch import drop, new_workspace
from benchmarks.invoices import write_flows
from tests.test_rebuild import ROWS

# the rebuild in a process of its own, printing its own peak resident memory (KiB, VmHWM) on stderr once done:
# getrusage's ru_maxrss would not do, Linux carries it over exec from the forked copy of this (large) process
MEASURED = """
import re, sys
from edi.cli import main
try:
    main(sys.argv[1:])
finally:
    peak = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status", encoding="ascii").read())
    print("maxrss", peak.group(1) if peak else 0, file=sys.stderr)
"""


def rows(store: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(store)) as conn:
        return {table: conn.execute(sql).fetchall() for table, sql in ROWS.items()}


def rebuild(config: Path, *extra: str) -> tuple[float, int, str]:
    """Seconds, peak resident KiB and output of one `edi store rebuild`."""
    started = time.perf_counter()
    command = [sys.executable, "-c", MEASURED, "--config", str(config), "store", "rebuild", *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"edi store rebuild failed ({done.returncode}): {done.stdout}{done.stderr}")
    peak = int(done.stderr.rsplit("maxrss ", 1)[1])
    return seconds, peak, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20000, help="how many flows (default 20000)")
    parser.add_argument("--workers", type=int, default=1, help="workers of the batch that fills the store")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, help="where to work, kept afterwards (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edi-bench-rebuild-"))
    try:
        paths, total = write_flows(work / "files", args.flows, args.seed)
        print(f"{len(paths)} flows, {total / 1e6:.1f} MB, in {work}", flush=True)
        run = work / "run"
        run.mkdir()
        edi = new_workspace(run, ["xsd"])
        drop(paths, run / "ws" / "inbox" / "bench")
        started = time.perf_counter()
        batch = subprocess.run([*edi, "batch", "--workers", str(args.workers)], capture_output=True, text=True)
        print(f"edi batch: {time.perf_counter() - started:.1f} s: {batch.stdout.strip().splitlines()[0]}", flush=True)
        store = run / "ws" / "tracking.sqlite"
        before = rows(store)
        for path in run.glob("ws/tracking.sqlite*"):
            if not path.name.endswith("-writers"):
                path.unlink()
        seconds, peak, out = rebuild(run / "config.toml")
        print(out.rstrip())
        same = "yes" if rows(store) == before else "NO"
        counted = ", ".join(f"{len(v)} {k}" for k, v in before.items())
        print(f"edi store rebuild: {seconds:.2f} s ({args.flows / seconds:,.0f} flows/s), peak {peak / 1024:.0f} MiB")
        print(f"rows as the batch left them: {same} ({counted})")
        seconds, peak, _ = rebuild(run / "config.toml", "--force")
        same = "yes" if rows(store) == before else "NO"
        print(f"edi store rebuild --force: {seconds:.2f} s, peak {peak / 1024:.0f} MiB, same rows: {same}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
