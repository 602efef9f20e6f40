"""POST {base}/v1/flows (edi.api.deposit): a flow deposited through the API lands in its sender's inbox, durable and
recorded, before the 202; the claim takes the 202's flowId; every refusal deposits nothing."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from click.testing import CliRunner
from starlette.testclient import TestClient

from edi import accounts
from edi.api.deposit import STANDARD_MAX_BYTES, parse_flow_info, what_it_is
from edi.api.errors import ApiError
from edi.cli import main
from edi.runner import run_batch
from edi.store import open_store
from edi.web.app import create_app
from tests.api.conftest import BASE, Client, Service
from tests.conftest import DEFAULT_CONFIG, FLOWS, Workspace, store_rows
from tests.lifecycle.statuses import status_message
from tests.web.conftest import login

UBL = FLOWS / "acme" / "01-ubl-invoice.xml"
CII = FLOWS / "acme" / "03-cii-invoice.xml"
PDF = FLOWS / "acme" / "15-facturx-invoice.pdf"
BATCH = FLOWS / "opdemat" / "03-batch-partial.zip"
PARTNER = """
[[senders]]
id = "dupont-pa"
sellers = []
recipients = ["dupont"]
"""


def deposit(
    service: Service,
    client: Client,
    data: bytes,
    headers: dict[str, str] | None = None,
    **info: Any,
) -> httpx.Response:
    """POST {base}/v1/flows with ``info`` as flowInfo (name and flowSyntax by default) and ``data`` as the file."""
    info = {"name": "invoice.xml", "flowSyntax": "UBL", **info}
    info = {k: v for k, v in info.items() if v is not None}
    return service.http.post(
        f"{BASE}/v1/flows",
        headers={**service.headers(client), **(headers or {})},
        files={"flowInfo": (None, json.dumps(info), "application/json"), "file": ("f", data, "application/xml")},
    )


def rows(ws: Workspace, table: str = "api_deposits") -> list[dict[str, Any]]:
    return store_rows(ws, f"SELECT * FROM {table}")


def acks(ws: Workspace, sender: str = "acme") -> dict[str, dict[str, Any]]:
    """The JSON acknowledgements in a sender's folder, by flow id."""
    found = [json.loads(p.read_bytes()) for p in ws.acks(sender)]
    return {a["flow_id"]: a for a in found}


def nothing_deposited(ws: Workspace, sender: str = "acme") -> None:
    """No file in the sender's inbox or in tmp/deposits, no deposit row."""
    assert list(ws.inbox(sender).iterdir()) == []
    assert list((ws.root / "tmp" / "deposits").glob("*")) == []
    assert rows(ws) == []


def batch(ws: Workspace) -> str:
    """`edi batch` (the real command, in this process); its output."""
    result = CliRunner().invoke(main, ["--config", str(ws.config), "batch"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# -- what a deposit gives, and what becomes of it ----------------------------------------------------------------


def test_a_deposit_is_answered_202_with_the_full_flow_info_once_in_the_inbox_and_recorded(service: Service) -> None:
    """202 carries what was given plus flowId, submittedAt and the bytes' sha256; the file is in the client's
    sender's inbox (nothing left in tmp/deposits) and its api_deposits row holds flowInfo, the client and the
    Request-Id."""
    client = service.add_client("erp")
    data = UBL.read_bytes()
    answer = deposit(
        service,
        client,
        data,
        {"Request-Id": "7d0f4a52-0c1e-4f8e-a0a1-2b7c9f6a1d3e"},
        name="F-2026-001.xml",
        trackingId="ERP-42",
        processingRule="B2B",
        flowProfile="CIUS",
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    flow_id = body["flowId"]
    assert body == {
        "flowId": flow_id,
        "submittedAt": body["submittedAt"],
        "name": "F-2026-001.xml",
        "flowSyntax": "UBL",
        "trackingId": "ERP-42",
        "processingRule": "B2B",
        "flowProfile": "CIUS",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert answer.headers["request-id"] == "7d0f4a52-0c1e-4f8e-a0a1-2b7c9f6a1d3e"
    (path,) = service.workspace.inbox("acme").iterdir()
    assert path.name == f"{flow_id}_F-2026-001.xml" and path.read_bytes() == data
    assert list((service.workspace.root / "tmp" / "deposits").iterdir()) == []
    (row,) = rows(service.workspace)
    assert row == {
        "flow_id": flow_id,
        "sender": "acme",
        "inbox_name": path.name,
        "name": "F-2026-001.xml",
        "flow_syntax": "UBL",
        "flow_profile": "CIUS",
        "processing_rule": "B2B",
        "tracking_id": "ERP-42",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "client_id": client.client_id,
        "request_id": "7d0f4a52-0c1e-4f8e-a0a1-2b7c9f6a1d3e",
        "submitted_at": body["submittedAt"],
    }


def test_a_deposit_is_logged_with_its_client_and_request_id(service: Service) -> None:
    """One "api deposit" line per deposit names the flow, the sender, the client (name and id) and the Request-Id."""
    client = service.add_client("erp")
    headers = {"Request-Id": "0b6f3c2e-4a1d-4c8e-9f2a-7d5e1b3c9a42"}
    saved = structlog.get_config()  # an `edi` command run earlier in the session left its level (warning) in place
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with structlog.testing.capture_logs() as logged:
            flow_id = deposit(service, client, UBL.read_bytes(), headers).json()["flowId"]
    finally:
        structlog.configure(**saved)
    (line,) = [e for e in logged if e["event"] == "api deposit"]
    assert line["flow_id"] == flow_id and line["sender"] == "acme" and line["request_id"] == headers["Request-Id"]
    assert (line["client"], line["client_id"]) == ("erp", client.client_id)


def test_the_claim_takes_the_202s_flow_id_in_the_ack_edi_show_and_the_console(service: Service) -> None:
    """After `edi batch`, the flow's acknowledgement, `edi show <flowId>` and the console's flow page all use the
    flowId the 202 gave, with the client's name as the file name; the deposit row stays."""
    client = service.add_client("erp")
    flow_id = deposit(service, client, UBL.read_bytes(), name="F-2026-001.xml").json()["flowId"]
    output = batch(service.workspace)
    assert "1 flow" in output
    ack = acks(service.workspace)[flow_id]
    assert ack["status"] == "IN_INTEGRE" and ack["file_name"] == "F-2026-001.xml"
    shown = CliRunner().invoke(main, ["--config", str(service.workspace.config), "show", flow_id])
    assert shown.exit_code == 0 and f"flow      {flow_id}" in shown.output
    assert "file      F-2026-001.xml" in shown.output
    store = open_store(service.workspace.settings.workspace.layout())
    try:
        accounts.add_user(store, "alice", "operator", "secret-pass-1", datetime.now(UTC))
    finally:
        store.close()
    with TestClient(create_app(service.workspace.settings), base_url="http://127.0.0.1") as browser:
        assert login(browser, "alice", "secret-pass-1").status_code in (200, 303)
        page = browser.get(f"/flows/{flow_id}.json")
        assert page.status_code == 200, page.text
        assert page.json()["flow_id"] == flow_id
    assert [r["flow_id"] for r in rows(service.workspace)] == [flow_id]


def test_a_deposit_waiting_in_the_inbox_keeps_its_flow_id_through_a_forced_rebuild(service: Service) -> None:
    """`edi store rebuild --force` of a store that still reads keeps the deposit's record: the flow is then claimed
    under the 202's flowId, and the same client's token still reads it through the API."""
    client = service.add_client("erp")
    token = service.headers(client)
    flow_id = deposit(service, client, UBL.read_bytes(), headers=token, name="F-2026-002.xml").json()["flowId"]
    rebuilt = CliRunner().invoke(main, ["--config", str(service.workspace.config), "store", "rebuild", "--force"])
    assert rebuilt.exit_code == 0 and "API deposit records 1" in rebuilt.output, rebuilt.output
    batch(service.workspace)
    assert acks(service.workspace)[flow_id]["file_name"] == "F-2026-002.xml"
    got = service.http.get(f"{BASE}/v1/flows/{flow_id}", headers=token)
    assert got.status_code == 200 and got.json()["flowId"] == flow_id, got.text


def test_the_same_bytes_again_are_taken_and_answered_as_a_duplicate_of_the_first(service: Service) -> None:
    """Two deposits of the same bytes are both 202; `edi batch` accepts the first and rejects the second as a
    duplicate naming the first flowId (the folders' rule)."""
    client = service.add_client("erp")
    first = deposit(service, client, UBL.read_bytes(), name="a.xml").json()["flowId"]
    second = deposit(service, client, UBL.read_bytes(), name="b.xml").json()["flowId"]
    assert first < second
    batch(service.workspace)
    found = acks(service.workspace)
    assert found[first]["status"] == "IN_INTEGRE"
    assert found[second]["status"] == "IN_REJETE" and found[second]["duplicate_of"] == first
    assert [f["code"] for f in found[second]["findings"]] == ["DOUBLON"]


def test_an_empty_file_is_taken_and_answered_empty_flow_by_processing(service: Service) -> None:
    """An empty file is 202 (its syntax cannot be told): processing rejects it with IRR_VIDE_F, as in a folder."""
    client = service.add_client("erp")
    flow_id = deposit(service, client, b"").json()["flowId"]
    batch(service.workspace)
    ack = acks(service.workspace)[flow_id]
    assert ack["status"] == "IN_REJETE" and [f["code"] for f in ack["findings"]] == ["IRR_VIDE_F"]


def test_a_senders_own_file_of_the_same_name_is_never_touched(service: Service) -> None:
    """A file the sender dropped as invoice.xml and a deposit named invoice.xml are two files and two flows, each
    with its own bytes."""
    client = service.add_client("erp")
    service.workspace.drop("acme", "invoice.xml", CII.read_bytes())
    flow_id = deposit(service, client, UBL.read_bytes(), name="invoice.xml").json()["flowId"]
    assert sorted(p.name for p in service.workspace.inbox("acme").iterdir()) == [
        f"{flow_id}_invoice.xml",
        "invoice.xml",
    ]
    batch(service.workspace)
    found = acks(service.workspace)
    assert len(found) == 2 and found[flow_id]["documents"][0]["syntax"] == "UBL"
    (other,) = [a for f, a in found.items() if f != flow_id]
    assert other["file_name"] == "invoice.xml" and other["documents"][0]["syntax"] == "CII"


def test_a_name_the_scanner_would_take_for_an_upload_is_not_used_in_the_inbox(service: Service) -> None:
    """A deposit named like a file still being written (*.tmp) enters the inbox under its flow id alone, is
    processed, and keeps its name as the flow's file name."""
    client = service.add_client("erp")
    flow_id = deposit(service, client, UBL.read_bytes(), name="facture.tmp").json()["flowId"]
    assert [p.name for p in service.workspace.inbox("acme").iterdir()] == [flow_id]
    batch(service.workspace)
    assert acks(service.workspace)[flow_id]["file_name"] == "facture.tmp"


# -- what the bytes are ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "syntax"),
    [(UBL, "UBL"), (CII, "CII"), (PDF, "Factur-X"), (BATCH, "CII"), (BATCH, "Factur-X")],
    ids=["ubl", "cii", "facturx", "zip-as-cii", "zip-as-facturx"],
)
def test_bytes_of_the_declared_syntax_are_taken(service: Service, sample: Any, syntax: str) -> None:
    """UBL, CII and a Factur-X PDF declared as what they are are 202; a ZIP batch is taken under an invoice
    syntax (its members are recognised one by one when processed)."""
    client = service.add_client("erp")
    answer = deposit(service, client, sample.read_bytes(), name=sample.name, flowSyntax=syntax)
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(
    ("data", "syntax", "said"),
    [
        (UBL.read_bytes(), "CII", "the file is UBL"),
        (CII.read_bytes(), "UBL", "the file is CII"),
        (PDF.read_bytes(), "UBL", "the file is Factur-X"),
        (UBL.read_bytes(), "Factur-X", "the file is UBL"),
        (UBL.read_bytes(), "CDAR", "the file is UBL"),
        (status_message("204"), "UBL", "the file is CDAR"),
        (b"<Order xmlns='urn:x'/>", "UBL", "root element is Order in urn:x"),
        (b"\x00\x01binary", "CII", "neither XML, PDF nor a ZIP batch"),
        (UBL.read_bytes(), "FRR", "the file is UBL"),
        (BATCH.read_bytes(), "FRR", "the file is a ZIP batch"),
    ],
    ids=["ubl-as-cii", "cii-as-ubl", "pdf-as-ubl", "ubl-as-facturx", "ubl-as-cdar", "cdar-as-ubl", "other-xml",
         "binary", "ubl-as-frr", "zip-as-frr"],
)  # fmt: skip
def test_bytes_that_are_not_the_declared_syntax_are_422(service: Service, data: bytes, syntax: str, said: str) -> None:
    """flowSyntax is checked against what edi recognises in the bytes: otherwise 422 UNPROCESSABLE_ENTITY saying
    what the file is, and nothing is deposited."""
    client = service.add_client("erp")
    answer = deposit(service, client, data, flowSyntax=syntax)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errorCode"] == "UNPROCESSABLE_ENTITY" and said in answer.json()["errorMessage"]
    nothing_deposited(service.workspace)


def test_xml_unreadable_before_its_root_is_taken_and_answered_by_processing(service: Service) -> None:
    """XML that cannot be read as far as its root element says nothing of its syntax: 202, and processing answers
    IRR_SYNTAX in the acknowledgement."""
    assert what_it_is(b"<?xml version='1.0'?><<<") is None
    client = service.add_client("erp")
    flow_id = deposit(service, client, b"<?xml version='1.0'?>\n<<< not xml").json()["flowId"]
    batch(service.workspace)
    ack = acks(service.workspace)[flow_id]
    assert ack["status"] == "IN_REJETE" and "IRR_SYNTAX" in json.dumps(ack)


def test_a_sha256_that_is_not_the_files_is_422_checksum_mismatch(service: Service) -> None:
    """A given sha256 is checked: the bytes' own is 202, another 422 ChecksumMismatch with nothing deposited."""
    client = service.add_client("erp")
    data = UBL.read_bytes()
    wrong = deposit(service, client, data, sha256="0" * 64)
    assert wrong.status_code == 422 and wrong.json()["errorCode"] == "ChecksumMismatch"
    assert hashlib.sha256(data).hexdigest() in wrong.json()["errorMessage"]
    nothing_deposited(service.workspace)
    right = deposit(service, client, data, sha256=hashlib.sha256(data).hexdigest())
    assert right.status_code == 202


def test_a_file_over_max_flow_bytes_is_413_and_nothing_is_kept(make_workspace: Callable[..., Workspace]) -> None:
    """A file larger than [limits] max_flow_bytes is 413 FILE_SIZE_EXCEEDED; a file of exactly that size is 202;
    the limit is never above the standard's 100 MB."""
    ws = make_workspace(DEFAULT_CONFIG + "\n[limits]\nmax_flow_bytes = 6275\n")
    assert len(UBL.read_bytes()) == 6275
    with TestClient(create_app(ws.settings)) as http:
        service = Service(ws, http)
        client = service.add_client("erp")
        over = deposit(service, client, UBL.read_bytes() + b" ")
        assert over.status_code == 413 and over.json()["errorCode"] == "FILE_SIZE_EXCEEDED"
        nothing_deposited(ws)
        assert deposit(service, client, UBL.read_bytes()).status_code == 202
    assert STANDARD_MAX_BYTES == 100 * 1024 * 1024


# -- flowInfo ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "code", "field"),
    [
        ({"flowSyntax": "UBL"}, "MISSING_REQUIRED_FIELD", "flowInfo.name"),
        ({"name": "x.xml"}, "MISSING_REQUIRED_FIELD", "flowInfo.flowSyntax"),
        ({"name": "x" * 256, "flowSyntax": "UBL"}, "INVALID_REQUEST", "flowInfo.name"),
        ({"name": 7, "flowSyntax": "UBL"}, "INVALID_REQUEST", "flowInfo.name"),
        ({"name": "x.xml", "flowSyntax": "PDF"}, "INVALID_REQUEST", "flowInfo.flowSyntax"),
        ({"name": "x.xml", "flowSyntax": "UBL", "trackingId": "t" * 65}, "INVALID_REQUEST", "flowInfo.trackingId"),
        ({"name": "x.xml", "flowSyntax": "UBL", "processingRule": "B2X"}, "INVALID_REQUEST", "processingRule"),
        ({"name": "x.xml", "flowSyntax": "UBL", "flowProfile": "Full"}, "INVALID_REQUEST", "flowInfo.flowProfile"),
        ({"name": "x.xml", "flowSyntax": "UBL", "sha256": "ABC"}, "INVALID_REQUEST", "flowInfo.sha256"),
        (["name"], "INVALID_REQUEST", "flowInfo: not a JSON object"),
    ],
    ids=["no-name", "no-syntax", "long-name", "number-name", "bad-syntax", "long-tracking", "bad-rule",
         "bad-profile", "bad-sha256", "array"],
)  # fmt: skip
def test_a_missing_or_invalid_flow_info_field_is_400_naming_it(
    service: Service, info: Any, code: str, field: str
) -> None:
    """Each flowInfo field is checked as the standard's FlowInfo says: 400 with MISSING_REQUIRED_FIELD or
    INVALID_REQUEST naming the field, nothing deposited."""
    client = service.add_client("erp")
    answer = service.http.post(
        f"{BASE}/v1/flows",
        headers=service.headers(client),
        files={"flowInfo": (None, json.dumps(info), "application/json"), "file": ("f", UBL.read_bytes(), "text/xml")},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorCode"] == code and field in answer.json()["errorMessage"]
    nothing_deposited(service.workspace)


@pytest.mark.parametrize(
    ("files", "code", "said"),
    [
        ({"file": ("f", b"<x/>", "text/xml")}, "MISSING_REQUIRED_FIELD", "flowInfo part"),
        ({"flowInfo": (None, '{"name": "x", "flowSyntax": "UBL"}', "application/json")}, "MISSING_REQUIRED_FIELD",
         "file part"),
        ({"flowInfo": (None, "{not json", "application/json"), "file": ("f", b"<x/>", "text/xml")}, "INVALID_REQUEST",
         "not JSON"),
        ({"flowInfo": (None, "x" * 70_000, "application/json"), "file": ("f", b"<x/>", "text/xml")},
         "INVALID_REQUEST", "longer than"),
    ],
    ids=["no-flow-info", "no-file", "not-json", "huge-flow-info"],
)  # fmt: skip
def test_a_missing_or_unreadable_part_is_400(service: Service, files: dict[str, Any], code: str, said: str) -> None:
    """A body without flowInfo or without the file, or with a flowInfo that is not JSON or too long, is 400."""
    client = service.add_client("erp")
    answer = service.http.post(f"{BASE}/v1/flows", headers=service.headers(client), files=files)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorCode"] == code and said in answer.json()["errorMessage"]
    nothing_deposited(service.workspace)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'--b\r\nContent-Disposition: form-data; name="flowInfo"\r\n\r\n{"name": "x", "flowSyntax": "UBL"}\r\n'
         b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n<Invoice', "closing boundary"),
        (b"--b\r\nno colon here\r\n\r\n", "not well-formed multipart"),
    ],
    ids=["cut-short", "malformed"],
)  # fmt: skip
def test_a_body_cut_short_or_malformed_is_400(service: Service, body: bytes, said: str) -> None:
    """A multipart body that ends before its closing boundary (a file cut short) or that is not multipart at all is
    400 INVALID_REQUEST: a part of a file is never deposited."""
    client = service.add_client("erp")
    headers = {**service.headers(client), "Content-Type": "multipart/form-data; boundary=b"}
    answer = service.http.post(f"{BASE}/v1/flows", headers=headers, content=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorCode"] == "INVALID_REQUEST" and said in answer.json()["errorMessage"]
    nothing_deposited(service.workspace)


def test_a_body_that_is_not_multipart_is_400(service: Service) -> None:
    """JSON (or anything but multipart/form-data) is 400 INVALID_REQUEST."""
    client = service.add_client("erp")
    answer = service.http.post(f"{BASE}/v1/flows", headers=service.headers(client), json={"name": "x"})
    assert answer.status_code == 400 and answer.json()["errorCode"] == "INVALID_REQUEST"


def test_unknown_flow_info_fields_are_ignored() -> None:
    """Fields the standard's FlowInfo does not define (or that the server sets, flowId) are ignored."""
    info = parse_flow_info(b'{"name": "x.xml", "flowSyntax": "CII", "flowId": "mine", "extra": 1}')
    assert info.given() == {"name": "x.xml", "flowSyntax": "CII"}
    with pytest.raises(ApiError):
        parse_flow_info(b'{"name": "", "flowSyntax": "CII"}')


# -- who deposits ------------------------------------------------------------------------------------------------


def test_a_deposit_without_a_valid_token_is_401_and_deposits_nothing(service: Service) -> None:
    """No token, or an unknown one: 401, nothing deposited."""
    for headers in ({}, {"Authorization": "Bearer edi_at_nope"}):
        answer = service.http.post(
            f"{BASE}/v1/flows",
            headers=headers,
            files={"flowInfo": (None, '{"name": "x", "flowSyntax": "UBL"}'), "file": ("f", UBL.read_bytes())},
        )
        assert answer.status_code == 401
    nothing_deposited(service.workspace)


def test_a_client_whose_sender_is_not_declared_is_403(service: Service) -> None:
    """A client made for a sender the configuration does not declare (no inbox is scanned for it) is 403."""
    client = service.add_client("ghost-erp", sender="ghost")
    answer = deposit(service, client, UBL.read_bytes())
    assert answer.status_code == 403 and answer.json()["errorCode"] == "FORBIDDEN_ACCESS"
    assert not (service.workspace.root / "inbox" / "ghost").exists()


def test_a_deposit_goes_to_the_clients_own_sender(service: Service) -> None:
    """A client of opdemat deposits into inbox/opdemat, never acme's."""
    client = service.add_client("opdemat-erp", sender="opdemat")
    flow_id = deposit(service, client, CII.read_bytes(), flowSyntax="CII").json()["flowId"]
    assert list(service.workspace.inbox("acme").iterdir()) == []
    assert [p.name for p in service.workspace.inbox("opdemat").iterdir()] == [f"{flow_id}_invoice.xml"]


def test_a_recipients_client_deposits_a_cdar_status_end_to_end(make_workspace: Callable[..., Workspace]) -> None:
    """The partner that speaks for the recipient dupont deposits a CDAR 204 about opdemat's invoice through the API
    (flowSyntax CDAR); `edi batch` takes it under its flowId, records the status and relays it to opdemat."""
    ws = make_workspace(DEFAULT_CONFIG + PARTNER)
    ws.drop("opdemat", "invoice.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes())
    run_batch(ws.settings)
    with TestClient(create_app(ws.settings)) as http:
        service = Service(ws, http)
        client = service.add_client("dupont-erp", sender="dupont-pa")
        answer = deposit(service, client, status_message("204"), name="status-204.xml", flowSyntax="CDAR")
        assert answer.status_code == 202, answer.text
        flow_id = answer.json()["flowId"]
    batch(ws)
    ack = acks(ws, "dupont-pa")[flow_id]
    assert ack["status"] == "IN_INTEGRE" and ack["file_name"] == "status-204.xml"
    (doc,) = ack["documents"]
    assert doc["syntax"] == "CDAR" and doc["lifecycle"]["status"] == "204" and doc["lifecycle"]["relay"]
    (row,) = [r for r in rows(ws, "lifecycle") if r["source_flow_id"] == flow_id]
    assert row["state"] == "recorded" and row["set_by"] == "dupont-pa"


def test_a_zip_batch_deposited_is_processed_member_by_member(service: Service) -> None:
    """A ZIP of two invoices deposited as CII is one flow whose acknowledgement answers each member."""
    client = service.add_client("erp")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.xml", UBL.read_bytes())
        archive.writestr("b.xml", CII.read_bytes())
    flow_id = deposit(service, client, buffer.getvalue(), name="lot.zip", flowSyntax="CII").json()["flowId"]
    batch(service.workspace)
    assert len(acks(service.workspace)[flow_id]["documents"]) == 2


def test_a_store_renamed_into_place_meanwhile_gets_the_next_deposit(service: Service) -> None:
    """The server keeps its store open between deposits, but a store renamed into place meanwhile (as `edi store
    rebuild` does) gets the next deposit's row, not the replaced file the server had open."""
    client = service.add_client("erp")
    token = service.headers(client)  # one token, known to both stores
    data = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    first = deposit(service, client, data, headers=token, name="first.xml")
    assert first.status_code == 202, first.text
    database = service.workspace.root / "tracking.sqlite"
    copy = database.with_name("tracking-copy.sqlite")
    source, target = sqlite3.connect(database), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    copy.rename(database)  # a new file (another inode) under the store's name
    second = deposit(service, client, data + b"\n", headers=token, name="second.xml")
    assert second.status_code == 202, second.text
    assert {r["name"] for r in rows(service.workspace)} == {"first.xml", "second.xml"}
