"""The routing stages: authorise the seller for the sender, then find the recipient, check its obligations, pick
the queue. Pure: each takes a document and returns it with findings, recipient and route set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edi.model import Code, Document, Finding, Flow, Layer, Party, Severity, evolve, normalise, siren_of
from edi.route.directory import Directory, Recipient, identities
from edi.route.rules import Rule, queue_for

REJECT = "reject"

_XPATHS = {
    "UBL": {
        "seller": "/*/cac:AccountingSupplierParty/cac:Party",
        "buyer": "/*/cac:AccountingCustomerParty/cac:Party",
        "service": "/*/cbc:BuyerReference",
        "engagement": "/*/cac:OrderReference/cbc:ID",
    },
    "CII": {
        "seller": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
        "/ram:SellerTradeParty",
        "buyer": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
        "/ram:BuyerTradeParty",
        "service": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
        "/ram:BuyerReference",
        "engagement": "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"
        "/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID",
    },
}


def _where(doc: Document, what: str) -> str | None:
    return _XPATHS.get(doc.syntax or "", {}).get(what)


def _describe(party: Party) -> str:
    ids = ", ".join(party.identifiers) or "no identifier"
    return f"{party.name} ({ids})" if party.name else ids


def seller_authorised(allowed: Sequence[str], seller: Party) -> bool:
    """Whether a sender allowed ``allowed`` (SIREN / SIRET / VAT ids, or ``*``) may deposit for ``seller``.

    A SIREN covers every SIRET and the French VAT number built on it; a SIRET or VAT id covers only itself.
    """
    if "*" in allowed:
        return True
    mine = set(identities(seller))
    for value in allowed:
        wanted = normalise(value)
        if wanted in mine:
            return True
        if len(wanted) == 9 and any(siren_of(i) == wanted for i in mine):
            return True
    return False


class AuthoriseSeller:
    """Reject a document whose seller the sender may not deposit for (``SELLER_NOT_AUTHORISED``)."""

    def __init__(self, sellers_by_sender: Mapping[str, Sequence[str]]) -> None:
        self.sellers_by_sender = sellers_by_sender

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """Check the seller of ``doc`` against what ``flow.sender`` may deposit for."""
        if doc.invoice is None:
            return doc
        allowed = self.sellers_by_sender.get(flow.sender, ())
        if "*" in allowed:
            return doc
        seller = doc.invoice.seller
        if not seller.identifiers:
            return doc.with_findings(
                Finding(
                    Code.SELLER_UNIDENTIFIED,
                    Layer.ROUTING,
                    f"the seller has no identifier (BT-29, BT-30, BT-31), so sender {flow.sender!r} cannot be "
                    "authorised for it",
                    xpath=_where(doc, "seller"),
                )
            )
        if seller_authorised(allowed, seller):
            return doc
        return doc.with_findings(
            Finding(
                Code.SELLER_NOT_AUTHORISED,
                Layer.ROUTING,
                f"sender {flow.sender!r} may deposit only for {', '.join(allowed) or 'no seller'}; "
                f"this invoice's seller is {_describe(seller)}",
                xpath=_where(doc, "seller"),
            )
        )


class Route:
    """Find the recipient in the directory, check its service code / engagement obligations, choose the queue."""

    def __init__(self, directory: Directory, rules: Sequence[Rule], unknown_recipient: str = REJECT) -> None:
        self.directory = directory
        self.rules = rules
        self.unknown_recipient = unknown_recipient

    def __call__(self, doc: Document, flow: Flow) -> Document:
        """Route ``doc``; findings say why it cannot be delivered."""
        if doc.invoice is None:
            return doc
        invoice = doc.invoice
        recipient = self.directory.find(invoice.buyer)
        if recipient is None:
            return self._unknown(doc)
        findings = self._obligations(doc, recipient)
        service = recipient.service(invoice.buyer_reference)
        code = service.code if service else invoice.buyer_reference
        queue = queue_for(recipient.id, code, flow.sender, self.rules)
        return evolve(doc, recipient=recipient.id, route=queue, findings=doc.findings + tuple(findings))

    def _unknown(self, doc: Document) -> Document:
        assert doc.invoice is not None
        buyer = _describe(doc.invoice.buyer)
        if self.unknown_recipient == REJECT:
            return doc.with_findings(
                Finding(
                    Code.DEST_INC,
                    Layer.ROUTING,
                    f"the buyer {buyer} is not in the recipient directory",
                    xpath=_where(doc, "buyer"),
                )
            )
        finding = Finding(
            Code.DEST_INC,
            Layer.ROUTING,
            f"the buyer {buyer} is not in the recipient directory; delivered to queue {self.unknown_recipient!r}",
            severity=Severity.WARNING,
            xpath=_where(doc, "buyer"),
        )
        return evolve(doc, route=self.unknown_recipient, findings=(*doc.findings, finding))

    def _obligations(self, doc: Document, recipient: Recipient) -> list[Finding]:
        assert doc.invoice is not None
        code, engagement = doc.invoice.buyer_reference, doc.invoice.order_reference
        who = f"{recipient.name or recipient.id}"
        findings = []
        service = recipient.service(code)
        if code is None and recipient.service_code_required:
            findings.append(
                Finding(
                    Code.SERVICE_CODE_MISSING,
                    Layer.ROUTING,
                    f"{who} requires a service code in the buyer reference (BT-10)"
                    + (
                        f"; its services are {', '.join(s.code for s in recipient.services)}"
                        if recipient.services
                        else ""
                    ),
                    xpath=_where(doc, "service"),
                )
            )
        elif code is not None and recipient.services and service is None:
            findings.append(
                Finding(
                    Code.SERVICE_CODE_UNKNOWN,
                    Layer.ROUTING,
                    f"{code!r} is not a service of {who}; its services are "
                    f"{', '.join(s.code for s in recipient.services)}",
                    xpath=_where(doc, "service"),
                )
            )
        needs_engagement = recipient.engagement_required or (service is not None and service.engagement_required)
        if engagement is None and needs_engagement:
            scope = f"{who}, service {service.code}," if service and service.engagement_required else who
            findings.append(
                Finding(
                    Code.ENGAGEMENT_MISSING,
                    Layer.ROUTING,
                    f"{scope} requires an engagement number in the purchase order reference (BT-13)",
                    xpath=_where(doc, "engagement"),
                )
            )
        if recipient.service_or_engagement_required and code is None and engagement is None:
            findings.append(
                Finding(
                    Code.SERVICE_CODE_MISSING,
                    Layer.ROUTING,
                    f"{who} requires a service code (BT-10) or an engagement number (BT-13); the invoice has neither",
                    rule="SERVICE_OR_ENGAGEMENT",
                    xpath=_where(doc, "service"),
                )
            )
        return findings
