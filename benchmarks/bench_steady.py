"""Throughput tenth by tenth of `edi batch` in a fresh workspace, then again in the same workspace once it holds a
first batch: does a run slow down as it goes, or is only the start of a fresh workspace faster?

Run A drops N generated flows (benchmarks/invoices.py) into a fresh workspace and runs `edi batch --workers W`; run
B drops N other flows (another seed: no duplicates) into the same workspace, whose acknowledgement, queue and
archive folders and store now hold run A's, and runs it again. Each prints flows/s and the rate of each tenth of its
flows, from the acknowledgements' times. Nothing is deleted (see docs/performance.md on deletions and ext4).

Usage (docs/performance.md gives the numbers this printed):

  .venv/bin/python benchmarks/bench_steady.py [--flows 20000] [--workers 1] [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_batch import drop, new_workspace, wait_for_a_quiet_disk
from benchmarks.invoices import write_flows


def tenths(times: list[float]) -> list[float]:
    """Flows per second in each tenth of a run, from its acknowledgements' sorted times."""
    tenth = len(times) // 10
    return [tenth / max(times[(i + 1) * tenth - 1] - times[i * tenth], 1e-9) for i in range(10)]


def main() -> None:
    """Run A in a fresh workspace, run B in the same one, print both."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20000, help="flows per run (default 20000)")
    parser.add_argument("--workers", type=int, default=1, help="edi batch --workers (default 1)")
    parser.add_argument("--work", type=Path, help="where to work, kept afterwards (default: a new temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edi-steady-"))
    work.mkdir(parents=True, exist_ok=True)
    edi = new_workspace(work, ["xsd"])
    inbox, acks = work / "ws" / "inbox" / "bench", work / "ws" / "acks" / "bench"
    print(f"{args.flows} flows per run, --workers {args.workers}, in {work} (kept)")
    wait_for_a_quiet_disk(work)
    for label, seed in (("A, fresh workspace", 11), ("B, same workspace, holding A", 12)):
        paths, _ = write_flows(work / f"files-{seed}", args.flows, seed)
        drop(paths, inbox, f"{seed}-")
        before = {p.name for p in acks.glob("*.json")} if acks.exists() else set()
        started = time.perf_counter()
        subprocess.run([*edi, "batch", "--workers", str(args.workers)], check=False, capture_output=True)
        seconds = time.perf_counter() - started
        times = sorted(p.stat().st_mtime for p in acks.glob("*.json") if p.name not in before)
        if len(times) != args.flows:
            raise SystemExit(f"{len(times)} acknowledgements for {args.flows} flows")
        rates = " ".join(f"{rate:.0f}" for rate in tenths(times))
        print(f"  {label}: {args.flows / seconds:.0f} flows/s; tenths: {rates} flows/s")


if __name__ == "__main__":
    main()
