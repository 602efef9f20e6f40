"""Webhook delivery (edi.api.deliver) to a real HTTP server on 127.0.0.1: each event once, signed as the standard
says, retried with back-off, never for another sender's flows, never for a deleted webhook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from edi.api.deliver import PASS_SECONDS, deliver_due
from edi.cli import main
from edi.errors import InjectedFault
from edi.store import open_store
from tests.api.conftest import BASE, Client, Service
from tests.api.test_deposit import deposit
from tests.conftest import FLOWS, FixedClock, Workspace
from tests.hook_server import Call, HookServer
from tests.lifecycle.statuses import status_message
from tests.lifecycle.test_intake import PARTNERS
from tests.test_serve import ready_url, start

HOOKS = f"{BASE}/v1/webhooks"
ACCEPTED = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
REJECTED = (FLOWS / "acme" / "05-unknown-recipient.xml").read_bytes()  # 213 DEST_INC
OPDEMAT = (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes()


def subscribe(service: Service, client: Client, url: str, **filters: Any) -> dict[str, str]:
    """Create a webhook for ``client``; its WebhookIdParam."""
    made = service.http.post(HOOKS, json={"callbackUrl": url, **filters}, headers=service.headers(client))
    assert made.status_code == 201, made.text
    return dict(made.json())


def batch(ws: Workspace) -> str:
    """Run `edi batch` (which delivers what is due before it exits); its output."""
    result = CliRunner().invoke(main, ["--config", str(ws.config), "batch"])
    assert result.exit_code == 0, result.output
    return result.output


def later(seconds: float) -> FixedClock:
    return FixedClock(datetime.now(UTC) + timedelta(seconds=seconds))


def signed(call: Call, signing_key: str) -> bool:
    """Whether the call carries the standard's signature: base64 HMAC-SHA-256 over ``<body>@<timestamp>``."""
    stamp = call.headers["afnor-signature-timestamp"]
    mac = hmac.new(base64.b64decode(signing_key), call.body + b"@" + stamp.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(mac).decode(), call.headers["afnor-signature"])


def flow_ids(ws: Workspace, sender: str) -> set[str]:
    """The flowIds of a sender: its flows and the CDAR messages edi wrote in its acks folder."""
    folder = ws.root / "acks" / sender
    return {p.name.removesuffix(".json") for p in ws.acks(sender)} | {
        p.name.removesuffix(".cdar.xml") for p in folder.glob("*.cdar.xml")
    }


def events(ws: Workspace) -> list[dict[str, Any]]:
    store = open_store(ws.settings.workspace.layout())
    try:
        return list(store.db.query("SELECT * FROM api_webhook_events ORDER BY id"))
    finally:
        store.close()


def test_a_callback_that_fails_then_succeeds_gets_each_event_once_signed(hooked: Service, hooks: HookServer) -> None:
    """`edi batch` queues an event per flow and per CDAR message, and calls the callback before it exits: it answers
    500, so the pass stops calling it; after the back-off the next pass delivers every event, each once, each
    signed with the webhook's key over the body as sent, the body the Flow JSON; a later pass sends nothing."""
    ws = hooked.workspace
    made = subscribe(hooked, hooked.add_client("erp"), hooks.url())
    ws.drop("acme", "01.xml", ACCEPTED)
    ws.drop("acme", "05.xml", REJECTED)
    hooks.script = [500]
    output = batch(ws)
    assert "webhooks: 0 sent, 4 to retry" in output and "answered 500" in output
    assert len(hooks.got()) == 1
    assert {e["state"] for e in events(ws)} == {"queued"}
    report = deliver_due(ws.settings, clock=later(31))
    assert (report.sent, report.retrying) == (4, 0), report
    calls = hooks.got()[1:]
    sent = [json.loads(c.body)["flowId"] for c in calls]
    assert sorted(sent) == sorted(flow_ids(ws, "acme")) and len(set(sent)) == 4
    assert all(signed(c, made["signingKey"]) for c in calls)
    assert all(c.headers["content-type"] == "application/json" for c in calls)
    assert all(
        c.body == json.dumps(json.loads(c.body), ensure_ascii=False, separators=(",", ":")).encode() for c in calls
    )
    assert deliver_due(ws.settings, clock=later(7200)).tried is False
    assert len(hooks.got()) == 5
    assert {e["state"] for e in events(ws)} == {"sent"}


def test_a_signature_made_with_another_key_does_not_verify(hooked: Service, hooks: HookServer) -> None:
    """The signature depends on the webhook's key: two webhooks of the same callback get different signatures, each
    valid only with its own key."""
    client = hooked.add_client("erp")
    first, second = subscribe(hooked, client, hooks.url("/a")), subscribe(hooked, client, hooks.url("/b"))
    hooked.workspace.drop("acme", "01.xml", ACCEPTED)
    batch(hooked.workspace)
    a, b = hooks.got("/a"), hooks.got("/b")
    assert a and len(a) == len(b)
    assert all(signed(c, first["signingKey"]) and not signed(c, second["signingKey"]) for c in a)
    assert all(signed(c, second["signingKey"]) for c in b)


def test_another_senders_flows_never_reach_a_clients_webhook(hooked: Service, hooks: HookServer) -> None:
    """Two senders' clients each with a webhook that filters nothing: each callback gets its own sender's flows and
    messages only, and no event of one sender is queued for the other's webhook."""
    ws = hooked.workspace
    subscribe(hooked, hooked.add_client("erp", "acme"), hooks.url("/acme"))
    subscribe(hooked, hooked.add_client("ops", "opdemat"), hooks.url("/opdemat"))
    ws.drop("acme", "01.xml", ACCEPTED)
    ws.drop("opdemat", "01.xml", OPDEMAT)
    batch(ws)
    for sender in ("acme", "opdemat"):
        got = {json.loads(c.body)["flowId"] for c in hooks.got(f"/{sender}")}
        assert got == flow_ids(ws, sender) and got
    assert flow_ids(ws, "acme").isdisjoint(flow_ids(ws, "opdemat"))
    assert {(e["sender"], e["state"]) for e in events(ws)} == {("acme", "sent"), ("opdemat", "sent")}


def test_a_deleted_webhook_gets_nothing_more(hooked: Service, hooks: HookServer) -> None:
    """Events queued for a webhook that is then deleted are never sent (skipped, saying why), and new flows queue
    nothing for it."""
    ws = hooked.workspace
    client = hooked.add_client("erp")
    made = subscribe(hooked, client, hooks.url())
    ws.drop("acme", "01.xml", ACCEPTED)
    hooks.script = [503]
    batch(ws)
    assert len(hooks.got()) == 1
    assert hooked.http.delete(f"{HOOKS}/{made['webhookId']}", headers=hooked.headers(client)).status_code == 204
    assert deliver_due(ws.settings, clock=later(31)).sent == 0
    ws.drop("acme", "02.xml", REJECTED)
    batch(ws)
    assert deliver_due(ws.settings, clock=later(3600)).sent == 0
    assert len(hooks.got()) == 1
    rows = events(ws)
    assert len(rows) == 2 and {r["state"] for r in rows} == {"skipped"}
    assert all("deleted" in r["last_error"] for r in rows)


def test_the_filters_choose_the_events(hooked: Service, hooks: HookServer) -> None:
    """ackStatus Error with flowTypes [CustomerInvoice] gets the rejected invoice flow only; flowDirection In with
    flowTypes [CustomerInvoiceLC] gets edi's CDAR messages only (flowIds <flow_id>.<nnnn>)."""
    ws = hooked.workspace
    client = hooked.add_client("erp")
    subscribe(hooked, client, hooks.url("/errors"), flowTypes=["CustomerInvoice"], ackStatus="Error")
    subscribe(hooked, client, hooks.url("/lifecycle"), flowTypes=["CustomerInvoiceLC"], flowDirection="In")
    ws.drop("acme", "01.xml", ACCEPTED)
    batch(ws)
    ws.drop("acme", "05.xml", REJECTED)
    batch(ws)
    rejected = next(
        json.loads(p.read_text())["flow_id"]
        for p in ws.acks("acme")
        if json.loads(p.read_text())["status"] == "IN_REJETE"
    )
    errors = [json.loads(c.body) for c in hooks.got("/errors")]
    assert [f["flowId"] for f in errors] == [rejected]
    assert errors[0]["acknowledgement"]["status"] == "Error"
    lifecycle = [json.loads(c.body) for c in hooks.got("/lifecycle")]
    messages = {p.name.removesuffix(".cdar.xml") for p in (ws.root / "acks" / "acme").glob("*.cdar.xml")}
    assert {f["flowId"] for f in lifecycle} == messages and len(messages) == 2
    assert {(f["flowType"], f["flowDirection"]) for f in lifecycle} == {("CustomerInvoiceLC", "In")}


def test_an_event_not_delivered_in_time_is_given_up(hooked: Service, hooks: HookServer) -> None:
    """A callback that keeps failing is tried with growing back-off, and the event is failed (kept, with the last
    error) once webhook_give_up_seconds have passed since it was queued; nothing is sent after that."""
    ws = hooked.workspace
    subscribe(hooked, hooked.add_client("erp"), hooks.url(), flowTypes=["CustomerInvoice"])
    ws.drop("acme", "01.xml", ACCEPTED)
    hooks.script = [500] * 10
    batch(ws)
    assert deliver_due(ws.settings, clock=later(20)).tried is False  # not due before the back-off (30 s)
    assert deliver_due(ws.settings, clock=later(31)).retrying == 1
    assert deliver_due(ws.settings, clock=later(31 + 59)).tried is False  # then 60 s
    assert deliver_due(ws.settings, clock=later(92)).retrying == 1
    given_up = deliver_due(ws.settings, clock=later(3601))
    assert (given_up.failed, given_up.sent) == (1, 0)
    (row,) = events(ws)
    assert row["state"] == "failed" and "given up" in row["last_error"] and row["answered"] == 500
    assert deliver_due(ws.settings, clock=later(7200)).tried is False
    assert len(hooks.got()) == 4


def test_a_partly_integrated_flow_is_ok(hooked: Service, hooks: HookServer) -> None:
    """A batch with some documents accepted is acknowledged Ok (as GET shows it): an Ok webhook gets it, an Error
    webhook does not."""
    client = hooked.add_client("ops", "opdemat")
    subscribe(hooked, client, hooks.url("/ok"), flowTypes=["CustomerInvoice"], ackStatus="Ok")
    subscribe(hooked, client, hooks.url("/error"), flowTypes=["CustomerInvoice"], ackStatus="Error")
    hooked.workspace.drop("opdemat", "batch.zip", (FLOWS / "opdemat" / "03-batch-partial.zip").read_bytes())
    batch(hooked.workspace)
    (ack,) = [json.loads(p.read_text()) for p in hooked.workspace.acks("opdemat")]
    assert ack["status"] == "IN_INTEGRE_PARTIEL"
    (ok,) = [json.loads(c.body) for c in hooks.got("/ok")]
    assert (ok["flowId"], ok["acknowledgement"]["status"]) == (ack["flow_id"], "Ok")
    assert hooks.got("/error") == []


def test_a_relayed_status_reaches_the_invoices_sender_only(
    make_hooked: Callable[..., Service], hooks: HookServer
) -> None:
    """A recipient's platform sets a status on opdemat's invoice: opdemat's webhook gets the relayed CDAR message
    (In, CustomerInvoiceLC), the platform's webhook gets its own status flow (Out, SupplierInvoiceLC) and not the
    message relayed to opdemat."""
    service = make_hooked(PARTNERS)
    ws = service.workspace
    ws.drop("opdemat", "invoice.xml", OPDEMAT)
    batch(ws)
    subscribe(service, service.add_client("ops", "opdemat"), hooks.url("/opdemat"), flowDirection="In")
    subscribe(service, service.add_client("pa", "dupont-pa"), hooks.url("/pa"))
    ws.drop("dupont-pa", "status.xml", status_message("204"))
    batch(ws)
    (status_ack,) = [json.loads(p.read_text()) for p in ws.acks("dupont-pa")]
    relay = status_ack["documents"][0]["lifecycle"]["relay"].removesuffix(".cdar.xml")
    assert [(f["flowId"], f["flowType"]) for f in map(json.loads, (c.body for c in hooks.got("/opdemat")))] == [
        (relay, "CustomerInvoiceLC")
    ]
    pa = [json.loads(c.body) for c in hooks.got("/pa")]
    assert [(f["flowId"], f["flowType"], f["flowDirection"]) for f in pa] == [
        (status_ack["flow_id"], "SupplierInvoiceLC", "Out")
    ]


def test_a_crash_after_the_callback_took_it_sends_it_again_after_the_lease(
    hooked: Service, hooks: HookServer, inject: Callable[[str], None]
) -> None:
    """The process dies (an injected fault) after the callback answered 2xx and before the outcome is recorded:
    the event is not lost: due again once its claim's lease is over, sent again (at least once), then done."""
    ws = hooked.workspace
    subscribe(hooked, hooked.add_client("erp"), hooks.url(), flowTypes=["CustomerInvoice"])
    ws.drop("acme", "01.xml", ACCEPTED)
    hooks.script = [500]
    batch(ws)
    inject("webhooks.after_send=raise")
    with pytest.raises(InjectedFault):
        deliver_due(ws.settings, clock=later(31))
    inject("")
    assert deliver_due(ws.settings, clock=later(60)).tried is False  # still claimed
    assert deliver_due(ws.settings, clock=later(31 + PASS_SECONDS + 2 * 5 + 61)).sent == 1
    bodies = [json.loads(c.body)["flowId"] for c in hooks.got()]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert [e["state"] for e in events(ws)] == ["sent"]


def test_edi_serve_delivers_while_it_serves(make_hooked: Callable[..., Service], hooks: HookServer) -> None:
    """A live `edi serve` (the real executable) delivers the events a batch queued, in its own thread, once their
    back-off is over: a callback that failed during the batch gets its event without another batch."""
    service = make_hooked(retry_seconds=1)
    ws = service.workspace
    subscribe(service, service.add_client("erp"), hooks.url(), flowTypes=["CustomerInvoice"])
    ws.drop("acme", "01.xml", ACCEPTED)
    hooks.script = [500]
    batch(ws)
    assert len(hooks.got()) == 1
    process = start(ws, "--port", "0")
    try:
        ready_url(process)
        deadline = time.monotonic() + 30
        while len(hooks.got()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(hooks.got()) == 2
    assert [e["state"] for e in events(ws)] == ["sent"]


def test_a_deposited_flow_is_sent_as_get_shows_it(hooked: Service, hooks: HookServer) -> None:
    """A flow deposited through POST /v1/flows: its webhook body is the Flow GET {base}/v1/flows/{flowId} gives,
    with the client's trackingId."""
    client = hooked.add_client("erp")
    subscribe(hooked, client, hooks.url(), flowDirection="Out")
    deposited = deposit(hooked, client, ACCEPTED, trackingId="ERP-42")
    assert deposited.status_code == 202, deposited.text
    batch(hooked.workspace)
    (call,) = hooks.got()
    sent = json.loads(call.body)
    flow_id = deposited.json()["flowId"]
    shown = hooked.http.get(f"{BASE}/v1/flows/{flow_id}", headers=hooked.headers(client))
    assert sent == shown.json() and sent["trackingId"] == "ERP-42" and sent["flowId"] == flow_id
