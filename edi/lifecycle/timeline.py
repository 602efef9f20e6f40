"""An invoice's lifecycle timeline: edi's own decision on its document, then each status recorded after it.

Pure: built from a document row, the time its flow was decided and the document's recorded ``lifecycle`` rows (the
store's table, docs/lifecycle.md; held rows are not history and must not be passed). Reads and writes nothing,
raises nothing. Used by ``edi show`` (:mod:`edi.tracking`) and the console (:mod:`edi.browse`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edi.lifecycle.labels import label

EDI = "edi"  # who set edi's own decision
OPERATOR_PREFIX = "operator:"  # set_by of a status an operator recorded: "operator:<user>"
AN_OPERATOR = "an operator"  # what a sender's account reads in place of the operator's name
RECORDED = "recorded"  # the lifecycle rows that are history (the others are held while their flow is decided)
# the syntax of a status flow's document (a recipient's CDAR message about an invoice): not an invoice, no lifecycle
STATUS_SYNTAX = "CDAR"


def timeline(
    document: Mapping[str, Any],
    decided_at: str | None,
    recorded: Iterable[Mapping[str, Any]],
    *,
    scope: str | None = None,
) -> list[dict[str, Any]]:
    """The document's timeline, oldest first: edi's decision (when its document has a status: time ``decided_at``,
    code, label, ``by`` "edi", reason) then each recorded status (its ``set_at``, code, label, who set it, reason and
    text, when edi recorded it). For a sender's account (``scope``), an operator's name reads "an operator". A status
    message (a status flow's document) has none: it is not an invoice."""
    out: list[dict[str, Any]] = []
    if document.get("syntax") == STATUS_SYNTAX:
        return out
    if document.get("status"):
        out.append(_entry(decided_at, document["status"], EDI, document.get("reason"), None, decided_at))
    for row in recorded:
        by = str(row.get("set_by") or "")
        if scope is not None and by.startswith(OPERATOR_PREFIX):
            by = AN_OPERATOR
        at, reason, text = row.get("set_at"), row.get("reason"), row.get("text")
        out.append(_entry(at, row["status"], by, reason, text, row.get("recorded_at")))
    return out


def _entry(at: Any, status: str, by: str, reason: Any, text: Any, recorded_at: Any) -> dict[str, Any]:
    return {
        "at": at,
        "status": status,
        "label": label(status),
        "by": by,
        "reason": reason,
        "text": text,
        "recorded_at": recorded_at,
    }


def by_document(rows: Iterable[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """A flow's recorded lifecycle rows grouped by document index, each group in the order given (append order)."""
    out: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("state") == RECORDED:
            out.setdefault(int(row["idx"]), []).append(row)
    return out


def recorded_after_decision(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """The statuses of a :func:`timeline` after edi's own decision (its first step), oldest first: the history the
    order rules read."""
    return [str(step["status"]) for step in steps][1:]
