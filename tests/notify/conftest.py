"""Fixtures of the notification tests: a real SMTP server on a free port of 127.0.0.1, workspaces whose senders
have contact addresses and whose [notifications] point at it, and acknowledgements shaped as the processor (and,
for status flows, the shared contract of issue 24) writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace
from tests.smtp_server import SmtpServer, free_port, self_signed

NOTIFY_CONFIG = """
[workspace]
root = "ws"

[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0

[[senders]]
id = "acme"
sellers = ["123456782"]
email = ["factures@acme.example", "compta@acme.example"]

[[senders]]
id = "opdemat"
sellers = ["*"]
email = ["ops@opdemat.example"]

[[senders]]
id = "silent"
sellers = ["*"]

[[senders]]
id = "mairie"
sellers = []
recipients = ["ville-exemple"]

[routing]
unknown_recipient = "reject"
directory = "{directory}"
queues = ["ville-exemple-voirie"]

[[routing.rules]]
recipient = "ville-exemple"
service = "VOIRIE"
queue = "ville-exemple-voirie"

[notifications]
smtp_host = "127.0.0.1"
smtp_port = PORT
security = "SECURITY"
from_address = "edi@platform.example"
retry_seconds = 60
"""


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def smtp(port: int) -> Iterator[SmtpServer]:
    """A plain SMTP server, running for the test."""
    server = SmtpServer(port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = self_signed(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("openssl not found")
    return made


@pytest.fixture
def notify_workspace(make_workspace: Callable[..., Workspace], port: int) -> Callable[..., Workspace]:
    """A workspace whose [notifications] send to 127.0.0.1:port (``security``; ``extra`` lines added to the
    section)."""

    def make(security: str = "none", extra: str = "") -> Workspace:
        text = NOTIFY_CONFIG.replace("PORT", str(port)).replace("SECURITY", security) + extra
        return make_workspace(text)

    return make


def invoice_ack(
    flow_id: str,
    sender: str,
    documents: list[dict[str, Any]],
    *,
    file_name: str = "batch.zip",
    findings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A final acknowledgement of an invoice flow: each document gives at least its status (and may give index,
    reason, invoice_number, findings, name)."""
    docs = []
    for i, doc in enumerate(documents, start=1):
        docs.append(
            {
                "index": i,
                "name": f"invoice-{i}.xml",
                "reason": None,
                "findings": [],
                "invoice_number": f"F-{i}",
                "issue_date": "2026-11-20",
                "seller_id": "123456782",
                "cdar": f"{flow_id}.{i:04d}.cdar.xml",
            }
            | doc
        )
    accepted = sum(d["status"] == "200" for d in docs)
    status = "IN_INTEGRE" if docs and accepted == len(docs) else "IN_INTEGRE_PARTIEL" if accepted else "IN_REJETE"
    return {
        "flow_id": flow_id,
        "sender": sender,
        "file_name": file_name,
        "received_at": "2026-12-05T10:00:00.000Z",
        "processed_at": "2026-12-05T10:00:01.000Z",
        "status": status,
        "documents_total": len(docs),
        "documents_accepted": accepted,
        "findings": findings or [],
        "documents": docs,
    }


def finding(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A fatal finding as acknowledgements carry it."""
    return {"code": code, "reason": code, "severity": "fatal", "layer": "route", "message": message} | extra


def status_ack(flow_id: str, partner: str, statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """A status flow's acknowledgement as the shared contract shapes it: each document a CDAR message whose
    ``lifecycle`` object says the status (``status``, ``known``, ``invoice``: a dict or None, ``reason``, ``text``;
    ``refused`` makes the document refused)."""
    docs = []
    for i, given in enumerate(statuses, start=1):
        refused = given.get("refused", False)
        invoice = given.get("invoice")
        docs.append(
            {
                "index": i,
                "name": f"status-{i}.xml",
                "status": "213" if refused else "200",
                "reason": "REJ_SEMAN" if refused else None,
                "findings": [finding("REJ_SEMAN", "refused")] if refused else [],
                "lifecycle": {
                    "status": given["status"],
                    "reason": given.get("reason"),
                    "text": given.get("text"),
                    "set_at": "2026-12-05T09:00:00.000Z",
                    "known": given.get("known", False),
                    "invoice": invoice,
                    "relay": None if refused or given.get("known") else f"{flow_id}.{i:04d}.cdar.xml",
                },
            }
        )
    accepted = sum(d["status"] == "200" for d in docs)
    return {
        "flow_id": flow_id,
        "sender": partner,
        "file_name": "statuses.zip",
        "received_at": "2026-12-05T10:00:00.000Z",
        "processed_at": "2026-12-05T10:00:01.000Z",
        "status": "IN_INTEGRE" if accepted == len(docs) else "IN_INTEGRE_PARTIEL" if accepted else "IN_REJETE",
        "documents_total": len(docs),
        "documents_accepted": accepted,
        "findings": [],
        "documents": docs,
    }


def invoice_ref(flow_id: str, index: int = 1, sender: str = "acme", number: str = "F-1") -> dict[str, Any]:
    """The ``invoice`` of a status's lifecycle object."""
    return {
        "flow_id": flow_id,
        "index": index,
        "sender": sender,
        "invoice_number": number,
        "seller_id": "123456782",
        "issue_date": "2026-11-20",
        "type_code": "380",
    }
