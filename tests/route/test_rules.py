"""Routing rules (edi/route/rules.py): the first matching rule names the queue, else the recipient's id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.config import RoutingRule
from edi.route.rules import queue_for

RULES = (
    RoutingRule(queue="ville-voirie-opdemat", recipient="ville", service="VOIRIE", sender="opdemat"),
    RoutingRule(queue="ville-voirie", recipient="ville", service="VOIRIE"),
    RoutingRule(queue="ville-all", recipient="ville"),
    RoutingRule(queue="achats-anywhere", recipient="*", service="ACHATS"),
    RoutingRule(queue="from-initech", sender="initech"),
)


@pytest.mark.parametrize(
    ("recipient", "service", "sender", "queue"),
    [
        ("ville", "VOIRIE", "opdemat", "ville-voirie-opdemat"),
        ("ville", "VOIRIE", "acme", "ville-voirie"),
        ("ville", "voirie", "acme", "ville-voirie"),
        ("ville", "Voirie", "opdemat", "ville-voirie-opdemat"),
        ("ville", "ACHATS", "acme", "ville-all"),
        ("ville", None, "acme", "ville-all"),
        ("dupont", "achats", "acme", "achats-anywhere"),
        ("dupont", "VOIRIE", "initech", "from-initech"),
        ("dupont", None, "acme", "dupont"),
        ("dupont", "VOIRIE", "acme", "dupont"),
    ],
    ids=[
        "most-specific-rule-first",
        "sender-filter-skips-to-next",
        "service-lower-case",
        "service-mixed-case-and-sender",
        "first-match-wins-over-later-star",
        "no-service-matches-rule-without-service",
        "star-recipient-with-service",
        "star-by-default-with-sender",
        "no-rule-gives-recipient-id",
        "service-rule-of-other-recipient-ignored",
    ],
)
def test_queue_for(recipient: str, service: str | None, sender: str, queue: str) -> None:
    """Rules are tried in order; recipient, service (any case) and sender must all match; default is the id."""
    assert queue_for(recipient, service, sender, RULES) == queue


def test_first_match_wins_even_if_a_later_rule_is_more_specific() -> None:
    """Order, not specificity, decides: a catch-all first shadows everything after it."""
    rules = (RoutingRule(queue="all"), RoutingRule(queue="specific", recipient="ville", service="VOIRIE"))
    assert queue_for("ville", "VOIRIE", "acme", rules) == "all"


def test_rule_with_a_service_does_not_match_a_document_without_one() -> None:
    """A rule naming a service is skipped when the document gives no service code."""
    rules = (RoutingRule(queue="voirie", recipient="ville", service="VOIRIE"),)
    assert queue_for("ville", None, "acme", rules) == "ville"
    assert queue_for("ville", "", "acme", rules) == "ville"


def test_recipient_match_is_exact() -> None:
    """A rule's recipient is a directory id, compared exactly."""
    rules = (RoutingRule(queue="q", recipient="ville"),)
    assert queue_for("Ville", None, "acme", rules) == "Ville"
    assert queue_for("ville-2", None, "acme", rules) == "ville-2"


names = st.text(min_size=1, max_size=12)


@given(names, st.none() | names, names)
def test_without_rules_the_queue_is_the_recipient(recipient: str, service: str | None, sender: str) -> None:
    """No rules: every document goes to the queue named after its recipient."""
    assert queue_for(recipient, service, sender, ()) == recipient


@given(names, st.none() | names, names)
def test_catch_all_rule_takes_everything(recipient: str, service: str | None, sender: str) -> None:
    """A first rule with only a queue takes every document."""
    assert queue_for(recipient, service, sender, (RoutingRule(queue="all"),)) == "all"
