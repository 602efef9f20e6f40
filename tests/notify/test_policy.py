"""edi.notify.policy: which events of final acknowledgements are queued, for whom, at once or for the digest."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edi.config import settings_from_dict
from edi.notify.policy import Policy, message_id, policy_for
from tests.conftest import Workspace
from tests.notify.conftest import finding, invoice_ack, invoice_ref, status_ack

AT = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)


def policy(notify_workspace: Callable[..., Workspace]) -> Policy:
    made = policy_for(notify_workspace().settings, "0123456789abcdef")
    assert made is not None
    return made


def test_off_without_a_host_or_without_any_address() -> None:
    """No smtp_host, or no sender with an address: no policy, so the store queues nothing."""
    base = {"senders": [{"id": "acme", "sellers": ["*"], "email": ["a@acme.example"]}]}
    assert policy_for(settings_from_dict(base, Path("/c.toml")), "w") is None
    quiet = {
        "senders": [{"id": "acme", "sellers": ["*"]}],
        "notifications": {"smtp_host": "localhost", "from_address": "edi@x.example"},
    }
    assert policy_for(settings_from_dict(quiet, Path("/c.toml")), "w") is None


def test_each_invoice_decision_goes_to_its_flow_sender(notify_workspace: Callable[..., Workspace]) -> None:
    """213 and 501 are immediate (with their Message-ID and due now), 200 waits for the digest; recipients are the
    sender's addresses; the key names the flow and the document."""
    ack = invoice_ack(
        "F1",
        "acme",
        [
            {"status": "200"},
            {"status": "213", "reason": "DEST_INC", "findings": [finding("DEST_INC", "unknown recipient")]},
            {"status": "501", "reason": "IRR_SYNTAX"},
        ],
    )
    rows = policy(notify_workspace).rows([ack], AT)
    assert [(r["key"], r["status"], r["mode"], r["sender"]) for r in rows] == [
        ("decision:F1:1", "200", "digest", "acme"),
        ("decision:F1:2", "213", "immediate", "acme"),
        ("decision:F1:3", "501", "immediate", "acme"),
    ]
    digest, rejected, _ = rows
    assert digest["mail"] is None and digest["next_attempt_at"] is None and digest["message_id"] is None
    assert rejected["mail"] == "decision:F1:2" and rejected["next_attempt_at"] == "2026-12-05T23:30:00.000Z"
    assert rejected["message_id"] == "<edi.decision.F1.2.0123456789ab@platform.example>"
    assert json.loads(rejected["recipients"]) == ["factures@acme.example", "compta@acme.example"]
    detail = json.loads(rejected["detail"])
    assert detail["reason"] == "DEST_INC" and detail["findings"][0]["message"] == "unknown recipient"
    assert rejected["invoice_number"] == "F-2" and rejected["flow_id"] == "F1" and rejected["idx"] == 2


def test_a_file_refused_whole_is_one_event_at_index_0(notify_workspace: Callable[..., Workspace]) -> None:
    """A flow without documents (an unreadable file, the same file again) is one event, with its CDAR status."""
    unreadable = invoice_ack("F2", "acme", [], findings=[finding("IRR_SYNTAX", "not XML")])
    again = invoice_ack("F3", "acme", [], findings=[finding("DOUBLON", "the same file")])
    rows = policy(notify_workspace).rows([unreadable, again], AT)
    found = [(r["key"], r["status"], r["idx"]) for r in rows]
    assert found == [("decision:F2:0", "501", 0), ("decision:F3:0", "213", 0)]


def test_senders_without_addresses_get_nothing(notify_workspace: Callable[..., Workspace]) -> None:
    """A sender with no email is not queued for, whatever happens to its invoices."""
    ack = invoice_ack("F4", "silent", [{"status": "213", "reason": "DEST_INC"}])
    assert policy(notify_workspace).rows([ack], AT) == []


def test_a_new_status_goes_to_the_invoice_sender(notify_workspace: Callable[..., Workspace]) -> None:
    """A status flow's accepted, new status (per the contract's lifecycle object) is queued for the invoice's sender,
    not for the partner who sent it; 210 is immediate, 204 waits for the digest; the row names the invoice."""
    ack = status_ack(
        "S1",
        "mairie",
        [
            {"status": "210", "reason": "CMD_ERR", "text": "no order", "invoice": invoice_ref("F1", 2, "acme", "F-2")},
            {"status": "204", "invoice": invoice_ref("F5", 1, "opdemat", "OP-1")},
        ],
    )
    rows = policy(notify_workspace).rows([ack], AT)
    assert [(r["key"], r["sender"], r["status"], r["mode"], r["flow_id"], r["idx"]) for r in rows] == [
        ("status:S1:1", "acme", "210", "immediate", "F1", 2),
        ("status:S1:2", "opdemat", "204", "digest", "F5", 1),
    ]
    detail = json.loads(rows[0]["detail"])
    assert detail["set_by"] == "mairie" and detail["reason"] == "CMD_ERR" and detail["text"] == "no order"
    assert detail["relay"] == "S1.0001.cdar.xml" and rows[0]["invoice_number"] == "F-2"


def test_known_refused_or_unknown_statuses_are_not_queued(notify_workspace: Callable[..., Workspace]) -> None:
    """A status the invoice already had, a refused status and a status for an unknown invoice mail nobody."""
    ack = status_ack(
        "S2",
        "mairie",
        [
            {"status": "204", "known": True, "invoice": invoice_ref("F1")},
            {"status": "210", "refused": True, "invoice": invoice_ref("F1")},
            {"status": "211", "refused": True, "invoice": None},
        ],
    )
    assert policy(notify_workspace).rows([ack], AT) == []


def test_the_digest_day_is_the_day_in_the_digests_time_zone(notify_workspace: Callable[..., Workspace]) -> None:
    """23:30 UTC on 5 December is already 6 December in Paris (notifications.timezone)."""
    workspace = notify_workspace(extra='timezone = "Europe/Paris"\n')
    made = policy_for(workspace.settings, "w")
    assert made is not None
    rows = made.rows([invoice_ack("F6", "acme", [{"status": "200"}])], AT)
    assert rows[0]["day"] == "2026-12-06"
    utc = policy(notify_workspace).rows([invoice_ack("F6", "acme", [{"status": "200"}])], AT)
    assert utc[0]["day"] == "2026-12-05"


def test_message_ids_are_stable_and_per_workspace() -> None:
    """The same key gives the same Message-ID; another workspace another one."""
    assert message_id("decision:F1:2", "abc", "x.example") == message_id("decision:F1:2", "abc", "x.example")
    assert message_id("decision:F1:2", "abc", "x.example") != message_id("decision:F1:2", "abd", "x.example")


def test_an_acknowledgement_it_cannot_read_queues_nothing_and_stops_nothing(
    notify_workspace: Callable[..., Workspace],
) -> None:
    """A status document whose lifecycle object lacks its status (a bug elsewhere) queues nothing for its flow; the
    other flows' notifications are queued, and nothing is raised to the processor."""
    broken = status_ack("S3", "mairie", [{"status": "210", "invoice": invoice_ref("F1")}])
    del broken["documents"][0]["lifecycle"]["status"]
    fine = invoice_ack("F7", "acme", [{"status": "213"}])
    rows = policy(notify_workspace).rows([broken, fine], AT)
    assert [r["key"] for r in rows] == ["decision:F7:1"]
