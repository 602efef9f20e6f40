"""The shared corpus end to end: every file (XML and Factur-X PDF) gets, through one real batch, the XSD verdict
MANIFEST.tsv gives, with the syntax and profile it gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edi.runner import run_batch
from tests.conftest import CORPUS, FixedClock, Workspace, corpus_rows, needs_corpus

ROWS = corpus_rows()
FORMATS = {("UBL", "Invoice"): "ubl-invoice", ("UBL", "CreditNote"): "ubl-creditnote"}

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0
[[senders]]
id = "check"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
"""


@pytest.fixture(scope="module")
def corpus_acks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Drop every file of the corpus in one inbox, run one batch, and index the acks by SHA-256."""
    needs_corpus()
    from edi.config import load_settings
    from edi.runner import init_workspace

    tmp = tmp_path_factory.mktemp("corpus")
    config = tmp / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    for row in ROWS:
        ws.drop("check", Path(row["file"]).name, (CORPUS / row["file"]).read_bytes())
    report = run_batch(settings, clock=FixedClock())
    assert report.failed == 0 and len(report.outcomes) == len(ROWS)
    acks = [json.loads(p.read_text(encoding="utf-8")) for p in ws.acks("check")]
    return {a["sha256"]: a for a in acks}


def _fatal(doc: dict) -> list[dict]:
    """Fatal findings, without invoice-level duplicates (the corpus holds the same invoices as XML and as PDF)."""
    return [f for f in doc["findings"] if f["severity"] == "fatal" and f["code"] != "DOUBLON"]


@pytest.mark.parametrize("row", ROWS, ids=[Path(r["file"]).name for r in ROWS])
def test_corpus_file_gets_its_xsd_verdict(corpus_acks: dict[str, dict], row: dict[str, str]) -> None:
    """Valid per MANIFEST: no fatal finding but a duplicate; invalid: 501 with parse, XSD or PDF findings."""
    ack = corpus_acks[row["sha256"]]
    (doc,) = ack["documents"]
    assert ack["kind"] == ("pdf" if row["format"] == "facturx-pdf" else "xml")
    if row["profile"] == "none":  # a PDF without usable invoice XML
        assert doc["status"] == "501" and doc["reason"] in ("IRR_TYPE_F", "IRR_SYNTAX") and doc["container"] == "pdf"
        return
    if row["profile"].startswith("zugferd1"):
        assert doc["status"] == "501" and doc["reason"] == "IRR_TYPE_F" and doc["syntax"] == "ZUGFeRD1"
        return
    if row["format"] == "facturx-pdf":
        assert doc["container"] == "pdf" and doc["embedded_name"] == row["root"].split(":")[0]
    else:
        assert FORMATS.get((doc["syntax"], doc["kind"]), "cii") == row["format"]
    assert doc["profile"] == row["profile"]
    if row["xsd_valid"] == "yes":
        assert _fatal(doc) == [], doc["findings"]
        duplicate = [f for f in doc["findings"] if f["code"] == "DOUBLON"]
        assert doc["queue"] == ("unrouted" if not duplicate else None)
    else:
        assert ack["status"] == "IN_REJETE" and doc["status"] == "501"
        xsd = [f for f in doc["findings"] if f["layer"] in ("xsd", "parse")]
        assert xsd and all(f["code"] == "IRR_SYNTAX" for f in xsd)
        first = row["xsd_first_error"]
        if first.startswith("line "):
            assert xsd[0]["line"] == int(first.split(":")[0].removeprefix("line "))


def test_corpus_pdfs_keep_their_other_embedded_files(corpus_acks: dict[str, dict]) -> None:
    """A PDF that embeds files besides the invoice XML lists them in its acknowledgement."""
    with_extras = [r for r in ROWS if r["format"] == "facturx-pdf" and r["attachments"].endswith("(pdf)")]
    extras = {r["file"]: int(r["attachments"].split("+")[1].removesuffix("(pdf)")) for r in with_extras}
    assert any(extras.values())
    for row in with_extras:
        (doc,) = corpus_acks[row["sha256"]]["documents"]
        assert len(doc["attachments"]) == extras[row["file"]], row["file"]


def test_corpus_duplicates_name_the_first_acceptance(corpus_acks: dict[str, dict]) -> None:
    """The same invoice sent twice (as XML and as PDF, say) is accepted once; the repeats name that first one."""
    by_id = {a["flow_id"]: a for a in corpus_acks.values()}
    duplicates = [
        (a, f) for a in corpus_acks.values() for d in a["documents"] for f in d["findings"] if f["code"] == "DOUBLON"
    ]
    assert duplicates, "the corpus holds the same invoices several times"
    for ack, finding in duplicates:
        earlier = next(fid for fid in by_id if fid in finding["message"])
        assert earlier < ack["flow_id"] and by_id[earlier]["documents"][0]["status"] == "200"


# -- EN 16931 business rules ------------------------------------------------------------------------------------

RULE_ROWS = [r for r in ROWS if r["en16931_valid"] != "na" and not r["profile"].startswith("zugferd1")]


@pytest.fixture(scope="module")
def corpus_rules_acks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The whole corpus through one batch with rules = ["xsd", "en16931"]."""
    needs_corpus()
    from edi.config import load_settings
    from edi.runner import init_workspace

    tmp = tmp_path_factory.mktemp("corpus-rules")
    config = tmp / "config.toml"
    config.write_text(CONFIG + '\n[validation]\nrules = ["xsd", "en16931"]\n', encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    for row in RULE_ROWS:
        ws.drop("check", Path(row["file"]).name, (CORPUS / row["file"]).read_bytes())
    report = run_batch(settings, clock=FixedClock())
    assert report.failed == 0
    return {a["sha256"]: a for a in (json.loads(p.read_text(encoding="utf-8")) for p in ws.acks("check"))}


@pytest.mark.parametrize("row", RULE_ROWS, ids=[Path(r["file"]).name for r in RULE_ROWS])
def test_corpus_file_gets_its_en16931_verdict(corpus_rules_acks: dict[str, dict], row: dict[str, str]) -> None:
    """Rejected exactly when MANIFEST says the XSD or EN 16931 fails; the fatal EN 16931 rule ids are exactly
    MANIFEST's (none when it lists none), whatever the profile's XSLT numbers its asserts."""
    (doc,) = corpus_rules_acks[row["sha256"]]["documents"]
    expected_invalid = row["xsd_valid"] != "yes" or row["en16931_valid"] != "yes"
    assert bool(_fatal(doc)) == expected_invalid, _fatal(doc)
    assert "en16931" in doc["layers"]
    rules = {f["rule"] for f in _fatal(doc) if f["layer"] == "en16931" and f["code"] == "REJ_SEMAN"}
    listed = row["en16931_failed_rules"]
    if listed.startswith("XSLT error"):
        assert any(f["code"] == "LAYER_NOT_RUN" for f in _fatal(doc))
    else:
        assert rules == set(filter(None, listed.split(";"))), rules
    for finding in doc["findings"]:
        if finding["layer"] == "en16931":
            assert finding["rule_set_version"] and len(finding["rule_set_sha256"]) == 64
