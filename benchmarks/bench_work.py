"""Work per flow, counted rather than timed: the CPU instructions and the system calls of `edi batch --workers 1`,
against the instructions of the bare loop on the same files, in the same run.

Wall-clock ratios on this VM move by several points from one run to the next (its speed drifts by tens of percent
within minutes; bench_batch.py compares each run with the bare loops around it for that reason). Counts hardly do:
two runs back to back agreed to 0.3 % (edi) and 0.05 % (the bare loop), two runs hours apart to 1.2 % for the
unchanged bare loop. They leave out how long the kernel takes over each call and how fast the CPU runs the
instructions (cache misses), so they complement bench_batch.py rather than replace it: use them to see what a change
does to the work done per flow.

Every count is taken twice, over the first BASE files and over the first BASE + N files, each in a fresh workspace:
the difference over N is the work per flow (start-up, imports and schema compilation cancel out).

  bare loop     bench_batch.py's (parse, pick the schema, XSD-validate; nothing written), under callgrind
  edi batch     the real command, `--workers 1`, under callgrind (user-space instructions, every thread), then
                under `strace -f -c` (system calls by name)

Under valgrind, OpenSSL does not see the CPU's SHA extensions: the SHA-256 of each payload (libcrypto) counts
several times what it costs natively. It is shown apart.

Usage (needs valgrind and strace, the Debian packages of those names):

  .venv/bin/python benchmarks/bench_work.py [--flows 400] [--base 100] [--rules xsd]
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_batch import drop, new_workspace
from benchmarks.invoices import write_flows

REPO = Path(__file__).resolve().parent.parent
BARE = (  # warmed up on the same 20 files whatever the count, so that the warm-up cancels out too
    "import sys; sys.path.insert(0, {repo!r}); from pathlib import Path; from benchmarks.bench_batch import bare_loop;"
    " paths = [Path(p) for p in Path({listing!r}).read_text().split()];"
    " bare_loop(paths[:20]); bare_loop(paths[:{count}])"
)
_TOTAL = re.compile(r"Collected : (\d+)")
_ANNOTATED = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+.*\[(?P<object>[^\]]+)\]\s*$")


def callgrind(command: list[str], out: Path) -> tuple[int, collections.Counter[str]]:
    """Instructions ``command`` ran (every thread), in all and by shared object."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command], capture_output=True, text=True
    )
    total = _TOTAL.search(run.stderr)
    if run.returncode not in (0, 1) or total is None:
        raise SystemExit(f"callgrind failed ({run.returncode}): {run.stderr[-2000:]}")
    annotated = subprocess.run(["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True)
    by_object: collections.Counter[str] = collections.Counter()
    for line in annotated.stdout.splitlines():
        found = _ANNOTATED.match(line)
        if found:
            by_object[Path(found["object"]).name] += int(found.group(1).replace(",", ""))
    return int(total.group(1)), by_object


def syscalls(command: list[str], out: Path) -> collections.Counter[str]:
    """System calls ``command`` made (every thread and child), by name."""
    run = subprocess.run(["strace", "-f", "-c", "-o", str(out), *command], capture_output=True, text=True)
    if run.returncode not in (0, 1):
        raise SystemExit(f"strace failed ({run.returncode}): {run.stderr[-2000:]}")
    calls: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            calls[fields[-1]] += int(fields[3])
    return calls


def edi_workspace(work: Path, paths: list[Path], rules: list[str]) -> list[str]:
    """A fresh workspace with ``paths`` in its inbox; the `edi batch --workers 1` command for it."""
    work.mkdir(parents=True)
    edi = new_workspace(work, rules)
    drop(paths, work / "ws" / "inbox" / "bench")
    return [*edi, "batch", "--workers", "1"]


def check_answered(work: Path, count: int) -> None:
    """Stop unless every flow of the run in ``work`` got its acknowledgement (a count of a run cut short is no
    count)."""
    answered = sum(1 for _ in (work / "ws" / "acks" / "bench").glob("*.json"))
    if answered != count:
        raise SystemExit(f"{answered} acknowledgements for {count} flows in {work}")


def main() -> None:
    """Generate, count, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=400, help="flows counted: the difference of the runs (400)")
    parser.add_argument("--base", type=int, default=100, help="flows of the smaller run (100)")
    parser.add_argument("--rules", nargs="+", default=["xsd"], help='validation.rules (default "xsd")')
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--work", type=Path, help="where to work, kept afterwards (default: a temporary folder)")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_annotate", "strace") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (Debian packages valgrind and strace)")
    work = args.work or Path(tempfile.mkdtemp(prefix="edi-work-"))
    try:
        paths, _ = write_flows(work / "files", args.base + args.flows, args.seed)
        sizes = {"small": args.base, "large": args.base + args.flows}
        bare: dict[str, tuple[int, collections.Counter[str]]] = {}
        edi: dict[str, tuple[int, collections.Counter[str]]] = {}
        calls: dict[str, collections.Counter[str]] = {}
        listing = work / "files.txt"
        listing.write_text("\n".join(str(p) for p in paths))
        for label, count in sizes.items():
            code = BARE.format(repo=str(REPO), listing=str(listing), count=count)
            bare[label] = callgrind([sys.executable, "-c", code], work / f"bare-{label}.out")
            edi[label] = callgrind(
                edi_workspace(work / f"edi-{label}", paths[:count], args.rules), work / f"edi-{label}.out"
            )
            check_answered(work / f"edi-{label}", count)
            calls[label] = syscalls(
                edi_workspace(work / f"strace-{label}", paths[:count], args.rules), work / f"strace-{label}.txt"
            )
            check_answered(work / f"strace-{label}", count)
        n = args.flows
        bare_flow = (bare["large"][0] - bare["small"][0]) / n
        edi_flow = (edi["large"][0] - edi["small"][0]) / n
        objects = {k: (edi["large"][1][k] - edi["small"][1][k]) / n for k in edi["large"][1]}
        extra = {k: v - (bare["large"][1][k] - bare["small"][1][k]) / n for k, v in objects.items()}
        sha = sum(v for k, v in objects.items() if k.startswith("libcrypto"))
        print(f"{n} flows counted (runs of {args.base} and {args.base + n} flows), rules {args.rules}")
        print("instructions per flow (user space, callgrind):")
        print(f"  bare loop (parse + XSD):     {bare_flow:12,.0f}")
        print(f"  edi batch --workers 1:       {edi_flow:12,.0f} = {edi_flow / bare_flow:.2f}x the bare loop")
        print(
            f"    without the payload's SHA-256 (libcrypto, {sha:,.0f}, counted high under valgrind): "
            f"{edi_flow - sha:,.0f} = {(edi_flow - sha) / bare_flow:.2f}x"
        )
        shown = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(extra.items(), key=lambda kv: -kv[1]) if abs(v) >= 1000)
        print(f"    beyond the bare loop's, by shared object: {shown}")
        per_call = {k: (calls["large"][k] - calls["small"].get(k, 0)) / n for k in calls["large"]}
        listed = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_call.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        print(f"system calls per flow (strace -f -c, edi batch --workers 1): {sum(per_call.values()):.1f}: {listed}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
