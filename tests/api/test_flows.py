"""edi/api/flows.py: a sender's flows as the standard's Flow (checked against the official OpenAPI file), the
acknowledgement mapped from edi's, and the search's keyset pages, on real workspaces processed by the real batch."""

from __future__ import annotations

import functools
import json
import sqlite3
import textwrap
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from edi.api import flows
from edi.browse import Reader
from edi.clock import iso
from edi.config import load_settings
from edi.runner import init_workspace, run_batch
from edi.store import open_store
from edi.tracking import STATUS_FLOW_OF, Tracking
from edi.workspace import Layout
from tests.conftest import DEFAULT_CONFIG, FLOWS, REPO, FixedClock, Workspace
from tests.lifecycle.statuses import status_message
from tests.lifecycle.test_intake import PARTNERS

SPEC = REPO.parent / "shared" / "specs" / "afnor-flow-service-1.3.0.json"
ACME = ["01-ubl-invoice.xml", "04-duplicate-of-01.xml", "09-not-well-formed.xml", "11-not-an-invoice.xml"]
ACME += ["12-empty.xml", "05-unknown-recipient.xml", "15-facturx-invoice.pdf", "10-schema-invalid.xml"]
ACME += ["16-business-rule-broken.xml"]
RULES = """
[validation]
rules = ["xsd", "en16931"]
"""
LATER = datetime.now(UTC) + timedelta(minutes=10)  # when the tests search: everything processed has settled


@functools.cache
def _components() -> dict[str, Any]:
    """The standard's schemas. Its ReasonCode is oneOf(its enum, any string): every enum value matches both, so no
    value of the enum is valid under oneOf. Read as anyOf (what it means), the one change made to them here."""
    components: dict[str, Any] = json.loads(SPEC.read_text(encoding="utf-8"))["components"]
    components["schemas"]["ReasonCode"]["anyOf"] = components["schemas"]["ReasonCode"].pop("oneOf")
    return components


def spec_errors(schema: str, instance: Any) -> list[str]:
    """What the official schema ``schema`` says is wrong with ``instance`` (nothing: it is valid). Skips the test
    when the standard's OpenAPI is not at hand (``../shared/specs``)."""
    if not SPEC.is_file():
        pytest.skip(f"the standard's OpenAPI is not at {SPEC}: the answer cannot be checked against its schemas")
    validator = jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{schema}", "components": _components()})
    return [str(e) for e in validator.iter_errors(instance)]


@dataclass
class World:
    """A workspace whose flows were processed: acme's (one file each), opdemat's (an accepted invoice, a partly
    accepted ZIP) and a status dupont-pa set on opdemat's invoice (relayed to opdemat)."""

    ws: Workspace
    ids: dict[str, str]  # file name -> flow id
    reader: Reader

    @property
    def conn(self) -> sqlite3.Connection:
        return self.reader.connection()

    @property
    def layout(self) -> Layout:
        return self.ws.settings.workspace.layout()

    def flow(self, name: str, sender: str = "acme") -> dict[str, Any]:
        found = flows.flow_json(self.conn, self.layout, sender, self.ids[name])
        assert found is not None
        return found

    def search(self, where: dict[str, Any], limit: int = 25, cursor: str | None = None, sender: str = "acme") -> Any:
        return flows.search(self.conn, self.layout, sender, flows.Query(limit, where, cursor), LATER)


def workspace_at(root: Path, text: str) -> Workspace:
    """A workspace under ``root`` as tests/conftest.py's make_workspace makes one."""
    config = root / "config.toml"
    config.write_text(textwrap.dedent(text).format(directory=FLOWS / "directory.toml"), encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    return Workspace(config, settings)


def ids_of(ws: Workspace, sender: str) -> dict[str, str]:
    acks = [json.loads(p.read_bytes()) for p in ws.acks(sender)]
    return {a["file_name"]: a["flow_id"] for a in acks}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The processed workspace, shared by the read-only tests of this module."""
    ws = workspace_at(tmp_path_factory.mktemp("world"), DEFAULT_CONFIG + PARTNERS + RULES)
    for name in ACME:
        ws.drop("acme", name, (FLOWS / "acme" / name).read_bytes())
    for name in ("01-initech-cii-basic.xml", "03-batch-partial.zip"):
        ws.drop("opdemat", name, (FLOWS / "opdemat" / name).read_bytes())
    run_batch(ws.settings, clock=FixedClock())
    ws.drop("dupont-pa", "status-204.xml", status_message("204"))
    run_batch(ws.settings, clock=FixedClock())
    ids = ids_of(ws, "acme") | ids_of(ws, "opdemat") | ids_of(ws, "dupont-pa")
    reader = Reader(ws.settings.workspace.layout().database)
    yield World(ws, ids, reader)
    reader.close()


# -- one flow -------------------------------------------------------------------------------------------------------


def test_an_accepted_folder_flow_is_the_standards_flow_with_edis_defaults(world: World) -> None:
    """A flow from a folder: the official Flow schema holds; Out, CustomerInvoice, Ok without details, its name and
    syntax as read, processingRule Undefined (Computed: nothing declared it), submittedAt its receipt, no trackingId."""
    flow = world.flow("01-ubl-invoice.xml")
    assert spec_errors("Flow", flow) == []
    row = world.conn.execute("SELECT received_at, updated_at FROM flows WHERE flow_id = ?", [flow["flowId"]]).fetchone()
    assert flow == {
        "flowId": world.ids["01-ubl-invoice.xml"],
        "name": "01-ubl-invoice.xml",
        "flowSyntax": "UBL",
        "flowProfile": flow["flowProfile"],
        "processingRule": "Undefined",
        "processingRuleSource": "Computed",
        "submittedAt": row[0],
        "updatedAt": row[1],
        "flowType": "CustomerInvoice",
        "flowDirection": "Out",
        "acknowledgement": {"status": "Ok"},
    }
    assert world.flow("15-facturx-invoice.pdf")["flowSyntax"] == "Factur-X"


@pytest.mark.parametrize(
    ("name", "reason", "code"),
    [
        ("12-empty.xml", "EmptyFlow", "IRR_VIDE_F"),
        ("09-not-well-formed.xml", "InvalidSchema", "IRR_SYNTAX"),
        ("10-schema-invalid.xml", "InvalidSchema", "IRR_SYNTAX"),
        ("11-not-an-invoice.xml", "FlowTypeError", "IRR_TYPE_F"),
        ("05-unknown-recipient.xml", "DEST_INC", "DEST_INC"),
    ],
    ids=lambda v: str(v),
)
def test_a_refused_flow_says_error_with_the_standards_reason_code(
    world: World, name: str, reason: str, code: str
) -> None:
    """Each fatal finding is a detail of level Error: the standard's reason code where it has the case (else edi's
    reform reason code), edi's own code and words in the message; the official schema holds."""
    ack = world.flow(name)["acknowledgement"]
    assert ack["status"] == "Error"
    assert spec_errors("Acknowledgement", ack) == []
    assert {d["level"] for d in ack["details"]} == {"Error"}
    assert ack["details"][0]["reasonCode"] == reason
    assert ack["details"][0]["reasonMessage"].startswith(f"{code}: ")


def test_an_empty_flow_says_the_schematrons_spelling_irr_vide_f_never_the_swaggers_irr_vid_f(world: World) -> None:
    """The standard's defect: its EmptyFlow says IRR_VID_F, the CDAR schematron (and edi's CDAR) IRR_VIDE_F; the
    detail is EmptyFlow with IRR_VIDE_F, and the file as the item."""
    (detail,) = world.flow("12-empty.xml")["acknowledgement"]["details"]
    assert detail["reasonCode"] == "EmptyFlow" and detail["item"] == "12-empty.xml"
    assert "IRR_VIDE_F" in detail["reasonMessage"] and "IRR_VID_F" not in detail["reasonMessage"]


def test_a_broken_business_rule_is_its_reform_reason_code_with_the_rule_id_as_the_item(world: World) -> None:
    """EN 16931 broken: REJ_SEMAN (the standard's enum has no business reason), the rule's id (BR-...) the item."""
    details = world.flow("16-business-rule-broken.xml")["acknowledgement"]["details"]
    assert {d["reasonCode"] for d in details} == {"REJ_SEMAN"}
    assert all(d["item"].startswith("BR-") for d in details), details
    assert all(d["reasonMessage"].startswith("REJ_SEMAN: ") for d in details)


def test_an_xsd_error_names_the_rule_as_the_item_and_the_line(world: World) -> None:
    """An XSD finding's item is its rule (libxml2's error), its message says the file and the line."""
    details = world.flow("10-schema-invalid.xml")["acknowledgement"]["details"]
    assert details[0]["item"].startswith("SCHEMAV_")
    assert "10-schema-invalid.xml, line " in details[0]["reasonMessage"]


def test_the_same_bytes_again_is_already_existing_flow_naming_the_first_flow(world: World) -> None:
    """A duplicate file: AlreadyExistingFlow, the item the first flow's id."""
    (detail,) = world.flow("04-duplicate-of-01.xml")["acknowledgement"]["details"]
    assert detail["reasonCode"] == "AlreadyExistingFlow"
    assert detail["item"] == world.ids["01-ubl-invoice.xml"]


def test_a_partly_accepted_zip_is_ok_with_the_refused_documents_errors(world: World) -> None:
    """Some documents accepted: the flow was integrated (Ok), and the refused documents' findings are its details,
    level Error, each naming its document."""
    flow = world.flow("03-batch-partial.zip", "opdemat")
    assert spec_errors("Flow", flow) == []
    ack = flow["acknowledgement"]
    assert ack["status"] == "Ok"
    assert {d["level"] for d in ack["details"]} == {"Error"}
    assert {d["reasonCode"] for d in ack["details"]} >= {"InvalidSchema"}


def test_another_senders_flow_and_an_unknown_id_are_both_none(world: World) -> None:
    """Scope: opdemat's flow asked by acme is None, as an unknown id, a message id of another sender, and an id over
    64 characters."""
    conn, layout = world.conn, world.layout
    assert flows.flow_json(conn, layout, "acme", world.ids["01-initech-cii-basic.xml"]) is None
    assert flows.flow_json(conn, layout, "acme", "20260101T000000000000-000000") is None
    assert flows.flow_json(conn, layout, "acme", world.ids["01-initech-cii-basic.xml"] + ".0001") is None
    assert flows.flow_json(conn, layout, "acme", "x" * 65) is None


def test_a_cdar_message_edi_wrote_is_an_incoming_lifecycle_flow(world: World) -> None:
    """The CDAR 200 of acme's accepted invoice: flowId its message id, CDAR, CustomerInvoiceLC, In, Ok; the relayed
    204 of dupont-pa is opdemat's, not dupont-pa's."""
    message = f"{world.ids['01-ubl-invoice.xml']}.0001"
    flow = flows.flow_json(world.conn, world.layout, "acme", message)
    assert flow is not None and spec_errors("Flow", flow) == []
    assert (flow["name"], flow["flowSyntax"], flow["flowType"]) == (f"{message}.cdar.xml", "CDAR", "CustomerInvoiceLC")
    assert (flow["flowDirection"], flow["acknowledgement"]) == ("In", {"status": "Ok"})
    relay = f"{world.ids['status-204.xml']}.0001"
    assert flows.flow_json(world.conn, world.layout, "opdemat", relay) is not None
    assert flows.flow_json(world.conn, world.layout, "dupont-pa", relay) is None


def test_a_recipients_status_flow_is_supplier_invoice_lc(world: World) -> None:
    """dupont-pa's flow of CDAR statuses is a SupplierInvoiceLC flow, direction Out, Ok."""
    flow = world.flow("status-204.xml", "dupont-pa")
    assert (flow["flowType"], flow["flowSyntax"], flow["acknowledgement"]["status"]) == (
        "SupplierInvoiceLC",
        "CDAR",
        "Ok",
    )


# -- deposits and edi's own failures ------------------------------------------------------------------------------


def deposit(ws: Workspace, flow_id: str, sender: str = "acme", **fields: Any) -> dict[str, Any]:
    """A deposit as deposit26's POST /v1/flows leaves it: its row committed, its file in the sender's inbox."""
    row = {
        "flow_id": flow_id,
        "sender": sender,
        "inbox_name": f"{flow_id}.xml",
        "name": "invoice 42.xml",
        "flow_syntax": "UBL",
        "flow_profile": None,
        "processing_rule": "B2B",
        "tracking_id": "ERP-42",
        "submitted_at": iso(datetime.now(UTC)),
    } | fields
    store = open_store(ws.settings.workspace.layout())
    try:
        with store.transaction():
            marks = ", ".join("?" for _ in row)
            store.db.conn.execute(f"INSERT INTO api_deposits ({', '.join(row)}) VALUES ({marks})", list(row.values()))
    finally:
        store.close()
    ws.drop(sender, row["inbox_name"], (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    return row


def test_a_deposit_not_claimed_yet_is_pending_with_what_the_client_declared(workspace: Workspace) -> None:
    """Deposited, not claimed: Pending, the client's name, syntax, processingRule (Input) and trackingId, updatedAt
    its submittedAt; found by search too (its file waits in the inbox)."""
    row = deposit(workspace, "20261206T100000000000-aaaaaa")
    reader = Reader(workspace.settings.workspace.layout().database)
    try:
        flow = flows.flow_json(reader.connection(), workspace.settings.workspace.layout(), "acme", row["flow_id"])
        page = flows.search(
            reader.connection(),
            workspace.settings.workspace.layout(),
            "acme",
            flows.Query(25, {"ackStatus": "Pending"}),
            LATER,
        )
    finally:
        reader.close()
    assert flow is not None and spec_errors("Flow", flow) == []
    assert flow["acknowledgement"] == {"status": "Pending"}
    assert (flow["name"], flow["flowSyntax"], flow["trackingId"]) == ("invoice 42.xml", "UBL", "ERP-42")
    assert (flow["processingRule"], flow["processingRuleSource"]) == ("B2B", "Input")
    assert flow["submittedAt"] == flow["updatedAt"] == row["submitted_at"]
    assert [f["flowId"] for f in page["results"]] == [row["flow_id"]]


def test_a_file_name_that_is_not_utf8_in_the_inbox_does_not_break_a_search(workspace: Workspace) -> None:
    """A sender's file named with bytes that are not UTF-8 waits in its inbox beside a deposit: the search still
    answers, with the deposit."""
    row = deposit(workspace, "20261206T100000000000-dddddd")
    workspace.drop("acme", b"caf\xe9.xml", b"<x/>")
    layout = workspace.settings.workspace.layout()
    reader = Reader(layout.database)
    try:
        page = flows.search(reader.connection(), layout, "acme", flows.Query(25, {"ackStatus": "Pending"}), LATER)
    finally:
        reader.close()
    assert [f["flowId"] for f in page["results"]] == [row["flow_id"]]


def test_a_flow_that_failed_for_edis_own_reason_is_pending_not_error(workspace: Workspace, inject: Any) -> None:
    """A flow in failed/ (edi's fault, waiting for an operator's requeue) is Pending: the sender's file was not
    judged."""
    workspace.drop("acme", "a.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    inject("write.ack=eio")
    run_batch(workspace.settings, clock=FixedClock())
    (flow_id,) = [
        r[0] for r in sqlite3.connect(workspace.root / "tracking.sqlite").execute("SELECT flow_id FROM flows")
    ]
    reader = Reader(workspace.settings.workspace.layout().database)
    try:
        flow = flows.flow_json(reader.connection(), workspace.settings.workspace.layout(), "acme", flow_id)
    finally:
        reader.close()
    assert (workspace.root / "failed" / flow_id).is_dir()
    assert flow is not None and flow["acknowledgement"] == {"status": "Pending"}


# -- the search -----------------------------------------------------------------------------------------------------


def every(world: World, where: dict[str, Any], limit: int, sender: str = "acme") -> list[dict[str, Any]]:
    """Every result of a search, page after page by nextCursor."""
    seen, cursor = [], None
    for _ in range(1000):
        page = world.search(where, limit, cursor, sender)
        assert spec_errors("SearchFlowContent", page) == []
        assert len(page["results"]) <= limit
        seen += page["results"]
        cursor = page.get("nextCursor")
        if cursor is None:
            return seen
    raise AssertionError("the pages never end")


def test_cursor_paging_returns_each_flow_once_in_order_through_runs_of_ties(world: World) -> None:
    """acme's flows and messages share few updatedAt (a batch records its flows at once): pages of 1, 2, 3 and 7
    give each exactly once, in (updatedAt, id) order, the same as one page of 100."""
    (whole,) = [world.search({"updatedAfter": "2000-01-01T00:00:00Z"}, 100)["results"]]
    keys = [(f["updatedAt"], f["flowId"]) for f in whole]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) > 10
    assert len({f["updatedAt"] for f in whole}) < len(whole)  # ties there are
    for limit in (1, 2, 3, 7):
        assert every(world, {"updatedAfter": "2000-01-01T00:00:00Z"}, limit) == whole


def test_search_is_scoped_to_the_sender(world: World) -> None:
    """acme's search holds only acme's flows and messages; opdemat's only its own (the relayed 204 among them)."""
    acme = every(world, {"flowDirection": ["In", "Out"]}, 100)
    opdemat = every(world, {"flowDirection": ["In", "Out"]}, 100, "opdemat")
    assert {f["flowId"][:28] for f in acme} == {world.ids[n] for n in ACME}
    assert f"{world.ids['status-204.xml']}.0001" in {f["flowId"] for f in opdemat}
    assert not {f["flowId"] for f in acme} & {f["flowId"] for f in opdemat}


def test_filters_select_by_direction_type_status_rule_and_tracking_id(world: World) -> None:
    """flowDirection In: the CDAR messages alone (one per document, one per file refused whole); ackStatus Error:
    the refused flows; flowType CustomerInvoice: the flows; processingRule B2B: none (folder flows are Undefined);
    a trackingId nobody gave: none."""
    incoming = every(world, {"flowDirection": ["In"]}, 100)
    assert {f["flowType"] for f in incoming} == {"CustomerInvoiceLC"}
    assert len(incoming) == len(ACME)  # each of these files is one document, or refused whole
    assert every(world, {"flowType": ["CustomerInvoiceLC"]}, 100) == incoming
    errors = every(world, {"ackStatus": "Error"}, 100)
    assert {f["name"] for f in errors} == set(ACME) - {"01-ubl-invoice.xml", "15-facturx-invoice.pdf"}
    assert {f["flowDirection"] for f in every(world, {"flowType": ["CustomerInvoice"]}, 100)} == {"Out"}
    assert every(world, {"processingRule": ["B2B"]}, 100) == []
    assert len(every(world, {"processingRule": ["Undefined"]}, 100)) == len(ACME)
    assert every(world, {"trackingId": "nobody-gave-it"}, 100) == []
    assert every(world, {"flowType": ["SupplierInvoice"]}, 100) == []


def test_a_search_by_one_flow_type_is_a_range_of_the_typed_index(world: World) -> None:
    """flowType SupplierInvoiceLC alone finds dupont-pa's status flow, CustomerInvoice alone opdemat's flows and not
    it; each leg reads a range of idx_flows_api_type (sender, status, type: no walk over the sender's flows)."""
    status_flows = every(world, {"flowType": ["SupplierInvoiceLC"]}, 100, sender="dupont-pa")
    assert [f["flowId"] for f in status_flows] == [world.ids["status-204.xml"]]
    assert every(world, {"flowType": ["CustomerInvoice"]}, 100, sender="dupont-pa") == []
    assert every(world, {"flowType": ["SupplierInvoiceLC"]}, 100, sender="opdemat") == []
    invoices = every(world, {"flowType": ["CustomerInvoice"]}, 100, sender="opdemat")
    assert {f["name"] for f in invoices} == {"01-initech-cii-basic.xml", "03-batch-partial.zip"}
    plans: list[str] = []
    queries: list[str] = []
    world.conn.set_trace_callback(queries.append)
    try:
        every(world, {"flowType": ["SupplierInvoiceLC"]}, 100, sender="dupont-pa")
    finally:
        world.conn.set_trace_callback(None)
    legs = [q for q in queries if "INDEXED BY idx_flows_api_type" in q]
    assert len(legs) == len(flows.ACK_STATUSES)  # one range per acknowledgement status
    for leg in legs:
        plans += [row[-1] for row in world.conn.execute(f"EXPLAIN QUERY PLAN {leg}")]
    assert plans and all("SCAN f" not in plan for plan in plans), plans
    assert any("SEARCH f USING INDEX idx_flows_api_type" in plan for plan in plans), plans
    assert not any("TEMP B-TREE" in plan for plan in plans), plans  # read in index order: no sort


def test_the_stored_flow_type_is_what_the_deposits_and_documents_say(world: World) -> None:
    """flows.status_flow, kept by triggers, is 1 exactly for the flows deposited or read as CDAR."""
    rows = world.conn.execute(
        f"SELECT f.flow_id, f.status_flow, {STATUS_FLOW_OF.format(flow='f.flow_id')} FROM flows f"
    ).fetchall()
    assert rows and all(stored == computed for _, stored, computed in rows)
    assert sum(stored for _, stored, _ in rows) == 1  # dupont-pa's one status flow


def test_a_store_made_before_the_stored_flow_type_gets_it_when_opened(tmp_path: Path, world: World) -> None:
    """A copy of the store without the column, its index and triggers (as an older edi made it) gets them back when
    opened, with the same values as the store that always had them."""
    copy = tmp_path / "older.sqlite"
    source = sqlite3.connect(world.layout.database)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    for (name,) in target.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        target.execute(f"DROP TRIGGER {name}")
    target.execute("DROP INDEX idx_flows_api_type")
    target.execute("ALTER TABLE flows DROP COLUMN status_flow")
    target.commit()
    target.close()
    Tracking(copy).close()
    with closing(sqlite3.connect(copy)) as conn:
        again = dict(conn.execute("SELECT flow_id, status_flow FROM flows").fetchall())
    assert again == dict(world.conn.execute("SELECT flow_id, status_flow FROM flows").fetchall())
    assert again[world.ids["status-204.xml"]] == 1


def test_updated_after_and_before_are_strict(world: World) -> None:
    """updatedAfter t leaves out what was updated at t (the standard: strict); updatedBefore t too."""
    whole = every(world, {"flowDirection": ["Out"]}, 100)
    first = min(f["updatedAt"] for f in whole)
    later = [f for f in whole if f["updatedAt"] > first]
    assert every(world, {"flowDirection": ["Out"], "updatedAfter": first}, 100) == later
    before = every(world, {"flowDirection": ["Out"], "updatedBefore": first}, 100)
    assert before == []
    just_after = (datetime.fromisoformat(first.replace("Z", "+00:00")) + timedelta(microseconds=500)).isoformat()
    assert every(world, {"flowDirection": ["Out"], "updatedBefore": just_after}, 100) == [
        f for f in whole if f["updatedAt"] == first
    ]


def test_a_row_younger_than_the_settle_time_is_searched_once_it_has_settled(world: World) -> None:
    """Rows updated less than SETTLE ago are not searched yet (a writer may still commit an older updatedAt); they
    are once SETTLE has passed."""
    newest = max(f["updatedAt"] for f in every(world, {"flowDirection": ["Out"]}, 100))
    at = datetime.fromisoformat(newest.replace("Z", "+00:00"))
    query = flows.Query(100, {"flowDirection": ["Out"]})
    early = flows.search(world.conn, world.layout, "acme", query, at + flows.SETTLE - timedelta(milliseconds=1))
    settled = flows.search(world.conn, world.layout, "acme", query, at + flows.SETTLE)
    assert newest not in {f["updatedAt"] for f in early["results"]}
    assert newest in {f["updatedAt"] for f in settled["results"]}


def test_a_page_ends_before_a_run_of_ties_it_would_cut(world: World) -> None:
    """When the row after a page shares its last updatedAt, the page stops before that updatedAt (unless that would
    leave it empty): paging by updatedAfter = max(updatedAt), as pyfrctc does, skips nothing."""
    whole = every(world, {"flowDirection": ["In", "Out"]}, 100)
    times = [f["updatedAt"] for f in whole]
    run_start = next(i for i in range(1, len(times)) if times[i] == times[i - 1]) - 1  # the first run of ties
    page = world.search({"flowDirection": ["In", "Out"]}, run_start + 2)["results"]
    if run_start > 0:
        assert [f["updatedAt"] for f in page] == times[:run_start]
    collected, after = [], "2000-01-01T00:00:00Z"
    for _ in range(100):
        results = world.search({"updatedAfter": after}, 100)["results"]
        if not results:
            break
        collected += results
        after = max(f["updatedAt"] for f in results)
    assert collected == whole


def test_a_flow_updated_after_the_client_passed_it_comes_again_later(workspace: Workspace, inject: Any) -> None:
    """A failed flow requeued and processed moves to a later updatedAt: a client whose cursor passed it meets it
    again, Ok now; nothing else repeats."""
    from edi.requeue import requeue

    workspace.drop("acme", "a.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    inject("write.ack=eio")
    run_batch(workspace.settings, clock=FixedClock())
    inject("")
    workspace.drop("acme", "b.xml", (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes())
    run_batch(workspace.settings, clock=FixedClock(datetime.now(UTC) + timedelta(seconds=1)))
    layout = workspace.settings.workspace.layout()
    reader = Reader(layout.database)
    where = {"flowDirection": ["Out"]}
    try:
        first = flows.search(reader.connection(), layout, "acme", flows.Query(100, where), LATER)
        assert [f["acknowledgement"]["status"] for f in first["results"]] == ["Pending", "Ok"]
        assert "nextCursor" not in first  # the end: the client goes on from the last updatedAt it saw
        after = first["results"][-1]["updatedAt"]
        requeue(workspace.settings, [], all_failed=True, clock=FixedClock(datetime.now(UTC) + timedelta(seconds=2)))
        run_batch(workspace.settings, clock=FixedClock(datetime.now(UTC) + timedelta(seconds=3)))
        later = flows.search(
            reader.connection(), layout, "acme", flows.Query(100, where | {"updatedAfter": after}), LATER
        )
    finally:
        reader.close()
    assert [(f["flowId"], f["acknowledgement"]["status"]) for f in later["results"]] == [
        (first["results"][0]["flowId"], "Ok")
    ]


def test_a_page_cut_inside_a_run_of_ties_stops_before_it_unless_that_leaves_nothing() -> None:
    """The page's end: before the run of equal updatedAt the next row continues; a page that is all one run stays."""
    keys = [("t1", "a"), ("t2", "b"), ("t2", "c"), ("t2", "d"), ("t3", "e")]
    assert flows._page(keys, 3) == [("t1", "a")]
    assert flows._page(keys[1:], 2) == [("t2", "b"), ("t2", "c")]
    assert flows._page(keys, 4) == keys[:4]
    assert flows._page(keys, 5) == keys


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ([], "JSON object"),
        ({"where": {}}, "at least one criterion"),
        ({"limit": 10}, "where is required"),
        ({"where": {"updatedAfter": "2026-01-01T00:00:00"}}, "offset"),
        ({"where": {"updatedAfter": "yesterday"}}, "offset"),
        ({"where": {"flowType": ["Invoice"]}}, "flowType"),
        ({"where": {"flowDirection": "In"}}, "flowDirection"),
        ({"where": {"ackStatus": "Done"}}, "ackStatus"),
        ({"where": {"trackingId": "x" * 65}}, "trackingId"),
        ({"where": {"flowId": "x"}}, "unknown criterion"),
        ({"where": {"ackStatus": "Ok"}, "limit": 0}, "limit"),
        ({"where": {"ackStatus": "Ok"}, "limit": 101}, "limit"),
        ({"where": {"ackStatus": "Ok"}, "limit": True}, "limit"),
        ({"where": {"ackStatus": "Ok"}, "offset": 3}, "unknown field"),
    ],
    ids=lambda v: json.dumps(v)[:40],
)
def test_a_search_the_standard_does_not_allow_is_refused(body: Any, said: str) -> None:
    """Malformed searches are refused with a message that says what is wrong (never a wider answer)."""
    with pytest.raises(flows.SearchError, match=said):
        flows.parse_search(body)


def test_a_cursor_is_checked_against_its_search_and_its_sender(world: World) -> None:
    """A cursor altered, made for other filters, or for another sender is refused; an untouched one pages on."""
    where = {"flowDirection": ["Out"]}
    cursor = world.search(where, 1)["nextCursor"]
    assert world.search(where, 1, cursor)["results"]
    for bad, other, sender in [
        (cursor[:-2], where, "acme"),
        ("not a cursor", where, "acme"),
        (cursor, {"flowDirection": ["In"]}, "acme"),
        (cursor, where, "opdemat"),
    ]:
        with pytest.raises(flows.SearchError, match="cursor"):
            world.search(other, 1, bad, sender)


def test_each_part_of_a_search_reads_a_range_of_its_index_without_sorting(world: World) -> None:
    """EXPLAIN QUERY PLAN of every query a search runs (each filter): an index range, scoped by sender (flows by
    sender and acknowledgement status, messages by sender, trackingId by its index); no table scan, no temporary
    B-tree (no sort of the sender's flows)."""
    asked: list[str] = []
    conn = sqlite3.connect(world.layout.database)
    conn.set_trace_callback(asked.append)
    try:
        for where in (
            {"flowDirection": ["In", "Out"]},
            {"ackStatus": "Error", "updatedBefore": "2100-01-01T00:00:00Z"},
            {"trackingId": "T"},
            {"flowType": ["SupplierInvoiceLC"], "processingRule": ["B2B"]},
        ):
            flows.search(conn, world.layout, "acme", flows.Query(10, where), LATER)
        legs = [sql for sql in asked if "INDEXED BY" in sql]
        assert len(legs) == 9  # 3 + 1 messages, 1, 1, 3
        for sql in legs:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert plan[0].startswith("SEARCH") and "sender=?" in plan[0], (sql, plan)
            assert not any(s.startswith("SCAN") or "TEMP B-TREE" in s for s in plan if "tracking_id" not in sql), plan
    finally:
        conn.close()
