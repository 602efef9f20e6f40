"""Acknowledgements (edi/ack.py): the JSON contract, statuses, and XML that round-trips and is valid."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edi.ack import NAMESPACE, build_ack, delivery_name, from_xml, to_json, to_xml, xml_safe
from edi.model import Code, Document, Finding, Flow, Invoice, Layer, Party, Severity
from tests.conftest import REPO

SCHEMA = etree.XMLSchema(etree.parse(str(REPO / "schemas" / "acknowledgement.xsd")))
RECEIVED = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)
PROCESSED = RECEIVED + timedelta(seconds=2)
FLOW_ID = "20261126T093000123456-abcdef"

FLOW_KEYS = [
    "schema_version",
    "flow_id",
    "sender",
    "file_name",
    "size",
    "sha256",
    "received_at",
    "deposited_at",
    "kind",
    "processed_at",
    "status",
    "duplicate_of",
    "documents_total",
    "documents_accepted",
    "findings",
    "documents",
    "cdar",
    "cdar_artefacts",
]
DOCUMENT_KEYS = [
    "index",
    "name",
    "size",
    "sha256",
    "container",
    "embedded_name",
    "attachments",
    "declared_profile",
    "syntax",
    "kind",
    "profile",
    "specification_id",
    "layers",
    "invoice_number",
    "type_code",
    "issue_date",
    "currency",
    "seller_id",
    "seller_name",
    "seller_key",
    "buyer_id",
    "buyer_name",
    "service_code",
    "engagement",
    "recipient",
    "queue",
    "delivered_as",
    "status",
    "reason",
    "findings",
    "cdar",
    "lifecycle",  # a recipient's status only (null for an invoice)
]
FINDING_KEYS = [
    "code",
    "reason",
    "rule",
    "assert_id",
    "layer",
    "severity",
    "line",
    "xpath",
    "message",
    "rule_set_version",
    "rule_set_sha256",
]
# The keys the issue names as the contract consumers rely on.
CONTRACT_FLOW = {"flow_id", "sender", "file_name", "sha256", "received_at", "processed_at", "status", "findings"}
CONTRACT_DOCUMENT = {"index", "name", "syntax", "profile", "invoice_number", "issue_date", "seller_id", "buyer_id"}
CONTRACT_DOCUMENT |= {"queue", "status", "findings"}
CONTRACT_FINDING = {"code", "rule", "layer", "severity", "line", "xpath", "message"}


def fatal(code: Code, **extra: object) -> Finding:
    return Finding(code, Layer.ROUTING, f"{code} found", **extra)  # type: ignore[arg-type]


def document(index: int, *findings: Finding, route: str | None = "dupont", invoice: bool = True) -> Document:
    return Document(
        index=index,
        name=f"invoice-{index}.xml",
        size=100 + index,
        sha256=f"{index:x}" * 64,
        data=b"<Invoice/>",
        syntax="UBL" if invoice else None,
        kind="Invoice" if invoice else None,
        profile="en16931" if invoice else None,
        specification_id="urn:cen.eu:en16931:2017" if invoice else None,
        invoice=Invoice(
            number=f"FA-{index}",
            type_code="380",
            issue_date="2026-11-26",
            currency="EUR",
            seller=Party(name="Acme SAS", legal_id="123456782", vat_id="FR40123456782"),
            buyer=Party(name="Dupont", endpoint="404040404"),
            buyer_reference="ACHATS",
            order_reference=None,
        )
        if invoice
        else None,
        recipient="dupont" if route else None,
        route=route,
        findings=findings,
    )


def flow(*documents: Document, findings: tuple[Finding, ...] = (), **extra: object) -> Flow:
    return Flow(
        flow_id=FLOW_ID,
        sender="acme",
        file_name="batch.zip",
        size=1234,
        sha256="a" * 64,
        received_at=RECEIVED,
        payload=Path("payload"),
        deposited_at=RECEIVED - timedelta(minutes=1),
        documents=documents,
        findings=findings,
        **extra,  # type: ignore[arg-type]
    )


MIXED = flow(
    document(1),
    document(2, fatal(Code.DEST_INC, xpath="/*/cac:AccountingCustomerParty/cac:Party")),
    document(3, fatal(Code.SERVICE_CODE_MISSING), fatal(Code.IRR_SYNTAX, line=12), route=None, invoice=False),
    findings=(Finding(Code.DOUBLON, Layer.INTAKE, "seen before", severity=Severity.WARNING, rule="R1"),),
)


def assert_valid(xml: bytes) -> None:
    document = etree.fromstring(xml)
    assert SCHEMA.validate(document), SCHEMA.error_log


# -- the contract ------------------------------------------------------------------------------------------------


def test_ack_has_exactly_the_contract_keys_in_order() -> None:
    """Flow, document and finding dicts have exactly the documented keys, in the documented order."""
    ack = build_ack(MIXED, PROCESSED)
    assert list(ack) == FLOW_KEYS
    assert all(list(d) == DOCUMENT_KEYS for d in ack["documents"])
    findings = ack["findings"] + [f for d in ack["documents"] for f in d["findings"]]
    assert len(findings) == 4
    assert all(list(f) == FINDING_KEYS for f in findings)
    assert CONTRACT_FLOW | {"documents"} <= set(ack)
    assert set(ack["documents"][0]) >= CONTRACT_DOCUMENT
    assert set(findings[0]) >= CONTRACT_FINDING


def test_ack_values() -> None:
    """The flow dict carries the flow's facts, times in ISO UTC milliseconds, counts and the roll-up status."""
    ack = build_ack(MIXED, PROCESSED)
    assert ack["schema_version"] == 1
    assert ack["flow_id"] == FLOW_ID and ack["sender"] == "acme" and ack["file_name"] == "batch.zip"
    assert ack["size"] == 1234 and ack["sha256"] == "a" * 64
    assert ack["received_at"] == "2026-11-26T09:30:00.123Z"
    assert ack["deposited_at"] == "2026-11-26T09:29:00.123Z"
    assert ack["processed_at"] == "2026-11-26T09:30:02.123Z"
    assert ack["status"] == "IN_INTEGRE_PARTIEL"
    assert ack["duplicate_of"] is None
    assert ack["documents_total"] == 3 and ack["documents_accepted"] == 1
    assert ack["findings"] == [
        {
            "code": "DOUBLON",
            "reason": "DOUBLON",
            "rule": "R1",
            "assert_id": None,
            "layer": "intake",
            "severity": "warning",
            "line": None,
            "xpath": None,
            "message": "seen before",
            "rule_set_version": None,
            "rule_set_sha256": None,
        }
    ]


def test_document_values() -> None:
    """A document dict carries its invoice facts, main seller/buyer ids, status, reason and findings."""
    first, second, third = build_ack(MIXED, PROCESSED)["documents"]
    assert first["index"] == 1 and first["name"] == "invoice-1.xml" and first["size"] == 101
    assert first["syntax"] == "UBL" and first["profile"] == "en16931" and first["kind"] == "Invoice"
    assert first["invoice_number"] == "FA-1" and first["issue_date"] == "2026-11-26" and first["currency"] == "EUR"
    assert first["seller_id"] == "123456782" and first["seller_name"] == "Acme SAS"
    assert first["buyer_id"] == "404040404" and first["buyer_name"] == "Dupont"
    assert first["service_code"] == "ACHATS" and first["engagement"] is None
    assert (first["status"], first["reason"], first["findings"]) == ("200", None, [])
    assert (second["status"], second["reason"]) == ("213", "DEST_INC")
    assert second["findings"][0]["xpath"] == "/*/cac:AccountingCustomerParty/cac:Party"
    assert (third["status"], third["reason"]) == ("501", "IRR_SYNTAX")
    assert [f["code"] for f in third["findings"]] == ["SERVICE_CODE_MISSING", "IRR_SYNTAX"]
    assert third["findings"][1]["line"] == 12 and third["findings"][0]["reason"] == "REJ_CONT_B2G"
    assert third["invoice_number"] is None and third["seller_id"] is None and third["syntax"] is None


def test_queue_and_delivered_as_only_for_accepted_documents() -> None:
    """An accepted document names its queue and delivery file; a rejected one keeps its recipient but has neither."""
    first, second, third = build_ack(MIXED, PROCESSED)["documents"]
    assert first["queue"] == "dupont" and first["delivered_as"] == [f"{FLOW_ID}.0001.xml"]
    assert first["recipient"] == "dupont"
    assert second["recipient"] == "dupont" and second["queue"] is None and second["delivered_as"] == []
    assert third["queue"] is None and third["delivered_as"] == []


def test_delivery_name_is_stable_and_unique_per_document() -> None:
    """The delivered files are <flow_id>.<index:04d>.<suffix>."""
    assert delivery_name(FLOW_ID, document(7), "xml") == f"{FLOW_ID}.0007.xml"
    assert delivery_name(FLOW_ID, document(12345), "pdf") == f"{FLOW_ID}.12345.pdf"


def test_a_pdf_document_is_delivered_as_its_xml_and_its_pdf() -> None:
    """An accepted Factur-X document lists both files it is delivered as, the XML first."""
    pdf = replace(document(1), container="pdf", embedded_name="factur-x.xml", attachments=("annexe.pdf",))
    (doc,) = build_ack(replace(MIXED, documents=(pdf,)), PROCESSED)["documents"]
    assert doc["delivered_as"] == [f"{FLOW_ID}.0001.xml", f"{FLOW_ID}.0001.pdf"]
    assert (doc["container"], doc["embedded_name"], doc["attachments"]) == ("pdf", "factur-x.xml", ["annexe.pdf"])


@pytest.mark.parametrize(
    ("value", "status", "documents"),
    [
        (flow(document(1), document(2)), "IN_INTEGRE", ["200", "200"]),
        (flow(document(1), document(2, fatal(Code.DEST_INC))), "IN_INTEGRE_PARTIEL", ["200", "213"]),
        (flow(document(1, fatal(Code.IRR_SYNTAX)), document(2, fatal(Code.DEST_INC))), "IN_REJETE", ["501", "213"]),
        (flow(document(1, fatal(Code.DEST_INC), fatal(Code.IRR_TYPE_F))), "IN_REJETE", ["501"]),
        (flow(findings=(fatal(Code.IRR_VIDE_F),)), "IN_REJETE", []),
        (flow(document(1), findings=(fatal(Code.DOUBLON),), duplicate_of="X"), "IN_REJETE", ["200"]),
    ],
    ids=["all-accepted", "some-accepted", "none-accepted", "501-wins-over-213", "file-rejected", "duplicate"],
)
def test_statuses(value: Flow, status: str, documents: list[str]) -> None:
    """Flow status IN_INTEGRE / IN_INTEGRE_PARTIEL / IN_REJETE; document status 200 / 213 / 501, 501 over 213."""
    ack = build_ack(value, PROCESSED)
    assert ack["status"] == status
    assert [d["status"] for d in ack["documents"]] == documents
    assert_valid(to_xml(ack))


def test_duplicate_of_and_missing_deposit_time() -> None:
    """duplicate_of names the earlier flow; a flow without a deposit time has deposited_at null (absent in XML)."""
    ack = build_ack(flow(findings=(fatal(Code.DOUBLON),), duplicate_of="20261126T000000000000-000000"), PROCESSED)
    assert ack["duplicate_of"] == "20261126T000000000000-000000"
    bare = build_ack(
        Flow(FLOW_ID, "acme", "a.xml", 0, "0" * 64, RECEIVED, Path("p"), findings=(fatal(Code.IRR_VIDE_F),)),
        PROCESSED,
    )
    assert bare["deposited_at"] is None and bare["documents_total"] == 0
    root = etree.fromstring(to_xml(bare))
    assert root.find(f"{{{NAMESPACE}}}deposited_at") is None
    assert root.find(f"{{{NAMESPACE}}}duplicate_of") is None
    assert_valid(to_xml(bare))


# -- renderings --------------------------------------------------------------------------------------------------


def test_json_and_xml_carry_the_same_content() -> None:
    """The JSON file and the XML file read back to the same dict build_ack made."""
    ack = build_ack(MIXED, PROCESSED)
    assert json.loads(to_json(ack)) == ack
    assert from_xml(to_xml(ack)) == ack


def test_xml_is_valid_against_the_schema() -> None:
    """The XML of a flow with accepted, rejected and unreadable documents is valid against the XSD."""
    assert_valid(to_xml(build_ack(MIXED, PROCESSED)))


def test_a_business_rule_finding_carries_the_assert_id_beside_its_rule() -> None:
    """A finding's assert_id (the artefact's own id) follows its rule in the JSON and the XML, which stays valid;
    a finding without one has it null in the JSON and absent from the XML."""
    broken = Finding(Code.REJ_SEMAN, Layer.EN16931, "[BR-IC-11]-In an Invoice", rule="BR-IC-11", assert_id="FX-SCH-A-1")
    ack = build_ack(flow(document(1, broken, route=None), findings=MIXED.findings), PROCESSED)
    (finding,) = ack["documents"][0]["findings"]
    assert list(finding)[2:4] == ["rule", "assert_id"]
    assert (finding["rule"], finding["assert_id"]) == ("BR-IC-11", "FX-SCH-A-1")
    assert ack["findings"][0]["assert_id"] is None
    xml = to_xml(ack)
    assert_valid(xml)
    ns = {"a": NAMESPACE}
    root = etree.fromstring(xml)
    assert root.xpath("string(a:documents/a:document/a:findings/a:finding/a:assert_id)", namespaces=ns) == "FX-SCH-A-1"
    assert root.xpath("a:findings/a:finding/a:assert_id", namespaces=ns) == []
    assert from_xml(xml) == ack


def test_xml_shape() -> None:
    """The XML is UTF-8 with a declaration, in the acknowledgement namespace, null keys absent, lists wrapped."""
    xml = to_xml(build_ack(MIXED, PROCESSED))
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(xml)
    assert root.tag == f"{{{NAMESPACE}}}acknowledgement"
    ns = {"a": NAMESPACE}
    assert len(root.xpath("a:documents/a:document", namespaces=ns)) == 3
    assert root.xpath("a:documents/a:document[1]/a:reason", namespaces=ns) == []
    assert root.xpath("string(a:documents/a:document[3]/a:reason)", namespaces=ns) == "IRR_SYNTAX"
    assert root.xpath("string(a:findings/a:finding/a:rule)", namespaces=ns) == "R1"


def test_json_is_utf8_without_escapes() -> None:
    """The JSON is UTF-8 text with non-ASCII characters as themselves, ending with a newline."""
    ack = build_ack(flow(document(1)), PROCESSED) | {"file_name": "facture-été.xml"}
    data = to_json(ack)
    assert "facture-été.xml".encode() in data and data.endswith(b"}\n")


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("plain", "plain"),
        ("tab\tnewline\ncr\r", "tab\tnewline\ncr\r"),
        ("nul\x00", "nul\ufffd"),
        ("\x01\x08\x0b\x0c\x1f", "\ufffd" * 5),
        ("\x7f\x85", "\x7f\x85"),
        ("\ud800 lone surrogate", "\ufffd lone surrogate"),
        ("\ufffe\uffff", "\ufffd\ufffd"),
        ("été 😀 \ue000 \U0010ffff", "été 😀 \ue000 \U0010ffff"),
        ("", ""),
    ],
    ids=[
        "plain",
        "allowed-whitespace",
        "nul",
        "c0-controls",
        "del-and-nel",
        "surrogate",
        "non-characters",
        "unicode",
        "empty",
    ],
)
def test_xml_safe(text: str, safe: str) -> None:
    """xml_safe replaces each character XML 1.0 cannot carry with U+FFFD and keeps every other one."""
    assert xml_safe(text) == safe


def test_unsafe_text_is_made_safe_in_both_renderings() -> None:
    """Control characters in a file name or message become U+FFFD in the dict, so JSON and XML agree."""
    bad = replace(
        flow(document(1, fatal(Code.IRR_SYNTAX, xpath="/a\x00", rule="\x1b[31m"))),
        file_name="evil\x00name\x07.xml",
    )
    ack = build_ack(bad, PROCESSED)
    assert ack["file_name"] == "evil\ufffdname\ufffd.xml"
    assert ack["documents"][0]["findings"][0]["rule"] == "\ufffd[31m"
    assert ack["documents"][0]["findings"][0]["xpath"] == "/a\ufffd"
    assert from_xml(to_xml(ack)) == json.loads(to_json(ack)) == ack
    assert_valid(to_xml(ack))


# -- properties --------------------------------------------------------------------------------------------------

any_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20) | st.sampled_from(
    ["", "\r", "\r\n", " ", "\n \t", "]]>", "<&>'\"", "\x00", "\x1f", "\ufffe"]
)
maybe_text = st.none() | any_text
parties = st.builds(
    Party,
    name=maybe_text,
    legal_id=maybe_text,
    vat_id=maybe_text,
    ids=st.lists(any_text, max_size=2).map(tuple),
    endpoint=maybe_text,
)
invoices = st.builds(
    Invoice,
    number=maybe_text,
    type_code=maybe_text,
    issue_date=maybe_text,
    currency=maybe_text,
    seller=parties,
    buyer=parties,
    buyer_reference=maybe_text,
    order_reference=maybe_text,
)
findings = st.builds(
    Finding,
    code=st.sampled_from(list(Code)),
    layer=st.sampled_from(list(Layer)),
    message=any_text,
    severity=st.sampled_from(list(Severity)),
    rule=maybe_text,
    assert_id=maybe_text,
    line=st.none() | st.integers(min_value=0, max_value=10**9),
    xpath=maybe_text,
)
sha256s = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@st.composite
def documents(draw: st.DrawFn, index: int) -> Document:
    return Document(
        index=index,
        name=draw(any_text),
        size=draw(st.integers(min_value=0, max_value=2**40)),
        sha256=draw(sha256s),
        data=b"",
        syntax=draw(maybe_text),
        kind=draw(maybe_text),
        profile=draw(maybe_text),
        specification_id=draw(maybe_text),
        invoice=draw(st.none() | invoices),
        recipient=draw(maybe_text),
        route=draw(maybe_text),
        findings=tuple(draw(st.lists(findings, max_size=3))),
    )


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    count = draw(st.integers(min_value=0, max_value=3))
    return Flow(
        flow_id=draw(any_text),
        sender=draw(any_text),
        file_name=draw(any_text),
        size=draw(st.integers(min_value=0, max_value=2**40)),
        sha256=draw(sha256s),
        received_at=draw(moments),
        payload=Path("payload"),
        deposited_at=draw(st.none() | moments),
        documents=tuple(draw(documents(n)) for n in range(1, count + 1)),
        findings=tuple(draw(st.lists(findings, max_size=2))),
        duplicate_of=draw(maybe_text),
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(flows(), moments)
def test_xml_round_trips_and_is_valid(value: Flow, processed_at: datetime) -> None:
    """For any flow, from_xml(to_xml(ack)) == ack == the JSON read back, and the XML is valid against the XSD."""
    ack = build_ack(value, processed_at)
    xml = to_xml(ack)
    assert from_xml(xml) == ack
    assert json.loads(to_json(ack)) == ack
    assert_valid(xml)


@given(any_text)
def test_xml_safe_output_is_always_xml(text: str) -> None:
    """Whatever the text, its xml_safe form can be an element's content, and reads back unchanged."""
    element = etree.Element("t")
    element.text = xml_safe(text)
    assert etree.fromstring(etree.tostring(element)).text in (xml_safe(text), None)
    assert xml_safe(xml_safe(text)) == xml_safe(text)
