"""Time and memory of each validation layer for one document, by document size (what ``[limits]`` in config.toml
states).

For each size asked, writes one invoice made from the repository's UBL (or CII) sample with as many lines as reach
that size (benchmarks/invoices.py), then, for each layer, in a fresh process: validates a small invoice first (the
schemas compiled, the rules process started), resets the peak resident size of the process and of its rules process
(Linux ``/proc/<pid>/clear_refs``), validates the big invoice as ``edi validate --rules <layer>`` does (with a time
budget, so the rule layers run in the rules process; 600 s, so that none is cut short), and prints the seconds taken
and, for each process, how far its peak resident size rose above what it held at rest.

Usage:

  .venv/bin/python benchmarks/bench_sizes.py [--sizes 1 5 20] [--layers xsd en16931 br-fr] [--syntax UBL]
                                             [--seconds 600 (the time budget; 0: the rules in the main process)]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.invoices import invoice, templates

REPO = Path(__file__).resolve().parent.parent
SAMPLES = {
    "UBL": (0, REPO / "flows" / "acme" / "01-ubl-invoice.xml"),
    "CII": (3, REPO / "flows" / "acme" / "03-cii-invoice.xml"),
}
MB = 1_000_000


def status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` size (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def one(layer: str, path: Path, sample: Path, seconds: float) -> dict[str, float]:
    """In this process: validate ``sample`` then ``path`` with one layer; seconds and memory of ``path`` alone."""
    from edi.check import Checker
    from edi.config import LimitsSettings

    checker = Checker((layer,), LimitsSettings(validate_seconds=seconds))
    checker.check(sample)
    pids = [os.getpid(), *children(os.getpid())]
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak resident size starts again from now
    at_rest = [status(pid, "VmRSS") for pid in pids]
    started = time.perf_counter()
    result = checker.check(path)
    took = time.perf_counter() - started
    peaks = [status(pid, "VmHWM") for pid in pids]
    not_run = [f.message for f in result.document.findings if f.code.value == "LAYER_NOT_RUN"]
    return {
        "seconds": took,
        "main_rise": peaks[0] - at_rest[0],
        "rules_rise": sum(peaks[1:]) - sum(at_rest[1:]),
        "main_peak": peaks[0],
        "rules_peak": sum(peaks[1:]),
        "main_at_rest": at_rest[0],
        "rules_at_rest": sum(at_rest[1:]),
        "not_run": len(not_run),
    }


def main() -> None:
    """Make the invoices, measure every layer on each, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 5, 20], help="MB (10^6 bytes; default 1 5 20)")
    parser.add_argument("--layers", nargs="+", default=["xsd", "en16931", "br-fr"])
    parser.add_argument("--syntax", choices=sorted(SAMPLES), default="UBL")
    parser.add_argument("--seconds", type=float, default=600.0, help="limits.validate_seconds (default 600)")
    parser.add_argument("--one", nargs=3, metavar=("LAYER", "FILE", "SAMPLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]), Path(args.one[2]), args.seconds)))
        return
    index, sample = SAMPLES[args.syntax]
    template = templates()[index]
    per_line = len(template.line.encode("utf-8"))
    print(f"{args.syntax} invoices made from {template.name}; peak resident size above the process at rest")
    print(f"{'size':>8} {'lines':>7} {'layer':>9} {'seconds':>8} {'main process':>13} {'rules process':>14}   at rest")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            lines = max(1, round((size * MB - len(invoice(template, 1, 1)) + per_line) / per_line))
            path = Path(folder) / f"invoice-{size:g}MB.xml"
            path.write_bytes(invoice(template, 1, lines))
            for layer in args.layers:
                command = [
                    sys.executable,
                    __file__,
                    "--seconds",
                    str(args.seconds),
                    "--one",
                    layer,
                    str(path),
                    str(sample),
                ]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                got = json.loads(done.stdout.splitlines()[-1])
                rules = f"{got['rules_rise'] / 2**20:>10.0f} MiB" if got["rules_peak"] else f"{'-':>14}"
                note = f"  (not run: {got['not_run']} layer)" if got["not_run"] else ""
                rest = f"{got['main_at_rest'] / 2**20:.0f} + {got['rules_at_rest'] / 2**20:.0f} MiB"
                print(
                    f"{path.stat().st_size / MB:>6.1f}MB {lines:>7} {layer:>9} {got['seconds']:>8.2f}"
                    f" {got['main_rise'] / 2**20:>9.0f} MiB {rules}   {rest}{note}"
                )


if __name__ == "__main__":
    main()
