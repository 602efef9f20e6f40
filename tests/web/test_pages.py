"""The console's routes (edi/web/pages.py) through Starlette's TestClient on a workspace the real batch processed:
who may see what, the flows list and its twins, bad input, requeue, and hostile content shown as text."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from edi import accounts
from edi.clock import iso
from edi.runner import run_batch
from edi.store import open_store
from tests.web.conftest import (
    HOSTILE_INVOICE,
    HOSTILE_NAME,
    OPERATORS_ONLY,
    PASSWORD,
    PROTECTED,
    PUBLIC,
    RULE,
    Console,
    Lived,
    Site,
    csrf_of,
    ubl_invoice,
)

UNKNOWN = "20200101T000000000000-abcdef"  # a well-formed flow id no flow has
MALFORMED = ["abc", "2026", "20261206T035140859828-ABCDEF", "x" * 300, "' OR 1=1 --", "..%00"]


def url_of(path: str, flow_id: str) -> str:
    return path.replace("{flow}", flow_id).replace("{rule}", RULE)


def own_flow(console: Console) -> str:
    """An integrated acme flow: it has an original, and acknowledgements in JSON and XML."""
    return console.flow_id("acme", "01-ubl-invoice.xml")


def others_flow(console: Console) -> str:
    """An integrated opdemat flow."""
    return console.flow_id("opdemat", "01-initech-cii-basic.xml")


def anonymised(text: str, flow_id: str) -> str:
    return text.replace(flow_id, "<id>")


# -- access ------------------------------------------------------------------------------------------------------


def test_every_route_that_needs_a_login_is_in_the_access_list(site: Site) -> None:
    """Every GET route of the app but /login, /healthz and the stylesheet is in PROTECTED (a new page must join it)."""
    paths = set()
    for route in site.app.routes:
        if isinstance(route, Mount) or route.path in PUBLIC:
            continue
        assert isinstance(route, Route)
        if route.methods and "GET" in route.methods:
            paths.add(
                route.path.replace("{flow_id}", "{flow}").replace("{rule_id:path}", "{rule}").replace("{idx:int}", "1")
            )
    assert paths == {path for path, _ in PROTECTED}


@pytest.mark.parametrize("path", [p for p, kind in PROTECTED if kind == "page"])
def test_logged_out_a_page_redirects_to_the_login_form(path: str, site: Site, anonymous: TestClient) -> None:
    """Logged out, an HTML page answers 303 to /login with the page (and its query) as ``next``."""
    target = url_of(path, own_flow(site.console)) + "?status=IN_REJETE"
    answer = anonymous.get(target)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?" + urlencode({"next": target})


@pytest.mark.parametrize("path", [p for p, kind in PROTECTED if kind == "twin"])
def test_logged_out_a_twin_answers_401(path: str, site: Site, anonymous: TestClient) -> None:
    """Logged out, a JSON or CSV twin answers 401 with a JSON error, not a redirect."""
    answer = anonymous.get(url_of(path, own_flow(site.console)))
    assert answer.status_code == 401
    if path in OPERATORS_ONLY:  # /metrics says how a scraper gets in (a bearer token)
        assert answer.json() == {"error": "log in as an operator, or send the metrics token", "status": 401}
    else:
        assert answer.json() == {"error": "log in first (POST /login)", "status": 401}


@pytest.mark.parametrize("path", [p for p, _ in PROTECTED])
def test_an_operator_opens_every_page_and_twin(path: str, site: Site, operator: TestClient) -> None:
    """An operator gets 200 from every page and twin, on any sender's flow."""
    for flow_id in (own_flow(site.console), others_flow(site.console)):
        answer = operator.get(url_of(path, flow_id))
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", [p for p, _ in PROTECTED if p not in OPERATORS_ONLY])
def test_a_sender_opens_every_page_and_twin_of_its_own_flows(path: str, site: Site, acme: TestClient) -> None:
    """A sender account gets 200 from every page and twin of its own flows."""
    answer = acme.get(url_of(path, own_flow(site.console)))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", sorted(OPERATORS_ONLY))
def test_a_sender_is_refused_what_is_for_operators(path: str, site: Site, acme: TestClient) -> None:
    """A sender account logged in gets 403 from an operator's page (not a login form: it is logged in)."""
    assert acme.get(url_of(path, own_flow(site.console))).status_code == 403


def test_another_senders_rule_answers_as_an_unknown_rule(opdemat: TestClient) -> None:
    """A rule only another sender's flows broke is unknown to a sender account: 404, as for a rule never seen."""
    assert opdemat.get(f"/rules/{RULE}").status_code == opdemat.get("/rules/NO-SUCH-RULE").status_code == 404


@pytest.mark.parametrize("path", [p for p, _ in PROTECTED if "{flow}" in p])
def test_another_senders_flow_answers_exactly_as_an_unknown_one(path: str, site: Site, acme: TestClient) -> None:
    """A sender asking for another sender's flow gets the 404 an unknown id gets: same status, same body."""
    other = others_flow(site.console)
    theirs = acme.get(url_of(path, other))
    unknown = acme.get(url_of(path, UNKNOWN))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.headers["content-type"] == unknown.headers["content-type"]
    assert anonymised(theirs.text, other) == anonymised(unknown.text, UNKNOWN)


@pytest.mark.parametrize("flow_id", MALFORMED, ids=["word", "short", "upper", "long", "sql", "nul"])
@pytest.mark.parametrize("path", [p for p, _ in PROTECTED if "{flow}" in p])
def test_a_malformed_flow_id_is_not_found(path: str, flow_id: str, operator: TestClient) -> None:
    """A malformed or guessed flow id answers 404 (never a 400 or 500) on every flow route."""
    answer = operator.get(url_of(path, quote(flow_id, safe="")))
    assert answer.status_code == 404, answer.text


def test_a_senders_requeue_of_another_senders_flow_answers_as_for_an_unknown_one(site: Site, acme: TestClient) -> None:
    """POST requeue by a sender account answers the same 403 for another sender's flow as for an unknown id."""
    token = csrf_of(acme.get("/flows").text)
    other = others_flow(site.console)
    theirs = acme.post(f"/flows/{other}/requeue", data={"csrf": token})
    unknown = acme.post(f"/flows/{UNKNOWN}/requeue", data={"csrf": token})
    assert theirs.status_code == unknown.status_code == 403
    assert anonymised(theirs.text, other) == anonymised(unknown.text, UNKNOWN)


def test_an_operators_requeue_of_an_unknown_flow_is_404(operator: TestClient) -> None:
    """An operator requeueing an id no flow has gets 404."""
    token = csrf_of(operator.get("/flows").text)
    assert operator.post(f"/flows/{UNKNOWN}/requeue", data={"csrf": token}).status_code == 404


def test_logged_out_requeue_goes_to_the_login_form(site: Site, anonymous: TestClient) -> None:
    """A requeue posted without a session is sent to /login (with no ``next``: coming back would GET an action)
    and requeues nothing."""
    answer = anonymous.post(f"/flows/{site.console.failed_id}/requeue", data={"csrf": "x"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert (site.console.ws.root / "failed" / site.console.failed_id).is_dir()


def test_a_sender_sees_only_its_own_flows_even_when_it_asks_for_another(acme: TestClient) -> None:
    """A sender account's list holds only its sender's flows; ?sender=opdemat gives nothing, in every rendering."""
    rows = acme.get("/flows.json?limit=1000").json()["flows"]
    assert rows and {r["sender"] for r in rows} == {"acme"}
    assert acme.get("/flows.json?sender=opdemat").json() == {"flows": [], "next": None}
    assert "opdemat" not in acme.get("/flows.csv?sender=opdemat").text
    assert "01-initech" not in acme.get("/flows?sender=opdemat").text


# -- the flows list and its twins ----------------------------------------------------------------------------------


def csv_rows(answer: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(answer.text)))


def every_page(client: TestClient, query: dict[str, str], limit: int) -> list[str]:
    """The flow ids of every page of /flows.json, following ``next`` to the end."""
    ids: list[str] = []
    cursor = None
    while True:
        body = client.get(
            "/flows.json?" + urlencode({**query, "limit": limit, **({"cursor": cursor} if cursor else {})})
        )
        assert body.status_code == 200, body.text
        data = body.json()
        ids += [f["flow_id"] for f in data["flows"]]
        cursor = data["next"]
        if cursor is None:
            return ids


def store_rows(console: Console, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows read straight from the store's file (the oracle the console's answers are checked against)."""
    conn = sqlite3.connect(console.ws.root / "tracking.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def test_flows_json_answers_its_contract(site: Site, operator: TestClient) -> None:
    """/flows.json is {"flows": [...], "next": cursor or null}, each flow with flow_id, sender, status, file_name
    and received_at as the store holds them, newest first."""
    data = operator.get("/flows.json?limit=1000").json()
    assert set(data) == {"flows", "next"} and data["next"] is None
    expected = store_rows(site.console, "SELECT * FROM flows ORDER BY flow_id DESC")
    assert len(data["flows"]) == len(expected) >= 24
    for got, want in zip(data["flows"], expected, strict=True):
        for key in ("flow_id", "sender", "status", "file_name", "received_at"):
            assert got[key] == want[key]
    first = operator.get("/flows.json?limit=5").json()
    assert len(first["flows"]) == 5 and isinstance(first["next"], str)


@pytest.mark.parametrize(
    "query",
    [{}, {"sender": "acme"}, {"status": "IN_REJETE"}, {"file": "batch"}, {"status": "IN_INTEGRE", "limit": "3"}],
    ids=["all", "sender", "status", "file", "limit"],
)
def test_the_page_and_its_twins_give_the_same_rows(query: dict[str, str], operator: TestClient) -> None:
    """/flows, /flows.json and /flows.csv take the same query parameters and give the same flows, in the same order."""
    json_ids = [f["flow_id"] for f in operator.get("/flows.json?" + urlencode(query)).json()["flows"]]
    csv_ids = [r["flow_id"] for r in csv_rows(operator.get("/flows.csv?" + urlencode(query)))]
    page = operator.get("/flows?" + urlencode(query)).text
    html_ids = [line.split('href="/flows/')[1].split('"')[0] for line in page.splitlines() if 'class="name"' in line]
    assert json_ids and json_ids == csv_ids == html_ids


def test_the_csv_twin_streams_every_matching_flow_past_a_page(operator: TestClient) -> None:
    """/flows.csv without a limit gives every matching flow (not one page); with ?limit= it stops there."""
    everything = every_page(operator, {"sender": "acme"}, 4)
    assert [r["flow_id"] for r in csv_rows(operator.get("/flows.csv?sender=acme"))] == everything
    assert [r["flow_id"] for r in csv_rows(operator.get("/flows.csv?sender=acme&limit=3"))] == everything[:3]
    answer = operator.get("/flows.csv")
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="flows.csv"')


@pytest.mark.parametrize("limit", [1, 2, 5, 7])
def test_keyset_pages_neither_skip_nor_repeat_a_flow(limit: int, site: Site, operator: TestClient) -> None:
    """Following ``next`` page after page yields every flow once, newest first, whatever the page size."""
    expected = [r["flow_id"] for r in store_rows(site.console, "SELECT flow_id FROM flows ORDER BY flow_id DESC")]
    assert every_page(operator, {}, limit) == expected


def test_keyset_pages_stay_whole_while_new_flows_arrive(own_site: Site) -> None:
    """Flows recorded between two page requests do not shift the pages: the walk still gives every flow that was
    there once, and the new ones appear at the top of a fresh first page."""
    client = own_site.client("operator")
    before = [r["flow_id"] for r in store_rows(own_site.console, "SELECT flow_id FROM flows ORDER BY flow_id DESC")]
    seen: list[str] = []
    cursor = None
    added: list[str] = []
    store = open_store(own_site.console.ws.settings.workspace.layout())
    try:
        while True:
            query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            data = client.get("/flows.json?" + urlencode(query)).json()
            seen += [f["flow_id"] for f in data["flows"]]
            cursor = data["next"]
            if cursor is None:
                break
            now = datetime.now(UTC) + timedelta(seconds=len(added))
            flow_id = now.strftime("%Y%m%dT%H%M%S%f") + f"-{len(added):06x}"
            store.record_claims(
                [{"flow_id": flow_id, "sender": "acme", "file_name": "late.xml", "received_at": iso(now)}], now
            )
            added.append(flow_id)
    finally:
        store.close()
    assert seen == before
    fresh = [f["flow_id"] for f in client.get("/flows.json?limit=1000").json()["flows"]]
    assert fresh == added[::-1] + before


def documents_of(console: Console) -> dict[str, list[dict[str, Any]]]:
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for row in store_rows(console, "SELECT * FROM documents"):
        by_flow.setdefault(row["flow_id"], []).append(row)
    return by_flow


def expected_ids(console: Console, keep: Any) -> list[str]:
    """The ids of the flows ``keep(flow, documents, rules)`` keeps, newest first (filtered in Python)."""
    docs = documents_of(console)
    rules: dict[str, set[str]] = {}
    for f in store_rows(console, "SELECT flow_id, rule FROM findings"):
        rules.setdefault(f["flow_id"], set()).add(f["rule"])
    flows = store_rows(console, "SELECT * FROM flows ORDER BY flow_id DESC")
    return [f["flow_id"] for f in flows if keep(f, docs.get(f["flow_id"], []), rules.get(f["flow_id"], set()))]


FILTERS = [
    ({"sender": "opdemat"}, lambda f, d, r: f["sender"] == "opdemat"),
    ({"status": "IN_INTEGRE_PARTIEL"}, lambda f, d, r: f["status"] == "IN_INTEGRE_PARTIEL"),
    ({"file": "BATCH"}, lambda f, d, r: "batch" in f["file_name"].lower()),
    ({"invoice": "FA-2026-0016"}, lambda f, d, r: any(x["invoice_number"] == "FA-2026-0016" for x in d)),
    ({"invoice": HOSTILE_INVOICE}, lambda f, d, r: any(x["invoice_number"] == HOSTILE_INVOICE for x in d)),
    ({"seller": "111222337"}, lambda f, d, r: any(x["seller_id"] == "111222337" for x in d)),
    ({"buyer": "26750045200011"}, lambda f, d, r: any(x["buyer_id"] == "26750045200011" for x in d)),
    ({"queue": "ville-exemple-voirie"}, lambda f, d, r: any(x["queue"] == "ville-exemple-voirie" for x in d)),
    ({"rule": "BR-CO-16"}, lambda f, d, r: "BR-CO-16" in r),
    ({"rule": "SCHEMAV_ELEMENT_CONTENT"}, lambda f, d, r: "SCHEMAV_ELEMENT_CONTENT" in r),
    (
        {"status": "IN_REJETE", "sender": "acme", "buyer": "404040404"},
        lambda f, d, r: (
            f["status"] == "IN_REJETE" and f["sender"] == "acme" and any(x["buyer_id"] == "404040404" for x in d)
        ),
    ),
]


@pytest.mark.parametrize("query,keep", FILTERS, ids=[urlencode(q) for q, _ in FILTERS])
def test_each_filter_narrows_the_list_to_the_flows_it_names(
    query: dict[str, str], keep: Any, site: Site, operator: TestClient
) -> None:
    """Every filter keeps exactly the flows it names on really processed flows (and none is a no-op)."""
    expected = expected_ids(site.console, keep)
    assert 0 < len(expected) < len(site.console.flows)
    assert every_page(operator, query, 2) == expected


def test_a_sha256_filter_finds_the_flow_and_its_duplicate(site: Site, operator: TestClient) -> None:
    """?sha256= keeps the flows of exactly those bytes (a sample and its byte-for-byte duplicate), in any case."""
    original = site.console.flow_id("acme", "01-ubl-invoice.xml")
    (row,) = store_rows(site.console, "SELECT sha256 FROM flows WHERE flow_id = ?", (original,))
    ids = every_page(operator, {"sha256": row["sha256"].upper()}, 10)
    assert sorted(ids) == sorted([original, site.console.flow_id("acme", "04-duplicate-of-01.xml")])


def test_the_period_filters_bound_the_list_by_reception_time(own_site: Site) -> None:
    """period=7d / 30d / today and from / to keep the flows received in that span (flows dated back 10 days)."""
    console = own_site.console
    now = own_site.clock.now()
    old = now - timedelta(days=10)
    store = open_store(console.ws.settings.workspace.layout())
    try:
        old_id = old.strftime("%Y%m%dT%H%M%S%f") + "-0000aa"
        store.record_claims(
            [{"flow_id": old_id, "sender": "acme", "file_name": "old.xml", "received_at": iso(old)}], old
        )
    finally:
        store.close()
    client = own_site.client("operator")
    recent = [f["flow_id"] for f in console.flows][::-1]
    assert every_page(client, {"period": "7d"}, 50) == recent
    assert every_page(client, {"period": "today"}, 50) == recent
    assert every_page(client, {"period": "30d"}, 50) == [*recent, old_id]
    day = old.date().isoformat()
    assert every_page(client, {"from": day, "to": day}, 50) == [old_id]
    assert every_page(client, {"to": (old + timedelta(days=1)).date().isoformat()}, 50) == [old_id]
    assert every_page(client, {"from": (now + timedelta(days=1)).date().isoformat()}, 50) == []
    assert every_page(client, {"from": iso(old + timedelta(seconds=1))}, 50) == recent


BAD_QUERIES = [
    ("from=2026-13-01", "from:"),
    ("to=yesterday", "to:"),
    ("from=2026-02-30", "from:"),
    ("to=9999-12-31", "to:"),
    ("from=2026-05-01&to=2026-04-01", "to:"),
    ("period=fortnight", "period:"),
    ("status=IN_BOGUS", "status:"),
    ("cursor=20261206T035140859828-4dbaff", "cursor:"),
    ("cursor=20261206T035140859828-4dbaff.AAAAAAAAAAAAAAAA", "cursor:"),
    ("cursor=garbage", "cursor:"),
    ("limit=0", "limit:"),
    ("limit=1000000000", "limit:"),  # past a page (1,000) and past an export (100,000,000) alike
    ("limit=abc", "limit:"),
    ("limit=-1", "limit:"),
    ("sha256=xyz", "sha256:"),
    ("sha256=" + "g" * 64, "sha256:"),
    ("invoice=" + "A" * 10_000, "invoice:"),
    ("sender=../etc", "sender:"),
    ("file=%FF%FE", "UTF-8"),
    ("rule=%C3%28", "UTF-8"),
]


@pytest.mark.parametrize("query,says", BAD_QUERIES, ids=[q[:40] for q, _ in BAD_QUERIES])
@pytest.mark.parametrize("path", ["/flows", "/flows.json", "/flows.csv"])
def test_bad_input_is_a_400_saying_what_is_wrong(path: str, query: str, says: str, operator: TestClient) -> None:
    """A malformed date, period, status, cursor, limit, sha256, an oversized value or a query string that is not
    UTF-8 answers 400 naming the parameter, in the page's own form (HTML, or JSON for a twin), never a 500."""
    answer = operator.get(f"{path}?{query}")
    assert answer.status_code == 400, answer.text[:300]
    if path == "/flows":
        assert answer.headers["content-type"].startswith("text/html")
        assert says in answer.text and "Traceback" not in answer.text
    else:
        assert answer.json()["status"] == 400 and says in answer.json()["error"]


def test_a_cursor_from_another_page_size_or_filter_still_pages_on(operator: TestClient) -> None:
    """A cursor is only a position: the next page under other filters starts after it (no flow repeated)."""
    first = operator.get("/flows.json?limit=3").json()
    after = operator.get("/flows.json?" + urlencode({"cursor": first["next"], "limit": 1000})).json()["flows"]
    ids = [f["flow_id"] for f in first["flows"]] + [f["flow_id"] for f in after]
    assert len(ids) == len(set(ids)) == len(operator.get("/flows.json?limit=1000").json()["flows"])


def test_a_year_before_1000_bounds_the_list_like_any_other(operator: TestClient, site: Site) -> None:
    """?from=0999-01-01 keeps every flow (a flow id bound for a three-digit year is zero-padded, not '9990101...')."""
    assert len(every_page(operator, {"from": "0999-01-01"}, 1000)) == len(site.console.flows)


# -- requeue ---------------------------------------------------------------------------------------------------------


def requeue_form(client: TestClient, flow_id: str) -> str:
    """The CSRF token of the flow page's requeue form (the form must be there)."""
    page = client.get(f"/flows/{flow_id}").text
    assert f'action="/flows/{flow_id}/requeue"' in page
    return csrf_of(page)


def test_an_operator_requeues_a_failed_flow_end_to_end(own_site: Site) -> None:
    """An operator's requeue moves the failed flow to spool/requeued, is recorded with who and when, shows in the
    flow's history, and the next batch processes the flow."""
    console, client = own_site.console, own_site.client("operator")
    failed = console.failed_id
    answer = client.post(f"/flows/{failed}/requeue", data={"csrf": requeue_form(client, failed)})
    assert answer.status_code == 303 and answer.headers["location"] == f"/flows/{failed}?done=requeued"
    root = console.ws.root
    assert not (root / "failed" / failed).exists() and (root / "spool" / "requeued" / failed).is_dir()
    store = open_store(console.ws.settings.workspace.layout())
    try:
        (action,) = accounts.actions(store, failed)
    finally:
        store.close()
    assert (action["user"], action["action"], action["target"]) == ("alice", "requeue", failed)
    assert action["at"] == iso(own_site.clock.now())
    page = client.get(answer.headers["location"]).text
    assert "Requeued: the next batch processes it again." in page
    assert "<strong>alice</strong> requeue" in page
    assert f'action="/flows/{failed}/requeue"' not in page  # not failed any more: no form
    theirs = own_site.client("acme").get(answer.headers["location"]).text  # the flow's sender: not who did it
    assert "<strong>an operator</strong> requeue" in theirs and "alice" not in theirs.split("</header>", 1)[1]
    report = run_batch(console.ws.settings)
    assert report.recovered == 1
    assert client.get(f"/flows/{failed}.json").json()["status"] == "IN_INTEGRE"


def test_a_sender_account_cannot_requeue_even_its_own_failed_flow(own_site: Site) -> None:
    """A sender account's requeue, with its valid CSRF token, is 403 and moves nothing; its page shows no form."""
    client = own_site.client("acme")
    failed = own_site.console.failed_id
    page = client.get(f"/flows/{failed}").text
    assert "/requeue" not in page
    answer = client.post(f"/flows/{failed}/requeue", data={"csrf": csrf_of(page)})
    assert answer.status_code == 403 and "only an operator" in answer.text
    assert (own_site.console.ws.root / "failed" / failed).is_dir()


def test_requeue_of_a_flow_that_did_not_fail_is_409(own_site: Site) -> None:
    """Requeueing a flow that is not in failed/ (an integrated one, or one already requeued) answers 409 saying
    why, and records nothing."""
    client = own_site.client("operator")
    token = csrf_of(client.get("/flows").text)
    done = own_site.console.flow_id("acme", "01-ubl-invoice.xml")
    answer = client.post(f"/flows/{done}/requeue", data={"csrf": token})
    assert answer.status_code == 409
    assert "is not in failed/" in answer.text and "nothing to requeue" in answer.text
    failed = own_site.console.failed_id
    assert client.post(f"/flows/{failed}/requeue", data={"csrf": token}).status_code == 303
    again = client.post(f"/flows/{failed}/requeue", data={"csrf": token})
    assert again.status_code == 409 and "is not in failed/" in again.text
    store = open_store(own_site.console.ws.settings.workspace.layout())
    try:
        assert [a["target"] for a in accounts.actions(store) if a["action"] == "requeue"] == [failed]
    finally:
        store.close()


# -- hostile content ----------------------------------------------------------------------------------------------

ESCAPED_NAME = "&lt;b onmouseover=alert(1)&gt;x.xml"
ESCAPED_INVOICE = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"


def assert_no_markup_from_flows(html: str) -> None:
    """No tag or attribute a flow carried made it into the page as markup."""
    assert "<b " not in html and "<img" not in html and "onerror=alert(1)>" not in html


def test_a_hostile_file_name_and_invoice_number_show_as_text_on_the_list(site: Site, operator: TestClient) -> None:
    """The list shows the hostile file name and invoice number escaped, as text, never as markup."""
    page = operator.get("/flows?sender=acme&limit=1000").text
    assert ESCAPED_NAME in page and ESCAPED_INVOICE in page
    assert_no_markup_from_flows(page)
    filtered = operator.get("/flows?" + urlencode({"file": HOSTILE_NAME, "invoice": HOSTILE_INVOICE})).text
    assert ESCAPED_NAME in filtered  # echoed in the filter fields, escaped
    assert_no_markup_from_flows(filtered)


def test_a_hostile_flow_page_shows_everything_as_text(site: Site, operator: TestClient) -> None:
    """The flow page shows the hostile name, invoice number, findings' messages and the XML excerpt as text."""
    flow_id = site.console.flow_id("acme", HOSTILE_NAME)
    page = operator.get(f"/flows/{flow_id}").text
    assert ESCAPED_NAME in page and ESCAPED_INVOICE in page
    assert "BR-FR-01" in page and "&lt;cbc:ID&gt;" in page  # a finding's rule and the document's lines around it
    assert_no_markup_from_flows(page)


def test_the_twins_give_the_hostile_values_exactly(site: Site, operator: TestClient) -> None:
    """JSON and CSV carry the hostile file name and invoice number exactly as the flow had them."""
    flow_id = site.console.flow_id("acme", HOSTILE_NAME)
    (row,) = [f for f in operator.get("/flows.json?limit=1000").json()["flows"] if f["flow_id"] == flow_id]
    assert row["file_name"] == HOSTILE_NAME and row["invoices"] == [HOSTILE_INVOICE]
    (line,) = [r for r in csv_rows(operator.get("/flows.csv")) if r["flow_id"] == flow_id]
    assert line["file_name"] == HOSTILE_NAME and line["invoices"] == HOSTILE_INVOICE
    ack = operator.get(f"/flows/{flow_id}.json").json()
    assert ack["file_name"] == HOSTILE_NAME and ack["documents"][0]["invoice_number"] == HOSTILE_INVOICE


def test_a_download_is_an_attachment_with_a_safe_file_name(site: Site, operator: TestClient) -> None:
    """The original file of the hostile flow downloads as an attachment whose name has no quote, angle bracket,
    space or control (the readable name only percent-encoded in filename*)."""
    flow_id = site.console.flow_id("acme", HOSTILE_NAME)
    for what in ("original", "ack.json", "ack.xml"):
        answer = operator.get(f"/flows/{flow_id}/{what}")
        assert answer.status_code == 200
        header = answer.headers["content-disposition"]
        assert header.startswith(f'attachment; filename="{flow_id}')
        assert not set('<> \x1b"') & set(header.split('filename="')[1].split('"')[0])
        assert "<" not in header and "\x1b" not in header
    original = operator.get(f"/flows/{flow_id}/original")
    name = original.headers["content-disposition"].split('filename="')[1].split('"')[0]
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and name.endswith("_b_onmouseover_alert_1_x.xml")
    assert "filename*=UTF-8''" + quote(f"{flow_id}_{HOSTILE_NAME}", safe="") in original.headers["content-disposition"]
    assert original.content == ubl_invoice(HOSTILE_INVOICE)


def test_the_pages_own_markup_is_markup(site: Site, operator: TestClient) -> None:
    """What the templates draw themselves (status badges, times, the findings table) is HTML, not escaped text."""
    flow_id = site.console.flow_id("acme", HOSTILE_NAME)
    for page in (operator.get("/flows").text, operator.get(f"/flows/{flow_id}").text):
        assert '<span class="badge s-' in page and "<time datetime=" in page
        assert "&lt;span" not in page and "&lt;time" not in page and "&lt;table" not in page
    assert '<table class="grid findings">' in operator.get(f"/flows/{flow_id}").text


def test_controls_and_bidi_overrides_in_a_file_name_show_escaped(site: Site, operator: TestClient) -> None:
    """A file name carrying a right-to-left override shows it as a visible \\u202e, on the list and the flow page;
    the JSON keeps the exact value."""
    (flow,) = [f for f in site.console.flows if f["file_name"].startswith("bill")]
    assert "\u202e" in flow["file_name"]
    for page in (operator.get("/flows?sender=acme&limit=1000").text, operator.get(f"/flows/{flow['flow_id']}").text):
        assert "bill\\u202egnp." in page
        assert not any(c in page for c in "\u202e\x1b\x9b\u2066")
    (row,) = [f for f in operator.get("/flows.json?limit=1000").json()["flows"] if f["flow_id"] == flow["flow_id"]]
    assert row["file_name"] == flow["file_name"]


HTML_ANSWERS = [
    ("/login", None, 200),
    ("/", "operator", 200),
    ("/flows", "operator", 200),
    ("/flows/{flow}", "operator", 200),
    ("/flows/{unknown}", "operator", 404),
    ("/flows?status=NOPE", "operator", 400),
    ("/no/such/page", "operator", 404),
]


@pytest.mark.parametrize("path,role,status", HTML_ANSWERS, ids=[p for p, _, _ in HTML_ANSWERS])
def test_every_html_answer_carries_the_content_security_policy(
    path: str, role: str | None, status: int, site: Site
) -> None:
    """Every HTML answer, error pages included, has the CSP (no script at all, no inline style) and the other
    security headers, and no inline script, style attribute or event handler."""
    client = site.client(role)
    url = path.replace("{flow}", site.console.flow_id("acme", HOSTILE_NAME)).replace("{unknown}", UNKNOWN)
    answer = client.get(url)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "script-src" not in csp  # so scripts fall back to default-src 'none'
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
    assert "<script" not in answer.text and " style=" not in answer.text
    assert not re.search(r"<[^>]+\son\w+=", answer.text)


def test_an_address_no_page_has_is_a_404_page_with_the_navigation(operator: TestClient, anonymous: TestClient) -> None:
    """A path no route has answers 404 with the console's page (navigation, who is logged in), not a bare text."""
    answer = operator.get("/no-such-page")
    assert answer.status_code == 404
    assert "There is no page at this address." in answer.text
    assert 'action="/logout"' in answer.text and 'href="/flows"' in answer.text
    logged_out = anonymous.get("/no-such-page")
    assert logged_out.status_code == 404 and 'action="/logout"' not in logged_out.text


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\t/evil.example", "/\\evil.example", "/\n/evil.example", "https://evil.example"]
)
def test_after_login_the_console_never_sends_the_browser_to_another_site(site: Site, target: str) -> None:
    """A ``next`` that a browser would read as another host (two slashes, once it drops a tab or a line feed or
    reads a backslash as a slash) sends the browser to / after logging in, never there."""
    client = TestClient(site.app, base_url="http://127.0.0.1")
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf": token, "next": target},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_the_flow_page_shows_each_documents_lifecycle(lived: Lived, lived_site: Site) -> None:
    """A flow's page shows, under each invoice, its timeline (edi's decision, then each recorded status, not a held
    one) and links to the invoice's page; a sender's account reads an operator's name as "an operator"."""
    html = lived_site.client("acme").get(f"/flows/{lived.refused}").text
    (timeline,) = re.findall(r'<ol class="timeline lifecycle">(.*?)</ol>', html, re.S)
    assert re.findall(r'class="badge d-(\d+)"', timeline) == ["200", "204", "210"]
    assert "by ville-partner" in timeline and "DOUBLON" in timeline
    assert f'<a class="hint" href="/invoices/{lived.refused}/1">' in html
    theirs = lived_site.client("opdemat").get(f"/flows/{lived.paid}").text
    assert "by an operator" in theirs and "alice" not in theirs
    assert "by operator:alice" in lived_site.client("operator").get(f"/flows/{lived.paid}").text
    rejected = site_flow(lived, "16-business-rule-broken.xml")
    (timeline,) = re.findall(
        r'<ol class="timeline lifecycle">(.*?)</ol>', lived_site.client("acme").get(f"/flows/{rejected}").text, re.S
    )
    assert re.findall(r'class="badge d-(\d+)"', timeline) == ["213"] and "REJ_SEMAN" in timeline


def site_flow(lived: Lived, name: str) -> str:
    """The id of one of acme's sample flows in the lived-on workspace."""
    return lived.console.flow_id("acme", name)
