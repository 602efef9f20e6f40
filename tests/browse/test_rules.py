"""The rules statistics: counts over a period, most findings first; one rule per day, per sender, its latest flows;
the account's scope on all of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from edi.browse import Reader
from edi.browse.flows import period_bounds
from edi.browse.rules import fill_days, rule, rules_summary
from tests.conftest import Workspace
from tests.console_store import NOW, store_of


@pytest.fixture
def fired(workspace: Workspace) -> Iterator[tuple[Reader, dict[str, str]]]:
    """BR-01 twice in one acme flow and once in an opdemat flow; BR-02 in acme's older flow and, 40 days ago, in
    acme's oldest; BR-OP only on opdemat's flows; a finding with no rule id."""
    with store_of(workspace) as s:
        ids = {
            "old": s.flow("acme", NOW - timedelta(days=40)),
            "a1": s.flow("acme", NOW - timedelta(days=3)),
            "a2": s.flow("acme", NOW - timedelta(hours=2)),
            "o1": s.flow("opdemat", NOW - timedelta(days=1)),
        }
        s.finding(ids["a2"], "BR-01", message="[BR-01] latest text")
        s.finding(ids["a2"], "BR-01", idx=2, message="[BR-01] latest text")
        s.finding(ids["o1"], "BR-01", version="CEN EN 16931 CII 1.3.16")
        s.finding(ids["a1"], "BR-02", severity="warning", layer="br-fr", version="BR-FR 1")
        s.finding(ids["old"], "BR-02", severity="warning", layer="br-fr", version="BR-FR 0")
        s.finding(ids["o1"], "BR-OP", layer="xsd", version=None)
        s.finding(ids["a1"], None, code="IRR_VIDE_F", layer="intake")
    reader = Reader(workspace.root / "tracking.sqlite")
    yield reader, ids
    reader.close()


def test_rules_are_counted_over_the_period_most_findings_first(fired: tuple[Reader, dict[str, str]]) -> None:
    """Each rule with its findings, fatal findings and flows in the period, the latest text, the rule set versions
    seen; a finding without a rule id and a flow before the period are left out."""
    reader, ids = fired
    since, until = period_bounds({"period": "30d"}, NOW)
    rows = rules_summary(reader, None, since, until)
    assert [(r["rule"], r["findings"], r["fatal"], r["flows"]) for r in rows] == [
        ("BR-01", 3, 3, 2),
        ("BR-02", 1, 0, 1),
        ("BR-OP", 1, 1, 1),
    ]
    first = rows[0]
    assert first["message"] == "[BR-01] latest text" and first["last_flow"] == ids["a2"]
    assert first["versions"] == ["CEN EN 16931 CII 1.3.16", "CEN EN 16931 UBL 1.3.16"]
    assert rows[1]["versions"] == ["BR-FR 1"] and rows[1]["layer"] == "br-fr" and rows[1]["severity"] == "warning"
    assert rows[2]["versions"] == []
    everything = rules_summary(reader, None, None, None)
    assert [(r["rule"], r["findings"]) for r in everything][:2] == [("BR-01", 3), ("BR-02", 2)]


def test_a_custom_period_bounds_both_ends(fired: tuple[Reader, dict[str, str]]) -> None:
    """``from`` / ``to`` keep only the findings of flows received between them."""
    reader, _ = fired
    since, until = period_bounds({"from": "2026-11-23", "to": "2026-11-25"}, NOW)
    rows = rules_summary(reader, None, since, until)
    assert [(r["rule"], r["findings"]) for r in rows] == [("BR-01", 1), ("BR-02", 1), ("BR-OP", 1)]  # ties by id
    since, until = period_bounds({"from": "2026-11-26"}, NOW)
    assert [(r["rule"], r["findings"]) for r in rules_summary(reader, None, since, until)] == [("BR-01", 2)]


def test_a_sender_counts_only_its_own_flows(fired: tuple[Reader, dict[str, str]]) -> None:
    """A sender's statistics are made of its own flows' findings: another sender's rules and counts never show."""
    reader, _ = fired
    since, until = period_bounds({"period": "30d"}, NOW)
    rows = rules_summary(reader, "acme", since, until)
    assert [(r["rule"], r["findings"], r["flows"]) for r in rows] == [("BR-01", 2, 1), ("BR-02", 1, 1)]
    assert rows[0]["versions"] == ["CEN EN 16931 UBL 1.3.16"]


def test_one_rule_per_day_per_sender_and_its_latest_flows(fired: tuple[Reader, dict[str, str]]) -> None:
    """A rule's page: its text and layer, findings per day (the days without any as zeros, up to today), per
    sender, and the newest flows that broke it first."""
    reader, ids = fired
    since, until = period_bounds({"period": "7d"}, NOW)
    found = rule(reader, None, "BR-01", since, until, today=NOW.date())
    assert found is not None
    assert (found["layer"], found["severity"], found["message"]) == ("en16931", "fatal", "[BR-01] latest text")
    assert (found["findings"], found["flows"]) == (3, 2)
    assert [d["day"] for d in found["days"]] == [f"2026-11-{d}" for d in range(20, 27)]
    assert {d["day"]: d["findings"] for d in found["days"] if d["findings"]} == {"2026-11-25": 1, "2026-11-26": 2}
    assert [(s["sender"], s["findings"], s["flows"]) for s in found["senders"]] == [("acme", 2, 1), ("opdemat", 1, 1)]
    assert [(f["flow_id"], f["findings"]) for f in found["latest"]] == [(ids["a2"], 2), (ids["o1"], 1)]
    assert {v["version"]: v["findings"] for v in found["versions"]} == {
        "CEN EN 16931 UBL 1.3.16": 2,
        "CEN EN 16931 CII 1.3.16": 1,
    }


def test_a_sender_sees_a_rule_through_its_own_flows_only(fired: tuple[Reader, dict[str, str]]) -> None:
    """For a sender, a rule's split is its own row, its latest flows are its own; a rule that fired only on another
    sender's flows is unknown (None, a 404), as a rule that never fired or an id too long to be one."""
    reader, ids = fired
    since, until = period_bounds({"period": "30d"}, NOW)
    found = rule(reader, "acme", "BR-01", since, until, today=NOW.date())
    assert found is not None
    assert [s["sender"] for s in found["senders"]] == ["acme"]
    assert [f["flow_id"] for f in found["latest"]] == [ids["a2"]]
    assert (found["findings"], found["flows"]) == (2, 1)
    assert rule(reader, "acme", "BR-OP", since, until) is None
    assert rule(reader, None, "BR-OP", since, until) is not None
    assert rule(reader, None, "nope", since, until) is None
    assert rule(reader, None, "x" * 500, since, until) is None


def test_a_rule_outside_the_period_is_still_known(fired: tuple[Reader, dict[str, str]]) -> None:
    """A rule that fired only before the period is found, with zero counts in it and its text from its latest
    finding."""
    reader, ids = fired
    since, until = period_bounds({"from": "2026-11-25", "to": "2026-11-26"}, NOW)
    found = rule(reader, None, "BR-02", since, until, today=NOW.date())
    assert found is not None
    assert (found["findings"], found["flows"], found["latest"], found["senders"]) == (0, 0, [], [])
    assert found["last_flow"] == ids["a1"]
    assert [d["findings"] for d in found["days"]] == [0, 0]


def test_days_are_filled_between_the_bounds_only_when_few() -> None:
    """The days between two with findings are filled with zeros; a span over the limit is left as it is."""
    rows = [{"day": "2026-11-02", "findings": 3, "flows": 1}]
    filled = fill_days(rows, date(2026, 11, 1), date(2026, 11, 3))
    assert [(d["day"], d["findings"]) for d in filled] == [("2026-11-01", 0), ("2026-11-02", 3), ("2026-11-03", 0)]
    assert fill_days(rows, date(2020, 1, 1), date(2026, 11, 3)) == rows
    assert fill_days([], None, None) == []
