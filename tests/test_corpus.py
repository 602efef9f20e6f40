"""The shared corpus end to end: every XML file gets, through one real batch, the XSD verdict MANIFEST.tsv gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edi.runner import run_batch
from tests.conftest import CORPUS, FixedClock, Workspace, corpus_rows, needs_corpus

XML_ROWS = [r for r in corpus_rows() if r["format"] != "facturx-pdf"]
FORMATS = {("UBL", "Invoice"): "ubl-invoice", ("UBL", "CreditNote"): "ubl-creditnote"}

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
[[senders]]
id = "check"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
"""


@pytest.fixture(scope="module")
def corpus_acks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Drop every XML file of the corpus in one inbox, run one batch, and index the acks by SHA-256."""
    needs_corpus()
    from edi.config import load_settings
    from edi.runner import init_workspace

    tmp = tmp_path_factory.mktemp("corpus")
    config = tmp / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    for row in XML_ROWS:
        ws.drop("check", Path(row["file"]).name, (CORPUS / row["file"]).read_bytes())
    report = run_batch(settings, clock=FixedClock())
    assert report.failed == 0 and len(report.outcomes) == len(XML_ROWS)
    acks = [json.loads(p.read_text(encoding="utf-8")) for p in ws.acks("check")]
    return {a["sha256"]: a for a in acks}


@pytest.mark.parametrize("row", XML_ROWS, ids=[Path(r["file"]).name for r in XML_ROWS])
def test_corpus_file_gets_its_xsd_verdict(corpus_acks: dict[str, dict], row: dict[str, str]) -> None:
    """Valid per MANIFEST: delivered (at most a DEST_INC warning); invalid: 501 IRR_SYNTAX with XSD findings."""
    ack = corpus_acks[row["sha256"]]
    (doc,) = ack["documents"]
    if row["profile"].startswith("zugferd1"):
        assert doc["status"] == "501" and doc["reason"] == "IRR_TYPE_F" and doc["syntax"] == "ZUGFeRD1"
        return
    assert FORMATS.get((doc["syntax"], doc["kind"]), "cii") == row["format"]
    assert doc["profile"] == row["profile"]
    if row["xsd_valid"] == "yes":
        assert ack["status"] == "IN_INTEGRE", doc["findings"]
        assert doc["queue"] == "unrouted"
        assert [(f["code"], f["severity"]) for f in doc["findings"]] == [("DEST_INC", "warning")]
    else:
        assert ack["status"] == "IN_REJETE" and doc["status"] == "501"
        xsd = [f for f in doc["findings"] if f["layer"] in ("xsd", "parse")]
        assert xsd and all(f["code"] == "IRR_SYNTAX" for f in xsd)
        first = row["xsd_first_error"]
        if first.startswith("line "):
            assert xsd[0]["line"] == int(first.split(":")[0].removeprefix("line "))
