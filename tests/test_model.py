"""The values a flow is made of (edi/model.py) and the code table (edi/codes.py)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.codes import CODES, Code, DocumentStatus
from edi.model import Document, Finding, Flow, FlowStatus, Invoice, Layer, Party, Severity, evolve

IRRECEVABLE_CODES = [Code.IRR_VIDE_F, Code.IRR_TAILLE_F, Code.IRR_TYPE_F, Code.IRR_SYNTAX, Code.IRR_NOM_F]
REJETEE_CODES = [c for c in Code if c not in IRRECEVABLE_CODES]


def finding(code: Code, severity: Severity = Severity.FATAL) -> Finding:
    return Finding(code, Layer.ROUTING, f"{code} happened", severity=severity)


def document(*findings: Finding, index: int = 1, route: str | None = "q") -> Document:
    return Document(
        index=index,
        name=f"doc{index}.xml",
        size=3,
        sha256="0" * 64,
        data=b"<a/>",
        route=route,
        findings=findings,
    )


def flow(*documents: Document, findings: tuple[Finding, ...] = ()) -> Flow:
    return Flow(
        flow_id="20261126T093000000000-abcdef",
        sender="acme",
        file_name="in.xml",
        size=3,
        sha256="0" * 64,
        received_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        payload=Path("payload"),
        documents=documents,
        findings=findings,
    )


# -- codes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(Code), ids=[c.value for c in Code])
def test_every_code_has_an_entry_in_the_table(code: Code) -> None:
    """Every finding code has a CODES entry with a status, a reform reason code and a meaning."""
    info = CODES[code]
    assert isinstance(info.status, DocumentStatus)
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", info.reason)
    assert info.meaning.strip()


def test_code_table_has_no_entry_for_an_unknown_code() -> None:
    """The table holds exactly the codes of the Code enum, nothing more."""
    assert set(CODES) == set(Code)


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (Code.IRR_SYNTAX, DocumentStatus.IRRECEVABLE, "IRR_SYNTAX"),
        (Code.IRR_VIDE_F, DocumentStatus.IRRECEVABLE, "IRR_VIDE_F"),
        (Code.DOUBLON, DocumentStatus.REJETEE, "DOUBLON"),
        (Code.DEST_INC, DocumentStatus.REJETEE, "DEST_INC"),
        (Code.SERVICE_CODE_MISSING, DocumentStatus.REJETEE, "REJ_CONT_B2G"),
        (Code.ENGAGEMENT_MISSING, DocumentStatus.REJETEE, "REJ_CONT_B2G"),
        (Code.SELLER_NOT_AUTHORISED, DocumentStatus.REJETEE, "REJ_COH"),
    ],
    ids=lambda v: str(v),
)
def test_code_rolls_up_to_its_reform_status_and_reason(code: Code, status: DocumentStatus, reason: str) -> None:
    """Unreadable-file codes mean 501, business refusals 213, each with its reform reason code."""
    assert CODES[code].status is status
    assert finding(code).reason == reason


# -- findings and documents --------------------------------------------------------------------------------------


def test_finding_is_fatal_unless_a_warning() -> None:
    """A finding is fatal by default; a warning is not."""
    assert finding(Code.DEST_INC).fatal
    assert not finding(Code.DEST_INC, Severity.WARNING).fatal


def test_document_without_findings_is_deposited() -> None:
    """No finding: accepted, status 200, no reason, delivered to its route."""
    doc = document()
    assert doc.accepted and doc.status is DocumentStatus.DEPOSEE and doc.reason is None and doc.queue == "q"


def test_warnings_do_not_reject_a_document() -> None:
    """Only warnings: still accepted with status 200 and no reason."""
    doc = document(finding(Code.DEST_INC, Severity.WARNING), finding(Code.IRR_SYNTAX, Severity.WARNING))
    assert doc.accepted and doc.status is DocumentStatus.DEPOSEE and doc.reason is None and doc.queue == "q"


@pytest.mark.parametrize(
    ("codes", "status", "reason"),
    [
        ([Code.DEST_INC], "213", "DEST_INC"),
        ([Code.SERVICE_CODE_MISSING, Code.DEST_INC], "213", "REJ_CONT_B2G"),
        ([Code.IRR_SYNTAX], "501", "IRR_SYNTAX"),
        ([Code.DEST_INC, Code.IRR_SYNTAX], "501", "IRR_SYNTAX"),
        ([Code.SELLER_NOT_AUTHORISED, Code.IRR_TYPE_F, Code.IRR_SYNTAX], "501", "IRR_TYPE_F"),
    ],
    ids=["one-213", "first-213-reason", "one-501", "501-wins-over-213", "first-501-reason"],
)
def test_document_status_and_reason_follow_the_gravest_fatal_finding(
    codes: list[Code], status: str, reason: str
) -> None:
    """501 wins over 213; the reason is that of the first fatal finding of the gravest status."""
    doc = document(*(finding(c) for c in codes))
    assert not doc.accepted
    assert doc.status == status
    assert doc.reason == reason
    assert doc.queue is None


def test_warning_of_a_graver_status_does_not_change_the_reason() -> None:
    """A 501-code warning beside a fatal 213 finding leaves the document at 213 with the 213 reason."""
    doc = document(finding(Code.IRR_SYNTAX, Severity.WARNING), finding(Code.ENGAGEMENT_MISSING))
    assert doc.status is DocumentStatus.REJETEE and doc.reason == "REJ_CONT_B2G"


@given(st.lists(st.tuples(st.sampled_from(list(Code)), st.sampled_from(list(Severity))), max_size=6))
def test_document_status_is_derived_from_fatal_findings_only(items: list[tuple[Code, Severity]]) -> None:
    """For any findings: accepted iff 200, 501 iff some fatal 501 code, reason None iff accepted."""
    doc = document(*(finding(c, s) for c, s in items))
    fatal = [c for c, s in items if s is Severity.FATAL]
    assert doc.accepted == (not fatal) == (doc.status is DocumentStatus.DEPOSEE) == (doc.reason is None)
    assert (doc.status is DocumentStatus.IRRECEVABLE) == any(c in IRRECEVABLE_CODES for c in fatal)
    assert (doc.queue is None) == bool(fatal)


def test_with_findings_returns_a_new_document_and_keeps_the_old_one() -> None:
    """with_findings appends to a copy; the original value is untouched and frozen."""
    doc = document(finding(Code.DEST_INC, Severity.WARNING))
    more = doc.with_findings(finding(Code.DOUBLON))
    assert [f.code for f in more.findings] == [Code.DEST_INC, Code.DOUBLON]
    assert [f.code for f in doc.findings] == [Code.DEST_INC]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.route = "other"  # type: ignore[misc]


# -- flows -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("documents", "findings", "status"),
    [
        ([document(index=1), document(index=2)], (), FlowStatus.INTEGRATED),
        ([document(index=1), document(finding(Code.DEST_INC), index=2)], (), FlowStatus.PARTIALLY_INTEGRATED),
        ([document(finding(Code.IRR_SYNTAX), index=1)], (), FlowStatus.REJECTED),
        ([], (), FlowStatus.REJECTED),
        ([document(index=1)], (finding(Code.DOUBLON),), FlowStatus.REJECTED),
        ([document(index=1)], (finding(Code.DOUBLON, Severity.WARNING),), FlowStatus.INTEGRATED),
    ],
    ids=["all-accepted", "some-accepted", "none-accepted", "no-document", "file-rejected", "flow-warning-only"],
)
def test_flow_status_rolls_up_its_documents(
    documents: list[Document], findings: tuple[Finding, ...], status: FlowStatus
) -> None:
    """All accepted: IN_INTEGRE; some: IN_INTEGRE_PARTIEL; none, no document or a fatal flow finding: IN_REJETE."""
    assert flow(*documents, findings=findings).status is status


def test_only_the_three_answers_are_final() -> None:
    """IN_INTEGRE, IN_INTEGRE_PARTIEL and IN_REJETE are final; received and failed are not."""
    assert {s for s in FlowStatus if s.final} == {
        FlowStatus.INTEGRATED,
        FlowStatus.PARTIALLY_INTEGRATED,
        FlowStatus.REJECTED,
    }


# -- parties -----------------------------------------------------------------------------------------------------


def test_party_identifiers_most_specific_first_without_repeats_or_blanks() -> None:
    """identifiers: legal id, VAT id, address, then other ids; empty and repeated values dropped."""
    party = Party(
        legal_id="12345678200010",
        vat_id="FR40123456782",
        endpoint="12345678200010",
        ids=("", "GLN1", "FR40123456782", "GLN2"),
    )
    assert party.identifiers == ("12345678200010", "FR40123456782", "GLN1", "GLN2")


@pytest.mark.parametrize(
    ("party", "main"),
    [
        (Party(legal_id="L", vat_id="V", endpoint="E", ids=("I",)), "L"),
        (Party(vat_id="V", endpoint="E", ids=("I",)), "V"),
        (Party(endpoint="E", ids=("I", "J")), "E"),
        (Party(ids=("I", "J")), "I"),
        (Party(name="Nobody"), None),
    ],
    ids=["legal", "vat", "endpoint", "other-id", "none"],
)
def test_party_main_id_precedence(party: Party, main: str | None) -> None:
    """main_id is the legal id, else the VAT id, else the address, else the first other id, else None."""
    assert party.main_id == main


def test_party_without_identifier_has_none() -> None:
    """A party with only a name has no identifiers."""
    assert Party(name="X").identifiers == ()


def test_evolve_is_dataclasses_replace_for_model_values() -> None:
    """evolve gives what dataclasses.replace gives (other fields kept, the original untouched), and refuses a field
    the value does not have."""
    doc = Document(index=2, name="a.xml", size=10, sha256="f" * 64, syntax="UBL")
    finding = Finding(Code.IRR_SYNTAX, Layer.PARSE, "bad")
    changed = evolve(doc, size=11, findings=(finding,))
    assert changed == dataclasses.replace(doc, size=11, findings=(finding,))
    assert changed.syntax == "UBL" and doc.size == 10 and doc.findings == ()
    with pytest.raises(TypeError, match="no field colour"):
        evolve(doc, colour="red")


@pytest.mark.parametrize(
    "value",
    [
        Finding(Code.IRR_SYNTAX, Layer.PARSE, "bad", line=3),
        Party(name="X", legal_id="123456782", ids=("a", "b")),
        Invoice(number="F1", seller=Party(name="S"), buyer=Party(name="B")),
        Document(index=1, name="a.xml", size=1, sha256="0" * 64, data=b"<a/>", tree=object()),
        Flow(
            flow_id="f1",
            sender="acme",
            file_name="a.xml",
            size=1,
            sha256="0" * 64,
            received_at=datetime(2026, 12, 5, tzinfo=UTC),
            payload=Path("a.xml"),
            content=b"<a/>",
        ),
    ],
    ids=lambda value: type(value).__name__,
)
def test_evolve_copies_every_field_of_every_model_value(value: object) -> None:
    """Every field is copied (the ones compare leaves out too), each changed field alone is changed, and the copy is
    a new value of the same class."""
    fields = [f.name for f in dataclasses.fields(value)]  # type: ignore[arg-type]
    same = evolve(value)
    assert same is not value and type(same) is type(value)
    assert all(getattr(same, name) is getattr(value, name) for name in fields)
    for name in fields:
        marker = object()
        changed = evolve(value, **{name: marker})
        assert getattr(changed, name) is marker
        assert all(getattr(changed, other) is getattr(value, other) for other in fields if other != name)
