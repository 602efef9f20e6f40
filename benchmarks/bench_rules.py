"""Per-document cost of each validation layer, against a bare Saxon loop over the same files in the same run.

For every XSLT the catalogue runs (and the XSD layer), on the UBL or CII documents of the shared corpus (or, without
it, the repository's samples), it measures:

  bare Saxon   the official XSLT as shipped, compiled once; per document: parse the text, transform
  optimised    the same loop with the stylesheet edi derives from it (xslt_optimise): what edi's speed-up is worth
  edi layer    edi's whole layer (RulesRunner.check: hand the parsed tree to Saxon, run, read the SVRL into findings),
               in this process (limits.validate_seconds = 0)
  rules proc   the same, as edi runs it by default: in the rules process, under a time budget (the document sent
               to it, the SVRL sent back)

and prints milliseconds per document and the ratios. Usage:

  .venv/bin/python benchmarks/bench_rules.py [--repeat 3] [--limit 40]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stylesheets import official, optimised, parse
from edi.ingest.recognise import recognise
from edi.ingest.xmlparse import parse_xml
from edi.model import Document
from edi.validate.catalogue import load_catalogue
from edi.validate.schematron import RulesRunner
from edi.validate.xsd import validate_xsd

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("EDI_CORPUS", REPO.parent / "shared" / "corpus"))


def documents(limit: int) -> list[Document]:
    """Parsed, recognised documents: the corpus's valid UBL and CII files, else the repository's samples."""
    paths = sorted((CORPUS / "ubl").glob("*.xml")) + sorted((CORPUS / "cii").glob("*.xml"))
    if not paths:
        paths = sorted((REPO / "flows").glob("*/*.xml"))
    docs = []
    for path in paths:
        data = path.read_bytes()
        tree, _ = parse_xml(data)
        found = recognise(tree.getroot()) if tree is not None else None
        if found is None or not found.supported:
            continue
        docs.append(
            Document(1, path.name, len(data), "", data=data, tree=tree, syntax=found.syntax, kind=found.kind,
                     profile=found.profile)
        )  # fmt: skip
    by_syntax: dict[str, list[Document]] = {}
    for doc in docs:
        by_syntax.setdefault(doc.syntax or "", []).append(doc)
    return [d for group in by_syntax.values() for d in group[:limit]]


def per_doc(run: Callable[[Document], object], docs: list[Document], repeat: int) -> float:
    """Best-of-``repeat`` milliseconds per document (after one warm-up pass)."""
    for doc in docs:
        run(doc)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        for doc in docs:
            run(doc)
        timings.append((time.perf_counter() - started) / len(docs) * 1000)
    return min(timings)


def main() -> None:
    """Measure every layer and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=40, help="documents per syntax")
    args = parser.parse_args()
    catalogue = load_catalogue()
    docs = documents(args.limit)
    runner, budgeted = RulesRunner(catalogue), RulesRunner(catalogue, 60.0)
    texts = {id(d): etree.tostring(d.tree, encoding="unicode") for d in docs}
    print(f"{len(docs)} documents ({'shared corpus' if (CORPUS / 'ubl').is_dir() else 'repository samples'})")
    print(
        f"{'layer / artefact':58} {'docs':>4} {'bare Saxon':>11} {'optimised':>10} {'edi layer':>10} {'edi/bare':>9}"
        f" {'rules proc':>10}"
    )

    xsd_docs = docs
    xsd_ms = per_doc(lambda d: validate_xsd(d.tree, catalogue.xsd_for(d.syntax, d.kind, d.profile).schema),  # type: ignore[arg-type, union-attr]
                     xsd_docs, args.repeat)  # fmt: skip
    print(f"{'xsd (lxml, official XSDs)':58} {len(xsd_docs):>4} {'':>11} {'':>10} {xsd_ms:>9.2f}  {'':>9}")

    seen: set[Path] = set()
    for entry in catalogue.rules:
        if entry.xslt in seen:
            continue
        seen.add(entry.xslt)
        mine = [d for d in docs if catalogue.rules_for(entry.rule_set, d.syntax or "", d.profile or "") == entry]
        if not mine:
            continue

        def transform(executable: object) -> Callable[[Document], object]:
            def run(doc: Document) -> object:
                try:
                    return executable.transform_to_string(xdm_node=parse(texts[id(doc)]))  # type: ignore[attr-defined]
                except Exception:
                    return None

            return run

        bare_ms = per_doc(transform(official(entry.xslt)), mine, args.repeat)
        fast_ms = per_doc(transform(optimised(entry.xslt)), mine, args.repeat)
        edi_ms = per_doc(functools.partial(runner.check, entry.rule_set), mine, args.repeat)
        proc_ms = per_doc(functools.partial(budgeted.check, entry.rule_set), mine, args.repeat)
        label = f"{entry.rule_set}: {entry.xslt.parent.name}/{entry.xslt.name}"
        print(
            f"{label:58} {len(mine):>4} {bare_ms:>10.2f}  {fast_ms:>9.2f}  {edi_ms:>9.2f}  {edi_ms / bare_ms:>8.2f}"
            f"  {proc_ms:>9.2f}"
        )


if __name__ == "__main__":
    main()
