"""The lifecycle statuses' labels (edi.lifecycle.labels): one table, the reform's codes and French labels."""

from __future__ import annotations

import pytest

from edi.codes import DocumentStatus
from edi.lifecycle import labels


def test_the_table_holds_200_to_213_and_501_with_the_reforms_labels() -> None:
    """Every code from 200 to 213 and 501 has its label as shared/docs/choruspro-and-reform.md §4 gives it."""
    assert [*map(str, range(200, 214)), "501"] == list(labels.STATUSES)
    assert labels.LABELS["200"] == "Déposée" and labels.LABELS["204"] == "Prise en charge"
    assert labels.LABELS["210"] == "Refusée" and labels.LABELS["211"] == "Paiement transmis"
    assert labels.LABELS["212"] == "Encaissée" and labels.LABELS["213"] == "Rejetée"
    assert labels.LABELS["501"] == "Irrecevable"


def test_edis_own_statuses_are_the_documents_and_recipients_come_after() -> None:
    """edi decides 200, 213, 501 (its document statuses); a recipient sets 202 to 212, of which 204 to 212 are its
    processing statuses."""
    assert set(labels.EDI_STATUSES) == {s.value for s in DocumentStatus}
    assert list(map(str, range(202, 213))) == list(labels.RECIPIENT_STATUSES)
    assert list(map(str, range(204, 213))) == list(labels.PROCESSING_STATUSES)


@pytest.mark.parametrize(
    ("code", "label", "titled"),
    [("204", "Prise en charge", "204 Prise en charge"), ("999", "999", "999"), (None, "", "")],
    ids=["known", "unknown", "none"],
)
def test_label_and_titled(code: str | None, label: str, titled: str) -> None:
    """A known code reads as its label (titled: code and label); an unknown one as itself; None as nothing."""
    assert labels.label(code) == label and labels.titled(code) == titled
