"""Versions of edi side by side: `edi batch` of each git revision on the same files, alternating, in the same run.

A change worth a few percent cannot be judged from two runs of bench_batch.py minutes apart on this VM (its speed
drifts by tens of percent). This runs every version given, in turn, in rounds (the order reversed every other round),
each time on the same N generated flows dropped in a fresh workspace, with the real command (`python -m edi batch
--workers W`, run from a git worktree of the revision, so that the revision's own code is imported, its worker
processes included). The bare loop of bench_batch.py runs at the start of each round, as a yardstick of the
machine's speed. Each run prints its flows/s, its share of that round's bare loop and the machine's CPU time while it
ran (user, system, idle, from /proc/stat: two CPU-bound workers on two cores leave little idle). At the end: the
median flows/s of each version and worker count, and for each version its W / 1 worker ratio (medians).

Workspaces are made in a new folder of /tmp and deleted at the end only (deleting many files slows the creation of
files for minutes on ext4 without a journal: see docs/performance.md); the rounds start once creating a file costs
what it does on a quiet disk.

Usage (from the repository; a revision is anything `git worktree add` takes, `.` is the working tree as it is):

  .venv/bin/python benchmarks/bench_versions.py HEAD~1 HEAD [--flows 20000] [--workers 1 2] [--rounds 4]
  [--rules xsd,en16931]   (the validation layers run; default xsd)
  [--small]   (one-line invoices only, 4.8-6.8 KB: benchmarks/invoices.py with lines=1)
  [--notify HEAD]   (HEAD also run with notifications on, as HEAD+notify)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_batch import bare_loop, drop, new_workspace, wait_for_a_quiet_disk, with_bytecode
from benchmarks.invoices import write_flows

ROOT = Path(__file__).resolve().parent.parent


def cpu_times() -> list[int]:
    """The machine's CPU time so far, in clock ticks: user, nice, system, idle, iowait, ... (/proc/stat)."""
    first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    return [int(value) for value in first.split()[1:]]


def checkout(revision: str, folder: Path) -> Path:
    """The code of ``revision``: a detached git worktree in ``folder``, or the repository itself for ``.``."""
    if revision != ".":
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(folder), revision], check=True)
    code = ROOT if revision == "." else folder
    with_bytecode(code)
    return code


def run(
    code: Path, work: Path, files: list[Path], workers: int, notify: bool = False, rules: tuple[str, ...] = ("xsd",)
) -> tuple[float, list[int]]:
    """Seconds of `edi batch --workers W` (the code in ``code``) on ``files`` in a fresh workspace ``work`` running
    the validation layers ``rules`` (with notifications on, if ``notify``), and the machine's CPU ticks meanwhile."""
    work.mkdir(parents=True)
    edi = new_workspace(work, list(rules), code, notify)
    drop(files, work / "ws" / "inbox" / "bench")
    before, started = cpu_times(), time.perf_counter()
    done = subprocess.run([*edi, "batch", "--workers", str(workers)], cwd=code, capture_output=True, check=False)
    seconds, after = time.perf_counter() - started, cpu_times()
    if done.returncode not in (0, 1):
        raise SystemExit(f"edi batch failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    answered = sum(1 for _ in (work / "ws" / "acks" / "bench").glob("*.json"))
    if answered != len(files):
        raise SystemExit(f"{answered} acknowledgements for {len(files)} flows: {done.stderr.decode()[-2000:]}")
    return seconds, [b - a for a, b in zip(before, after, strict=False)]


def main() -> None:
    """Parse the arguments, run the rounds, print each run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions to compare ('.': the working tree)")
    parser.add_argument("--flows", type=int, default=20000, help="how many flows (default 20000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--rules", default="xsd", help='validation.rules, comma-separated (default "xsd"; "xsd,en16931" as shipped)'
    )
    parser.add_argument("--small", action="store_true", help="one-line invoices only (4.8-6.8 KB)")
    parser.add_argument(
        "--notify",
        nargs="*",
        default=[],
        metavar="REVISION",
        help="revisions also run with notifications on (queued for the sender's address), shown as REVISION+notify",
    )
    args = parser.parse_args()
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())

    scratch = Path(tempfile.mkdtemp(prefix="edi-versions-"))
    ticks = os.sysconf("SC_CLK_TCK")
    codes: dict[str, Path] = {}
    try:
        for number, revision in enumerate(dict.fromkeys(args.revisions)):
            codes[revision] = checkout(revision, scratch / f"code{number}")
        files, _ = write_flows(scratch / "files", args.flows, args.seed, lines=1 if args.small else None)
        wait_for_a_quiet_disk(scratch)
        for revision in args.notify:  # the same code, with notifications on
            codes[f"{revision}+notify"] = codes[revision]
        variants = [(revision, workers) for revision in codes for workers in args.workers]
        rates: dict[tuple[str, int], list[float]] = {variant: [] for variant in variants}
        runs = 0
        for round_number in range(args.rounds):
            bare_seconds, _ = bare_loop(files)
            bare = len(files) / bare_seconds
            print(f"round {round_number + 1} of {args.rounds}: bare loop {bare:.0f} flows/s", flush=True)
            for revision, workers in variants if round_number % 2 == 0 else variants[::-1]:
                runs += 1
                notify = revision.endswith("+notify")
                seconds, cpu = run(codes[revision], scratch / f"run{runs}", files, workers, notify, rules)
                rate = len(files) / seconds
                rates[revision, workers].append(rate)
                print(
                    f"  {revision} --workers {workers}: {rate:.0f} flows/s = {100 * rate / bare:.1f} % of the bare"
                    f" loop; CPU user {cpu[0] / ticks:.1f} s, system {cpu[2] / ticks:.1f} s, idle"
                    f" {cpu[3] / ticks:.1f} s",
                    flush=True,
                )
        print(f"medians of {args.rounds} rounds:")
        for revision in codes:
            medians = {w: statistics.median(rates[revision, w]) for w in args.workers}
            line = ", ".join(f"--workers {w}: {rate:.0f} flows/s" for w, rate in medians.items())
            alone = medians.get(1)
            ratios = ", ".join(f"{w} / 1: {medians[w] / alone:.2f}x" for w in args.workers if w > 1 and alone)
            print(f"  {revision}: {line}" + (f"; {ratios}" if ratios else ""))
    finally:
        for revision, code in codes.items():
            if revision != "." and not revision.endswith("+notify"):
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(code)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
