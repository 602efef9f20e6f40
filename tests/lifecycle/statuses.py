"""A builder of recipients' CDAR D22B status messages for the tests (authored here, not copied from the official
examples): one invoice per message unless asked otherwise, phase 23, the buyer (role BY) setting the status."""

from __future__ import annotations

from xml.sax.saxutils import escape

# the sample invoice flows/opdemat/01-initech-cii-basic.xml, delivered to the directory recipient "dupont"
NUMBER, SELLER, ISSUED, TYPE = "IN-2026-0042", "987654324", "20261116", "380"


def status_message(
    status: str,
    reason: str | None = None,
    text: str | None = None,
    *,
    number: str = NUMBER,
    seller: str = SELLER,
    issued: str = ISSUED,
    type_code: str | None = TYPE,
    set_at: str = "20261201100000",
    message_id: str = "STATUS-1",
    references: int = 1,
    cashed: str | None = None,
    xsd_invalid: bool = False,
) -> bytes:
    """A CDAR message in which the buyer 404040404 sets ``status`` on invoice ``number`` of ``seller``; ``cashed``
    adds the amount cashed (MEN, with 20 % VAT) that a 212 needs; ``xsd_invalid`` puts the status code before
    the invoice number (an order the XSD refuses)."""
    detail = ""
    if reason or text or cashed:
        detail = "<ram:SpecifiedDocumentStatus>"
        if reason:
            detail += f"<ram:ReasonCode>{escape(reason)}</ram:ReasonCode>"
        if text:
            detail += f"<ram:Reason>{escape(text)}</ram:Reason>"
        detail += "<ram:SequenceNumeric>1</ram:SequenceNumeric>"
        if cashed:
            detail += (
                "<ram:SpecifiedDocumentCharacteristic><ram:TypeCode>MEN</ram:TypeCode>"
                f'<ram:ValueAmount currencyID="EUR">{cashed}</ram:ValueAmount>'
                "<ram:ValuePercent>20</ram:ValuePercent></ram:SpecifiedDocumentCharacteristic>"
            )
        detail += "</ram:SpecifiedDocumentStatus>"
    kind = f"<ram:TypeCode>{type_code}</ram:TypeCode>" if type_code else ""
    reference = (
        f"<ram:ReferenceReferencedDocument><ram:IssuerAssignedID>{escape(number)}</ram:IssuerAssignedID>{kind}"
        f'<ram:FormattedIssueDateTime><qdt:DateTimeString format="102">{issued}</qdt:DateTimeString>'
        f"</ram:FormattedIssueDateTime><ram:ProcessConditionCode>{status}</ram:ProcessConditionCode>"
        f'<ram:IssuerTradeParty><ram:GlobalID schemeID="0002">{seller}</ram:GlobalID>'
        f"<ram:RoleCode>SE</ram:RoleCode></ram:IssuerTradeParty>{detail}</ram:ReferenceReferencedDocument>"
    )
    if xsd_invalid:
        early = f"<ram:ProcessConditionCode>{status}</ram:ProcessConditionCode>"
        reference = reference.replace("<ram:IssuerAssignedID>", early + "<ram:IssuerAssignedID>", 1)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossDomainAcknowledgementAndResponse
    xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100"
    xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
    xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
    xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:BusinessProcessSpecifiedDocumentContextParameter><ram:ID>REGULATED</ram:ID>
    </ram:BusinessProcessSpecifiedDocumentContextParameter>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn.cpro.gouv.fr:1p0:CDV:invoice</ram:ID>
    </ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>{escape(message_id)}</ram:ID>
    <ram:IssueDateTime><udt:DateTimeString format="204">{set_at}</udt:DateTimeString></ram:IssueDateTime>
    <ram:SenderTradeParty><ram:RoleCode>BY</ram:RoleCode></ram:SenderTradeParty>
    <ram:IssuerTradeParty><ram:GlobalID schemeID="0002">404040404</ram:GlobalID><ram:Name>Dupont Industrie SA</ram:Name>
      <ram:RoleCode>BY</ram:RoleCode></ram:IssuerTradeParty>
    <ram:RecipientTradeParty><ram:GlobalID schemeID="0002">{seller}</ram:GlobalID><ram:RoleCode>SE</ram:RoleCode>
      <ram:URIUniversalCommunication><ram:URIID schemeID="0225">{seller}_STATUTS</ram:URIID>
      </ram:URIUniversalCommunication></ram:RecipientTradeParty>
  </rsm:ExchangedDocument>
  <rsm:AcknowledgementDocument>
    <ram:MultipleReferencesIndicator><udt:Indicator>{"true" if references > 1 else "false"}</udt:Indicator>
    </ram:MultipleReferencesIndicator>
    <ram:TypeCode>23</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="204">{set_at}</udt:DateTimeString></ram:IssueDateTime>
    {reference * references}
  </rsm:AcknowledgementDocument>
</rsm:CrossDomainAcknowledgementAndResponse>
""".encode()
