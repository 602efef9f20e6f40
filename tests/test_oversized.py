"""An oversized file is refused from its metadata, before any byte of it is read (issue 22, item 3): a real batch on
sparse files in a real workspace."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from lxml import etree

from edi.ack import from_xml
from edi.runner import run_batch
from edi.tracking import Tracking
from tests.conftest import REPO, FixedClock, Workspace

SCHEMA = etree.XMLSchema(etree.parse(str(REPO / "schemas" / "acknowledgement.xsd")))

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0
[limits]
max_flow_bytes = 1000
[[senders]]
id = "acme"
sellers = ["*"]
"""


def test_a_file_over_the_limit_is_refused_without_a_digest(make_workspace: Callable[..., Workspace]) -> None:
    """IRR_TAILLE_F with no SHA-256 (the file was never hashed) in the JSON ack, the XML ack (valid) and the store;
    the bytes are archived as they came."""
    ws = make_workspace(CONFIG)
    ws.drop("acme", "big.xml", b"<Invoice>" + b"x" * 2000 + b"</Invoice>")
    ws.drop("acme", "big-again.xml", b"<Invoice>" + b"x" * 2000 + b"</Invoice>")
    report = run_batch(ws.settings, clock=FixedClock())
    assert report.flows == 2 and report.failed == 0
    for path in ws.acks("acme"):
        ack = json.loads(path.read_text(encoding="utf-8"))
        assert ack["status"] == "IN_REJETE" and ack["sha256"] is None and ack["size"] == 2019
        assert [f["code"] for f in ack["findings"]] == ["IRR_TAILLE_F"]  # not DOUBLON: no digest to compare
        xml = path.with_suffix(".xml").read_bytes()
        SCHEMA.assertValid(etree.fromstring(xml))
        assert from_xml(xml)["sha256"] is None
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        assert {row["sha256"] for row in store.flows()} == {None}
    finally:
        store.close()
    archived = sorted(p.name.split("_", 1)[1] for p in (ws.root / "archive").rglob("*.xml"))
    assert archived == ["big-again.xml", "big.xml"]


def test_a_sparse_20_gib_file_is_refused_at_once(make_workspace: Callable[..., Workspace]) -> None:
    """A 20 GiB sparse file (an SFTP write at a large offset) is refused in well under the minute hashing it takes."""
    ws = make_workspace(CONFIG.replace("max_flow_bytes = 1000", "max_flow_bytes = 104857600"))
    path = ws.drop("acme", "huge.xml", b"")
    os.truncate(path, 20 * 1024**3)
    started = time.monotonic()
    report = run_batch(ws.settings, clock=FixedClock())
    elapsed = time.monotonic() - started
    [ack_path] = ws.acks("acme")
    ack = json.loads(ack_path.read_text(encoding="utf-8"))
    assert report.flows == 1 and ack["findings"][0]["code"] == "IRR_TAILLE_F" and ack["size"] == 20 * 1024**3
    assert elapsed < 10, f"{elapsed:.1f} s: the file was read"
