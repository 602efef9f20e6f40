"""The rules pages: the list and its twins hold the same rows, one rule's page and JSON, 404 for an unknown or
another sender's rule, hostile ids escaped and URL-encoded, the account's scope, a login required."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest

from tests.conftest import Workspace
from tests.console_store import NOW, client, store_of

HOSTILE_RULE = '<b onmouseover=alert(1)>R/1?"&'


@pytest.fixture
def fired(workspace: Workspace) -> Iterator[dict[str, str]]:
    """BR-01 on an acme and an opdemat flow, BR-OP on opdemat's only, a hostile rule id on acme's; accounts."""
    with store_of(workspace) as s:
        ids = {
            "a1": s.flow("acme", NOW - timedelta(days=2), file_name="<i>acme</i>.xml"),
            "o1": s.flow("opdemat", NOW - timedelta(days=1)),
        }
        s.finding(ids["a1"], "BR-01")
        s.finding(ids["a1"], "BR-01", idx=2)
        s.finding(ids["o1"], "BR-01")
        s.finding(ids["o1"], "BR-OP", message="opdemat's own <script>x</script>")
        s.finding(ids["a1"], HOSTILE_RULE, message="<img src=x onerror=alert(1)>")
        s.account("olga")
        s.account("acme-ops", sender="acme")
    yield ids


def test_the_list_and_its_twins_hold_the_same_rules(workspace: Workspace, fired: dict[str, str]) -> None:
    """The page, JSON and CSV list the same rules in the same order (most findings first) with the same counts."""
    test = client(workspace, "olga")
    body = test.get("/rules.json").json()
    assert body["period"]["period"] == "30d" and body["period"]["since"] == "2026-10-28T00:00:00.000Z"
    rows = [(r["rule"], r["findings"], r["flows"]) for r in body["rules"]]
    assert rows == [("BR-01", 3, 2), (HOSTILE_RULE, 1, 1), ("BR-OP", 1, 1)]  # ties by id: "<" before "B"
    exported = list(csv.DictReader(io.StringIO(test.get("/rules.csv").text)))
    assert [(r["rule"], int(r["findings"]), int(r["flows"])) for r in exported] == rows
    page = test.get("/rules").text
    links = re.findall(r'<td class="rule-id"><a href="/rules/([^"?]+)\?', page)
    assert links == [quote(r[0], safe="/") for r in rows]
    assert "<b onmouseover" not in page and "<img src=x" not in page


def test_a_period_narrows_the_list_and_bad_periods_are_400(workspace: Workspace, fired: dict[str, str]) -> None:
    """``period=today`` keeps today's flows (none here); a malformed period or date answers 400 with the problem."""
    test = client(workspace, "olga")
    assert test.get("/rules.json?period=today").json()["rules"] == []
    assert [r["rule"] for r in test.get("/rules.json?from=2026-11-25").json()["rules"]] == ["BR-01", "BR-OP"]
    for query, message in (
        ("period=week", "period"),
        ("from=yesterday", "not a date"),
        ("from=2026-11-26&to=2026-11-01", "not after"),
    ):
        answer = test.get(f"/rules.json?{query}")
        assert answer.status_code == 400 and message in answer.json()["error"]
        assert test.get(f"/rules?{query}").status_code == 400
        assert test.get(f"/rules/BR-01?{query}").status_code == 400


def test_a_sender_counts_and_sees_only_its_own(workspace: Workspace, fired: dict[str, str]) -> None:
    """An acme account's list counts acme's findings only; a rule's page splits by acme alone and lists acme's flows
    only; a rule that fired only for opdemat is a 404 for it."""
    test = client(workspace, "acme-ops")
    rows = [(r["rule"], r["findings"], r["flows"]) for r in test.get("/rules.json").json()["rules"]]
    assert rows == [("BR-01", 2, 1), (HOSTILE_RULE, 1, 1)]
    one = test.get("/rules/BR-01.json").json()
    assert [s["sender"] for s in one["senders"]] == ["acme"]
    assert [f["flow_id"] for f in one["latest"]] == [fired["a1"]]
    page = test.get("/rules/BR-01").text
    assert fired["o1"] not in page and "opdemat" not in page
    assert test.get("/rules/BR-OP").status_code == 404
    assert test.get("/rules/BR-OP.json").status_code == 404
    assert "opdemat" not in test.get("/rules.csv").text


def test_one_rule_page_and_its_json(workspace: Workspace, fired: dict[str, str]) -> None:
    """An operator sees a rule's counts, per-day table, split by sender and latest flows; the JSON is that data;
    the page links to the flows that broke it."""
    test = client(workspace, "olga")
    body = test.get("/rules/BR-01.json").json()
    assert (body["findings"], body["flows"], body["layer"]) == (3, 2, "en16931")
    assert [(s["sender"], s["findings"]) for s in body["senders"]] == [("acme", 2), ("opdemat", 1)]
    assert [f["flow_id"] for f in body["latest"]] == [fired["o1"], fired["a1"]]
    assert len(body["days"]) == 30 and sum(d["findings"] for d in body["days"]) == 3
    page = test.get("/rules/BR-01").text
    assert 'href="/flows?period=30d&amp;rule=BR-01"' in page
    assert all(f'href="/flows/{f}"' in page for f in (fired["o1"], fired["a1"]))
    assert "&lt;i&gt;acme&lt;/i&gt;.xml" in page


def test_unknown_and_hostile_rule_ids(workspace: Workspace, fired: dict[str, str]) -> None:
    """An unknown id is a 404 with the id escaped; a hostile id that did fire is found through its URL-encoded link
    and shown as text, its message too."""
    test = client(workspace, "olga")
    missing = test.get("/rules/" + quote("<script>alert(1)</script>", safe=""))
    assert missing.status_code == 404 and "<script>alert" not in missing.text and "&lt;script&gt;" in missing.text
    assert test.get("/rules/nope.json").status_code == 404
    assert test.get("/rules/").status_code == 404
    encoded = quote(HOSTILE_RULE, safe="/")
    page = test.get(f"/rules/{encoded}")
    assert page.status_code == 200
    assert "<b onmouseover" not in page.text and "<img src=x" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert test.get(f"/rules/{encoded}.json").json()["rule"] == HOSTILE_RULE


def test_a_login_is_required(workspace: Workspace, fired: dict[str, str]) -> None:
    """Logged out, the pages send the browser to /login and the twins answer 401."""
    test = client(workspace)
    for path in ("/rules", "/rules/BR-01"):
        answer = test.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    for path in ("/rules.json", "/rules.csv", "/rules/BR-01.json"):
        assert test.get(path).status_code == 401
