"""edi/api/read.py: GET /v1/flows/{flowId} (the Flow, or the file as deposited from wherever it is) and POST
/v1/flows/search, through the real app in a TestClient, on a workspace processed by the real batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edi.runner import run_batch
from edi.web.app import create_app
from tests.api.conftest import BASE, Client, Service
from tests.api.test_flows import deposit, ids_of, spec_errors
from tests.conftest import FLOWS, FixedClock, Workspace


@pytest.fixture
def later(workspace: Workspace) -> Iterator[Service]:
    """The real app of a fresh workspace, its clock a minute ahead (what was processed has settled for searches)."""
    clock = FixedClock(datetime.now(UTC) + timedelta(minutes=1))
    with TestClient(create_app(workspace.settings, clock)) as http:
        yield Service(workspace, http)


def processed(service: Service, *names: str, sender: str = "acme") -> dict[str, str]:
    """Drop these sample files in the sender's inbox, run a batch: file name -> flow id."""
    for name in names:
        service.workspace.drop(sender, name, (FLOWS / sender / name).read_bytes())
    run_batch(service.workspace.settings, clock=FixedClock())
    return ids_of(service.workspace, sender)


def get(service: Service, client: Client, flow_id: str, **params: str) -> Any:
    return service.http.get(f"{BASE}/v1/flows/{flow_id}", params=params, headers=service.headers(client))


def test_get_answers_the_flow_as_metadata_by_default(later: Service) -> None:
    """GET without docType, and with docType=Metadata: 200, the same Flow JSON, valid against the official schema."""
    ids = processed(later, "01-ubl-invoice.xml")
    client = later.add_client("erp")
    plain = get(later, client, ids["01-ubl-invoice.xml"])
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    assert spec_errors("Flow", plain.json()) == []
    assert get(later, client, ids["01-ubl-invoice.xml"], docType="Metadata").json() == plain.json()


def test_another_senders_flow_answers_exactly_as_an_unknown_one(later: Service) -> None:
    """opdemat's flow asked by acme's client, and an id nobody has: the same 404 MISSING_RESOURCE body; its CDAR
    message too."""
    ids = processed(later, "01-initech-cii-basic.xml", sender="opdemat")
    client = later.add_client("erp")
    other = get(later, client, ids["01-initech-cii-basic.xml"])
    unknown = get(later, client, "20260101T000000000000-000000")
    message = get(later, client, f"{ids['01-initech-cii-basic.xml']}.0001", docType="Original")
    assert other.status_code == unknown.status_code == message.status_code == 404
    assert (
        other.json()
        == unknown.json()
        == message.json()
        == {
            "errorCode": "MISSING_RESOURCE",
            "errorMessage": "no flow with this id",
        }
    )


def test_original_is_the_archived_file_as_deposited(later: Service) -> None:
    """docType=Original of a processed flow: its bytes from the archive, as an attachment under its name, with its
    type (XML, PDF)."""
    ids = processed(later, "01-ubl-invoice.xml", "15-facturx-invoice.pdf")
    client = later.add_client("erp")
    xml = get(later, client, ids["01-ubl-invoice.xml"], docType="Original")
    assert xml.status_code == 200 and xml.content == (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    assert xml.headers["content-type"].startswith("application/xml")
    assert xml.headers["content-disposition"].startswith('attachment; filename="01-ubl-invoice.xml"')
    pdf = get(later, client, ids["15-facturx-invoice.pdf"], docType="Original")
    assert pdf.content == (FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes()
    assert pdf.headers["content-type"] == "application/pdf"


def test_original_of_a_failed_flow_comes_from_failed(later: Service, inject: Any) -> None:
    """A flow that failed for edi's own reason: Pending, and its Original is the payload kept in failed/."""
    later.workspace.drop("acme", "a.xml", (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes())
    inject("write.ack=eio")
    run_batch(later.workspace.settings, clock=FixedClock())
    (flow_id,) = [p.name for p in (later.workspace.root / "failed").iterdir()]
    client = later.add_client("erp")
    assert get(later, client, flow_id).json()["acknowledgement"] == {"status": "Pending"}
    original = get(later, client, flow_id, docType="Original")
    assert original.content == (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes()


def test_original_of_a_deposit_waiting_in_the_inbox_and_under_a_hostile_name(later: Service) -> None:
    """A deposit not claimed yet: its file from the inbox, named as the client named it, the name made safe for a
    header (no quote, no path, no control)."""
    row = deposit(later.workspace, "20261206T100000000000-bbbbbb", name='../evil"\r\nX-Injected: 1.xml')
    client = later.add_client("erp")
    original = get(later, client, row["flow_id"], docType="Original")
    assert original.status_code == 200
    assert original.content == (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    disposition = original.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and "\r" not in disposition and "/" not in disposition
    assert "x-injected" not in original.headers


def test_original_of_a_flow_a_crash_left_in_the_spool_comes_from_the_processs_hand(later: Service) -> None:
    """`edi batch` killed after the claim (SIGKILL): the flow is Pending and its Original is read from the spool,
    where the dead process's hand holds it."""
    from tests.test_processor_cdar import edi

    later.workspace.drop("acme", "a.xml", (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes())
    crashed = edi(later.workspace, "batch", faults="pipeline.after_received=crash")
    assert crashed.returncode == -9, crashed.stderr
    (held,) = (later.workspace.root / "spool" / "active").glob("*/2*")
    client = later.add_client("erp")
    assert get(later, client, held.name).json()["acknowledgement"] == {"status": "Pending"}
    original = get(later, client, held.name, docType="Original")
    assert original.content == (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()


def test_original_never_follows_a_link_a_sender_put_in_its_inbox(later: Service, tmp_path: Path) -> None:
    """A deposit's file replaced in the inbox by a symbolic link to another file (the sender can write there): 404,
    never the link's target."""
    row = deposit(later.workspace, "20261206T100000000000-cccccc")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the server's own file")
    inbox_file = later.workspace.inbox("acme") / row["inbox_name"]
    inbox_file.unlink()
    inbox_file.symlink_to(secret)
    answer = get(later, later.add_client("erp"), row["flow_id"], docType="Original")
    assert answer.status_code == 404 and b"server's own" not in answer.content


def test_original_of_a_cdar_message_is_the_message(later: Service) -> None:
    """A CDAR message edi wrote for the sender: its bytes from acks/, XML, named <message id>.cdar.xml."""
    ids = processed(later, "01-ubl-invoice.xml")
    client = later.add_client("erp")
    message = f"{ids['01-ubl-invoice.xml']}.0001"
    original = get(later, client, message, docType="Original")
    path = later.workspace.root / "acks" / "acme" / f"{message}.cdar.xml"
    assert original.status_code == 200 and original.content == path.read_bytes()
    assert original.headers["content-type"].startswith("application/xml")
    assert f'filename="{message}.cdar.xml"' in original.headers["content-disposition"]


def test_original_of_a_file_retention_removed_is_404(later: Service) -> None:
    """The flow is known but its file is gone: 404 MISSING_RESOURCE saying so, never a 500."""
    ids = processed(later, "01-ubl-invoice.xml")
    for path in (later.workspace.root / "archive").rglob("*01-ubl-invoice.xml"):
        path.unlink()
    answer = get(later, later.add_client("erp"), ids["01-ubl-invoice.xml"], docType="Original")
    assert answer.status_code == 404 and "no longer kept" in answer.json()["errorMessage"]


@pytest.mark.parametrize("doc_type", ["Converted", "ReadableView"])
def test_converted_and_readable_view_are_404_edi_keeps_neither(later: Service, doc_type: str) -> None:
    """edi converts nothing and renders no readable view: 404 MISSING_RESOURCE saying so (the flow exists)."""
    ids = processed(later, "01-ubl-invoice.xml")
    answer = get(later, later.add_client("erp"), ids["01-ubl-invoice.xml"], docType=doc_type)
    assert answer.status_code == 404
    assert answer.json() == {
        "errorCode": "MISSING_RESOURCE",
        "errorMessage": f"edi keeps no {doc_type} document of a flow: ask for Original",
    }


def test_a_bad_doc_type_or_a_too_long_id_is_400_and_no_token_is_401(later: Service) -> None:
    """docType outside the standard's enum and an id over 64 characters: 400 INVALID_REQUEST; no token: 401."""
    client = later.add_client("erp")
    assert get(later, client, "x", docType="Pdf").json()["errorCode"] == "INVALID_REQUEST"
    assert get(later, client, "x" * 65).status_code == 400
    assert later.http.get(f"{BASE}/v1/flows/x").status_code == 401
    assert later.http.post(f"{BASE}/v1/flows/search", json={"where": {"ackStatus": "Ok"}}).status_code == 401


def search(service: Service, client: Client, body: Any) -> Any:
    return service.http.post(f"{BASE}/v1/flows/search", json=body, headers=service.headers(client))


def test_search_answers_the_standards_search_content_page_by_page(later: Service) -> None:
    """POST /v1/flows/search: 200, valid against the official SearchFlowContent; limit echoed, filters echoed, and
    nextCursor leads through every flow once."""
    processed(later, "01-ubl-invoice.xml", "03-cii-invoice.xml", "12-empty.xml")
    client = later.add_client("erp")
    where = {"flowDirection": ["Out", "In"]}
    seen, body = [], {"where": where, "limit": 2}
    for _ in range(10):
        page = search(later, client, body)
        assert page.status_code == 200 and spec_errors("SearchFlowContent", page.json()) == []
        assert (page.json()["limit"], page.json()["filters"]) == (2, where)
        seen += page.json()["results"]
        if "nextCursor" not in page.json():
            break
        body = {"where": where, "limit": 2, "cursor": page.json()["nextCursor"]}
    assert len(seen) == len({f["flowId"] for f in seen}) == 6  # 3 flows, 3 CDAR messages


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"limit": 3}, 400, "MISSING_REQUIRED_FIELD"),
        ({"where": {}}, 400, "INVALID_REQUEST"),
        ({"where": {"ackStatus": "Ok"}, "cursor": "forged"}, 400, "INVALID_REQUEST"),
        ({"where": {"ackStatus": "Ok"}, "limit": 1000}, 400, "INVALID_REQUEST"),
    ],
    ids=lambda v: json.dumps(v)[:40],
)
def test_a_refused_search_is_the_standards_error_body(later: Service, body: Any, status: int, code: str) -> None:
    """A search without where, with an empty one, a forged cursor, a limit over 100: 400 with the Error body."""
    answer = search(later, later.add_client("erp"), body)
    assert answer.status_code == status and answer.json()["errorCode"] == code
    assert spec_errors("Error", answer.json()) == []


def test_a_search_that_is_not_json_or_too_big_is_refused(later: Service) -> None:
    """Not JSON, or brackets nested past what a parser follows: 400; a body over 64 KiB: 413, read no further."""
    headers = later.headers(later.add_client("erp")) | {"content-type": "application/json"}
    assert later.http.post(f"{BASE}/v1/flows/search", content=b"{", headers=headers).status_code == 400
    nested = b"[" * 60_000 + b"]" * 60_000
    assert later.http.post(f"{BASE}/v1/flows/search", content=nested, headers=headers).status_code == 413
    deep = b"[" * 30_000 + b"]" * 30_000
    assert later.http.post(f"{BASE}/v1/flows/search", content=deep, headers=headers).status_code == 400
    big = json.dumps({"where": {"trackingId": "x" * 70_000}}).encode()
    assert later.http.post(f"{BASE}/v1/flows/search", content=big, headers=headers).status_code == 413
