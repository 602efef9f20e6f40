"""Tests for edi.lifecycle.cdar: every message edi builds passes the official CDAR XSD and BR-FR-CDV fatal rules
(pyfrctc's files, run by edi's Saxon), carries the right status, reasons and findings, and is deterministic."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edi.codes import CODES, Code, DocumentStatus
from edi.lifecycle.cdar import (
    DOCUMENT_TYPES,
    GUIDELINE,
    LABELS,
    MAX_TEXT,
    NSMAP,
    PROCESS,
    QDT,
    RAM,
    RSM,
    UDT,
    Reason,
    Subject,
    _cut,
    _datetime,
    _issue_date,
    _party,
    _scheme,
    _sub,
    build,
    file_name,
    message_id,
    reasons_of,
    status_of,
    subjects_from_ack,
)
from edi.lifecycle.validate import check
from edi.model import Finding, Layer, Severity
from tests.conftest import FLOWS, REPO

T0 = datetime(2026, 9, 1, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 9, 1, 10, 0, 7, tzinfo=UTC)


def subject(status: str = "200", **changes: Any) -> Subject:
    values: dict[str, Any] = {
        "flow_id": "20260901T100000Z-acme-0001",
        "index": 1,
        "sender": "acme",
        "status": status,
        "received_at": T0,
        "decided_at": T1,
        "name": "01-ubl-invoice.xml",
        "invoice_number": "F-2026-001",
        "issue_date": "2026-08-31",
        "type_code": "380",
        "seller_id": "123456782",
        "seller_name": "Acme SAS",
    }
    values.update(changes)
    return Subject(**values)


def fatal(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.fatal]


def xpath(message: bytes, path: str) -> list[str]:
    root = etree.fromstring(message)
    return [str(v) for v in root.xpath(path, namespaces=NSMAP)]


REF = "/rsm:CrossDomainAcknowledgementAndResponse/rsm:AcknowledgementDocument/ram:ReferenceReferencedDocument"


def test_an_accepted_invoice_gets_a_valid_200_that_names_it_by_seller_number_date_and_type() -> None:
    """200 Déposée: passes the XSD and every BR-FR-CDV rule, identifies the invoice (MDT-87/91/100/129), no reason."""
    message = build(subject())
    assert check(message) == []
    assert xpath(message, f"{REF}/ram:ProcessConditionCode/text()") == ["200"]
    assert xpath(message, f"{REF}/ram:IssuerAssignedID/text()") == ["F-2026-001"]
    assert xpath(message, f"{REF}/ram:TypeCode/text()") == ["380"]
    assert xpath(message, f"{REF}/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == ["20260831"]
    assert xpath(message, f"{REF}/ram:IssuerTradeParty/ram:GlobalID/text()") == ["123456782"]
    assert xpath(message, f"{REF}/ram:IssuerTradeParty/ram:GlobalID/@schemeID") == ["0002"]
    assert xpath(message, f"{REF}/ram:SpecifiedDocumentStatus") == []


def test_the_same_subject_gives_the_same_bytes_and_the_id_and_name_come_from_flow_and_index() -> None:
    """Deterministic output; MDT-4 is <flow_id>.<index> and the file name <flow_id>.<index>.cdar.xml."""
    assert build(subject()) == build(subject())
    assert message_id("F", 3) == "F.0003"
    assert file_name("F", 3) == "F.0003.cdar.xml"
    message = build(subject(index=3))
    assert xpath(message, "//rsm:ExchangedDocument/ram:ID/text()") == [f"{subject().flow_id}.0003"]
    assert xpath(message, "//rsm:ExchangedDocument/ram:Name/text()") == [f"{subject().flow_id}.0003.cdar.xml"]


def test_a_213_groups_its_findings_by_reform_reason_with_one_characteristic_each() -> None:
    """213 Rejetée: one status per reason code (REJ_SEMAN, REJ_CONT_B2G, DOUBLON), numbered; each finding a DIV
    characteristic with edi's code, the rule, the text and line, the XPath and the value; valid."""
    findings = [
        Finding(Code.REJ_SEMAN, Layer.EN16931, "[BR-CO-10] sum of lines", rule="BR-CO-10", line=12, xpath="/a[1]/b[2]"),
        Finding(Code.SERVICE_CODE_MISSING, Layer.ROUTING, "no service code"),
        Finding(Code.REJ_SEMAN, Layer.BR_FR, "SIREN missing", rule="BR-FR-10", xpath="/a[1]/c[1]"),
        Finding(Code.DOUBLON, Layer.ROUTING, "already deposited"),
        Finding(Code.REJ_SEMAN, Layer.EN16931, "only a warning", severity=Severity.WARNING),
    ]
    reasons = reasons_of([*findings, {"code": "REJ_SEMAN", "message": "m", "rule": "BR-S-08", "value": "10.00"}])
    message = build(subject("213", reasons=reasons))
    assert check(message) == []
    statuses = f"{REF}/ram:SpecifiedDocumentStatus"
    assert xpath(message, f"{statuses}/ram:ReasonCode/text()") == ["REJ_SEMAN", "REJ_CONT_B2G", "DOUBLON"]
    assert xpath(message, f"{statuses}/ram:SequenceNumeric/text()") == ["1", "2", "3"]
    assert xpath(message, f"{statuses}/ram:RequestedActionCode/text()") == ["NIN", "NIN", "NOA"]
    first = f"{statuses}[1]/ram:SpecifiedDocumentCharacteristic"
    assert xpath(message, f"{first}/ram:TypeCode/text()") == ["DIV"] * 3
    assert xpath(message, f"{first}/ram:Name/text()") == ["BR-CO-10", "BR-FR-10", "BR-S-08"]
    assert xpath(message, f"{first}/ram:Location/text()") == ["/a[1]/b[2]", "/a[1]/c[1]"]
    assert xpath(message, f"{first}[1]/ram:Description/text()") == ["[BR-CO-10] sum of lines (line 12)"]
    assert xpath(message, f"{first}[3]/ram:Value/text()") == ["10.00"]
    assert xpath(message, f"{statuses}[2]/ram:SpecifiedDocumentCharacteristic/ram:ID/text()") == [
        "SERVICE_CODE_MISSING"
    ]


HOSTILE = [
    "<script>&amp;</script>",
    "'\"quotes\"' & <tags>",
    "ctrl\x00\x01\x08\x0b\x0c\x1b\x7f\ud800end",
    "]]><!-- -->",
    "x" * 100_000,
    "  spaced\t\n\r out  ",
    "",
]


@pytest.mark.parametrize("text", HOSTILE, ids=["markup", "quotes", "controls", "cdata", "long", "spaces", "empty"])
def test_hostile_numbers_names_messages_and_values_still_give_a_valid_213(text: str) -> None:
    """Markup, quotes, control characters (XML-illegal: U+FFFD), 100,000 characters (texts cut to MAX_TEXT),
    empty strings: in BT-1, the seller, the sender, the type code, the date and every finding field."""
    reasons = (Reason("REJ_SEMAN", "REJ_SEMAN", text, rule=text, xpath=text, line=1, value=text),)
    message = build(
        subject(
            "213",
            invoice_number=text,
            seller_id=text or None,
            seller_name=text,
            type_code=text,
            issue_date=text,
            name=text,
            reasons=reasons,
        )
    )
    assert fatal(check(message)) == []
    root = etree.fromstring(message)
    assert all(len(e.text or "") <= MAX_TEXT for e in root.iter("{*}Description", "{*}Value", "{*}Location"))
    if "\x00" in text:
        assert "\ufffd" in xpath(message, f"{REF}/ram:IssuerAssignedID/text()")[0]


@pytest.mark.parametrize("code", ["IRR_VIDE_F", "IRR_TAILLE_F", "IRR_TYPE_F", "IRR_SYNTAX", "IRR_NOM_F"])
def test_each_irr_reason_gives_a_valid_501(code: str) -> None:
    """501 Irrecevable with each of edi's IRR_* codes as its reason (BR-FR-CDV-CL-09_MDT-113_501)."""
    reasons = reasons_of([Finding(Code(code), Layer.INTAKE, f"refused: {code}")])
    assert status_of(reasons) == "501"
    message = build(subject("501", reasons=reasons))
    assert check(message) == []
    assert xpath(message, f"{REF}/ram:SpecifiedDocumentStatus/ram:ReasonCode/text()") == [code]
    assert xpath(message, f"{REF}/ram:SpecifiedDocumentStatus/ram:RequestedActionCode") == []


def test_an_unreadable_file_known_only_as_a_flow_gets_a_valid_501_about_the_file() -> None:
    """No BT-1, date, type nor seller: the file name stands for BT-1, the receipt date for BT-2, no MDT-91/129."""
    reasons = reasons_of([Finding(Code.IRR_SYNTAX, Layer.PARSE, "not well-formed")])
    bare = subject("501", index=0, name="bad.zip", invoice_number=None, issue_date=None, type_code=None)
    message = build(Subject(**{**_fields(bare), "seller_id": None, "seller_name": None, "reasons": reasons}))
    assert check(message) == []
    assert xpath(message, f"{REF}/ram:IssuerAssignedID/text()") == ["bad.zip"]
    assert xpath(message, f"{REF}/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == ["20260901"]
    assert xpath(message, f"{REF}/ram:TypeCode") == []
    assert xpath(message, f"{REF}/ram:IssuerTradeParty") == []


def test_a_213_without_a_seller_id_or_date_is_still_valid() -> None:
    """SELLER_UNIDENTIFIED: MDT-129 left out (never made up), an unreadable BT-2 replaced by the receipt date."""
    reasons = reasons_of([Finding(Code.SELLER_UNIDENTIFIED, Layer.ROUTING, "no seller id")])
    message = build(subject("213", seller_id=None, issue_date="31/08/2026", reasons=reasons))
    assert check(message) == []
    assert xpath(message, f"{REF}/ram:IssuerTradeParty") == []
    assert xpath(message, f"{REF}/ram:FormattedIssueDateTime/qdt:DateTimeString/text()") == ["20260901"]


def _fields(value: Subject) -> dict[str, Any]:
    return {name: getattr(value, name) for name in Subject.__slots__}


finding_dicts = st.fixed_dictionaries(
    {
        "code": st.sampled_from([c.value for c in Code]),
        "message": st.text(),
        "rule": st.none() | st.text(),
        "xpath": st.none() | st.text(),
        "line": st.none() | st.integers(min_value=1, max_value=10**9),
        "value": st.none() | st.text(),
        "severity": st.sampled_from(["fatal", "warning"]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(findings=st.lists(finding_dicts, max_size=8), number=st.text(), seller=st.none() | st.text())
def test_any_findings_and_identifiers_give_a_valid_message(
    findings: list[dict[str, Any]], number: str, seller: str | None
) -> None:
    """Whatever the findings (any text, any of edi's codes, fatal or not) and identifiers: the status they call for
    (200, 213 or 501) in a message that passes the XSD and the fatal rules."""
    reasons = reasons_of(findings)
    status = status_of(reasons)
    message = build(subject(status, invoice_number=number, seller_id=seller, reasons=reasons))
    assert fatal(check(message)) == []


# -- the real sample flows ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_acks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The acknowledgements the real `edi batch` writes for every sample of flows/ with the shipped config.toml."""
    folder = tmp_path_factory.mktemp("demo")
    shutil.copyfile(REPO / "config.toml", folder / "config.toml")
    (folder / "flows").mkdir()
    shutil.copyfile(FLOWS / "directory.toml", folder / "flows" / "directory.toml")
    env = {"EDI_CONFIG": "config.toml", "PATH": "/usr/bin:/bin"}

    def edi(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "edi", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr

    edi("init")
    subprocess.run([sys.executable, str(FLOWS / "drop.py"), "var/inbox"], cwd=folder, check=True, capture_output=True)
    time.sleep(2)  # the samples' intake age, as demo.sh waits
    edi("batch")
    acks = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("var/acks/*/*.json"))]
    assert len(acks) == 21
    return acks


def test_every_document_of_the_real_sample_flows_gets_a_valid_message_with_its_ack_status(
    sample_acks: list[dict[str, Any]],
) -> None:
    """One message per document of every sample's acknowledgement (one for a file refused whole), each valid, with
    the status and reason the acknowledgement gives; 200, 213 and 501 all occur."""
    seen = set()
    for ack in sample_acks:
        subjects = subjects_from_ack(ack)
        assert len(subjects) == max(1, len(ack["documents"]))
        for doc, sub in zip(ack["documents"] or [None], subjects, strict=True):
            message = build(sub)
            assert fatal(check(message)) == [], (ack["file_name"], sub.index)
            code = xpath(message, f"{REF}/ram:ProcessConditionCode/text()")[0]
            seen.add(code)
            if doc is not None:
                assert code == doc["status"]
                if doc["reason"]:
                    assert doc["reason"] in xpath(message, f"{REF}/ram:SpecifiedDocumentStatus/ram:ReasonCode/text()")
            else:
                assert ack["status"] == "IN_REJETE"
    assert seen == {"200", "213", "501"}


# --- relays of recipients' statuses --------------------------------------------------------------------------------


def relay_of(status: str, **changes: Any) -> Any:
    from edi.lifecycle.cdar import Relay

    fields: dict[str, Any] = {
        "flow_id": "20260901T100000000000-abcdef",
        "index": 1,
        "sender": "opdemat",
        "status": status,
        "set_at": T0,
        "decided_at": T1,
        "invoice_number": "IN-2026-0042",
        "issue_date": "2026-11-16",
        "type_code": "380",
        "seller_id": "987654324",
        "issuer_id": "404040404",
        "issuer_scheme": "0002",
        "reason": {"206": "AUTRE", "207": "AUTRE", "208": "JUSTIF_ABS", "210": "DOUBLON"}.get(status),
    }
    return Relay(**(fields | changes))


@pytest.mark.parametrize("status", [str(s) for s in range(202, 213)])
def test_a_relay_of_every_recipient_status_passes_the_official_checks(status: str) -> None:
    """A relay of each status 202 to 212 (with the reason its rules need, a 212 with the amount cashed) passes the
    CDAR XSD and the fatal BR-FR-CDV rules, phase 23, with its label (MDT-106) and the status time (MDT-78)."""
    from edi.lifecycle.cdar import RAM, build_relay
    from edi.lifecycle.rules import label
    from edi.model import Characteristic

    cashed = (Characteristic("MEN", "1858.80", "EUR", "20"),) if status == "212" else ()
    message = build_relay(relay_of(status, characteristics=cashed))
    assert [f for f in check(message) if f.fatal] == []
    root = etree.fromstring(message)
    assert root.findtext(f".//{{{RAM}}}ProcessCondition") == label(status)
    assert b"<ram:TypeCode>23</ram:TypeCode>" in message and b"20260901100000" in message
    assert build_relay(relay_of(status, characteristics=cashed)) == message  # the same bytes each time


def test_a_relay_without_the_issuers_role_or_scheme_still_passes() -> None:
    """An issuer with no scheme and an unknown role: BY and the ISO 6523 scheme of its SIREN stand in; no reason
    and no words: no SpecifiedDocumentStatus at all."""
    from edi.lifecycle.cdar import build_relay

    message = build_relay(relay_of("204", issuer_scheme=None, issuer_role="XX", reason=None))
    assert [f for f in check(message) if f.fatal] == []
    assert b"<ram:RoleCode>BY</ram:RoleCode>" in message and b"SpecifiedDocumentStatus" not in message


# -- the text writer against the tree-built reference ---------------------------------------------------------------


def reference_build(subject: Subject) -> bytes:
    """The message as edi built it before it was written as text: an lxml tree, indented, serialised."""
    root = etree.Element(f"{{{RSM}}}CrossDomainAcknowledgementAndResponse", nsmap=NSMAP)
    context = _sub(root, RSM, "ExchangedDocumentContext")
    _sub(_sub(context, RAM, "BusinessProcessSpecifiedDocumentContextParameter"), RAM, "ID", PROCESS)
    _sub(_sub(context, RAM, "GuidelineSpecifiedDocumentContextParameter"), RAM, "ID", GUIDELINE)
    header = _sub(root, RSM, "ExchangedDocument")
    _sub(header, RAM, "ID", message_id(subject.flow_id, subject.index))
    _sub(header, RAM, "Name", file_name(subject.flow_id, subject.index))
    _datetime(header, "IssueDateTime", subject.decided_at)
    sender = _sub(header, RAM, "SenderTradeParty")
    if subject.platform_id:
        _sub(sender, RAM, "GlobalID", subject.platform_id, schemeID="0238")
    _sub(sender, RAM, "RoleCode", "WK")
    _sub(_sub(header, RAM, "IssuerTradeParty"), RAM, "RoleCode", "WK")
    recipient = _sub(header, RAM, "RecipientTradeParty")
    _party(recipient, subject.seller_id, subject.seller_name)
    _sub(recipient, RAM, "RoleCode", "SE")
    _sub(_sub(recipient, RAM, "URIUniversalCommunication"), RAM, "URIID", subject.sender)
    ack = _sub(root, RSM, "AcknowledgementDocument")
    _sub(_sub(ack, RAM, "MultipleReferencesIndicator"), UDT, "Indicator", "false")
    _sub(ack, RAM, "TypeCode", "305")
    _datetime(ack, "IssueDateTime", subject.decided_at)
    ref = _sub(ack, RAM, "ReferenceReferencedDocument")
    _sub(ref, RAM, "IssuerAssignedID", subject.invoice_number or subject.name)
    if subject.type_code in DOCUMENT_TYPES:
        _sub(ref, RAM, "TypeCode", subject.type_code)
    _datetime(ref, "ReceiptDateTime", subject.received_at)
    _sub(_sub(ref, RAM, "FormattedIssueDateTime"), QDT, "DateTimeString", _issue_date(subject), format="102")
    _sub(ref, RAM, "ProcessConditionCode", subject.status)
    _sub(ref, RAM, "ProcessCondition", LABELS.get(subject.status, subject.status))
    if subject.seller_id:
        issuer = _sub(ref, RAM, "IssuerTradeParty")
        _sub(issuer, RAM, "GlobalID", subject.seller_id, **_scheme(subject.seller_id))
        _sub(issuer, RAM, "RoleCode", "SE")
    if subject.status != DocumentStatus.DEPOSEE:
        groups: dict[str, list[Reason]] = {}
        for reason in subject.reasons:
            if reason.status == subject.status:
                groups.setdefault(reason.reason, []).append(reason)
        for sequence, (code, reasons) in enumerate(groups.items(), start=1):
            status = _sub(ref, RAM, "SpecifiedDocumentStatus")
            _sub(status, RAM, "ReasonCode", code)
            meanings = dict.fromkeys(CODES[Code(r.code)].meaning for r in reasons if r.code in Code.__members__)
            _sub(status, RAM, "Reason", "; ".join(meanings) or code)
            if subject.status == DocumentStatus.REJETEE:
                _sub(status, RAM, "RequestedActionCode", "NOA" if code == "DOUBLON" else "NIN")
            _sub(status, RAM, "SequenceNumeric", str(sequence))
            for reason in reasons:
                item = _sub(status, RAM, "SpecifiedDocumentCharacteristic")
                _sub(item, RAM, "ID", reason.code)
                _sub(item, RAM, "TypeCode", "DIV")
                _sub(item, RAM, "Name", _cut(reason.rule or reason.code))
                description = reason.message if reason.line is None else f"{reason.message} (line {reason.line})"
                _sub(item, RAM, "Description", _cut(description))
                if reason.xpath:
                    _sub(item, RAM, "Location", _cut(reason.xpath))
                if reason.value is not None:
                    _sub(item, RAM, "Value", _cut(reason.value))
    etree.indent(root)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


odd_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("&<>\"'\r\n\t]]>\x00\x0b\ufffe"))
reason_values = st.builds(
    Reason,
    code=st.sampled_from([c.value for c in Code]) | odd_text,
    reason=st.sampled_from(["DOUBLON", "IRR_SYNTAX", "REJ_SEMAN", "IRR_TYPE_F"]) | odd_text,
    message=odd_text,
    rule=st.none() | odd_text,
    xpath=st.none() | odd_text,
    line=st.none() | st.integers(min_value=0, max_value=10**12),
    value=st.none() | odd_text,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from(["200", "213", "501"]) | odd_text,
    index=st.integers(min_value=0, max_value=99999),
    texts=st.fixed_dictionaries(
        {
            "flow_id": odd_text,
            "sender": odd_text,
            "name": odd_text,
            "invoice_number": st.none() | odd_text,
            "issue_date": st.none() | odd_text | st.sampled_from(["2026-02-29", "2024-02-29", "20260831"]),
            "type_code": st.none() | st.sampled_from(["380", "381", "999"]) | odd_text,
            "seller_id": st.none() | st.sampled_from(["123456782", "12345678200011", " 1234 "]) | odd_text,
            "seller_name": st.none() | odd_text,
            "platform_id": st.none() | odd_text,
        }
    ),
    reasons=st.lists(reason_values, max_size=5),
    decided=st.datetimes(timezones=st.none() | st.just(UTC)),
)
def test_the_text_writer_gives_the_bytes_of_the_tree_built_message(
    status: str, index: int, texts: dict[str, Any], reasons: list[Reason], decided: datetime
) -> None:
    """Whatever the subject (any text, characters XML cannot carry, markup, CR/LF/TAB, empty strings, long texts,
    any date): build() gives byte for byte what the tree-built, indented, lxml-serialised message gives."""
    made = subject(status, index=index, reasons=tuple(reasons), decided_at=decided, **texts)
    assert build(made) == reference_build(made)


def test_the_text_writer_gives_the_bytes_of_the_tree_built_message_for_every_kind_of_subject() -> None:
    """The fixed subjects of these tests (200, 213 and 501, long texts cut, a platform id) give the same bytes both
    ways."""
    made = [
        subject(),
        subject(platform_id="0000", seller_name=None, issue_date=None, type_code=None),
        subject("213", reasons=(Reason("DOUBLON", "DOUBLON", "a duplicate"), Reason("X", "REJ_SEMAN", "y" * 3000))),
        subject("501", reasons=(Reason("IRR_SYNTAX", "IRR_SYNTAX", "cut <&>\r", "R", "/a", 3, "v\t"),)),
    ]
    for one in made:
        assert build(one) == reference_build(one)
