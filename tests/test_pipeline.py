"""The one loop: stage order, short-circuit on a rejected file, and no parsed tree kept past the stages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from edi.model import Code, Document, Finding, Flow, FlowStatus, Layer
from edi.pipeline import Stages, collect, decide, display_name, read, settle


def _flow(tmp_path: Path) -> Flow:
    payload = tmp_path / "payload"
    payload.write_bytes(b"<a/>")
    return Flow("f1", "acme", "a.xml", 4, "0" * 64, datetime(2026, 11, 26, tzinfo=UTC), payload)


def test_decide_runs_flow_stages_then_every_document_stage_in_order(tmp_path: Path) -> None:
    """Flow stages run in order; each document then passes every document stage in order; trees are dropped."""
    seen: list[str] = []

    def split(flow: Flow) -> Flow:
        seen.append("split")
        docs = [Document(i, f"d{i}", 1, "0" * 64, data=b"<a/>") for i in (1, 2)]
        return replace(flow, members=lambda: iter(docs))

    def first(doc: Document, flow: Flow) -> Document:
        seen.append(f"first{doc.index}")
        return replace(doc, tree=object())

    def second(doc: Document, flow: Flow) -> Document:
        seen.append(f"second{doc.index}")
        assert doc.tree is not None
        return doc

    flow = decide(_flow(tmp_path), Stages([split], [first, second]))
    assert seen == ["split", "first1", "second1", "first2", "second2"]
    assert all(d.tree is None for d in flow.documents) and flow.status is FlowStatus.INTEGRATED


def test_settling_stages_run_after_every_document_is_read_and_see_the_documents_settled_before(
    tmp_path: Path,
) -> None:
    """`read` takes every document through the document stages first; `settle` then takes them, in order, through the
    settling stages, each seeing the flow with only the documents settled before it; `decide` is both."""
    seen: list[str] = []

    def split(flow: Flow) -> Flow:
        docs = [Document(i, f"d{i}", 1, "0" * 64, data=b"<a/>") for i in (1, 2, 3)]
        return replace(flow, members=lambda: iter(docs))

    def parse(doc: Document, flow: Flow) -> Document:
        seen.append(f"parse{doc.index}")
        return replace(doc, tree=object())

    def route(doc: Document, flow: Flow) -> Document:
        assert doc.tree is None and doc.data is None  # the XML is gone by now
        seen.append(f"route{doc.index} after {[d.route for d in flow.documents]}")
        return replace(doc, route=f"q{doc.index}")

    stages = Stages([split], [parse], settle=[route])
    read_only = read(_flow(tmp_path), stages)
    assert seen == ["parse1", "parse2", "parse3"] and [d.route for d in read_only.documents] == [None] * 3
    settled = settle(read_only, stages)
    assert seen[3:] == ["route1 after []", "route2 after ['q1']", "route3 after ['q1', 'q2']"]
    assert [d.route for d in settled.documents] == ["q1", "q2", "q3"]
    seen.clear()
    assert decide(_flow(tmp_path), stages) == settled
    assert seen == ["parse1", "parse2", "parse3", "route1 after []", "route2 after ['q1']", "route3 after ['q1', 'q2']"]


def test_decide_stops_at_a_fatal_flow_finding(tmp_path: Path) -> None:
    """Once the file itself is rejected, no later flow stage and no document stage runs."""

    def reject(flow: Flow) -> Flow:
        return replace(flow, findings=(Finding(Code.IRR_VIDE_F, Layer.INTAKE, "empty"),))

    def boom(flow: Flow) -> Flow:
        raise AssertionError("must not run")

    flow = decide(_flow(tmp_path), Stages([reject, boom], []))
    assert flow.status is FlowStatus.REJECTED and flow.documents == ()


def test_display_name_escapes_bytes_that_are_not_utf8() -> None:
    """Undecodable bytes of a file name are shown as \\xNN, the rest as text."""
    assert display_name("été.xml") == "été.xml"
    assert display_name(b"\xe9t\xe9.xml".decode("utf-8", "surrogateescape")) == "\\xe9t\\xe9.xml"


def test_payload_swapped_for_a_symlink_is_rejected_not_followed(workspace, clock, tmp_path: Path) -> None:
    """If a sender swaps its file for a link between scan and claim, the link is refused, its target never read."""
    from edi.ingest.scan import Ready
    from edi.runner import Session

    secret = tmp_path / "secret.xml"
    secret.write_bytes(b"<secret>do not read</secret>")
    link = workspace.inbox("acme") / "swap.xml"
    link.symlink_to(secret)
    with Session(workspace.settings, clock) as session:
        (outcome,) = session.claim_and_process([("acme", Ready(link, 0, 0.0))]) + session.processor.flush()
    assert outcome.status is FlowStatus.REJECTED
    ack = (workspace.root / "acks" / "acme" / f"{outcome.flow_id}.json").read_text()
    assert "IRR_TYPE_F" in ack and "not a regular file" in ack and "do not read" not in ack
    assert secret.read_bytes() == b"<secret>do not read</secret>"
    archived = list((workspace.root / "archive").rglob("*_swap.xml"))
    assert len(archived) == 1 and archived[0].is_symlink()


def test_what_a_document_stage_leaves_awaiting_is_applied_after_every_document_is_read_and_before_settling(
    tmp_path: Path,
) -> None:
    """A document stage may leave the rest of its work as `awaiting` (the business rules, run in another process):
    `read` leaves it, `collect` applies it to each document (in order, once, the field cleared), and `decide` runs
    it after every document is read and before the settling stages."""
    seen: list[str] = []

    def split(flow: Flow) -> Flow:
        docs = [Document(i, f"d{i}", 1, "0" * 64, data=b"<a/>") for i in (1, 2)]
        return replace(flow, members=lambda: iter(docs))

    def rules(doc: Document, flow: Flow) -> Document:
        seen.append(f"hand{doc.index}")

        def add(later: Document) -> Document:
            assert later.awaiting is None and later.tree is None
            seen.append(f"answer{doc.index}")
            return replace(later, findings=(Finding(Code.REJ_SEMAN, Layer.EN16931, "no"),) if doc.index == 2 else ())

        return replace(doc, tree=object(), awaiting=add)

    def route(doc: Document, flow: Flow) -> Document:
        seen.append(f"route{doc.index}")
        return replace(doc, route=f"q{doc.index}")

    stages = Stages([split], [rules], settle=[route])
    read_only = read(_flow(tmp_path), stages)
    assert seen == ["hand1", "hand2"] and all(d.awaiting is not None for d in read_only.documents)
    collected = collect(read_only)
    assert seen[2:] == ["answer1", "answer2"] and all(d.awaiting is None for d in collected.documents)
    assert [d.accepted for d in collected.documents] == [True, False]
    assert collect(collected) is collected
    seen.clear()
    decided = decide(_flow(tmp_path), stages)
    assert seen == ["hand1", "hand2", "answer1", "answer2", "route1", "route2"]
    assert decided.status is FlowStatus.PARTIALLY_INTEGRATED
