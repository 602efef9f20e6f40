"""The dashboard's routes (edi.web.dashboard): the page, its JSON and CSV twins, bad periods, logins and scope,
hostile values shown as text."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edi import accounts
from edi.config import settings_from_dict
from edi.notify.outbox import claim_due, record_failed
from edi.notify.policy import policy_for
from edi.tracking import Tracking
from edi.web.app import create_app
from tests.browse.test_dashboard import NOW, OK, REFUSED, add_flow
from tests.conftest import FixedClock, Workspace
from tests.notify.conftest import invoice_ack
from tests.web.conftest import Lived, Site

HOSTILE_SENDER = "<script>alert(1)</script>"
HOSTILE_RULE = '"><img src=x onerror=alert(1)>'
HOSTILE_FILE = "<b onmouseover=alert(1)>x.xml"


@pytest.fixture
def console(workspace: Workspace) -> Iterator[TestClient]:
    """A console over a store with flows of two senders today, two accounts (alice, operator; acme-ops, acme's)."""
    layout = workspace.settings.workspace.layout()
    store = Tracking(layout.database)
    add_flow(store, NOW - timedelta(hours=1), "acme", "IN_INTEGRE", [OK, OK])
    add_flow(store, NOW - timedelta(hours=2), "acme", "IN_REJETE", [REFUSED], [(1, "BR-ACME", "fatal")])
    add_flow(store, NOW - timedelta(days=1), "opdemat", "IN_REJETE", [("their-buyer", None, "213")],
             [(1, "BR-THEIRS", "fatal")])  # fmt: skip
    add_flow(store, NOW - timedelta(days=2), "opdemat", "IN_EN_ATTENTE_RETRAITEMENT", name="their-failed.xml")
    accounts.add_user(store, "alice", "operator", "secret-pass-1", NOW)
    accounts.add_user(store, "acme-ops", "sender", "secret-pass-2", NOW, sender="acme")
    store.close()
    for sender, name in (("acme", "mine-late.xml"), ("opdemat", "their-late.xml")):
        path = workspace.inbox(sender) / name
        path.write_bytes(b"<x/>")
        os.utime(path, (NOW.timestamp() - 7200, NOW.timestamp() - 7200))
    with TestClient(create_app(workspace.settings, FixedClock(NOW)), base_url="http://127.0.0.1") as client:
        yield client


def log_in(client: TestClient, name: str, password: str) -> None:
    page = client.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    answer = client.post("/login", data={"username": name, "password": password, "csrf": token[1]})
    assert answer.status_code in (200, 303)


def as_operator(client: TestClient) -> TestClient:
    log_in(client, "alice", "secret-pass-1")
    return client


def test_page(console: TestClient) -> None:
    """The page: cards, four SVG charts, tables whose senders, queues and rules link to their flows over the
    period, the failed flow and the late inbox file; no script and no style attribute (the CSP forbids them)."""
    page = as_operator(console).get("/?period=7d")
    assert page.status_code == 200
    html = page.text
    assert html.count("<svg") == 4 and 'class="chart chart-bars"' in html and 'class="chart chart-hist"' in html
    assert "<script" not in html and "style=" not in html
    assert 'href="/flows?from=2026-03-04T00%3A00%3A00.000Z&amp;sender=acme"' in html
    assert 'href="/flows?from=2026-03-04T00%3A00%3A00.000Z&amp;rule=BR-ACME"' in html
    assert 'href="/rules/BR-ACME"' in html
    assert "their-failed.xml" in html and "mine-late.xml" in html and "their-late.xml" in html
    assert re.search(r"Flows received</span>\s*<span class=\"value\">4<", html)


def test_json_twin(console: TestClient) -> None:
    """/dashboard.json carries the page's data: period, bounds, totals, days, senders, recipients, rules, the
    attention lists and the waiting histogram."""
    found: dict[str, Any] = as_operator(console).get("/dashboard.json?period=7d").json()
    assert {"period", "from", "to", "totals", "by_day", "by_sender", "by_recipient", "by_queue", "top_rules"} <= set(
        found
    )
    assert (found["period"], found["from"], found["to"]) == ("7d", "2026-03-04T00:00:00.000Z", None)
    assert found["totals"]["flows"] == 4 and found["totals"]["rejection_rate"] == 0.5
    assert [s["sender"] for s in found["by_sender"]] == ["acme", "opdemat"]
    assert found["attention"]["failed"]["count"] == 1
    assert [f["name"] for f in found["attention"]["stalled"]["files"]] == ["mine-late.xml", "their-late.xml"]
    assert sum(found["waiting"]["total"]) == 2 and len(found["waiting"]["buckets"]) == 8


def test_csv_twin(console: TestClient) -> None:
    """/dashboard.csv is the table of days and statuses: one row per day and status with flows, documents and
    accepted documents."""
    answer = as_operator(console).get("/dashboard.csv?period=7d")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["day", "status", "flows", "documents", "accepted"]
    assert len(rows) == 1 + 7 * 5
    assert ["2026-03-10", "IN_INTEGRE", "1", "2", "2"] in rows
    assert ["2026-03-09", "IN_REJETE", "1", "1", "0"] in rows
    assert ["2026-03-08", "IN_EN_ATTENTE_RETRAITEMENT", "1", "0", "0"] in rows


@pytest.mark.parametrize(
    "query", ["period=week", "from=2026-02-30", "period=custom", "from=2026-03-05&to=2026-03-01"], ids=str
)
@pytest.mark.parametrize("path", ["/", "/dashboard.json", "/dashboard.csv"])
def test_bad_period(console: TestClient, path: str, query: str) -> None:
    """A period that cannot be read is a 400 that says what is wrong, for the page and its twins."""
    answer = as_operator(console).get(f"{path}?{query}")
    assert answer.status_code == 400
    assert re.search(r"period|from|to", answer.text) and "Traceback" not in answer.text


def test_logged_out(console: TestClient) -> None:
    """Without a login the page sends the browser to /login, and the twins answer 401."""
    page = console.get("/?period=today", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert console.get("/dashboard.json").status_code == 401
    assert console.get("/dashboard.csv").status_code == 401


def test_sender_account(console: TestClient) -> None:
    """A sender account sees its own flows, rules, recipients and inbox, and no other sender's name, rule,
    recipient or file anywhere on the page or its twins."""
    log_in(console, "acme-ops", "secret-pass-2")
    found = console.get("/dashboard.json?period=7d").json()
    assert found["totals"]["flows"] == 2 and [s["sender"] for s in found["by_sender"]] == ["acme"]
    assert [r["rule"] for r in found["top_rules"]] == ["BR-ACME"]
    assert [p["place"] for p in found["waiting"]["places"]] == ["inbox/acme"]
    page = console.get("/?period=7d").text
    assert "mine-late.xml" in page and "BR-ACME" in page
    for answer in (page, console.get("/dashboard.json?period=7d").text, console.get("/dashboard.csv?period=7d").text):
        for theirs in ("opdemat", "BR-THEIRS", "their-buyer", "their-failed.xml", "their-late.xml", "spool/"):
            assert theirs not in answer


def test_hostile_values(workspace: Workspace, console: TestClient) -> None:
    """A sender id, a rule id and file names made of markup are shown as text, and links to them are encoded."""
    store = Tracking(workspace.settings.workspace.layout().database)
    add_flow(store, NOW - timedelta(minutes=30), HOSTILE_SENDER, "IN_REJETE", [REFUSED], [(1, HOSTILE_RULE, "fatal")])
    add_flow(store, NOW - timedelta(minutes=40), HOSTILE_SENDER, "IN_EN_ATTENTE_RETRAITEMENT", name=HOSTILE_FILE)
    store.close()
    path = workspace.inbox("acme") / "<i onclick=alert(1)>.xml"
    path.write_bytes(b"")
    os.utime(path, (NOW.timestamp() - 7200, NOW.timestamp() - 7200))
    html = as_operator(console).get("/?period=today").text
    for raw in (HOSTILE_SENDER, HOSTILE_RULE, HOSTILE_FILE, "<i onclick=alert(1)>", "<img", "<b "):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b onmouseover=alert(1)&gt;x.xml" in html
    assert "&lt;i onclick=alert(1)&gt;.xml" in html
    assert 'href="/rules/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"' in html
    assert "sender=%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in html
    assert console.get("/dashboard.json?period=today").json()["by_sender"][0]["sender"] == HOSTILE_SENDER


def _delivered(lived: Lived, sender: str | None = None) -> int:
    """The delivered invoices (200, with a recipient) of the lived-on workspace, counted straight in its store."""
    conn = sqlite3.connect(lived.console.ws.settings.workspace.layout().database)
    try:
        (n,) = conn.execute(
            "SELECT count(*) FROM documents d JOIN flows f ON f.flow_id = d.flow_id WHERE d.status = '200' "
            "AND d.recipient IS NOT NULL AND (? IS NULL OR f.sender = ?)",
            [sender, sender],
        ).fetchone()
    finally:
        conn.close()
    return int(n)


def test_invoices_waiting_for_their_recipient(lived: Lived, lived_site: Site) -> None:
    """Ten days on, every delivered invoice without a processing status waits (in the 7-14 d bucket), but those with
    one (204, 210, 211); none waits on the day they came; a sender's account counts its own invoices only."""
    operator = lived_site.client("operator")
    now = operator.get("/dashboard.json").json()["invoices_waiting"]
    assert now["total"] == 0 and now["after_days"] == 7
    assert now["buckets"] == ["7-14 d", "14-28 d", "28-56 d", "56-112 d", "≥ 112 d"]
    lived_site.clock.advance(10 * 86400)
    operator = lived_site.client("operator")  # a new session: the first one has long been idle
    later = operator.get("/dashboard.json").json()["invoices_waiting"]
    assert later["counts"] == [_delivered(lived) - 2, 0, 0, 0, 0] and later["total"] == _delivered(lived) - 2 > 0
    acme = lived_site.client("acme").get("/dashboard.json").json()["invoices_waiting"]
    assert acme["total"] == _delivered(lived, "acme") - 1 > 0
    html = operator.get("/").text
    assert 'id="invoices-waiting"' in html and html.count("<svg") == 4
    (row,) = re.findall(r"<td>200 Déposée, no status since</td>(.*?)</tr>", html, re.S)
    link = re.search(r'<a href="(/invoices\?[^"]+)">', row)
    assert link is not None
    listed = operator.get(link[1].replace("&amp;", "&").replace("/invoices?", "/invoices.json?") + "&limit=1000")
    assert {r["current_status"] for r in listed.json()["invoices"]} == {"200"}
    assert len(listed.json()["invoices"]) >= later["counts"][0]


def test_e_mails_given_up_need_an_operator(workspace: Workspace, tmp_path: Path) -> None:
    """Notifications the outbox gave up (a 5xx) show under "needs an operator now" with why and what to run; a sender
    account sees only its own, the JSON twin counts them."""
    settings = settings_from_dict(
        {
            "workspace": {"root": str(workspace.root)},
            "senders": [
                {"id": "acme", "sellers": ["*"], "email": ["factures@acme.example"]},
                {"id": "opdemat", "sellers": ["*"], "email": ["ops@opdemat.example"]},
            ],
            "notifications": {"smtp_host": "127.0.0.1", "from_address": "edi@platform.example"},
        },
        tmp_path / "config.toml",
    )
    store = Tracking(workspace.settings.workspace.layout().database)
    store.notifications = policy_for(settings, "w")
    for flow_id, sender, number in (("F-ACME", "acme", "<b>FA-1</b>"), ("F-OPDEMAT", "opdemat", "IN-9")):
        ack = invoice_ack(flow_id, sender, [{"status": "213", "reason": "DEST_INC", "invoice_number": number}])
        store.record_outcomes([ack], NOW)
    mails = claim_due(store, NOW, NOW + timedelta(minutes=5), 10)
    assert len(mails) == 2
    record_failed(store, mails, NOW, "550 5.1.1 <factures@acme.example>: mailbox unknown")
    accounts.add_user(store, "alice", "operator", "secret-pass-1", NOW)
    accounts.add_user(store, "acme-ops", "sender", "secret-pass-2", NOW, sender="acme")
    store.close()
    with TestClient(create_app(workspace.settings, FixedClock(NOW)), base_url="http://127.0.0.1") as client:
        found = as_operator(client).get("/dashboard.json").json()["attention"]["mails"]
        assert found["count"] == 2 and {m["sender"] for m in found["mails"]} == {"acme", "opdemat"}
        html = client.get("/").text
        assert "E-mails given up" in html and "edi notifications --retry" in html
        assert "&lt;b&gt;FA-1&lt;/b&gt;" in html and "<b>FA-1" not in html and "mailbox unknown" in html
    with TestClient(create_app(workspace.settings, FixedClock(NOW)), base_url="http://127.0.0.1") as client:
        log_in(client, "acme-ops", "secret-pass-2")
        found = client.get("/dashboard.json").json()["attention"]["mails"]
        assert found["count"] == 1 and [m["sender"] for m in found["mails"]] == ["acme"]
