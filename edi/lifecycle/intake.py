"""The stages that take a recipient's CDAR status message through the intake, as a document of its flow.

:class:`ReadStatus` (a document stage, while the XML is at hand) checks the message against the official CDAR XSD
and BR-FR-CDV Schematron (:func:`edi.lifecycle.validate.check_tree`) and reads what it says
(:func:`edi.lifecycle.read.read_status`); more than one invoice per message is refused (``STATUS_SEVERAL_INVOICES``).
:class:`CheckStatus` (a settling stage) checks that the sender speaks for recipients, that the status and reason are
ones a recipient may set (:mod:`edi.lifecycle.rules`), and finds the invoice (accepted, delivered to a recipient the
sender speaks for). :func:`hold_statuses`, last of all, has the store check each status against the invoice's
history and hold it, for a whole group at once, under the writers' lock: of two flows deciding at once, only one can
pass the order rules. Reads nothing but what it is given; writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edi.lifecycle.cdar import file_name
from edi.lifecycle.read import read_status
from edi.lifecycle.rules import Order, reason_problem, status_problem
from edi.lifecycle.validate import check_tree
from edi.model import Code, Document, Finding, Flow, InvoiceRef, Layer, Party, StatusReport, evolve

_REF = "/rsm:CrossDomainAcknowledgementAndResponse/rsm:AcknowledgementDocument/ram:ReferenceReferencedDocument"
XPATHS = {
    "reference": f"{_REF}[2]",
    "status": f"{_REF}/ram:ProcessConditionCode",
    "reason": f"{_REF}/ram:SpecifiedDocumentStatus/ram:ReasonCode",
    "invoice": f"{_REF}/ram:IssuerAssignedID",
    "sender": "/rsm:CrossDomainAcknowledgementAndResponse/rsm:ExchangedDocument/ram:IssuerTradeParty",
}
# (seller key, invoice number, year) -> the accepted invoices (their kind, and what was recorded of each)
FindInvoice = Callable[[str, str, str], list[tuple[str, InvoiceRef]]]
Hold = Callable[[Sequence[Mapping[str, Any]]], list[tuple[str, str]]]


class ReadStatus:
    """Check a CDAR message against the official artefacts and read its status (layer ``cdar``)."""

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with what its message says, and the findings of the XSD and the BR-FR-CDV rules."""
        if doc.syntax != "CDAR" or doc.tree is None:
            return doc
        report = read_status(doc.tree.getroot())  # type: ignore[attr-defined]
        findings = list(check_tree(doc.tree))
        if report.references > 1:
            findings.append(
                Finding(
                    Code.STATUS_SEVERAL_INVOICES,
                    Layer.LIFECYCLE,
                    f"the message references {report.references} invoices: send one message per invoice",
                    xpath=XPATHS["reference"],
                )
            )
        return evolve(doc, lifecycle=report, layers=(*doc.layers, "cdar"), findings=(*doc.findings, *findings))


class CheckStatus:
    """Refuse a status its sender may not set: a sender that speaks for no recipient, a status or reason the rules
    do not allow, an unknown invoice or another partner's; else name the invoice it is about."""

    def __init__(self, recipients_by_sender: Mapping[str, Sequence[str]], find: FindInvoice) -> None:
        self.recipients_by_sender = recipients_by_sender
        self.find = find

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """The document with its invoice found, or with the findings that refuse it."""
        report = doc.lifecycle
        if report is None or not doc.accepted:
            return doc
        findings: list[Finding] = []
        speaks_for = self.recipients_by_sender.get(flow.sender, ())
        if not speaks_for:
            findings.append(
                Finding(
                    Code.STATUS_NOT_A_RECIPIENT,
                    Layer.LIFECYCLE,
                    f"sender {flow.sender!r} lists no recipients it returns lifecycle statuses for",
                    xpath=XPATHS["sender"],
                )
            )
        problem = status_problem(report.status)
        where = "status"
        if problem is None:
            assert report.status is not None
            problem, where = reason_problem(report.status, report.reason), "reason"
        if problem is not None:
            findings.append(Finding(problem[0], Layer.LIFECYCLE, problem[1], xpath=XPATHS[where]))
        if speaks_for:
            invoice = self._invoice(report)
            if invoice is None:
                where = XPATHS["invoice"]
                findings.append(Finding(Code.STATUS_UNKNOWN_INVOICE, Layer.LIFECYCLE, _unknown(report), xpath=where))
            elif invoice.recipient not in speaks_for:  # said without naming the other partner's flow or sender
                findings.append(
                    Finding(
                        Code.STATUS_OTHER_PARTNER,
                        Layer.LIFECYCLE,
                        f"invoice {report.invoice_number} was delivered to a recipient sender {flow.sender!r} does "
                        f"not speak for (it speaks for {', '.join(speaks_for)})",
                        xpath=XPATHS["invoice"],
                    )
                )
            else:
                report = evolve(report, invoice=invoice)
        return evolve(doc, lifecycle=report, findings=(*doc.findings, *findings))

    def _invoice(self, report: StatusReport) -> InvoiceRef | None:
        """The accepted invoice the message names: seller (its key), BT-1, the issue date and, when given, BT-3."""
        if not (report.seller_id and report.invoice_number and report.issue_date):
            return None
        seller = Party(legal_id=report.seller_id).key
        if seller is None:
            return None
        for _, invoice in self.find(seller, report.invoice_number, report.issue_date[:4]):
            if invoice.issue_date != report.issue_date:
                continue
            if report.type_code and invoice.type_code and invoice.type_code != report.type_code:
                continue
            return invoice
        return None


def _unknown(report: StatusReport) -> str:
    kind = f" of type {report.type_code}" if report.type_code else ""
    return (
        f"no accepted invoice {report.invoice_number or '(no number)'}{kind} of seller "
        f"{report.seller_id or '(no id)'} dated {report.issue_date or '(no date)'}"
    )


def hold_statuses(flows: Sequence[Flow], hold: Hold) -> list[Flow]:
    """Have the store check the order of every status about to be accepted in ``flows`` (decided, in order) and
    hold it (``hold``: the rows, in one transaction -> (order, message) each). A status the invoice has already
    is accepted as known (nothing held, nothing relayed); one the order refuses (another flow's status got there
    first) gets ``STATUS_ORDER``. The last step of deciding, with the invoices' keys."""
    asks: list[dict[str, Any]] = []
    for flow in flows:
        for doc in flow.documents:
            report = doc.lifecycle
            if report is not None and report.invoice is not None and doc.accepted:
                asks.append(_row(flow, doc, report, report.invoice))
    if not asks:
        return list(flows)
    verdicts = {(a["source_flow_id"], a["source_idx"]): v for a, v in zip(asks, hold(asks), strict=True)}
    decided = []
    for flow in flows:
        documents = tuple(_held(doc, verdicts.get((flow.flow_id, doc.index))) for doc in flow.documents)
        decided.append(evolve(flow, documents=documents))
    return decided


def _row(flow: Flow, doc: Document, report: StatusReport, invoice: InvoiceRef) -> dict[str, Any]:
    return {
        "flow_id": invoice.flow_id,
        "idx": invoice.index,
        "status": report.status,
        "reason": report.reason,
        "text": report.text,
        "set_by": flow.sender,
        "set_at": report.set_at,
        "source_flow_id": flow.flow_id,
        "source_idx": doc.index,
        "relay": file_name(flow.flow_id, doc.index),
    }


def _held(doc: Document, verdict: tuple[str, str] | None) -> Document:
    if verdict is None or doc.lifecycle is None:
        return doc
    order, message = verdict
    if order == Order.KNOWN:
        return evolve(doc, lifecycle=evolve(doc.lifecycle, known=True))
    if order == Order.REFUSED:
        return doc.with_findings(Finding(Code.STATUS_ORDER, Layer.LIFECYCLE, message, xpath=XPATHS["status"]))
    return doc
