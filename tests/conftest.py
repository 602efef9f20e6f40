"""Shared fixtures: the repository's samples, the shared corpus (skipped when absent), real workspaces in tmp_path."""

from __future__ import annotations

import csv
import gc
import os
import re
import shutil
import sqlite3
import subprocess
import textwrap
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edi.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "flows"
CORPUS = Path(os.environ.get("EDI_CORPUS", REPO.parent / "shared" / "corpus"))
# what must never reach a terminal from a sender: every control but the line feed between lines, DEL, C1, the line
# and paragraph separators, the bidi controls
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def assert_inert(text: str) -> None:
    """Nothing in ``text`` can act on a terminal: no control but the line feeds between lines, no bidi control."""
    assert not UNSAFE.search(text), UNSAFE.findall(text)


class FixedClock:
    """A clock that says what the test tells it (the only thing tests mock, with injected faults)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime.now(UTC)  # starts at the real time: file ages are real mtimes

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:  # what edi waits for passes at once
        self.advance(seconds)


@pytest.fixture(autouse=True)
def _cycle_collector_as_it_was() -> Iterator[None]:
    """The command line sets the collector's threshold for its process (edi.runner.collect_less): a test that runs
    it in this one leaves the threshold as it found it."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The command line configures structlog for its process (edi.logs, warnings and above): a test that runs it in
    this one leaves the configuration as it found it (a later test capturing info lines would see none)."""
    import structlog

    before = structlog.get_config()
    yield
    structlog.configure(**before)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set EDI_FAULTS for this process during one test (edi reads it once per process: the cache is cleared)."""
    from edi import faults

    def set_faults(spec: str) -> None:
        monkeypatch.setenv("EDI_FAULTS", spec)
        faults._faults.cache_clear()
        faults._reached.clear()

    yield set_faults
    monkeypatch.delenv("EDI_FAULTS", raising=False)
    faults._faults.cache_clear()
    faults._reached.clear()


def corpus_rows() -> list[dict[str, str]]:
    """The shared corpus manifest, or nothing when the corpus is absent."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def needs_corpus() -> None:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")


# What the demo's first batch answers for each sample of flows/<sender>/ (flows/expected.toml), and what the second
# one answers for flows/later/<partner>/ (its [later.*] entries)
EXPECTED_ALL: dict[str, Any] = tomllib.loads((FLOWS / "expected.toml").read_text(encoding="utf-8"))
EXPECTED: dict[str, Any] = {k: v for k, v in EXPECTED_ALL.items() if k != "later"}
EXPECTED_LATER: dict[str, Any] = EXPECTED_ALL["later"]


def assert_expected_answer(ack: dict[str, Any], expected: Mapping[str, Any]) -> None:
    """An acknowledgement (its JSON) gives the flow status, flow codes and, per document, the status, reason, codes
    and queue that an entry of flows/expected.toml lists."""
    assert ack["status"] == expected["flow"]
    assert [f["code"] for f in ack["findings"]] == expected.get("flow_codes", [])
    wanted = expected.get("documents", [expected] if "status" in expected else [])
    assert len(ack["documents"]) == len(wanted)
    for doc, want in zip(ack["documents"], wanted, strict=True):
        assert doc["status"] == want["status"]
        assert doc["reason"] == want.get("reason")
        assert [f["code"] for f in doc["findings"]] == want.get("codes", [])
        assert doc["queue"] == want.get("queue")
        if "lifecycle" in want:  # a recipient's status message: the status it carries, and who it was relayed to
            assert doc["lifecycle"]["status"] == want["lifecycle"]
            assert bool(doc["lifecycle"]["relay"]) == ("relayed_to" in want)
    for finding in [*ack["findings"], *(f for d in ack["documents"] for f in d["findings"])]:
        assert finding["message"] and finding["layer"] and finding["severity"] in ("fatal", "warning")


DEFAULT_CONFIG = """
[workspace]
root = "ws"

[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0

[[senders]]
id = "acme"
sellers = ["123456782"]

[[senders]]
id = "opdemat"
sellers = ["*"]

[routing]
unknown_recipient = "reject"
directory = "{directory}"
queues = ["ville-exemple-voirie"]

[[routing.rules]]
recipient = "ville-exemple"
service = "VOIRIE"
queue = "ville-exemple-voirie"
"""


@dataclass
class Workspace:
    """A real workspace under tmp_path, with its config file."""

    config: Path
    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.workspace.root

    def inbox(self, sender: str) -> Path:
        return self.root / "inbox" / sender

    def drop(self, sender: str, name: str | bytes, data: bytes, age: float = 60.0) -> Path:
        """Put a file in a sender's inbox as if it had finished arriving ``age`` seconds ago."""
        folder = self.inbox(sender)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (os.fsdecode(name) if isinstance(name, bytes) else name)
        path.write_bytes(data)
        stamp = datetime.now(UTC).timestamp() - age
        os.utime(path, (stamp, stamp))
        return path

    def acks(self, sender: str) -> list[Path]:
        return sorted((self.root / "acks" / sender).glob("*.json"))

    def queue(self, name: str) -> list[Path]:
        return sorted((self.root / "queues" / name / "new").iterdir())


def store_rows(ws: Workspace, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The rows a query of the workspace's store gives, as dicts (a connection of its own, closed after)."""
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[..., Workspace]:
    """Build a workspace from TOML text (default: two senders and the sample directory), and `edi init` it."""
    from edi.runner import init_workspace

    def make(text: str | None = None, init: bool = True) -> Workspace:
        body = textwrap.dedent(text if text is not None else DEFAULT_CONFIG).format(directory=FLOWS / "directory.toml")
        config = tmp_path / "config.toml"
        config.write_text(body, encoding="utf-8")
        settings = load_settings(config)
        if init:
            init_workspace(settings)
        return Workspace(config, settings)

    return make


@pytest.fixture
def workspace(make_workspace: Callable[..., Workspace]) -> Workspace:
    return make_workspace()


BASIC_SAMPLE = FLOWS / "opdemat" / "01-initech-cii-basic.xml"


def intra_community_supply(profile: str = "basic") -> bytes:
    """The Factur-X BASIC sample (or, without its lines, a BASIC WL invoice), numbered IN-2026-0142, made an
    intra-community supply (VAT category K, buyer VAT id, exemption reason) with neither a delivery date nor a
    deliver-to country: XSD-valid, it breaks EN 16931 rules BR-IC-11 and BR-IC-12 and no other (the empty delivery
    element it is left with draws the PEPPOL-EN16931-R008 warning from the BASIC XSLT)."""
    text = BASIC_SAMPLE.read_text(encoding="utf-8")
    line_tax = (
        "<ram:CategoryCode>S</ram:CategoryCode>\n          <ram:RateApplicablePercent>20</ram:RateApplicablePercent>"
    )
    replacements = [
        (">IN-2026-0042<", ">IN-2026-0142<", 2),
        (line_tax, line_tax.replace(">S<", ">K<").replace(">20<", ">0<"), 3),
        (
            "<ram:CalculatedAmount>309.80</ram:CalculatedAmount>\n        <ram:TypeCode>VAT</ram:TypeCode>\n",
            "<ram:CalculatedAmount>0.00</ram:CalculatedAmount>\n        <ram:TypeCode>VAT</ram:TypeCode>\n"
            "        <ram:ExemptionReason>Exonération de TVA, article 262 ter I du CGI</ram:ExemptionReason>\n",
            1,
        ),
        (
            "<ram:CategoryCode>S</ram:CategoryCode>\n        <ram:RateApplicablePercent>20<",
            "<ram:CategoryCode>K</ram:CategoryCode>\n"
            "        <ram:ExemptionReasonCode>VATEX-EU-IC</ram:ExemptionReasonCode>\n"
            "        <ram:RateApplicablePercent>0<",
            1,
        ),
        ('currencyID="EUR">309.80<', 'currencyID="EUR">0.00<', 1),
        (">1858.80<", ">1549.00<", 2),
        (
            "</ram:URIUniversalCommunication>\n      </ram:BuyerTradeParty>",
            "</ram:URIUniversalCommunication>\n        <ram:SpecifiedTaxRegistration>\n"
            '          <ram:ID schemeID="VA">BE0403170701</ram:ID>\n        </ram:SpecifiedTaxRegistration>\n'
            "      </ram:BuyerTradeParty>",
            1,
        ),
    ]
    for old, new, count in replacements:
        assert text.count(old) == count, old
        text = text.replace(old, new)
    text, delivery = re.subn(
        r"<ram:ApplicableHeaderTradeDelivery>.*?</ram:ApplicableHeaderTradeDelivery>",
        "<ram:ApplicableHeaderTradeDelivery/>",
        text,
        flags=re.S,
    )
    assert delivery == 1
    if profile == "basicwl":
        text = text.replace(
            "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic", "urn:factur-x.eu:1p0:basicwl"
        )
        text, lines = re.subn(
            r"\s*<ram:IncludedSupplyChainTradeLineItem>.*?</ram:IncludedSupplyChainTradeLineItem>", "", text, flags=re.S
        )
        assert lines == 3
    return text.encode("utf-8")


class Immutable:
    """Sets the immutable (or append-only) attribute on paths, which stops root unlike chmod, and clears it on
    release."""

    def __init__(self) -> None:
        self.paths: dict[Path, str] = {}

    def set(self, path: Path, flag: str = "i") -> None:
        if shutil.which("chattr") is None:
            pytest.skip("chattr not found")
        made = subprocess.run(["chattr", f"+{flag}", str(path)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +{flag} is not possible here: {made.stderr.strip()}")
        self.paths[path] = flag

    def release(self, path: Path) -> None:
        subprocess.run(["chattr", f"-{self.paths.pop(path)}", str(path)], check=True)


@pytest.fixture
def immutable() -> Iterator[Immutable]:
    """Make paths immutable (or append-only) during one test; always cleared at teardown."""
    attributes = Immutable()
    try:
        yield attributes
    finally:
        for path, flag in attributes.paths.items():
            subprocess.run(["chattr", f"-{flag}", str(path)], check=False)
