"""An invoice's timeline (edi.lifecycle.timeline): edi's decision, then each recorded status, in order."""

from __future__ import annotations

from typing import Any

from edi.lifecycle.timeline import by_document, timeline

DECIDED = "2026-11-26T12:00:00.000Z"


def row(idx: int, status: str, state: str = "recorded", **more: Any) -> dict[str, Any]:
    """A lifecycle row in the store's shape."""
    return {
        "idx": idx,
        "status": status,
        "state": state,
        "set_by": "ville-partner",
        "set_at": f"2026-11-27T0{len(status)}:00:00.000Z",
        "recorded_at": "2026-11-27T10:00:00.000Z",
        "reason": None,
        "text": None,
    } | more


def test_edis_decision_comes_first_then_each_recorded_status() -> None:
    """The document's own status (at the flow's decision, by "edi", with its reason) opens the timeline; then each
    recorded status with its time, label, who set it, reason and text."""
    steps = timeline(
        {"status": "200", "reason": None},
        DECIDED,
        [row(1, "204"), row(1, "210", reason="DOUBLON", text="déjà reçue")],
    )
    assert [(s["status"], s["label"], s["by"], s["reason"], s["text"]) for s in steps] == [
        ("200", "Déposée", "edi", None, None),
        ("204", "Prise en charge", "ville-partner", None, None),
        ("210", "Refusée", "ville-partner", "DOUBLON", "déjà reçue"),
    ]
    assert steps[0]["at"] == DECIDED and steps[1]["at"] == "2026-11-27T03:00:00.000Z"


def test_a_rejection_has_its_reason_and_an_undecided_document_no_step() -> None:
    """A rejected document's step carries its reason; a document not decided yet (no status) has no step of edi's."""
    assert timeline({"status": "213", "reason": "REJ_SEMAN"}, DECIDED, [])[0]["reason"] == "REJ_SEMAN"
    assert timeline({"status": None}, None, []) == []


def test_a_senders_account_reads_an_operator_not_their_name() -> None:
    """A status an operator set reads "an operator" for a sender's account, the operator's name for an operator."""
    rows = [row(1, "211", set_by="operator:alice")]
    assert timeline({"status": "200"}, DECIDED, rows, scope="acme")[-1]["by"] == "an operator"
    assert timeline({"status": "200"}, DECIDED, rows)[-1]["by"] == "operator:alice"


def test_a_status_message_is_not_an_invoice() -> None:
    """A status flow's document (a recipient's CDAR message) has no lifecycle of its own."""
    assert timeline({"status": "200", "syntax": "CDAR"}, DECIDED, [row(1, "204")]) == []


def test_rows_are_grouped_by_document_and_held_ones_left_out() -> None:
    """A flow's rows go to their document, in the order given; a held row (its flow not answered yet) is not
    history."""
    grouped = by_document([row(1, "204"), row(2, "205"), row(1, "211", state="held"), row(1, "210")])
    assert {idx: [r["status"] for r in rows] for idx, rows in grouped.items()} == {1: ["204", "210"], 2: ["205"]}
