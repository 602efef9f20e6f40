"""Routing rules: which queue a recipient's documents go to. Pure.

Rules come from ``[[routing.rules]]`` in the configuration, in order; the first rule whose recipient (or ``*``),
service and sender match names the queue. Without a matching rule a document goes to the queue named after its
recipient's directory id: one queue per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Rule(Protocol):
    """What a routing rule says (``edi.config.RoutingRule`` has this shape)."""

    @property
    def queue(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def service(self) -> str | None: ...
    @property
    def sender(self) -> str | None: ...


def queue_for(recipient: str, service: str | None, sender: str, rules: Sequence[Rule]) -> str:
    """The queue of a document for ``recipient`` (its directory id), addressed to ``service``, from ``sender``."""
    wanted = service.upper() if service else None
    for rule in rules:
        if rule.recipient not in ("*", recipient):
            continue
        if rule.service is not None and rule.service.upper() != wanted:
            continue
        if rule.sender is not None and rule.sender != sender:
            continue
        return rule.queue
    return recipient
