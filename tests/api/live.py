"""A live `edi serve` (the real executable, `--port 0`) of a workspace, with an API client of sender acme and its
token: for the tests that need the server in a process of its own (crashes, contract, real clients)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from edi.api import clients
from edi.store import open_store
from tests.api.conftest import BASE
from tests.conftest import FLOWS, Workspace
from tests.test_serve import ready_url

EDI = Path(sys.executable).parent / "edi"
UBL = FLOWS / "acme" / "01-ubl-invoice.xml"
INFO = json.dumps({"name": "F-2026-001.xml", "flowSyntax": "UBL"})


class Live:
    """A live `edi serve --port 0` of a workspace (with EDI_FAULTS set to ``faults``) and a client's token."""

    def __init__(self, ws: Workspace, faults: str = "") -> None:
        self.process = subprocess.Popen(
            [str(EDI), "--config", str(ws.config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "EDI_FAULTS": faults},
        )
        self.url = ready_url(self.process).rstrip("/")
        store = open_store(ws.settings.workspace.layout())
        try:
            client, self.secret = clients.add_client(store, f"erp-{secrets.token_hex(3)}", "acme", datetime.now(UTC))
        finally:
            store.close()
        self.client_id = client.client_id
        token = httpx.post(
            f"{self.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.secret),
            timeout=30,
        )
        assert token.status_code == 200, token.text
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def deposit(self, data: bytes, info: str = INFO) -> httpx.Response:
        """POST {base}/v1/flows to the live server."""
        return httpx.post(
            f"{self.url}{BASE}/v1/flows",
            headers=self.headers,
            files={"flowInfo": (None, info, "application/json"), "file": ("f", data, "application/xml")},
            timeout=60,
        )

    def kill(self) -> None:
        """kill -9."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)


def edi_batch(ws: Workspace) -> subprocess.CompletedProcess[str]:
    """`edi batch` (the real executable, no faults)."""
    result = subprocess.run(
        [str(EDI), "--config", str(ws.config), "batch"],
        capture_output=True,
        text=True,
        env={**os.environ, "EDI_FAULTS": ""},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result
