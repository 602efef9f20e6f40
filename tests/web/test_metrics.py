"""/metrics: Prometheus text whose numbers are the store's and the folders', for an operator's session or the
configured bearer token only."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEFAULT_CONFIG, Workspace
from tests.console_store import NOW, client, store_of

TOKEN = "s3cret-metrics-token-0123456789"


@pytest.fixture
def scraped(make_workspace: Callable[..., Workspace]) -> Workspace:
    """A workspace with a metrics token, flows of each outcome, findings, runs, files in an inbox and the spool."""
    workspace = make_workspace(DEFAULT_CONFIG + f'\n[console]\nmetrics_token = "{TOKEN}"\n')
    with store_of(workspace) as s:
        rejected = s.flow("acme", NOW - timedelta(hours=1), "IN_REJETE")
        s.document(rejected, 1, status="213", reason="REJ_SEMAN")
        s.document(rejected, 2, status="501", reason="IRR_SYNTAX")
        for n in range(2):
            s.document(s.flow("opdemat", NOW - timedelta(hours=2 + n), "IN_INTEGRE"), 1)
        s.finding(rejected, "BR-01")
        s.finding(rejected, "BR-01", idx=2)
        s.finding(rejected, 'R"quoted"\\', layer="xsd")
        s.finding(rejected, "BR-W", severity="warning")
        s.run("batch", NOW - timedelta(minutes=30), 42.5)
        s.account("olga")
        s.account("acme-ops", sender="acme")
    layout = workspace.settings.workspace.layout()
    for name, age in (("a.xml", 600), ("b.xml", 60), (".uploading", 9999)):
        path = layout.sender_inbox("acme") / name
        path.write_bytes(b"<x/>")
        os.utime(path, (NOW.timestamp() - age, NOW.timestamp() - age))  # ages against the console's clock
    (layout.failed / "20261126T100000000000-abcdef").mkdir(parents=True)
    return workspace


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_numbers_are_the_stores_and_the_folders(scraped: Workspace) -> None:
    """Flows by status (every status, zeros too), documents by status and reason, fatal findings by rule (a rule id
    with quotes and a backslash survives the escaping), inbox and spool depth and age, the last run's duration."""
    answer = client(scraped, "olga").get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    got = samples(answer.text)
    assert got[("edi_flows", (("status", "IN_REJETE"),))] == 1
    assert got[("edi_flows", (("status", "IN_INTEGRE"),))] == 2
    assert got[("edi_flows", (("status", "IN_EN_ATTENTE_RETRAITEMENT"),))] == 0
    assert got[("edi_documents", (("reason", ""), ("status", "200")))] == 2
    assert got[("edi_documents", (("reason", "IRR_SYNTAX"), ("status", "501")))] == 1
    assert got[("edi_findings_fatal", (("rule", "BR-01"),))] == 2
    assert got[("edi_findings_fatal", (("rule", 'R"quoted"\\'),))] == 1
    assert ("edi_findings_fatal", (("rule", "BR-W"),)) not in got
    assert got[("edi_findings_fatal_other", ())] == 0
    assert got[("edi_inbox_files", (("sender", "acme"),))] == 2
    assert got[("edi_inbox_files", (("sender", "opdemat"),))] == 0
    assert 590 <= got[("edi_inbox_oldest_age_seconds", (("sender", "acme"),))] < 700
    assert got[("edi_spool_files", (("area", "failed"),))] == 1
    assert got[("edi_spool_files", (("area", "active"),))] == 0
    assert got[("edi_run_duration_seconds", (("job", "batch"), ("outcome", "ok")))] == 42.5


def test_the_bearer_token_opens_it_and_nothing_else_does(scraped: Workspace) -> None:
    """The configured token reads the metrics without a session; no session, a wrong token or another scheme is a
    401 asking for a bearer token; a sender's session is a 403."""
    anonymous = client(scraped)
    assert anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert anonymous.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    for headers in (
        {},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ):
        answer = anonymous.get("/metrics", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
        assert "edi_flows" not in answer.text
    assert client(scraped, "acme-ops").get("/metrics").status_code == 403


def test_without_a_token_only_an_operator_reads_it(workspace: Workspace) -> None:
    """With no metrics_token configured, an empty bearer token opens nothing: an operator's session is needed."""
    with store_of(workspace) as s:
        s.account("olga")
    assert client(workspace).get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client(workspace).get("/metrics", headers={"Authorization": "Bearer None"}).status_code == 401
    assert client(workspace, "olga").get("/metrics").status_code == 200
