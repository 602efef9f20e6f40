"""Throughput of one `edi batch` run against a bare lxml parse + XSD-validate loop over the same files, same run.

Generates N single-invoice flows from the accepted samples in flows/ (each with its own invoice number, so every
file is distinct) plus about 5 % schema-invalid ones, then measures:

  baseline  parse each file with lxml and validate it against the XSD the catalogue names (schemas compiled once)
  edi       the real `edi batch` command on the same files dropped in a fresh workspace (a new process, as cron runs it)

and prints flows/s for both and their ratio. Usage:

  .venv/bin/python benchmarks/bench_batch.py [--flows 2000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from edi.ingest.recognise import recognise
from edi.validate.catalogue import load_catalogue

REPO = Path(__file__).resolve().parent.parent
ACCEPTED = {
    "opdemat/01-initech-cii-basic.xml": "IN-2026-0042",
    "opdemat/02-initech-ubl-voirie.xml": "IN-2026-0043",
}
INVALID = {"acme/10-schema-invalid.xml": "FA-2026-0010"}

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
[[senders]]
id = "opdemat"
sellers = ["*"]
[routing]
directory = "{directory}"
"""


def generate(folder: Path, count: int) -> list[Path]:
    """Write ``count`` distinct flows (one in twenty schema-invalid) into ``folder``."""
    folder.mkdir(parents=True)
    templates = [((REPO / "flows" / p).read_bytes(), n.encode()) for p, n in ACCEPTED.items()]
    invalid = [((REPO / "flows" / p).read_bytes(), n.encode()) for p, n in INVALID.items()]
    paths = []
    for i in range(count):
        data, number = invalid[0] if i % 20 == 19 else templates[i % len(templates)]
        path = folder / f"flow-{i:07d}.xml"
        path.write_bytes(data.replace(number, number + f"-{i:07d}".encode()))
        paths.append(path)
    return paths


def baseline(paths: list[Path]) -> float:
    """Seconds for a bare lxml loop: parse, pick the schema, validate."""
    catalogue = load_catalogue()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    schemas: dict[Path, etree.XMLSchema] = {}
    started = time.perf_counter()
    for path in paths:
        tree = etree.fromstring(path.read_bytes(), parser).getroottree()
        found = recognise(tree.getroot())
        assert found is not None
        entry = catalogue.xsd_for(found.syntax, found.kind, found.profile)
        assert entry is not None
        if entry.schema not in schemas:
            schemas[entry.schema] = etree.XMLSchema(etree.parse(str(entry.schema)))
        schemas[entry.schema].validate(tree)
    return time.perf_counter() - started


def run_edi(work: Path, paths: list[Path]) -> float:
    """Seconds for `edi init` + `edi batch` over copies of ``paths`` in a fresh workspace."""
    config = work / "config.toml"
    config.write_text(CONFIG.format(directory=REPO / "flows" / "directory.toml"), encoding="utf-8")
    edi = [sys.executable, "-m", "edi", "--config", str(config)]
    subprocess.run([*edi, "init"], check=True, capture_output=True)
    inbox = work / "ws" / "inbox" / "opdemat"
    for path in paths:
        shutil.copy(path, inbox / path.name)
    started = time.perf_counter()
    done = subprocess.run([*edi, "batch"], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    print(f"  edi says: {done.stdout.strip().splitlines()[0]}")
    return elapsed


def main() -> None:
    """Run both measurements and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files and workspace")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edi-bench-"))
    try:
        paths = generate(work / "files", args.flows)
        print(f"{args.flows} flows ({sum(p.stat().st_size for p in paths) / 1e6:.1f} MB), cpu count {os.cpu_count()}")
        base = baseline(paths)
        ours = run_edi(work, paths)
        print(f"  baseline (lxml parse + XSD, in process): {base:7.2f} s  {args.flows / base:8.0f} flows/s")
        print(f"  edi batch (whole command, one process):  {ours:7.2f} s  {args.flows / ours:8.0f} flows/s")
        print(f"  ratio edi / baseline throughput: {base / ours:.2f}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
