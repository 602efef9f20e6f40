"""The console's flow queries (edi/browse/flows.py): filters from query parameters, periods, keyset pages scoped in
the query itself, one flow, and where its files are, on a workspace the real batch processed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.browse import Reader
from edi.browse import flows as browse
from edi.clock import FlowIds
from edi.errors import BadQuery, UnknownFlowError
from edi.model import FlowStatus
from tests.conftest import FLOWS, FixedClock
from tests.web.conftest import Console, _built, shared  # noqa: F401  (the processed workspace of the console's tests)

NOW = datetime(2026, 11, 26, 20, 46, 26, tzinfo=UTC)


@pytest.fixture
def reader(shared: Console) -> Iterator[Reader]:  # noqa: F811
    opened = Reader(shared.ws.root / "tracking.sqlite")
    yield opened
    opened.close()


def test_empty_values_are_no_filter_and_sha256_is_lowercased() -> None:
    """Blank parameters filter nothing; a SHA-256 in capitals is taken in lower case; unknown keys are ignored."""
    assert browse.parse_filters({"sender": "", "status": "  ", "file": "", "page": "x"}, NOW) == browse.Filters()
    sha = "AB" * 32
    assert browse.parse_filters({"sha256": sha}, NOW).sha256 == sha.lower()


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"sender": "a/b"}, "sender:"),
        ({"status": "OK"}, "status:"),
        ({"sha256": "ab" * 31}, "sha256:"),
        ({"file": "x" * 201}, "file: the value is too long"),
        ({"from": "26/11/2026"}, "from:"),
        ({"to": "9999-12-31"}, "to: '9999-12-31' is out of range"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from:"),
        ({"period": "1y"}, "period:"),
        ({"from": "2026-11-26", "to": "2026-11-25"}, "to: the end of the period is not after its start"),
    ],
)
def test_a_malformed_filter_raises_bad_query_naming_it(params: dict[str, str], says: str) -> None:
    """A malformed sender, status, SHA-256, an overlong value, a bad or out-of-range date, an unknown period or an
    empty span raises BadQuery whose message starts with the parameter."""
    with pytest.raises(BadQuery) as raised:
        browse.parse_filters(params, NOW)
    assert str(raised.value).startswith(says.split(":")[0] + ":") and says in str(raised.value)


def test_periods_are_utc_days_ending_today() -> None:
    """today starts at this UTC midnight, 7d six days before it, 30d 29 days before; none has an end."""
    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    assert browse.period_bounds({"period": "today"}, NOW) == (midnight, None)
    assert browse.period_bounds({"period": "7d"}, NOW) == (midnight - timedelta(days=6), None)
    assert browse.period_bounds({"period": "30d"}, NOW) == (midnight - timedelta(days=29), None)


def test_from_and_to_take_dates_and_times_in_any_offset() -> None:
    """A date ``to`` runs to the end of its day; times with an offset are read in UTC, times without one as UTC."""
    since, until = browse.period_bounds({"from": "2026-11-01", "to": "2026-11-02"}, NOW)
    assert (since, until) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    since, until = browse.period_bounds({"from": "2026-11-01T10:00:00+02:00", "to": "2026-11-01T09:00:00Z"}, NOW)
    assert (since, until) == (datetime(2026, 11, 1, 8, tzinfo=UTC), datetime(2026, 11, 1, 9, tzinfo=UTC))
    assert browse.period_bounds({"from": "2026-11-01T10:00"}, NOW)[0] == datetime(2026, 11, 1, 10, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31)))
def test_a_stamp_sorts_exactly_as_the_flow_ids_made_at_that_moment(moment: datetime) -> None:
    """stamp(t) is the prefix of the flow id made at t: ids made before t sort before it, ids made at or after t at
    or after it."""
    moment = moment.replace(tzinfo=UTC)
    made = FlowIds(FixedClock(moment)).new()
    assert made.startswith(browse.stamp(moment)) and len(browse.stamp(moment)) == 21
    earlier = FlowIds(FixedClock(moment - timedelta(microseconds=1))).new()
    assert earlier < browse.stamp(moment) <= made


def test_a_stamp_pads_a_year_before_1000() -> None:
    """A moment of a three-digit year stamps with four digits (strftime's %Y would not), so it sorts before ids."""
    assert browse.stamp(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "09990102T030405000006"


def test_a_senders_pages_hold_only_its_flows_scoped_before_paging(shared: Console, reader: Reader) -> None:  # noqa: F811
    """A sender's page of N holds N of its own flows even when other senders' flows are newer (the scope is in the
    query, before LIMIT), and its pages together are all its flows."""
    newest_opdemat = max(f["flow_id"] for f in shared.flows if f["sender"] == "opdemat")
    acme = sorted((f["flow_id"] for f in shared.flows if f["sender"] == "acme"), reverse=True)
    assert any(a < newest_opdemat for a in acme)  # other flows are interleaved with acme's
    rows, cursor = browse.flows_page(reader, "acme", browse.Filters(), limit=3)
    assert [r["flow_id"] for r in rows] == acme[:3] and cursor == acme[2]
    every = list(browse.iter_flows(reader, "acme", browse.Filters()))
    assert [r["flow_id"] for r in every] == acme
    assert list(browse.iter_flows(reader, "acme", browse.Filters(sender="opdemat"))) == []
    assert [r["flow_id"] for r in browse.iter_flows(reader, "acme", browse.Filters(), limit=4)] == acme[:4]


def test_a_page_size_outside_its_bounds_is_bad_query(reader: Reader) -> None:
    """flows_page refuses a page of 0 or more than MAX_LIMIT flows."""
    for limit in (0, browse.MAX_LIMIT + 1):
        with pytest.raises(BadQuery, match="limit:"):
            browse.flows_page(reader, None, browse.Filters(), limit=limit)


def test_a_flow_outside_the_scope_is_reported_as_unknown(shared: Console, reader: Reader) -> None:  # noqa: F811
    """flow() gives a sender's own flow in full; another sender's is the same UnknownFlowError as an id nobody has."""
    own = shared.flow_id("acme", "16-business-rule-broken.xml")
    flow = browse.flow(reader, "acme", own)
    assert flow["status"] == "IN_REJETE" and [f["rule"] for f in flow["documents"][0]["findings"]] == ["BR-CO-16"]
    assert flow["events"] and flow["actions"] == []
    other = shared.flow_id("opdemat", "01-initech-cii-basic.xml")
    unknown = "20200101T000000000000-abcdef"
    messages = []
    for flow_id in (other, unknown):
        with pytest.raises(UnknownFlowError) as raised:
            browse.flow(reader, "acme", flow_id)
        messages.append(str(raised.value).replace(flow_id, "<id>"))
    assert messages[0] == messages[1]
    assert browse.flow(reader, None, other)["sender"] == "opdemat"


def test_files_of_a_flow_are_found_where_they_are(shared: Console, reader: Reader) -> None:  # noqa: F811
    """original_path finds a processed flow's bytes in the archive and a failed flow's in failed/; ack_path finds
    the acknowledgements, and says None for a flow that has none."""
    layout = shared.ws.settings.workspace.layout()
    done = browse.flow(reader, None, shared.flow_id("acme", "01-ubl-invoice.xml"))
    original = browse.original_path(layout, done)
    assert original is not None and original.read_bytes() == (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    assert browse.ack_path(layout, done, "json") is not None and browse.ack_path(layout, done, "xml") is not None
    failed = browse.flow(reader, None, shared.failed_id)
    assert browse.original_path(layout, failed) == layout.failed / shared.failed_id / "payload"
    assert browse.ack_path(layout, failed, "json") is None


def test_an_excerpt_shows_the_lines_around_a_finding_in_a_file_or_a_zip_member(shared: Console, reader: Reader) -> None:  # noqa: F811
    """excerpt() gives the numbered lines around a line of a plain XML flow and of a ZIP member; None inside a PDF."""
    layout = shared.ws.settings.workspace.layout()
    plain = browse.flow(reader, None, shared.flow_id("acme", "10-schema-invalid.xml"))
    (doc,) = plain["documents"]
    line = int(doc["findings"][0]["line"])
    shown = browse.excerpt(browse.original_path(layout, plain), doc, line)  # type: ignore[arg-type]
    assert shown is not None and [n for n, _ in shown] == list(range(line - 3, line + 4))
    sample = (FLOWS / "acme" / "10-schema-invalid.xml").read_text(encoding="utf-8").splitlines()
    assert [text for _, text in shown] == sample[line - 4 : line + 3]
    batch = browse.flow(reader, None, shared.flow_id("opdemat", "03-batch-partial.zip"))
    bad = next(d for d in batch["documents"] if d["findings"] and d["findings"][0]["line"])
    zipped = browse.excerpt(browse.original_path(layout, batch), bad, int(bad["findings"][0]["line"]))  # type: ignore[arg-type]
    assert zipped is not None and any(n == int(bad["findings"][0]["line"]) for n, _ in zipped)
    pdf = browse.flow(reader, None, shared.flow_id("acme", "15-facturx-invoice.pdf"))
    assert browse.excerpt(browse.original_path(layout, pdf), pdf["documents"][0], 1) is None  # type: ignore[arg-type]


def test_a_sender_reads_no_traceback_of_edis_own_failure(shared: Console, reader: Reader) -> None:  # noqa: F811
    """A failed flow's history shows an operator edi's own error, its sender a plain sentence in its place."""
    failed = browse.flow(reader, None, shared.failed_id)
    told = [e["detail"] for e in failed["events"] if e["status"] == FlowStatus.FAILED]
    assert told and all("Traceback" in detail for detail in told)  # the exception edi met, for the operator
    theirs = browse.flow(reader, failed["sender"], shared.failed_id)
    assert [e["detail"] for e in theirs["events"] if e["status"] == FlowStatus.FAILED] == [
        browse.INTERNAL_FAILURE
    ] * len(told)


def test_the_lines_around_many_findings_come_from_one_read(tmp_path: Path) -> None:
    """excerpts() gives, for each wanted line, the same lines excerpt() gives alone, reads no further than the last
    one needs, and shows at most EXCERPTS_SHOWN of them."""
    document = tmp_path / "invoice.xml"
    document.write_bytes(b"".join(b"<line n='%d'/>\n" % n for n in range(1, 1001)))
    doc = {"container": None, "name": "invoice.xml"}
    wanted = [5, 7, 500, 2]
    together = browse.excerpts(document, doc, wanted)
    assert together == {line: browse.excerpt(document, doc, line) for line in wanted}
    assert together[2] == [(n, f"<line n='{n}'/>") for n in range(1, 6)]
    many = browse.excerpts(document, doc, list(range(1, 1001)))
    assert sorted(many) == list(range(1, browse.EXCERPTS_SHOWN + 1))
    assert browse.excerpts(document, doc, []) == {} and browse.excerpts(tmp_path / "gone.xml", doc, [3]) == {}
