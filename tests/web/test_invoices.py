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
from tests.web.conftest import HOSTILE_TEXT, Lived, Site

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


# -- lifecycle: current status, the invoice page and its timeline (statuses recorded after a real batch) --------------


def test_the_invoice_page_shows_its_timeline_and_current_status(lived: Lived, lived_site: Site) -> None:
    """An invoice's page shows edi's decision then each recorded status (time, code, label, who, reason), its current
    status first; the held status is not history; the JSON twin carries the same timeline."""
    operator = lived_site.client("operator")
    page = operator.get(f"/invoices/{lived.refused}/1")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'<h1>Invoice <code>FA-2026-0001</code>\s*<span class="badge d-210"', html)
    steps = re.findall(r'<li><time datetime="[^"]+">[^<]+</time> <span class="badge d-(\d+)"[^>]*>\d+</span> '
                       r'<strong>([^<]+)</strong> <span class="by">by ([^<]+)</span>', html)  # fmt: skip
    assert steps == [("200", "Déposée", "edi"), ("204", "Prise en charge", "ville-partner"),
                     ("210", "Refusée", "ville-partner")]  # fmt: skip
    # the held 211 shows nowhere as a status (a flow id's digits may hold "211": only badges and labels are looked at)
    assert '<code class="reason">DOUBLON</code>' in html and "Paiement transmis" not in html
    assert not re.search(r'class="badge [ds]-211"|>211<', html)
    body = operator.get(f"/invoices/{lived.refused}/1.json").json()
    assert [(s["status"], s["label"], s["by"], s["reason"]) for s in body["document"]["lifecycle"]] == [
        ("200", "Déposée", "edi", None),
        ("204", "Prise en charge", "ville-partner", None),
        ("210", "Refusée", "ville-partner", "DOUBLON"),
    ]
    assert body["current"]["status"] == "210" and body["flow"]["sender"] == "acme"


def test_a_recipients_hostile_words_show_as_text(lived: Lived, lived_site: Site) -> None:
    """A status's text holding markup, a right-to-left override and an escape sequence shows as inert text on the
    invoice page and the flow page; the JSON twin keeps it exactly."""
    operator = lived_site.client("operator")
    for path in (f"/invoices/{lived.refused}/1", f"/flows/{lived.refused}"):
        html = operator.get(path).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; \\u202eevil\\x1b[31m" in html
        assert "<script>" not in html and not any(c in html for c in "\u202e\x1b")
    body = operator.get(f"/invoices/{lived.refused}/1.json").json()
    assert body["document"]["lifecycle"][-1]["text"] == HOSTILE_TEXT


def test_a_sender_never_sees_another_senders_invoice_or_timeline(lived: Lived, lived_site: Site) -> None:
    """acme's account gets the unknown invoice's 404 for opdemat's invoice (page and twin), and no opdemat row when
    it searches by opdemat's current status; opdemat's account reads who set a status as "an operator"."""
    acme = lived_site.client("acme")
    for suffix in ("", ".json"):
        theirs = acme.get(f"/invoices/{lived.paid}/1{suffix}")
        unknown = acme.get(f"/invoices/20200101T000000000000-abcdef/1{suffix}")
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.text.replace(lived.paid, "<id>") == unknown.text.replace("20200101T000000000000-abcdef", "<id>")
    assert acme.get("/invoices.json?status=211").json() == {"invoices": [], "next": None}
    assert lived.paid not in acme.get("/invoices?status=211").text
    assert acme.get(f"/invoices/{lived.refused}/2").status_code == 404  # a document the flow does not have
    opdemat = lived_site.client("opdemat")
    assert opdemat.get("/invoices.json?status=210").json()["invoices"] == []
    mine = opdemat.get(f"/invoices/{lived.paid}/1.json").json()
    assert [s["by"] for s in mine["document"]["lifecycle"]] == ["edi", "ville-partner", "an operator"]
    assert "alice" not in opdemat.get(f"/invoices/{lived.paid}/1").text
    (row,) = opdemat.get("/invoices.json?status=211").json()["invoices"]
    assert row["current_by"] == "an operator"
    (row,) = lived_site.client("operator").get("/invoices.json?status=211").json()["invoices"]
    assert row["current_by"] == "operator:alice"


def test_the_list_shows_and_filters_by_the_current_status(lived: Lived, lived_site: Site) -> None:
    """The list's status is the current one (the latest recorded, else edi's); filtering by it keeps exactly the
    invoices whose current status it is, in the page, JSON and CSV alike."""
    operator = lived_site.client("operator")
    assert [r["flow_id"] for r in operator.get("/invoices.json?status=210").json()["invoices"]] == [lived.refused]
    assert [r["flow_id"] for r in operator.get("/invoices.json?status=211").json()["invoices"]] == [lived.paid]
    assert operator.get("/invoices.json?status=204").json()["invoices"] == []  # a status since superseded
    accepted = operator.get("/invoices.json?status=200&limit=1000").json()["invoices"]
    assert accepted and {r["current_status"] for r in accepted} == {"200"}
    assert not {lived.refused, lived.paid} & {r["flow_id"] for r in accepted}
    every = {(r["flow_id"], r["idx"]): r for r in operator.get("/invoices.json?limit=1000").json()["invoices"]}
    assert every[(lived.refused, 1)]["current_status"] == "210" and every[(lived.refused, 1)]["status"] == "200"
    assert every[(lived.refused, 1)]["current_label"] == "Refusée"
    page = operator.get("/invoices?status=210").text
    assert (
        f'<a href="/invoices/{lived.refused}/1"><span class="badge d-210" title="Refusée">210</span> Refusée</a>'
        in page
    )
    assert '<option value="210" selected>210 Refusée</option>' in page
    exported = list(csv.DictReader(io.StringIO(operator.get("/invoices.csv?status=210").text)))
    assert [(r["flow_id"], r["current_status"], r["current_by"]) for r in exported] == [
        (lived.refused, "210", "ville-partner")
    ]


def test_recipient_and_reception_period_filters(lived: Lived, lived_site: Site) -> None:
    """``recipient`` keeps the invoices routed to it; ``since`` / ``until`` bound the reception time; a malformed
    period is a 400 naming the parameter."""
    operator = lived_site.client("operator")
    routed = operator.get("/invoices.json?recipient=ville-exemple&limit=1000").json()["invoices"]
    assert routed and {r["recipient"] for r in routed} == {"ville-exemple"}
    assert operator.get("/invoices.json?since=2999-01-01").json()["invoices"] == []
    assert operator.get("/invoices.json?until=2000-01-01").json()["invoices"] == []
    assert len(operator.get("/invoices.json?since=2000-01-01&limit=1000").json()["invoices"]) == len(
        operator.get("/invoices.json?limit=1000").json()["invoices"]
    )
    answer = operator.get("/invoices.json?since=yesterday")
    assert answer.status_code == 400 and answer.json()["error"].startswith("since:")
    answer = operator.get("/invoices.json?since=2026-11-02&until=2026-11-01")
    assert answer.status_code == 400 and answer.json()["error"].startswith("until:")
