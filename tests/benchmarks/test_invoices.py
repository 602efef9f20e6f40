"""The benchmarks' generated flows: what the real `edi batch` (XSD + EN 16931, as shipped) answers is what each flow
was made to get: accepted, or rejected for the fault it was given."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from benchmarks.bench_batch import drop, new_workspace
from benchmarks.invoices import BROKEN_RULE, SPOILS, Flow, flows, invoice, templates, write_flows

# what the XSD layer says of each way of spoiling a file: (finding code, rules one of which it names)
SCHEMA_FAULTS = {
    "unknown-element": ("IRR_SYNTAX", {"SCHEMAV_ELEMENT_CONTENT"}),
    "missing-element": ("IRR_SYNTAX", {"SCHEMAV_ELEMENT_CONTENT"}),
    "cut-short": ("IRR_SYNTAX", {"ERR_TAG_NOT_FINISHED", "ERR_GT_REQUIRED", "ERR_TAG_NAME_MISMATCH"}),
    "wrong-type": ("IRR_SYNTAX", {"SCHEMAV_CVC_DATATYPE_VALID_1_2_1"}),
}


SHIPPED = ["xsd", "en16931"]  # validation.rules in the shipped config.toml


def batch(tmp_path: Path, made: list[Flow], rules: list[str] = SHIPPED) -> dict[str, dict[str, object]]:
    """Run the real `edi batch` with ``rules`` (default: as shipped) on ``made`` in a fresh workspace configured as
    bench_batch.py configures it; each flow's acknowledgement (JSON) by file name."""
    folder = tmp_path / "files"
    folder.mkdir()
    paths = []
    for flow in made:
        (folder / flow.name).write_bytes(flow.data)
        paths.append(folder / flow.name)
    edi = new_workspace(tmp_path, rules)
    drop(paths, tmp_path / "ws" / "inbox" / "bench")
    done = subprocess.run([*edi, "batch"], capture_output=True, check=False)
    assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
    acks = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "ws" / "acks" / "bench").glob("*.json")]
    return {ack["file_name"]: ack for ack in acks}


def fatal(ack: dict[str, object]) -> set[tuple[str, str | None]]:
    """The fatal findings of a flow and of its documents, as (code, rule)."""
    found = [*ack["findings"], *(f for d in ack["documents"] for f in d["findings"])]  # type: ignore[attr-defined]
    return {(f["code"], f.get("rule")) for f in found if f["severity"] == "fatal"}


def assert_answered_as_made(made: list[Flow], acks: dict[str, dict[str, object]], rules: list[str] = SHIPPED) -> None:
    """Every valid flow accepted with every layer of ``rules`` run and no finding at all; every broken one rejected
    for its fault."""
    assert sorted(acks) == sorted(flow.name for flow in made)
    for flow in made:
        ack = acks[flow.name]
        if not flow.broken:
            assert ack["status"] == "IN_INTEGRE", (flow.name, fatal(ack))
            [document] = ack["documents"]  # type: ignore[misc]
            assert document["layers"] == rules and document["findings"] == [], flow.name
        elif flow.broken == BROKEN_RULE:
            assert ack["status"] == "IN_REJETE", flow.name
            assert fatal(ack) == {("REJ_SEMAN", BROKEN_RULE)}, flow.name
        else:
            code, named = SCHEMA_FAULTS[flow.broken]
            assert ack["status"] == "IN_REJETE", flow.name
            assert any(c == code and r in named for c, r in fatal(ack)), (flow.name, flow.broken, fatal(ack))


def test_generated_flows_get_the_answer_they_were_made_for(tmp_path: Path) -> None:
    """Under XSD + EN 16931, 300 generated flows are all accepted but the deliberately broken ones (of every kind)."""
    made = list(flows(300, seed=25))
    assert Counter(flow.broken for flow in made) == {
        "": 280,
        "unknown-element": 4,
        "missing-element": 4,
        "cut-short": 4,
        "wrong-type": 3,
        BROKEN_RULE: 5,
    }
    assert_answered_as_made(made, batch(tmp_path, made))


def test_small_flows_are_one_line_and_get_the_answer_they_were_made_for(tmp_path: Path) -> None:
    """With lines=1, 100 flows are one-line invoices of at most 7 KB, accepted but the deliberately broken ones."""
    made = list(flows(100, seed=4, lines=1))
    assert max(len(flow.data) for flow in made) < 7000
    tags = (b"<cac:InvoiceLine>", b"<cac:CreditNoteLine>", b"<ram:IncludedSupplyChainTradeLineItem>")
    assert all(sum(map(flow.data.count, tags)) == 1 for flow in made if flow.broken != "cut-short")
    assert_answered_as_made(made, batch(tmp_path, made))


def test_generated_flows_also_pass_the_french_rules(tmp_path: Path) -> None:
    """With BR-FR on top (rules xsd, en16931, br-fr), 100 generated flows get the same answers: BR-FR finds nothing
    more in them."""
    made, rules = list(flows(100, seed=11)), [*SHIPPED, "br-fr"]
    assert_answered_as_made(made, batch(tmp_path, made, rules), rules)


def test_every_sample_stays_consistent_with_three_vat_rates(tmp_path: Path) -> None:
    """A 40-line invoice of each sample (three VAT rates in its breakdown) is accepted under XSD + EN 16931."""
    made = [Flow(f"forty-{n}.xml", invoice(t, n, 40), "") for n, t in enumerate(templates())]
    assert all(rate in flow.data for flow in made for rate in (b">20<", b">10<", b">5.5<"))
    assert_answered_as_made(made, batch(tmp_path, made))


def test_flows_are_the_same_for_a_seed() -> None:
    """Two generations with one seed give the same bytes; another seed gives other sizes."""
    first, again, other = (list(flows(60, seed=s)) for s in (1, 1, 2))
    assert first == again
    assert [len(f.data) for f in first] != [len(f.data) for f in other]


def test_write_flows_writes_each_flow(tmp_path: Path) -> None:
    """write_flows writes every flow under its name and counts its bytes; lines=1 writes one-line invoices."""
    paths, total = write_flows(tmp_path / "small", 30, seed=3, lines=1)
    assert [p.name for p in paths] == [f.name for f in flows(30, seed=3, lines=1)]
    assert total == sum(p.stat().st_size for p in paths) == sum(len(f.data) for f in flows(30, seed=3, lines=1))
    assert set(SPOILS) == set(SCHEMA_FAULTS)
