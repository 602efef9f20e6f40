"""The routing stages (edi/route/stages.py): authorise the seller, find the recipient, check obligations, route."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.config import RoutingRule
from edi.model import Code, Document, Finding, Flow, Invoice, Layer, Party, Severity
from edi.route.directory import Directory, Recipient, Service
from edi.route.stages import AuthoriseSeller, Route, seller_authorised

ACME = Party(name="Acme SAS", legal_id="12345678200010", vat_id="FR40123456782")
VILLE = Party(name="Ville", legal_id="21930048000015")
HOPITAL = Party(name="Hôpital", legal_id="26750045200011")
DUPONT = Party(name="Dupont", vat_id="FR83404040404")
MAIRIE = Party(name="Mairie", legal_id="21750001600019")
STRANGER = Party(name="Inconnu SAS", legal_id="55566677500013")

DIRECTORY = Directory(
    (
        Recipient(
            "ville",
            "Ville d'Exemple",
            ("21930048000015",),
            services=(Service("ACHATS"), Service("VOIRIE", engagement_required=True)),
            service_code_required=True,
        ),
        Recipient("hopital", None, ("26750045200011",), engagement_required=True),
        Recipient("dupont", "Dupont", ("404040404",)),
        Recipient("mairie", "Mairie", ("21750001600019",), service_or_engagement_required=True),
    )
)
RULES = (
    RoutingRule(queue="ville-voirie", recipient="ville", service="VOIRIE"),
    RoutingRule(queue="dupont-initech", recipient="dupont", sender="initech"),
)

UBL_SELLER = "/*/cac:AccountingSupplierParty/cac:Party"
CII_AGREEMENT = "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement"


def document(
    seller: Party = ACME,
    buyer: Party = DUPONT,
    service: str | None = None,
    engagement: str | None = None,
    syntax: str | None = "UBL",
    findings: tuple[Finding, ...] = (),
) -> Document:
    invoice = Invoice(
        number="FA-1",
        issue_date="2026-11-26",
        seller=seller,
        buyer=buyer,
        buyer_reference=service,
        order_reference=engagement,
    )
    return Document(
        index=1,
        name="invoice.xml",
        size=10,
        sha256="0" * 64,
        data=b"<Invoice/>",
        syntax=syntax,
        invoice=invoice,
        findings=findings,
    )


def flow(sender: str = "acme") -> Flow:
    return Flow(
        flow_id="20261126T093000000000-abcdef",
        sender=sender,
        file_name="invoice.xml",
        size=10,
        sha256="0" * 64,
        received_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        payload=Path("payload"),
    )


def codes(doc: Document) -> list[Code]:
    return [f.code for f in doc.findings]


# -- seller_authorised -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "seller", "expected"),
    [
        (["123456782"], Party(legal_id="123456782"), True),
        (["123456782"], Party(legal_id="12345678200010"), True),
        (["123456782"], Party(legal_id="12345678200028"), True),
        (["123456782"], Party(vat_id="FR40123456782"), True),
        (["123456782"], Party(ids=("12345678200010",)), True),
        (["123 456 782"], Party(legal_id="12345678200010"), True),
        (["123456782"], Party(legal_id="98765432100017"), False),
        (["123456782"], Party(vat_id="DE123456782"), False),
        (["12345678200010"], Party(legal_id="12345678200010"), True),
        (["12345678200010"], Party(legal_id="12345678200028"), False),
        (["12345678200010"], Party(legal_id="123456782"), False),
        (["12345678200010"], Party(vat_id="FR40123456782"), False),
        (["FR40123456782"], Party(vat_id="fr40123456782"), True),
        (["FR40123456782"], Party(legal_id="12345678200010"), False),
        (["FR40123456782"], Party(legal_id="123456782"), False),
        (["*"], Party(legal_id="98765432100017"), True),
        (["*"], Party(), True),
        ([], Party(legal_id="123456782"), False),
        (["987654321", "123456782"], Party(legal_id="12345678200010"), True),
    ],
    ids=[
        "siren-covers-itself",
        "siren-covers-its-siret",
        "siren-covers-another-of-its-sirets",
        "siren-covers-its-fr-vat",
        "siren-covers-siret-in-other-ids",
        "allowed-value-with-spaces",
        "siren-not-another-siren",
        "siren-not-a-foreign-vat",
        "siret-covers-itself",
        "siret-not-a-sibling-siret",
        "siret-not-its-siren",
        "siret-not-the-fr-vat",
        "vat-covers-itself-any-case",
        "vat-not-a-siret",
        "vat-not-its-siren",
        "star-covers-anyone",
        "star-covers-no-identifier",
        "nothing-allowed",
        "any-of-several",
    ],
)
def test_seller_authorised(allowed: list[str], seller: Party, expected: bool) -> None:
    """A SIREN covers its SIRETs and FR VAT number; a SIRET or VAT id covers only itself; '*' covers all."""
    assert seller_authorised(allowed, seller) is expected


@given(st.from_regex(r"[0-9]{9}", fullmatch=True), st.from_regex(r"[0-9]{5}", fullmatch=True))
def test_a_siren_covers_every_siret_built_on_it(siren: str, nic: str) -> None:
    """For any SIREN and any establishment number, the SIREN authorises the SIRET and the FR VAT number."""
    assert seller_authorised([siren], Party(legal_id=siren + nic))
    assert seller_authorised([siren], Party(vat_id=f"FR00{siren}"))
    assert not seller_authorised([siren + nic], Party(legal_id=siren))


# -- AuthoriseSeller ---------------------------------------------------------------------------------------------

AUTHORISE = AuthoriseSeller({"acme": ["123456782"], "opdemat": ["*"], "nobody": []})


def test_authorised_seller_passes_unchanged() -> None:
    """A seller the sender may deposit for: the document comes back as it was."""
    doc = document()
    assert AUTHORISE(doc, flow("acme")) == doc


def test_seller_not_authorised() -> None:
    """A seller outside the sender's list: a fatal SELLER_NOT_AUTHORISED routing finding at the seller's XPath."""
    doc = AUTHORISE(document(seller=Party(name="Umbrella SA", legal_id="98765432100017")), flow("acme"))
    (finding,) = doc.findings
    assert finding.code is Code.SELLER_NOT_AUTHORISED
    assert finding.layer is Layer.ROUTING and finding.fatal
    assert finding.xpath == UBL_SELLER
    assert "'acme'" in finding.message and "123456782" in finding.message and "Umbrella SA" in finding.message
    assert doc.status == "213" and doc.reason == "REJ_COH"


def test_seller_xpath_follows_the_syntax() -> None:
    """In a CII document the finding points at the CII seller; with no known syntax there is no XPath."""
    stranger = Party(legal_id="98765432100017")
    cii = AUTHORISE(document(seller=stranger, syntax="CII"), flow("acme"))
    assert cii.findings[0].xpath == CII_AGREEMENT + "/ram:SellerTradeParty"
    unknown = AUTHORISE(document(seller=stranger, syntax=None), flow("acme"))
    assert unknown.findings[0].xpath is None


def test_seller_unidentified() -> None:
    """A seller with no identifier: a fatal SELLER_UNIDENTIFIED routing finding at the seller's XPath."""
    doc = AUTHORISE(document(seller=Party(name="Anonymous")), flow("acme"))
    (finding,) = doc.findings
    assert finding.code is Code.SELLER_UNIDENTIFIED
    assert finding.layer is Layer.ROUTING and finding.fatal and finding.xpath == UBL_SELLER
    assert "'acme'" in finding.message


def test_any_seller_sender_needs_no_seller_identifier() -> None:
    """A '*' sender (an operator) may deposit for any seller, even one with no identifier."""
    for seller in (Party(), Party(legal_id="98765432100017")):
        doc = document(seller=seller)
        assert AUTHORISE(doc, flow("opdemat")) == doc


@pytest.mark.parametrize("sender", ["nobody", "undeclared"])
def test_sender_without_sellers_is_refused(sender: str) -> None:
    """A sender with no sellers (or not declared at all) may deposit for nobody."""
    doc = AUTHORISE(document(), flow(sender))
    assert codes(doc) == [Code.SELLER_NOT_AUTHORISED]
    assert "no seller" in doc.findings[0].message


def test_authorise_keeps_earlier_findings() -> None:
    """Findings from earlier stages stay, the new one is appended."""
    earlier = Finding(Code.IRR_SYNTAX, Layer.XSD, "bad", severity=Severity.WARNING)
    doc = AUTHORISE(document(seller=Party(legal_id="98765432100017"), findings=(earlier,)), flow("acme"))
    assert codes(doc) == [Code.IRR_SYNTAX, Code.SELLER_NOT_AUTHORISED]


def test_document_without_invoice_is_returned_unchanged_by_both_stages() -> None:
    """An unreadable document (invoice None) is passed through as is by AuthoriseSeller and Route."""
    doc = Document(index=1, name="x", size=0, sha256="0" * 64, data=b"")
    assert AUTHORISE(doc, flow("acme")) is doc
    assert Route(DIRECTORY, RULES)(doc, flow("acme")) is doc
    assert Route(DIRECTORY, RULES, "unrouted")(doc, flow("acme")) is doc


# -- Route -------------------------------------------------------------------------------------------------------

ROUTE = Route(DIRECTORY, RULES)


def test_known_buyer_is_routed_to_its_queue() -> None:
    """A buyer in the directory with no obligations: recipient set, queue named after it, no finding."""
    doc = ROUTE(document(buyer=DUPONT), flow())
    assert doc.recipient == "dupont" and doc.route == "dupont" and doc.queue == "dupont"
    assert doc.findings == ()


def test_unknown_buyer_is_dest_inc() -> None:
    """A buyer not in the directory: a fatal DEST_INC at the buyer's XPath, no recipient, no route."""
    doc = ROUTE(document(buyer=STRANGER), flow())
    (finding,) = doc.findings
    assert finding.code is Code.DEST_INC and finding.fatal and finding.layer is Layer.ROUTING
    assert finding.xpath == "/*/cac:AccountingCustomerParty/cac:Party"
    assert "Inconnu SAS" in finding.message and "55566677500013" in finding.message
    assert doc.recipient is None and doc.route is None and doc.status == "213" and doc.reason == "DEST_INC"


def test_unknown_buyer_goes_to_the_unrouted_queue_when_configured() -> None:
    """With unknown_recipient = "unrouted": a DEST_INC warning, and the document is delivered to that queue."""
    doc = Route(DIRECTORY, RULES, unknown_recipient="unrouted")(document(buyer=STRANGER, syntax="CII"), flow())
    (finding,) = doc.findings
    assert finding.code is Code.DEST_INC and finding.severity is Severity.WARNING
    assert finding.xpath == CII_AGREEMENT + "/ram:BuyerTradeParty"
    assert "'unrouted'" in finding.message
    assert doc.accepted and doc.route == "unrouted" and doc.queue == "unrouted" and doc.recipient is None


def test_buyer_without_identifier_is_dest_inc() -> None:
    """A buyer with no identifier at all cannot be found: DEST_INC saying so."""
    doc = ROUTE(document(buyer=Party()), flow())
    assert codes(doc) == [Code.DEST_INC]
    assert "no identifier" in doc.findings[0].message


def test_service_code_missing() -> None:
    """A recipient that requires a service code, given none: SERVICE_CODE_MISSING listing its services."""
    doc = ROUTE(document(buyer=VILLE), flow())
    (finding,) = doc.findings
    assert finding.code is Code.SERVICE_CODE_MISSING and finding.fatal
    assert finding.xpath == "/*/cbc:BuyerReference"
    assert "ACHATS, VOIRIE" in finding.message and "Ville d'Exemple" in finding.message
    assert doc.recipient == "ville" and doc.route == "ville" and doc.queue is None


def test_service_code_unknown() -> None:
    """A service code the recipient does not declare: SERVICE_CODE_UNKNOWN naming it and the real ones."""
    doc = ROUTE(document(buyer=VILLE, service="ECOLES"), flow())
    (finding,) = doc.findings
    assert finding.code is Code.SERVICE_CODE_UNKNOWN and finding.fatal
    assert "'ECOLES'" in finding.message and "ACHATS, VOIRIE" in finding.message
    assert doc.reason == "REJ_CONT_B2G"


def test_any_service_code_is_accepted_by_a_recipient_without_services() -> None:
    """A recipient that declares no services accepts any service code and routes by it."""
    doc = ROUTE(document(buyer=DUPONT, service="WHATEVER"), flow())
    assert doc.findings == () and doc.queue == "dupont"


def test_service_code_match_ignores_case_and_routes_by_rule() -> None:
    """'achats' is the ACHATS service: accepted, default queue; 'voirie' with an engagement goes by the VOIRIE rule."""
    achats = ROUTE(document(buyer=VILLE, service="achats"), flow())
    assert achats.findings == () and achats.queue == "ville"
    voirie = ROUTE(document(buyer=VILLE, service="voirie", engagement="EJ-1"), flow())
    assert voirie.findings == () and voirie.queue == "ville-voirie"


def test_engagement_missing_at_recipient_level() -> None:
    """A recipient that requires an engagement, given none: ENGAGEMENT_MISSING at the order reference XPath."""
    doc = ROUTE(document(buyer=HOPITAL), flow())
    (finding,) = doc.findings
    assert finding.code is Code.ENGAGEMENT_MISSING and finding.fatal
    assert finding.xpath == "/*/cac:OrderReference/cbc:ID"
    assert "service" not in finding.message
    assert ROUTE(document(buyer=HOPITAL, engagement="EJ-2026-1"), flow()).findings == ()


def test_engagement_missing_at_service_level() -> None:
    """A service that requires an engagement, given none: ENGAGEMENT_MISSING naming the service; others need none."""
    doc = ROUTE(document(buyer=VILLE, service="VOIRIE", syntax="CII"), flow())
    (finding,) = doc.findings
    assert finding.code is Code.ENGAGEMENT_MISSING
    assert "service VOIRIE" in finding.message
    assert finding.xpath == CII_AGREEMENT + "/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"
    assert ROUTE(document(buyer=VILLE, service="ACHATS"), flow()).findings == ()


@pytest.mark.parametrize(
    ("service", "engagement", "accepted"),
    [(None, None, False), ("ANY", None, True), (None, "EJ-1", True), ("ANY", "EJ-1", True)],
    ids=["neither", "service-only", "engagement-only", "both"],
)
def test_service_or_engagement_required(service: str | None, engagement: str | None, accepted: bool) -> None:
    """A recipient that wants a service code or an engagement refuses only a document with neither."""
    doc = ROUTE(document(buyer=MAIRIE, service=service, engagement=engagement), flow())
    assert doc.accepted is accepted
    if not accepted:
        (finding,) = doc.findings
        assert finding.code is Code.SERVICE_CODE_MISSING and finding.rule == "SERVICE_OR_ENGAGEMENT"
        assert "BT-10" in finding.message and "BT-13" in finding.message


def test_every_unmet_obligation_is_reported() -> None:
    """Missing service code and missing engagement are both reported, not just the first."""
    recipient = Recipient("strict", None, ("404040404",), service_code_required=True, engagement_required=True)
    doc = Route(Directory((recipient,)), ())(document(buyer=DUPONT), flow())
    assert codes(doc) == [Code.SERVICE_CODE_MISSING, Code.ENGAGEMENT_MISSING]


def test_queue_from_a_sender_rule() -> None:
    """A rule for one sender routes that sender's documents; other senders get the default queue."""
    assert ROUTE(document(buyer=DUPONT), flow("initech")).queue == "dupont-initech"
    assert ROUTE(document(buyer=DUPONT), flow("acme")).queue == "dupont"


def test_route_keeps_earlier_findings() -> None:
    """A document already rejected keeps its findings; routing still records the recipient, but no queue."""
    earlier = Finding(Code.SELLER_NOT_AUTHORISED, Layer.ROUTING, "no")
    doc = ROUTE(document(buyer=DUPONT, findings=(earlier,)), flow())
    assert codes(doc) == [Code.SELLER_NOT_AUTHORISED]
    assert doc.recipient == "dupont" and doc.route == "dupont" and doc.queue is None


text = st.text(max_size=16)
parties = st.builds(
    Party,
    name=st.none() | text,
    legal_id=st.none() | text | st.sampled_from(["21930048000015", "26750045200011", "40404040400012"]),
    vat_id=st.none() | text | st.just("FR83404040404"),
    ids=st.lists(text, max_size=2).map(tuple),
    endpoint=st.none() | text,
)


@given(
    parties,
    parties,
    st.none() | text | st.sampled_from(["ACHATS", "voirie"]),
    st.none() | text,
    st.sampled_from(["UBL", "CII", None, "other"]),
    st.sampled_from(["acme", "initech", "opdemat"]),
)
def test_route_is_total(
    seller: Party, buyer: Party, service: str | None, engagement: str | None, syntax: str | None, sender: str
) -> None:
    """For any invoice, Route gives a route or a DEST_INC finding (with "unrouted": always a route), never raises."""
    doc = document(seller=seller, buyer=buyer, service=service, engagement=engagement, syntax=syntax)
    rejecting = ROUTE(doc, flow(sender))
    dest_inc = [f for f in rejecting.findings if f.code is Code.DEST_INC]
    assert (rejecting.route is None) == bool(dest_inc)
    assert all(f.fatal for f in dest_inc)
    assert rejecting.recipient is None or rejecting.route is not None
    lenient = Route(DIRECTORY, RULES, "unrouted")(doc, flow(sender))
    assert lenient.route is not None
    assert all(not f.fatal for f in lenient.findings if f.code is Code.DEST_INC)
    authorised = AuthoriseSeller({"acme": ["123456782"], "opdemat": ["*"]})(doc, flow(sender))
    assert [f.code for f in authorised.findings] in ([], [Code.SELLER_NOT_AUTHORISED], [Code.SELLER_UNIDENTIFIED])
