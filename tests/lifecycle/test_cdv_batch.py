"""Tests for edi.lifecycle.cdv_batch: the rewritten BR-FR-CDV XSLT fires, on each message of a batch, exactly what the
official file unchanged fires on that message alone (ids, flags, locations, texts), on valid messages and on
deliberately broken ones; a message the rules cannot run on fails alone, never a pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from edi.codes import Code
from edi.lifecycle.cdar import Reason, build, build_relay
from edi.lifecycle.cdv_batch import SVRL, Batch, batch_stylesheet
from edi.lifecycle.validate import _saxon, artefacts, check, check_all
from edi.model import Characteristic, Layer
from edi.validate.saxon import SAFE_PARSER
from tests.lifecycle.test_cdar import relay_of, subject

Fired = tuple[str, str | None, str | None, str | None, str]


def fired(report: etree._Element) -> list[Fired]:
    """What a report says, as edi reads it: each failed assert and successful report, in order."""
    return [
        (
            etree.QName(item).localname,
            item.get("id"),
            item.get("flag"),
            item.get("location"),
            " ".join("".join(item.itertext()).split()),
        )
        for item in report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report")
    ]


@pytest.fixture(scope="module")
def official() -> Any:
    """The official file as shipped, compiled unchanged (no optimiser, no rewrite), on a processor of its own."""
    from saxonche import PySaxonProcessor

    saxon = PySaxonProcessor(license=False)
    saxon.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "")
    executable = saxon.new_xslt30_processor().compile_stylesheet(
        stylesheet_text=artefacts()[1].path.read_text(encoding="utf-8")
    )

    def run(text: str) -> list[Fired]:
        report = str(executable.transform_to_string(xdm_node=saxon.parse_xml(xml_text=text)))
        return fired(etree.fromstring(report.encode("utf-8"), SAFE_PARSER))

    return run


@pytest.fixture(scope="module")
def batch() -> Batch:
    return Batch(_saxon().processor(), artefacts()[1].path)


def valid_messages() -> Iterator[bytes]:
    """Messages edi builds: 200, 213 and 501 with every kind of reason, a file refused whole, odd text, relays."""
    yield build(subject())
    yield build(subject(seller_id=None, seller_name=None, type_code="999", issue_date="not a date"))
    yield build(subject(index=0, invoice_number=None, issue_date=None, type_code=None, seller_id="1234"))
    yield build(subject("213", reasons=(Reason("DOUBLON", "DOUBLON", "a duplicate"),)))
    yield build(
        subject(
            "213",
            reasons=(
                Reason("REJ_SEMAN", "REJ_SEMAN", "BR-CO-10 <&> \"'", "BR-CO-10", "/*/cac:X[1]", 12, "12,5"),
                Reason("REJ_SEMAN", "REJ_SEMAN", "x" * 3000, "BR-S-08"),
            ),
        )
    )
    yield build(subject("501", reasons=(Reason("IRR_SYNTAX", "IRR_SYNTAX", "cut short\u0001", line=3),)))
    yield build(subject("501", reasons=(Reason("IRR_TYPE_F", "IRR_TYPE_F", "not an invoice"),)))
    for status in range(202, 213):
        cashed = (Characteristic("MEN", "1858.80", "EUR", "20"),) if status == 212 else ()
        yield build_relay(relay_of(str(status), characteristics=cashed))
    yield build_relay(relay_of("207", issuer_role="ZZ", issuer_scheme=None, issuer_name="Ville <&>"))


def wrong_messages() -> Iterator[bytes]:
    """Messages built from subjects the rules refuse: a reason outside the reform's lists, a 212 without the amount
    cashed, a 207 without a reason."""
    yield build(subject("213", reasons=(Reason("X", "NOT_A_REASON", "m"),)))
    yield build_relay(relay_of("212"))
    yield build_relay(relay_of("207", reason=None))


def broken_messages() -> Iterator[bytes]:
    """Each valid message with, in turn, each element removed, each text replaced by a wrong value, each element
    repeated: what a bug in the builder could make of it."""
    for message in [*list(valid_messages())[:6], build_relay(relay_of("212"))]:
        root = etree.fromstring(message, SAFE_PARSER)
        count = sum(1 for _ in root.iter())
        for n in range(1, count):
            for change in ("remove", "text", "repeat", "empty"):
                copy = etree.fromstring(message, SAFE_PARSER)
                element = list(copy.iter())[n]
                parent = element.getparent()
                assert parent is not None
                if change == "remove":
                    parent.remove(element)
                elif change == "repeat":
                    parent.insert(parent.index(element), etree.fromstring(etree.tostring(element)))
                elif len(element):
                    continue
                else:
                    element.text = "X-1" if change == "text" else ""
                yield etree.tostring(copy, xml_declaration=True, encoding="UTF-8")


def test_the_rewrite_drops_only_what_edi_never_reads_and_adds_the_batch_template() -> None:
    """No svrl:active-pattern nor ns-prefix element is written any more; the batch template is there."""
    rewritten = etree.tostring(batch_stylesheet(etree.parse(str(artefacts()[1].path))))
    assert b"active-pattern" not in rewritten and b"ns-prefix-in-attribute-values" not in rewritten
    assert b'name="edi-batch"' in rewritten and b"failed-assert" in rewritten


def test_each_message_of_a_batch_fires_what_the_official_file_fires_on_it_alone(official: Any, batch: Batch) -> None:
    """On ~1,000 messages, valid and broken, batched by 37: every report holds exactly the asserts the official
    XSLT fires on that message alone (ids, flags, locations, texts, order), and at least one broken message of each
    kind fires something."""
    messages = list(valid_messages()) + list(wrong_messages()) + list(broken_messages())
    assert len(messages) > 800
    texts = [etree.tostring(etree.fromstring(m, SAFE_PARSER).getroottree(), encoding="unicode") for m in messages]
    firing = 0
    for start in range(0, len(texts), 37):
        chunk = texts[start : start + 37]
        for text, report in zip(chunk, batch.reports(chunk), strict=True):
            expected = official(text)
            assert fired(report) == expected, text
            firing += bool(expected)
    assert firing > 300


def test_valid_messages_pass_and_wrong_ones_fail_in_a_batch_or_alone() -> None:
    """The messages edi builds pass, batched or each alone; the wrong ones fail; check_all and check agree."""
    messages = list(valid_messages())
    assert all(not [f for f in found if f.fatal] for found in check_all(messages))
    wrong = list(wrong_messages())
    assert all([f for f in found if f.fatal] for found in check_all(wrong))
    assert check_all(messages + wrong) == [check(m) for m in messages + wrong]


def test_a_message_the_rules_cannot_run_on_fails_alone_and_the_others_keep_their_verdicts() -> None:
    """A message with an entity its own DTD declares (kept unexpanded by edi's safe parser: libxml2's XSD validator
    gives up on it, and it is not well-formed for Saxon): that message gets fatal LAYER_NOT_RUN findings (XSD and
    BR-FR-CDV), never a pass; the valid and broken messages beside it in the batch keep their own verdicts."""
    valid = build(subject())
    broken = build(subject("213"))
    declared = valid.replace(b"?>\n", b'?>\n<!DOCTYPE x [<!ENTITY e "zz">]>\n', 1)
    entity = declared.replace(b">REGULATED", b">&e;REGULATED")
    found = check_all([valid, entity, broken, b"<rsm:x"])
    assert [f for f in found[0] if f.fatal] == []
    not_run = [f for f in found[1] if f.code is Code.LAYER_NOT_RUN and f.fatal and f.layer is Layer.CDAR]
    assert [f.rule_set_sha256 for f in not_run] == [a.sha256 for a in artefacts()]
    assert [f.rule for f in found[2] if f.fatal] == ["BR-FR-CDV-15_MDT-113"]
    assert [f.code for f in found[3]] == [Code.IRR_SYNTAX]
    assert found[2] == check(broken)
