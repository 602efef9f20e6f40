"""The invoices page and its twins: the same rows in HTML, JSON and CSV, signed keyset cursors, the account's scope,
bad input, hostile values shown as text, a login required."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from tests.conftest import Workspace
from tests.console_store import NOW, client, store_of

HOSTILE = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def invoices(workspace: Workspace) -> Iterator[dict[str, list[str]]]:
    """Seven acme flows (the newest with a hostile invoice number), three opdemat flows; an operator and an acme
    account."""
    made: dict[str, list[str]] = {"acme": [], "opdemat": []}
    with store_of(workspace) as s:
        for n in range(7):
            flow = s.flow("acme", NOW - timedelta(hours=10 - n))
            s.document(flow, 1, invoice_number=HOSTILE if n == 6 else f"A-{n}", seller_id="S1", issue_date="2026-11-20")
            made["acme"].append(flow)
        for n in range(3):
            flow = s.flow("opdemat", NOW - timedelta(hours=20 - n))
            s.document(flow, 1, invoice_number=f"O-{n}", seller_id="S1", issue_date="2026-11-21")
            made["opdemat"].append(flow)
        s.account("olga")
        s.account("acme-ops", sender="acme")
    yield made


def walk(test: TestClient, query: str) -> list[dict[str, object]]:
    """Every row of /invoices.json, page after page."""
    rows: list[dict[str, object]] = []
    url = f"/invoices.json?{query}"
    while True:
        answer = test.get(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows += body["invoices"]
        if body["next"] is None:
            return rows
        url = f"/invoices.json?{query}&cursor={body['next']}"


def test_page_json_and_csv_give_the_same_rows(workspace: Workspace, invoices: dict[str, list[str]]) -> None:
    """The page, its JSON twin (walked page by page) and the CSV (every match at once) list the same documents."""
    test = client(workspace, "olga")
    rows = walk(test, "seller=S1&limit=3")
    assert len(rows) == 10 and len({(r["flow_id"], r["idx"]) for r in rows}) == 10
    assert [r["flow_id"] for r in rows] == sorted(invoices["acme"] + invoices["opdemat"], reverse=True)
    exported = list(csv.DictReader(io.StringIO(test.get("/invoices.csv?seller=S1").text)))
    assert [(r["flow_id"], r["invoice_number"]) for r in exported] == [
        (r["flow_id"], r["invoice_number"]) for r in rows
    ]
    page = test.get("/invoices?seller=S1&limit=3").text
    first = test.get("/invoices.json?seller=S1&limit=3").json()["invoices"]
    assert re.findall(r'href="/flows/([^"]+)" title="document', page) == [r["flow_id"] for r in first]
    assert 'rel="next"' in page


def test_a_sender_never_sees_another_senders_invoices(workspace: Workspace, invoices: dict[str, list[str]]) -> None:
    """An acme account's search (page, JSON, CSV) holds acme's documents only, even asked for opdemat's."""
    test = client(workspace, "acme-ops")
    assert {r["sender"] for r in walk(test, "limit=2")} == {"acme"}
    assert test.get("/invoices.json?invoice=O-1").json() == {"invoices": [], "next": None}
    assert test.get("/invoices.json?sender=opdemat").json()["invoices"] == []
    exported = test.get("/invoices.csv").text
    assert not any(flow in exported for flow in invoices["opdemat"])
    page = test.get("/invoices").text
    assert not any(flow in page for flow in invoices["opdemat"]) and "O-1" not in page


def test_cursors_are_signed_and_belong_to_their_list(workspace: Workspace, invoices: dict[str, list[str]]) -> None:
    """An altered cursor, a made-up one and a flows list's cursor are refused (400), never a 500."""
    test = client(workspace, "olga")
    cursor = test.get("/invoices.json?limit=2").json()["next"]
    key, _, mac = cursor.rpartition(".")
    flows_cursor = test.get("/flows.json?limit=2").json()["next"]
    for bad in (f"{key}.{mac[::-1]}", f"{key[:-1]}9.{mac}", "x", flows_cursor, f"{flows_cursor.split('.')[0]}~1.x"):
        answer = test.get(f"/invoices.json?cursor={bad}")
        assert answer.status_code == 400 and "cursor" in answer.json()["error"]
    assert test.get(f"/invoices?cursor={key}.{mac[::-1]}").status_code == 400


@pytest.mark.parametrize(
    ("query", "message"),
    [("status=IN_REJETE", "not an invoice status"), ("from=2026-13-01", "not an issue date"), ("limit=0", "limit")],
)
def test_bad_input_is_a_400_saying_what_is_wrong(
    workspace: Workspace, invoices: dict[str, list[str]], query: str, message: str
) -> None:
    """A malformed filter answers 400 with the problem, as HTML for the page and JSON for a twin."""
    test = client(workspace, "olga")
    answer = test.get(f"/invoices.json?{query}")
    assert answer.status_code == 400 and message in answer.json()["error"]
    page = test.get(f"/invoices?{query}")
    assert page.status_code == 400 and message in page.text and "Traceback" not in page.text


def test_hostile_invoice_numbers_are_text(workspace: Workspace, invoices: dict[str, list[str]]) -> None:
    """An invoice number carrying markup is escaped on the page (and given back exactly in JSON)."""
    test = client(workspace, "olga")
    page = test.get("/invoices").text
    assert "<img src=x" not in page and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert test.get("/invoices.json?limit=1").json()["invoices"][0]["invoice_number"] == HOSTILE


def test_a_login_is_required(workspace: Workspace, invoices: dict[str, list[str]]) -> None:
    """Logged out, the page sends the browser to /login and the twins answer 401."""
    test = client(workspace)
    answer = test.get("/invoices?seller=S1", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    assert test.get("/invoices.json").status_code == 401
    assert test.get("/invoices.csv").status_code == 401
