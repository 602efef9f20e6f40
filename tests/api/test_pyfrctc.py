"""A client written for other platforms, unchanged: pyfrctc's send_flow, search_flows and get_flow (akretion's AFNOR
Flow Service client, from PyPI) against a live `edi serve` on 127.0.0.1 (the real executable), through its own OAuth2
client-credentials session, its platform table pointed at the local server: deposit, `edi batch`, find, download."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edi.api import clients
from edi.api.flows import SETTLE
from edi.store import open_store
from tests.api.live import edi_batch
from tests.conftest import FLOWS, Workspace
from tests.test_serve import ready_url

pyfrctc = pytest.importorskip("pyfrctc")

EDI = Path(sys.executable).parent / "edi"
INVOICE = FLOWS / "acme" / "01-ubl-invoice.xml"
INVALID = FLOWS / "acme" / "10-schema-invalid.xml"


@pytest.fixture
def server(workspace: Workspace, tmp_path: Path) -> Iterator[str]:
    """A live `edi serve --port 0` of the workspace (its log in a file); its URL."""
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [str(EDI), "--config", str(workspace.config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "EDI_FAULTS": ""},
        )
        try:
            yield ready_url(process).rstrip("/")
        finally:
            process.terminate()
            process.communicate(timeout=30)


@pytest.fixture
def session(server: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Any:
    """pyfrctc's own OAuth2 session (client credentials) for a client of acme, its platform table naming edi."""
    store = open_store(workspace.settings.workspace.layout())
    try:
        client, secret = clients.add_client(store, "odoo", "acme", datetime.now(UTC))
    finally:
        store.close()
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on the loopback
    platform = {
        "afnor_base_url": server,
        "token_url": f"{server}/oauth2/token",
        "authorize_url": f"{server}/oauth2/authorize",
        "label": "edi",
    }
    monkeypatch.setitem(pyfrctc.pyfrctc.PLATFORMS, "edi", platform)
    kept: dict[str, Any] = {"access_token": None, "expires_at": None}
    return pyfrctc.get_session(
        "edi", "client_credentials", "acme", lambda _: kept, kept.update, client.client_id, secret
    )


def batch(ws: Workspace) -> None:
    """`edi batch` (the real executable), then time for what it recorded to settle for searches."""
    edi_batch(ws)
    time.sleep(SETTLE.total_seconds() + 0.2)


def test_pyfrctc_deposits_finds_and_downloads_through_edi(session: Any, workspace: Workspace) -> None:
    """send_flow gets the 202's flowId; get_flow says Pending until `edi batch`, then Ok; search_flows (its
    updatedAfter paging) finds the flow (Out) and its CDAR message (In, CustomerInvoiceLC); get_flow Original gives
    back the invoice as sent and the CDAR message as edi wrote it, which pyfrctc's own CDAR XSD check accepts."""
    since = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sent = pyfrctc.send_flow(session, INVOICE.read_bytes(), "F-2026-001.xml", "UBL", "B2B")
    flow_id = sent["flowId"]
    assert pyfrctc.get_flow(session, flow_id)["acknowledgement"] == {"status": "Pending"}

    batch(workspace)
    metadata = pyfrctc.get_flow_metadata_parsed(session, flow_id)
    assert (metadata["state"], metadata["flow_direction"], metadata["name"]) == ("done", "out", "F-2026-001.xml")

    found = pyfrctc.search_flows(session, since, None, None)
    assert {(f["flowId"], f["flowDirection"]) for f in found} == {(flow_id, "Out"), (f"{flow_id}.0001", "In")}
    (message,) = pyfrctc.search_flows(session, since, "In", "CustomerInvoiceLC")
    assert (message["flowId"], message["flowSyntax"]) == (f"{flow_id}.0001", "CDAR")

    assert pyfrctc.get_flow(session, flow_id, "Original") == INVOICE.read_bytes()
    cdar = pyfrctc.get_flow(session, message["flowId"], "Original")
    assert cdar == (workspace.root / "acks" / "acme" / f"{flow_id}.0001.cdar.xml").read_bytes()
    pyfrctc.check_cdar_xsd(cdar)  # raises if pyfrctc's copy of the official XSD refuses it


def test_pyfrctc_reads_a_refused_flows_details(session: Any, workspace: Workspace) -> None:
    """A flow refused by the XSD: pyfrctc's parsed state is error, its details name InvalidSchema; an unknown id is
    pyfrctc's RuntimeError with edi's 404 MISSING_RESOURCE."""
    sent = pyfrctc.send_flow(session, INVALID.read_bytes(), "bad.xml", "UBL", "B2B")
    batch(workspace)
    parsed = pyfrctc.get_flow_metadata_parsed(session, sent["flowId"])
    assert parsed["state"] == "error"
    assert "(code: InvalidSchema)" in parsed["ap_error_details"]
    with pytest.raises(RuntimeError, match="MISSING_RESOURCE"):
        pyfrctc.get_flow(session, "20260101T000000000000-000000")
