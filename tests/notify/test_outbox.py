"""edi.notify.outbox and the store's side of it: notifications queued with the outcome, once per event; due mails
claimed once; outcomes; the listing an operator reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edi.config import NotificationSettings
from edi.notify.outbox import (
    backoff,
    claim_due,
    counts,
    form_digests,
    listing,
    prune,
    record_failed,
    record_retry,
    record_sent,
)
from edi.notify.policy import policy_for
from edi.tracking import Tracking
from tests.conftest import Workspace
from tests.notify.conftest import invoice_ack

AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path, notify_workspace: Callable[..., Workspace]) -> Iterator[Tracking]:
    tracking = Tracking(tmp_path / "t.sqlite", create=True)
    tracking.notifications = policy_for(notify_workspace().settings, "w")
    yield tracking
    tracking.close()


def rows(store: Tracking) -> list[dict[str, Any]]:
    return list(store.db.query("SELECT * FROM notifications ORDER BY id"))


def test_recording_an_outcome_queues_its_notifications_once(store: Tracking) -> None:
    """record_outcomes queues one row per event; recording the same acknowledgement again (recovery) adds none."""
    ack = invoice_ack("F1", "acme", [{"status": "200"}, {"status": "213", "reason": "DEST_INC"}])
    store.record_outcomes([ack], AT)
    store.record_outcomes([ack], AT + timedelta(minutes=5))
    assert [(r["key"], r["state"], r["queued_at"]) for r in rows(store)] == [
        ("decision:F1:1", "queued", "2026-12-05T10:00:00.000Z"),
        ("decision:F1:2", "queued", "2026-12-05T10:00:00.000Z"),
    ]


def test_notifications_are_queued_in_the_outcome_s_transaction(store: Tracking) -> None:
    """When the queueing fails, the outcome is not recorded either (one transaction): never one without the other."""

    class Broken:
        def rows(self, acks: Any, at: datetime) -> list[dict[str, Any]]:
            return [{"key": "x", "no_such_column": 1}]

    store.notifications = Broken()
    with pytest.raises(sqlite3.OperationalError):
        store.record_outcomes([invoice_ack("F2", "acme", [{"status": "213"}])], AT)
    assert store.status("F2") is None and rows(store) == []


def test_without_a_policy_nothing_is_queued(tmp_path: Path) -> None:
    """A store whose notifications are off records outcomes and queues nothing."""
    tracking = Tracking(tmp_path / "off.sqlite", create=True)
    try:
        tracking.record_outcomes([invoice_ack("F3", "acme", [{"status": "213"}])], AT)
        assert tracking.status("F3") == "IN_REJETE"
        assert rows(tracking) == []
    finally:
        tracking.close()


def test_a_claimed_mail_is_not_claimed_again_before_its_lease_ends(store: Tracking) -> None:
    """Two passes never hold the same mail; one whose pass died is due again once the lease is over, same
    Message-ID (at least once)."""
    store.record_outcomes([invoice_ack("F4", "acme", [{"status": "213"}])], AT)
    first = claim_due(store, AT, AT + timedelta(minutes=2), 10)
    assert [m.key for m in first] == ["decision:F4:1"] and first[0].attempts == 1
    assert claim_due(store, AT + timedelta(minutes=1), AT + timedelta(minutes=3), 10) == []
    again = claim_due(store, AT + timedelta(minutes=2), AT + timedelta(minutes=4), 10)
    assert [(m.key, m.message_id, m.attempts) for m in again] == [("decision:F4:1", first[0].message_id, 2)]
    record_sent(store, again[0], AT + timedelta(minutes=2))
    assert claim_due(store, AT + timedelta(days=1), AT + timedelta(days=2), 10) == []


def test_retries_back_off_then_give_up(store: Tracking) -> None:
    """A failed attempt is tried again after retry_seconds, doubling, capped; past give_up_seconds from when it was
    due, it fails with the last error."""
    settings = NotificationSettings(retry_seconds=60, retry_max_seconds=200, give_up_seconds=3600)
    assert [backoff(n, settings) for n in (1, 2, 3, 4)] == [60, 120, 200, 200]
    store.record_outcomes([invoice_ack("F5", "acme", [{"status": "501"}])], AT)
    mail = claim_due(store, AT, AT + timedelta(minutes=1), 10)[0]
    assert record_retry(store, [mail], AT, "451 busy", settings) == (1, 0)
    assert rows(store)[0]["next_attempt_at"] == "2026-12-05T10:01:00.000Z"
    later = AT + timedelta(hours=1)
    mail = claim_due(store, later, later + timedelta(minutes=1), 10)[0]
    assert record_retry(store, [mail], later, "451 busy", settings) == (0, 1)
    row = rows(store)[0]
    assert row["state"] == "failed" and "given up after 1 h; last error: 451 busy" in row["last_error"]
    assert counts(store.db.conn) == {"queued": 0, "sent": 0, "failed": 1}


def test_a_digest_gathers_a_sender_s_day_once_the_day_has_ended(store: Tracking) -> None:
    """Digest rows of a day become one mail per sender once the day is over; not before; a late row of that day
    makes a second digest with its own Message-ID."""
    store.record_outcomes([invoice_ack("F6", "acme", [{"status": "200"}, {"status": "200"}])], AT)
    store.record_outcomes([invoice_ack("F7", "opdemat", [{"status": "200"}])], AT)
    zone = ZoneInfo("UTC")
    assert form_digests(store, AT + timedelta(hours=13), zone, "w", "platform.example") == 0
    assert form_digests(store, AT + timedelta(hours=14), zone, "w", "platform.example") == 2
    mails = {r["key"]: r["mail"] for r in rows(store)}
    assert mails == {
        "decision:F6:1": "digest:acme:2026-12-05:1",
        "decision:F6:2": "digest:acme:2026-12-05:1",
        "decision:F7:1": "digest:opdemat:2026-12-05:1",
    }
    store.record_outcomes([invoice_ack("F8", "acme", [{"status": "200"}])], AT)  # a clock that stepped back
    assert form_digests(store, AT + timedelta(hours=15), zone, "w", "platform.example") == 1
    late = rows(store)[-1]
    assert late["mail"] == "digest:acme:2026-12-05:2"
    assert late["message_id"] != rows(store)[0]["message_id"]


def test_listing_filters_and_decodes(store: Tracking) -> None:
    """listing gives the newest first, filtered by state and sender, detail and recipients decoded."""
    store.record_outcomes([invoice_ack("F9", "acme", [{"status": "213"}])], AT)
    store.record_outcomes([invoice_ack("F10", "opdemat", [{"status": "501"}])], AT)
    listed = listing(store.db.conn)
    assert [r["flow_id"] for r in listed] == ["F10", "F9"]
    assert listed[1]["recipients"] == ["factures@acme.example", "compta@acme.example"]
    assert listed[1]["detail"]["file_name"] == "batch.zip"
    assert [r["flow_id"] for r in listing(store.db.conn, sender="acme")] == ["F9"]
    assert listing(store.db.conn, state="sent") == []


def test_retention_prunes_what_was_sent_or_failed_never_what_waits(store: Tracking) -> None:
    """prune deletes the sent and failed notifications queued before the cutoff; queued ones (and newer ones) stay."""
    store.record_outcomes([invoice_ack("F11", "acme", [{"status": "213"}, {"status": "501"}, {"status": "200"}])], AT)
    sent, failed = claim_due(store, AT, AT + timedelta(minutes=1), 10)
    record_sent(store, sent, AT)
    record_failed(store, [failed], AT, "554 refused")
    later = AT + timedelta(days=10)
    store.record_outcomes([invoice_ack("F12", "acme", [{"status": "213"}])], later)
    claimed = claim_due(store, later, later + timedelta(minutes=1), 10)
    record_sent(store, claimed[0], later)
    assert prune(store, AT + timedelta(days=1)) == 2
    assert [(r["key"], r["state"]) for r in rows(store)] == [("decision:F11:3", "queued"), ("decision:F12:1", "sent")]
