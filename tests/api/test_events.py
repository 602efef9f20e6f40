"""The webhooks' events (edi.api.events): what an acknowledgement queues, for whom, in the transaction that records
it; the outbox's claims, back-off and releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from edi.api.events import Policy, claim_due, events_of, policy_for, prune, record_retry, release
from edi.cli import main
from edi.config import ApiSettings, Settings
from edi.store import open_store
from edi.tracking import Tracking
from tests.api.conftest import BASE, Service
from tests.conftest import FLOWS
from tests.hook_server import HookServer
from tests.notify.conftest import invoice_ack, invoice_ref, status_ack

ACCEPTED = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def test_an_invoice_flow_is_itself_and_its_cdar_messages() -> None:
    """An invoice flow is an Out CustomerInvoice (Ok when integrated, partly integrated too; Error when rejected), and
    each of its documents' CDAR messages an In CustomerInvoiceLC, Ok, flowId <flow_id>.<nnnn>."""
    partial = invoice_ack("F1", "acme", [{"status": "200"}, {"status": "213"}])
    own, *messages = events_of(partial)
    assert (own.sender, own.flow_id, own.direction) == ("acme", "F1", "Out")
    assert own.flow_types == {"CustomerInvoice"} and own.statuses == {"Ok"}
    assert [(m.flow_id, m.direction, set(m.flow_types), set(m.statuses)) for m in messages] == [
        ("F1.0001", "In", {"CustomerInvoiceLC"}, {"Ok"}),
        ("F1.0002", "In", {"CustomerInvoiceLC"}, {"Ok"}),
    ]
    assert events_of(invoice_ack("F2", "acme", [{"status": "213"}]))[0].statuses == {"Error"}
    assert events_of(invoice_ack("F3", "acme", [{"status": "200"}]))[0].statuses == {"Ok"}


def test_a_status_flow_relays_to_the_invoices_sender() -> None:
    """A recipient's status flow is an Out SupplierInvoiceLC of the recipient's sender; the status it relays is an
    In CustomerInvoiceLC of the invoice's sender (not the recipient's); a status already known relays nothing."""
    ack = status_ack(
        "S1",
        "mairie",
        [
            {"status": "204", "invoice": invoice_ref("F1")},
            {"status": "205", "invoice": invoice_ref("F9"), "known": True},
        ],
    )
    own, relayed = events_of(ack)
    assert (own.sender, own.flow_id, set(own.flow_types)) == ("mairie", "S1", {"SupplierInvoiceLC"})
    assert (relayed.sender, relayed.flow_id, set(relayed.flow_types), relayed.direction) == (
        "acme",
        "S1.0001",
        {"CustomerInvoiceLC"},
        "In",
    )


def test_a_file_refused_whole_is_queued_whatever_its_type() -> None:
    """A file refused whole (no document) may be any type: the Flow JSON decides at sending; its CDAR 501 is an
    event too."""
    ack = invoice_ack("F1", "acme", []) | {"cdar": "F1.0000.cdar.xml"}
    own, message = events_of(ack)
    assert own.flow_types == {"CustomerInvoice", "SupplierInvoiceLC", "Undefined"} and own.statuses == {"Error"}
    assert message.flow_id == "F1.0000"


def test_no_policy_without_an_allowed_host() -> None:
    """With the API off, or no host allowed, nothing is queued (no policy on the store)."""
    assert policy_for(Settings()) is None
    assert policy_for(Settings(api=ApiSettings(webhook_allowed_hosts=("erp.example.fr",)))) is not None
    off = ApiSettings(enabled=False, webhook_allowed_hosts=("erp.example.fr",))
    assert policy_for(Settings(api=off)) is None


def test_events_are_queued_with_the_outcome_once(hooked: Service, hooks: HookServer) -> None:
    """`edi batch` queues the events in the transaction that records the outcome (the same instant as the flow's
    updated_at); recording the same outcome again queues nothing more."""
    ws = hooked.workspace
    client = hooked.add_client("erp")
    hooks.script = [500]
    made = hooked.http.post(f"{BASE}/v1/webhooks", json={"callbackUrl": hooks.url()}, headers=hooked.headers(client))
    assert made.status_code == 201
    ws.drop("acme", "01.xml", ACCEPTED)
    assert CliRunner().invoke(main, ["--config", str(ws.config), "batch"]).exit_code == 0
    store = open_store(ws.settings.workspace.layout())
    try:
        (flow,) = store.db.query("SELECT flow_id, updated_at FROM flows")
        rows = list(store.db.query("SELECT * FROM api_webhook_events ORDER BY id"))
        assert [r["flow_id"] for r in rows] == [flow["flow_id"], f"{flow['flow_id']}.0001"]
        assert {r["queued_at"] for r in rows} == {flow["updated_at"]}
        ack = invoice_ack(flow["flow_id"], "acme", [{"status": "200"}])
        store.webhooks = Policy()
        store.record_outcomes([ack], AT + timedelta(days=1))
        assert store.db.execute("SELECT count(*) FROM api_webhook_events").fetchone()[0] == 2
    finally:
        store.close()


def _queue(store: Tracking, webhook: str, sender: str, flow_ids: list[str]) -> None:
    with store.transaction():
        store.db.conn.execute(
            "INSERT OR IGNORE INTO api_clients (client_id, name, sender, secret_hash, created_at) "
            "VALUES ('c1', 'erp', ?, 'x', '')",
            [sender],
        )
        store.db.conn.execute(
            "INSERT INTO api_webhooks (webhook_id, client_id, callback_url, flow_types, created_at) "
            "VALUES (?, 'c1', 'https://erp.example.fr/h', '[]', '')",
            [webhook],
        )
        store.db.conn.executemany(
            "INSERT INTO api_webhook_events (webhook_id, sender, flow_id, queued_at, state, attempts, next_attempt_at)"
            " VALUES (?, ?, ?, ?, 'queued', 0, ?)",
            [[webhook, sender, f, "2026-12-05T10:00:00.000Z", "2026-12-05T10:00:00.000Z"] for f in flow_ids],
        )


def test_two_senders_never_claim_the_same_event(hooked: Service) -> None:
    """A claimed event is not due for another process until its lease ends or it is released (then due at once,
    the attempt not counted); a retry waits the back-off, doubling."""
    layout = hooked.workspace.settings.workspace.layout()
    first, second = open_store(layout), open_store(layout)
    try:
        _queue(first, "w1", "acme", ["F1", "F2"])
        claimed = claim_due(first, AT, AT + timedelta(minutes=5), 10)
        assert [d.flow_id for d in claimed] == ["F1", "F2"] and claimed[0].attempts == 1
        assert claim_due(second, AT + timedelta(minutes=4), AT + timedelta(minutes=9), 10) == []
        release(first, claimed[1:], AT)
        api = ApiSettings(webhook_retry_seconds=30, webhook_retry_max_seconds=100)
        assert record_retry(first, claimed[:1], AT, "down", None, api) == (1, 0)
        again = claim_due(second, AT + timedelta(seconds=1), AT + timedelta(minutes=5), 10)
        assert [(d.flow_id, d.attempts) for d in again] == [("F2", 1)]
        (retried,) = claim_due(second, AT + timedelta(seconds=30), AT + timedelta(minutes=5), 10)
        assert (retried.flow_id, retried.attempts) == ("F1", 2)
        record_retry(second, [retried], AT + timedelta(seconds=30), "down", 500, api)
        assert claim_due(first, AT + timedelta(seconds=89), AT + timedelta(minutes=5), 10) == []  # 30 s, then 60
        assert [d.flow_id for d in claim_due(first, AT + timedelta(seconds=90), AT, 10)] == ["F1"]
    finally:
        first.close()
        second.close()


def test_an_event_whose_client_is_gone_is_skipped(hooked: Service) -> None:
    """An event whose webhook's client was removed is not claimed: it is skipped, saying why."""
    layout = hooked.workspace.settings.workspace.layout()
    store = open_store(layout)
    try:
        _queue(store, "w1", "acme", ["F1"])
        with store.transaction():
            store.db.conn.execute("DELETE FROM api_clients")
        assert claim_due(store, AT, AT + timedelta(minutes=5), 10) == []
        (row,) = store.db.query("SELECT state, last_error FROM api_webhook_events")
        assert row["state"] == "skipped" and "gone" in row["last_error"]
    finally:
        store.close()


def test_retention_prunes_only_events_done_with(hooked: Service) -> None:
    """Retention deletes the events sent, failed or skipped before its cutoff, never a queued one."""
    store = open_store(hooked.workspace.settings.workspace.layout())
    try:
        _queue(store, "w1", "acme", ["F1", "F2", "F3", "F4"])
        with store.transaction():
            store.db.conn.execute(
                "UPDATE api_webhook_events SET state = CASE flow_id WHEN 'F1' THEN 'sent' WHEN 'F2' THEN 'failed' "
                "WHEN 'F3' THEN 'skipped' ELSE 'queued' END"
            )
        assert prune(store, datetime(2026, 12, 5, 9, tzinfo=UTC)) == 0  # all queued at 10:00
        assert prune(store, AT + timedelta(days=1)) == 3
        assert [r["flow_id"] for r in store.db.query("SELECT flow_id FROM api_webhook_events")] == ["F4"]
    finally:
        store.close()
