"""The invoices search: its filters, the account's scope, keyset pages that never skip nor repeat, the indexes used."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.browse import Reader
from edi.browse.invoices import (
    InvoiceFilters,
    check_key,
    invoices_page,
    iter_invoices,
    parse_invoice_filters,
    search,
)
from edi.errors import BadQuery
from tests.conftest import Workspace
from tests.console_store import NOW, store_of
from tests.lifecycle_rows import add_status


@pytest.fixture
def shop(workspace: Workspace) -> Iterator[tuple[Reader, dict[str, str]]]:
    """Four flows: acme's two (one a batch of two invoices), opdemat's two (one with acme's seller id)."""
    with store_of(workspace) as s:
        ids = {
            "a1": s.flow("acme", NOW - timedelta(days=3)),
            "a2": s.flow("acme", NOW - timedelta(days=2)),
            "o1": s.flow("opdemat", NOW - timedelta(days=1)),
            "o2": s.flow("opdemat", NOW - timedelta(hours=1)),
        }
        s.document(ids["a1"], 1, invoice_number="F-1", seller_id="S1", buyer_id="B1", issue_date="2026-11-01")
        s.document(ids["a2"], 1, invoice_number="F-2", seller_id="S1", buyer_id="B2", issue_date="2026-11-10")
        s.document(ids["a2"], 2, invoice_number="F-3", seller_id="S1", buyer_id="B1", issue_date="2026-11-20",
                   status="213", reason="REJ_SEMAN")  # fmt: skip
        s.document(ids["o1"], 1, invoice_number="F-1", seller_id="S2", buyer_id="B1", issue_date="2026-11-21")
        s.document(ids["o2"], 1, invoice_number="F-9", seller_id="S1", buyer_id="B3", issue_date="2026-11-25",
                   status="501", reason="IRR_SYNTAX")  # fmt: skip
    reader = Reader(workspace.root / "tracking.sqlite")
    yield reader, ids
    reader.close()


def keys(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["flow_id"], r["idx"]) for r in rows]


def test_no_filter_lists_every_document_newest_flow_first(
    shop: tuple[Reader, dict[str, str]],
) -> None:
    """With no filter every document is listed: newest flow first, a flow's documents in their order."""
    reader, ids = shop
    rows, last = invoices_page(reader, None, InvoiceFilters(), limit=50)
    assert keys(rows) == [(ids["o2"], 1), (ids["o1"], 1), (ids["a2"], 1), (ids["a2"], 2), (ids["a1"], 1)]
    assert last is None
    assert rows[0]["sender"] == "opdemat" and rows[0]["received_at"].startswith("2026-11-26T11:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"seller": "S1", "invoice": "F-1"}, [("a1", 1)]),
        ({"invoice": "F-1"}, [("o1", 1), ("a1", 1)]),
        ({"buyer": "B1"}, [("o1", 1), ("a2", 2), ("a1", 1)]),
        ({"from": "2026-11-10", "to": "2026-11-20"}, [("a2", 1), ("a2", 2)]),
        ({"from": "2026-11-21"}, [("o2", 1), ("o1", 1)]),
        ({"status": "213"}, [("a2", 2)]),
        ({"sender": "opdemat", "seller": "S1"}, [("o2", 1)]),
        ({"invoice": "nope"}, []),
    ],
)
def test_each_filter_keeps_exactly_its_documents(
    shop: tuple[Reader, dict[str, str]], params: dict[str, str], expected: list[tuple[str, int]]
) -> None:
    """Seller + number, number alone, buyer, issue dates (ends inclusive), status and sender each narrow exactly."""
    reader, ids = shop
    rows, _ = invoices_page(reader, None, parse_invoice_filters(params))
    assert keys(rows) == [(ids[f], i) for f, i in expected]


def test_a_sender_sees_only_its_own_flows_documents(shop: tuple[Reader, dict[str, str]]) -> None:
    """A sender's scope keeps its own flows' documents, whatever the filter asks (another sender's seller id,
    invoice number or sender name)."""
    reader, ids = shop
    rows, _ = invoices_page(reader, "acme", InvoiceFilters())
    assert {r["sender"] for r in rows} == {"acme"} and len(rows) == 3
    assert keys(invoices_page(reader, "acme", parse_invoice_filters({"invoice": "F-1"}))[0]) == [(ids["a1"], 1)]
    assert invoices_page(reader, "acme", parse_invoice_filters({"seller": "S2"}))[0] == []
    assert invoices_page(reader, "acme", parse_invoice_filters({"sender": "opdemat"}))[0] == []


def test_pages_follow_one_another_inside_a_flow(shop: tuple[Reader, dict[str, str]]) -> None:
    """A page may end between two documents of one flow: the next page starts with the flow's next document."""
    reader, ids = shop
    _, last = invoices_page(reader, None, InvoiceFilters(), limit=3)
    assert last == f"{ids['a2']}~1"
    second, _ = invoices_page(reader, None, InvoiceFilters(), after=check_key(last), limit=3)
    assert keys(second) == [(ids["a2"], 2), (ids["a1"], 1)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "IN_REJETE"}, "not an invoice status"),
        ({"from": "26/11/2026"}, "not an issue date"),
        ({"to": "2026-02-30"}, "not an issue date"),
        ({"from": "2026-11-20", "to": "2026-11-01"}, "before the first"),
        ({"invoice": "x" * 201}, "too long"),
        ({"sender": "../etc"}, "not a sender id"),
    ],
)
def test_malformed_filters_are_refused_with_what_is_wrong(params: dict[str, str], message: str) -> None:
    """A malformed filter is a BadQuery (400) naming the problem."""
    with pytest.raises(BadQuery, match=message):
        parse_invoice_filters(params)


@pytest.mark.parametrize("key", ["", "20261126T120000000000-abcdef", "20261126T120000000000-abcdef~x", "x~1"])
def test_a_malformed_cursor_key_is_refused(key: str) -> None:
    """A cursor key is ``<flow_id>~<idx>`` or a BadQuery."""
    with pytest.raises(BadQuery, match="cursor"):
        check_key(key)


def inner_plan(reader: Reader, sql: str, args: list[object]) -> str:
    """The query plan of the page itself (before its rows get their current status and are sorted again)."""
    plan = " | ".join(str(r["detail"]) for r in reader.rows(f"EXPLAIN QUERY PLAN {sql}", args))
    assert plan.startswith("CO-ROUTINE p | ") and " | SCAN p | " in plan, plan
    return plan.removeprefix("CO-ROUTINE p | ").split(" | SCAN p | ")[0]


def test_searches_read_the_indexes(shop: tuple[Reader, dict[str, str]]) -> None:
    """A search by number, seller or buyer reads that column's index; no filter walks the primary key newest first
    without sorting the table."""
    reader, _ = shop

    def plan(params: dict[str, str]) -> str:
        sql, args = search(None, parse_invoice_filters(params), None, 51)
        return inner_plan(reader, sql, args)

    assert "idx_documents_invoice_number" in plan({"invoice": "F-1"})
    assert "idx_documents_seller_id" in plan({"seller": "S1"})
    assert "idx_documents_buyer_id" in plan({"buyer": "B1"})
    unfiltered = plan({})
    assert "SCAN d USING INDEX sqlite_autoindex_documents_1" in unfiltered
    assert "USE TEMP B-TREE FOR ORDER BY" not in unfiltered  # at most the right part (idx within a flow)


documents = st.lists(
    st.tuples(
        st.sampled_from(["acme", "opdemat"]),  # sender
        st.integers(0, 5_000),  # minutes before now
        st.integers(1, 3),  # documents in the flow
        st.sampled_from(["S1", "S2"]),  # seller
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flows=documents,
    limit=st.integers(1, 4),
    scope=st.sampled_from([None, "acme"]),
    seller=st.sampled_from([None, "S1"]),
)
def test_pages_never_skip_nor_repeat_a_document(
    workspace: Workspace, flows: list[tuple[str, int, int, str]], limit: int, scope: str | None, seller: str | None
) -> None:
    """Walking the pages of any store, any scope and filter, gives every matching document once, in order, and the
    same rows as the chunked iteration (the CSV)."""
    with store_of(workspace) as s:
        s.wipe()
        expected = []
        for sender, minutes, count, seller_id in flows:
            flow = s.flow(sender, NOW - timedelta(minutes=minutes))
            for idx in range(1, count + 1):
                s.document(flow, idx, seller_id=seller_id, invoice_number=f"N{idx}")
                if (scope is None or sender == scope) and (seller is None or seller_id == seller):
                    expected.append((flow, idx))
    expected.sort(key=lambda k: (_desc(k[0]), k[1]))
    filters = InvoiceFilters(seller=seller)
    reader = Reader(workspace.root / "tracking.sqlite")
    try:
        walked: list[tuple[object, object]] = []
        after = None
        while True:
            rows, last = invoices_page(reader, scope, filters, after=after, limit=limit)
            assert len(rows) <= limit
            walked += keys(rows)
            if last is None:
                break
            after = check_key(last)
        assert walked == expected
        assert keys(list(iter_invoices(reader, scope, filters))) == expected
    finally:
        reader.close()


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def test_an_issue_date_filter_is_a_date() -> None:
    """``from`` and ``to`` are kept as dates and given back as the query parameters they came from."""
    filters = parse_invoice_filters({"from": "2026-11-01", "to": " 2026-11-30 ", "seller": "", "invoice": "A"})
    assert filters == InvoiceFilters(invoice="A", issued_from=date(2026, 11, 1), issued_to=date(2026, 11, 30))
    assert filters.query() == {"invoice": "A", "from": "2026-11-01", "to": "2026-11-30"}


# -- the current lifecycle status ---------------------------------------------------------------------------------


def test_a_status_message_is_not_an_invoice(shop: tuple[Reader, dict[str, str]], workspace: Workspace) -> None:
    """A status flow's document (a recipient's CDAR message, accepted: 200) is not listed among the invoices."""
    reader, ids = shop
    with store_of(workspace) as s:
        s.document(ids["o2"], 2, invoice_number="F-1", seller_id="S1", syntax="CDAR")
    assert (ids["o2"], 2) not in keys(invoices_page(reader, None, InvoiceFilters())[0])
    assert keys(invoices_page(reader, None, parse_invoice_filters({"status": "200", "sender": "opdemat"}))[0]) == [
        (ids["o1"], 1)
    ]


def test_status_searches_read_the_lifecycle_indexes(shop: tuple[Reader, dict[str, str]]) -> None:
    """A recipient's status walks the lifecycle's (status, state, flow_id) index newest first; one of edi's own
    walks the documents and checks each for a recorded row by one seek in the lifecycle's index; neither sorts more
    than the documents of one flow."""
    reader, _ = shop

    def plan(params: dict[str, str]) -> str:
        sql, args = search(None, parse_invoice_filters(params), None, 51)
        return inner_plan(reader, sql, args)

    theirs = plan({"status": "210"})
    assert theirs.startswith("SEARCH c USING INDEX idx_lifecycle_status_state_flow_id (status=? AND state=?)")
    assert "SCAN" not in theirs and "USE TEMP B-TREE FOR ORDER BY" not in theirs
    ours = plan({"status": "200"})
    assert "SCAN d USING INDEX sqlite_autoindex_documents_1" in ours
    seek = (
        r"SEARCH l USING COVERING INDEX idx_lifecycle_\w+ "
        r"\((flow_id=\? AND idx=\? AND state|state=\? AND flow_id=\? AND idx)=\?\)"
    )
    assert re.search(seek, ours), ours  # one seek per document, in either index that starts with its key
    assert "USE TEMP B-TREE FOR ORDER BY" not in ours


lives = st.lists(
    st.tuples(
        st.sampled_from(["acme", "opdemat"]),  # sender
        st.integers(0, 5_000),  # minutes before now
        st.sampled_from(["200", "213"]),  # edi's decision
        st.lists(  # the statuses recorded after it (and held ones), in order
            st.tuples(st.sampled_from(["204", "210", "211"]), st.sampled_from(["recorded", "recorded", "held"])),
            max_size=3,
        ),
    ),
    max_size=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    invoices=lives,
    limit=st.integers(1, 4),
    scope=st.sampled_from([None, "acme"]),
    status=st.sampled_from([None, "200", "213", "204", "210", "211"]),
)
def test_pages_by_current_status_never_skip_nor_repeat_an_invoice(
    workspace: Workspace,
    invoices: list[tuple[str, int, str, list[tuple[str, str]]]],
    limit: int,
    scope: str | None,
    status: str | None,
) -> None:
    """Walking the pages of a search by current status gives exactly the invoices whose latest recorded status (else
    edi's) it is, each once, newest first, with that current status; a held status never counts."""
    with store_of(workspace) as s:
        s.wipe()
        expected = []
        for sender, minutes, decided, later in invoices:
            flow = s.flow(sender, NOW - timedelta(minutes=minutes))
            s.document(flow, 1, status=decided, invoice_number="N")
            for code, state in later:
                add_status(workspace.root / "tracking.sqlite", flow, 1, code, state=state)
            current = next((c for c, state in reversed(later) if state == "recorded"), decided)
            if (scope is None or sender == scope) and status in (None, current):
                expected.append((flow, current))
    expected.sort(key=lambda k: _desc(k[0]))
    filters = InvoiceFilters(status=status)
    reader = Reader(workspace.root / "tracking.sqlite")
    try:
        walked: list[tuple[object, object]] = []
        after = None
        while True:
            rows, last = invoices_page(reader, scope, filters, after=after, limit=limit)
            walked += [(r["flow_id"], r["current_status"]) for r in rows]
            if last is None:
                break
            after = check_key(last)
        assert walked == expected
        assert [(r["flow_id"], r["current_status"]) for r in iter_invoices(reader, scope, filters)] == expected
    finally:
        reader.close()


def test_a_senders_list_walks_its_own_flows_newest_first(shop: tuple[Reader, dict[str, str]]) -> None:
    """A sender's account (or a sender asked for) with no narrower filter walks that sender's (sender, flow_id)
    index newest first, without reading and sorting all of its flows; with a recipient's status, that status's rows
    newest first; with an invoice number, that number's index."""
    reader, _ = shop

    def plan(scope: str | None, params: dict[str, str]) -> str:
        sql, args = search(scope, parse_invoice_filters(params), None, 51)
        return inner_plan(reader, sql, args)

    for scope, params in (("acme", {}), ("acme", {"status": "200"}), (None, {"sender": "acme"})):
        walked = plan(scope, params)
        assert walked.startswith("SEARCH f USING INDEX idx_flows_sender_flow_id (sender=?)"), walked
        assert "USE TEMP B-TREE FOR ORDER BY" not in walked  # at most the right part (idx within a flow)
    assert plan("acme", {"status": "211"}).startswith(
        "SEARCH c USING INDEX idx_lifecycle_status_state_flow_id (status=? AND state=?)"
    )
    assert "idx_documents_invoice_number" in plan("acme", {"invoice": "F-1"})
