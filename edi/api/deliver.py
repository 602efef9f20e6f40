"""The one webhook sender loop: POST the events that are due to their callbacks, within a time budget, and record each
outcome.

:func:`deliver_due` is what ``edi batch`` runs before it exits, ``edi watch`` between passes, the scheduled
``batch`` job after its pass, and ``edi serve`` every few seconds in a thread of its own. It never raises for a
callback: one that is down costs one refused connection (or ``webhook_timeout_seconds``), and its events wait for
their next attempt. Events are claimed in turns of :data:`CLAIM` (:func:`edi.api.events.claim_due`), so that two
processes never send the same one at once.

Each event's body is the Flow JSON as ``GET /v1/flows/{flowId}`` gives it now (:func:`edi.api.flows.flow_json`),
serialised once; the signature is over those bytes (:mod:`edi.api.signing`). An event whose Flow is gone, or does not
match its webhook's filters (a file refused whole turned out another type), is ``skipped``. A 2xx is ``sent``; anything
else (not reached, a TLS or timeout error, a redirect, any other status, a callback no longer allowed) is tried again
after the back-off and given up after ``webhook_give_up_seconds`` (logged, ``failed``). Once a webhook's call failed in
a pass, its other claimed events wait for their next attempt without a call. An event whose process dies after the
callback took it and before its outcome is recorded is sent again after its claim's lease (at least once; the receiver
can tell by the flowId and ``updatedAt``).

Reads the settings, the store and the webhook key file; writes the events' rows; raises what opening the store
raises (:class:`edi.errors.EdiError`) and sqlite3 errors.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from edi.api import signing
from edi.api.callbacks import CallbackFailed, CallbackRefused, post
from edi.api.events import Delivery, claim_due, has_due, record_retry, record_sent, record_skipped, release
from edi.api.flows import flow_json
from edi.clock import Clock, SystemClock
from edi.config import Settings
from edi.faults import fault_point
from edi.store import open_store
from edi.tracking import Tracking

log = structlog.get_logger()

CLAIM = 20  # events claimed at a time
PASS_SECONDS = 30.0  # a pass's budget: what is left waits for the next


@dataclass(slots=True)
class DeliveryReport:
    """What one pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0  # given up
    skipped: int = 0
    left: int = 0  # claimed, not tried: the pass ran out of time
    error: str | None = None  # the last error met

    @property
    def tried(self) -> bool:
        """Whether the pass did anything."""
        return bool(self.sent or self.retrying or self.failed or self.skipped or self.left)

    def summary(self) -> str:
        """One line for an operator."""
        parts = [f"{self.sent} sent"]
        for count, what in (
            (self.retrying, "to retry"),
            (self.failed, "given up"),
            (self.skipped, "skipped"),
            (self.left, "left for the next pass"),
        ):
            if count:
                parts.append(f"{count} {what}")
        line = "webhooks: " + ", ".join(parts)
        return line + (f" (last error: {self.error})" if self.error else "")


def deliver_due(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Tracking | None = None,
    budget: float = PASS_SECONDS,
    context: ssl.SSLContext | None = None,
) -> DeliveryReport:
    """Deliver the events that are due, for at most ``budget`` seconds; nothing when the API is off. ``store``: the
    caller's open store (else the workspace's is opened and closed); ``context``: the TLS context (default: the
    system's trusted authorities)."""
    report = DeliveryReport()
    if not settings.api.enabled:
        return report
    clock = clock or SystemClock()
    own = store is None
    store = store or open_store(settings.workspace.layout())
    try:
        if has_due(store.db.conn, clock.now()):
            _deliver(settings, store, clock, budget, context, report)
    finally:
        if own:
            store.close()
    if report.tried:
        log.info("webhooks", sent=report.sent, retrying=report.retrying, failed=report.failed, skipped=report.skipped)
    return report


def _deliver(
    settings: Settings, store: Tracking, clock: Clock, budget: float, context: ssl.SSLContext | None,
    report: DeliveryReport,
) -> None:  # fmt: skip
    layout = settings.workspace.layout()
    key = signing.workspace_key(layout)
    deadline = time.monotonic() + budget
    lease = timedelta(seconds=budget + 2 * settings.api.webhook_timeout_seconds + 60)  # past this pass
    while time.monotonic() < deadline:
        now = clock.now()
        claimed = claim_due(store, now, now + lease, CLAIM)
        if not claimed:
            return
        failing: dict[str, str] = {}  # webhook id -> why its call failed in this pass
        for i, delivery in enumerate(claimed):
            if time.monotonic() >= deadline:
                release(store, claimed[i:], clock.now())
                report.left += len(claimed) - i
                return
            if delivery.webhook_id in failing:
                _retry(settings, store, clock, delivery, failing[delivery.webhook_id], None, report)
                continue
            error = _deliver_one(settings, store, clock, key, delivery, context, report)
            if error is not None:
                failing[delivery.webhook_id] = error


def _deliver_one(
    settings: Settings, store: Tracking, clock: Clock, key: bytes | None, delivery: Delivery,
    context: ssl.SSLContext | None, report: DeliveryReport,
) -> str | None:  # fmt: skip
    """Send one event; the error when its callback failed (None otherwise)."""
    body = flow_json(store.db.conn, settings.workspace.layout(), delivery.sender, delivery.flow_id)
    why = _mismatch(delivery, body)
    if why is not None:
        record_skipped(store, delivery, clock.now(), why)
        report.skipped += 1
        log.info("webhook event skipped", webhook=delivery.webhook_id, flow_id=delivery.flow_id, why=why)
        return None
    if key is None:
        error = f"the workspace's webhook key {signing.KEY_FILE} is missing: nothing can be signed"
        _retry(settings, store, clock, delivery, error, None, report)
        return error
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    stamp = int(clock.now().timestamp())
    headers = {
        "Afnor-Signature": signing.signature(signing.signing_key(key, delivery.webhook_id), payload, stamp),
        "Afnor-Signature-Timestamp": str(stamp),
    }
    api = settings.api
    try:
        status = post(
            delivery.callback_url, payload, headers, api.webhook_allowed_hosts, api.webhook_timeout_seconds, context
        )
    except (CallbackFailed, CallbackRefused) as exc:
        answered = exc.status if isinstance(exc, CallbackFailed) else None
        _retry(settings, store, clock, delivery, str(exc), answered, report)
        return str(exc)
    fault_point("webhooks.after_send")  # the crash window: the callback has it, the store does not know
    record_sent(store, delivery, clock.now(), status)
    report.sent += 1
    log.info("webhook event sent", webhook=delivery.webhook_id, flow_id=delivery.flow_id, status=status)
    return None


def _mismatch(delivery: Delivery, body: dict[str, Any] | None) -> str | None:
    """Why the Flow is not for this webhook (None: it is)."""
    if body is None:
        return "the flow is not known (any more) for this sender"
    status = (body.get("acknowledgement") or {}).get("status")
    if delivery.flow_types and body.get("flowType") not in delivery.flow_types:
        return f"flowType {body.get('flowType')} is not one the webhook asks for"
    if delivery.flow_direction is not None and body.get("flowDirection") != delivery.flow_direction:
        return f"flowDirection {body.get('flowDirection')} is not the webhook's"
    if delivery.ack_status is not None and status != delivery.ack_status:
        return f"acknowledgement {status} is not the webhook's ackStatus"
    return None


def _retry(
    settings: Settings, store: Tracking, clock: Clock, delivery: Delivery, error: str, answered: int | None,
    report: DeliveryReport,
) -> None:  # fmt: skip
    retrying, given_up = record_retry(store, [delivery], clock.now(), error, answered, settings.api)
    report.retrying += retrying
    report.failed += given_up
    report.error = error
    log.warning("webhook event not delivered", webhook=delivery.webhook_id, flow_id=delivery.flow_id, error=error)
