"""Reading a recipient's CDAR status message (edi/lifecycle/read.py): what it says, never an exception."""

from __future__ import annotations

from lxml import etree

from edi.lifecycle.read import is_status_message, read_status
from edi.model import Characteristic
from tests.lifecycle.statuses import status_message


def test_every_field_the_intake_needs_is_read() -> None:
    """MDT-87, 91, 100 (as an ISO date), 129, 105, 113, 114, 78 (as ISO UTC), the issuer and a 212's amount."""
    root = etree.fromstring(status_message("212", "AUTRE", "payée", cashed="10.00", set_at="20261201093005"))
    assert is_status_message(root)
    report = read_status(root)
    assert (report.invoice_number, report.type_code, report.issue_date, report.seller_id) == (
        "IN-2026-0042",
        "380",
        "2026-11-16",
        "987654324",
    )
    assert (report.status, report.reason, report.text, report.set_at) == (
        "212",
        "AUTRE",
        "payée",
        "2026-12-01T09:30:05.000Z",
    )
    assert (report.issuer_id, report.issuer_scheme, report.issuer_role) == ("404040404", "0002", "BY")
    assert report.characteristics == (Characteristic("MEN", "10.00", "EUR", "20"),)
    assert report.references == 1 and report.invoice is None and not report.known


def test_what_is_missing_or_malformed_is_none() -> None:
    """An empty message root, a bad date and a bad time: None each, and no reference counted."""
    empty = etree.fromstring(status_message("204", issued="20261340", set_at="2026"))
    report = read_status(empty)
    assert report.issue_date is None and report.set_at is None and report.status == "204"
    bare = etree.fromstring(
        b'<r:CrossDomainAcknowledgementAndResponse xmlns:r="urn:un:unece:uncefact:data:standard:'
        b'CrossDomainAcknowledgementAndResponse:100"/>'
    )
    assert is_status_message(bare) and read_status(bare).references == 0 and read_status(bare).status is None
    assert not is_status_message(etree.fromstring(b"<Invoice/>"))


def test_two_references_are_counted() -> None:
    """A message about two invoices says so (the intake refuses it)."""
    assert read_status(etree.fromstring(status_message("204", references=2))).references == 2
