"""The lifecycle rules (edi/lifecycle/rules.py): which statuses a recipient may set, their reasons, their order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.codes import Code
from edi.lifecycle.rules import (
    ALL_REASONS,
    REASONS,
    RECIPIENT_STATUSES,
    Order,
    label,
    order,
    reason_problem,
    status_problem,
)

STATUSES = sorted(RECIPIENT_STATUSES)


@pytest.mark.parametrize("status", ["200", "213", "501", "201", "214", "", None])
def test_edis_own_statuses_and_others_are_not_a_recipients(status: str | None) -> None:
    """200, 213, 501, 201, 214 and no status at all: STATUS_NOT_ALLOWED, the message naming what was given."""
    problem = status_problem(status)
    assert problem is not None and problem[0] is Code.STATUS_NOT_ALLOWED
    assert (repr(status) if status else "no status") in problem[1]


def test_every_status_from_202_to_212_may_be_set_and_has_its_label() -> None:
    """202 to 212, no other, each with its French label (MDT-106)."""
    assert [str(s) for s in range(202, 213)] == STATUSES
    assert all(status_problem(s) is None for s in STATUSES)
    assert label("210") == "Refusée" and label("999") == "999"


@pytest.mark.parametrize("status", ["206", "207", "208", "210"])
def test_statuses_needing_a_reason_refuse_none_and_one_off_their_list(status: str) -> None:
    """206, 207, 208, 210 without a reason: STATUS_REASON_MISSING; with one off their list (REJ_SEMAN, edi's own):
    STATUS_REASON_NOT_ALLOWED; with one of their list: fine."""
    missing = reason_problem(status, None)
    assert missing is not None and missing[0] is Code.STATUS_REASON_MISSING and status in missing[1]
    problem = reason_problem(status, "REJ_SEMAN")
    assert problem is not None and problem[0] is Code.STATUS_REASON_NOT_ALLOWED and status in problem[1]
    assert reason_problem(status, sorted(REASONS[status])[0]) is None


def test_other_statuses_take_no_reason_or_any_the_rules_know() -> None:
    """204 without a reason is fine, with AUTRE too; with a code BR-FR-CDV-CL-09 does not know, it is refused; the
    B2G-only 210 reasons are refused (edi's relay never comes from Chorus Pro's own matricule)."""
    assert reason_problem("204", None) is None and reason_problem("204", "AUTRE") is None
    assert reason_problem("204", "NOPE") is not None
    assert "AUTRE" in ALL_REASONS and reason_problem("210", "AUTRE") is not None


@pytest.mark.parametrize(
    ("history", "status", "verdict"),
    [
        ([], "204", Order.NEW),
        (["204"], "204", Order.KNOWN),
        (["204", "210"], "211", Order.REFUSED),
        (["210"], "210", Order.KNOWN),
        ([], "209", Order.REFUSED),
        (["208"], "209", Order.NEW),
        (["208", "209"], "209", Order.KNOWN),
        (["208", "209"], "208", Order.NEW),
        (["208"], "208", Order.KNOWN),
        (["211"], "210", Order.NEW),
    ],
)
def test_the_order_of_statuses(history: list[str], status: str, verdict: Order) -> None:
    """Nothing after a terminal 210 (a 210 again is known); 209 only after a 208 not completed yet; a status the
    invoice has is known; a suspension may follow a completion."""
    assert order(history, status)[0] is verdict


@given(st.lists(st.sampled_from(STATUSES), max_size=30))
def test_a_history_built_by_the_rules_keeps_them(asked: list[str]) -> None:
    """Whatever statuses arrive, the history of those accepted as new holds nothing after a 210, every 209 right
    after a 208 among the 208/209s, no status twice but 208/209 in turn; replayed, each was new."""
    history: list[str] = []
    for status in asked:
        verdict, message = order(history, status)
        if verdict is Order.NEW:
            history.append(status)
        else:
            assert message
    if "210" in history:
        assert history.index("210") == len(history) - 1
    turns = [s for s in history if s in ("208", "209")]
    assert all(a != b for a, b in itertools.pairwise(turns)) and (not turns or turns[0] == "208")
    others = [s for s in history if s not in ("208", "209")]
    assert len(others) == len(set(others))
    assert all(order(history[:i], s)[0] is Order.NEW for i, s in enumerate(history))
