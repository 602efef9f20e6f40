"""The bare loops bench_batch.py compares edi with: each parses, validates and (with business rules) runs the XSLTs
the catalogue names, as shipped or as edi optimises them."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import stylesheets
from benchmarks.bench_batch import bare_loop, loops_for
from benchmarks.invoices import SPOILS, flows, write_flows


@pytest.mark.parametrize("how", ["xsd", "official", "optimised"])
def test_a_bare_loop_validates_every_file_and_runs_the_rules_asked(tmp_path: Path, how: str) -> None:
    """Over 40 generated flows, each loop counts those valid under the XSD; the Saxon loops compile (once) the
    XSLT of every profile met, of the kind asked."""
    paths, _ = write_flows(tmp_path, 40, seed=9)
    compiled = stylesheets.COMPILERS.get(how)
    if compiled:
        compiled.cache_clear()  # type: ignore[attr-defined]
    seconds, valid = bare_loop(paths, rules=("xsd", "en16931"), how=how)
    assert seconds > 0
    assert valid == sum(1 for flow in flows(40, seed=9) if flow.broken not in SPOILS)
    if compiled:  # UBL (CEN), CII EN16931 and CII BASIC (Factur-X): each compiled once
        assert compiled.cache_info().currsize == 3  # type: ignore[attr-defined]


def test_loops_for_runs_the_saxon_loops_only_with_business_rules() -> None:
    """XSD alone: the XSD loop only; with a rule set, the official and optimised loops too."""
    assert loops_for(["xsd"]) == ["xsd"]
    assert loops_for(["xsd", "en16931"]) == ["xsd", "official", "optimised"]
