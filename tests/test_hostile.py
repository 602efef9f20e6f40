"""Hostile and broken input end to end: every case, all dropped into one inbox, gets exactly one clear
acknowledgement; the run goes on; nothing outside the workspace is read; nothing is delivered that should not be."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.runner import run_batch
from tests.conftest import FLOWS, FixedClock, Workspace

INVOICE = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
PDF = (FLOWS / "acme" / "15-facturx-invoice.pdf").read_bytes()
SECRET = b"TOP-SECRET-CANARY-42"

CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0
[limits]
max_document_bytes = 2097152
max_uncompressed_bytes = 8388608
max_members = 500
[[senders]]
id = "mallory"
sellers = ["*"]
[routing]
unknown_recipient = "unrouted"
"""


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_gz_of(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def tar_gz_with(info: tarfile.TarInfo) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(info)
    return gzip.compress(raw.getvalue())


def link(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _laugh(level: int) -> bytes:
    """One level of the billion laughs: an entity made of ten of the level below."""
    inner = f"&lol{level - 1};" if level > 1 else "&lol;"
    return f'<!ENTITY lol{level} "{inner * 10}">'.encode()


def hostile_cases(secret: Path) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, expected flow status, a code the acknowledgement must carry)."""
    uri = secret.as_uri()
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(_laugh(i) for i in range(1, 10))
        + b"]><Invoice>&lol9;</Invoice>"
    )
    quadratic = (
        b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + b"x" * 50_000 + b'">]><q>' + b"&a;" * 50_000 + b"</q>"
    )
    bomb = zip_of({"bomb.xml": b"<a>" + b" " * (7 * 1024 * 1024) + b"</a>"})
    many = zip_of({f"m{i:05d}.xml": b"<a/>" for i in range(10_000)}, zipfile.ZIP_STORED)
    hostile_embedded = zip_of({"ok.xml": INVOICE.replace(b"FA-2026-0001", b"FA-2026-9001"), "evil.xml": laughs})
    return {
        "xxe-file.xml": (
            f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "{uri}">]><Invoice>&s;</Invoice>'.encode(),
            "IN_REJETE",
            "IRR_SYNTAX",
        ),
        "xxe-network.xml": (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY s SYSTEM "http://127.0.0.1:9/x">]><Invoice>&s;</Invoice>',
            "IN_REJETE",
            "IRR_SYNTAX",
        ),
        "external-dtd.xml": (
            f'<?xml version="1.0"?><!DOCTYPE Invoice SYSTEM "{uri}"><Invoice/>'.encode(),
            "IN_REJETE",
            "IRR_SYNTAX",
        ),
        "billion-laughs.xml": (laughs, "IN_REJETE", "IRR_SYNTAX"),
        "quadratic.xml": (quadratic, "IN_REJETE", "IRR_SYNTAX"),
        "deep.xml": (b"<a>" * 5000 + b"</a>" * 5000, "IN_REJETE", "IRR_SYNTAX"),
        "huge-text.xml": (b"<Invoice>" + b"A" * (3 * 1024 * 1024) + b"</Invoice>", "IN_REJETE", "IRR_TAILLE_F"),
        "truncated.xml": (INVOICE[: len(INVOICE) // 2], "IN_REJETE", "IRR_SYNTAX"),
        "junk-after-root.xml": (INVOICE + b"<extra/>", "IN_REJETE", "IRR_SYNTAX"),
        "wrong-encoding.xml": (
            INVOICE.replace(b'encoding="UTF-8"', b'encoding="UTF-16"'),
            "IN_REJETE",
            "IRR_SYNTAX",
        ),
        "unknown-encoding.xml": (
            INVOICE.replace(b'encoding="UTF-8"', b'encoding="X-NOPE"'),
            "IN_REJETE",
            "IRR_SYNTAX",
        ),
        "utf16-bom.xml": (
            INVOICE.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
            "IN_INTEGRE",
            "DEST_INC",
        ),
        "latin1.xml": (
            INVOICE.replace(b"FA-2026-0001", b"FA-2026-0101")
            .decode()
            .replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
            .encode("latin-1", "xmlcharrefreplace"),
            "IN_INTEGRE",
            "DEST_INC",
        ),
        "bom-then-declaration.xml": (
            b"\xef\xbb\xbf" + INVOICE.replace(b"FA-2026-0001", b"FA-2026-0102"),
            "IN_INTEGRE",
            "DEST_INC",
        ),
        "empty.xml": (b"", "IN_REJETE", "IRR_VIDE_F"),
        "junk.bin": (bytes(range(256)) * 8, "IN_REJETE", "IRR_TYPE_F"),
        "pdf-named.xml": (PDF.replace(b"FA-2026-0015", b"FA-2026-0103"), "IN_INTEGRE", "DEST_INC"),
        "xml-named.pdf": (INVOICE.replace(b"FA-2026-0001", b"FA-2026-0104"), "IN_INTEGRE", "DEST_INC"),
        "truncated.pdf": (PDF[: len(PDF) // 3], "IN_REJETE", "IRR_SYNTAX"),
        "truncated.zip": (zip_of({"a.xml": INVOICE})[:-30], "IN_REJETE", "IRR_SYNTAX"),
        "truncated.tar.gz": (tar_gz_of({"a.xml": INVOICE})[:-20], "IN_REJETE", "IRR_SYNTAX"),
        "bomb.zip": (bomb, "IN_REJETE", "IRR_TAILLE_F"),
        "10000-members.zip": (many, "IN_REJETE", "IRR_TAILLE_F"),
        "zip-in-zip.zip": (zip_of({"inner.zip": zip_of({"a.xml": INVOICE})}), "IN_REJETE", "IRR_TYPE_F"),
        "traversal.zip": (zip_of({"../../escape.xml": INVOICE}), "IN_REJETE", "IRR_NOM_F"),
        "absolute.tar.gz": (tar_gz_of({"/etc/evil.xml": INVOICE}), "IN_REJETE", "IRR_NOM_F"),
        "symlink.tar.gz": (tar_gz_with(link("a.xml", tarfile.SYMTYPE, str(secret))), "IN_REJETE", "IRR_TYPE_F"),
        "device.tar.gz": (tar_gz_with(link("dev.xml", tarfile.CHRTYPE)), "IN_REJETE", "IRR_TYPE_F"),
        "hostile-member.zip": (hostile_embedded, "IN_INTEGRE_PARTIEL", "IRR_SYNTAX"),
    }


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, dict], object, Path]:
    """Drop every hostile case into one inbox and run one batch."""
    from edi.config import load_settings
    from edi.runner import init_workspace

    tmp = tmp_path_factory.mktemp("hostile")
    secret = tmp / "secret.txt"
    secret.write_bytes(SECRET)
    config = tmp / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    for name, (data, _, _) in hostile_cases(secret).items():
        ws.drop("mallory", name, data)
    report = run_batch(settings, clock=FixedClock())
    acks = {json.loads(p.read_text())["file_name"]: json.loads(p.read_text()) for p in ws.acks("mallory")}
    return ws, acks, report, secret


CASES = list(hostile_cases(Path("/nonexistent")))


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_gets_one_clear_answer(hostile_run, name: str, tmp_path: Path) -> None:
    """Each hostile or broken file ends with its acknowledgement, the expected status and a stable code."""
    _, acks, _, secret = hostile_run
    _, status, code = hostile_cases(secret)[name]
    ack = acks[name]
    assert ack["status"] == status
    findings = ack["findings"] + [f for d in ack["documents"] for f in d["findings"]]
    assert code in {f["code"] for f in findings}
    for finding in findings:
        assert finding["message"] and finding["code"] and finding["layer"]


def test_the_run_goes_on_and_nothing_fails(hostile_run) -> None:
    """One batch takes every case to an acknowledgement: no internal failure, nothing left in inbox or spool."""
    ws, acks, report, _ = hostile_run
    assert report.failed == 0 and len(report.outcomes) == len(CASES) == len(acks)
    assert list(ws.inbox("mallory").iterdir()) == []
    assert list((ws.root / "spool" / "active").iterdir()) == []


def test_nothing_outside_the_workspace_is_read_or_written(hostile_run) -> None:
    """The canary file that entities, DTDs and links point at never shows up; no file escapes the workspace."""
    ws, _, _, secret = hostile_run
    for path in ws.root.rglob("*"):
        if path.is_file() and not path.is_symlink() and "archive" not in path.parts:
            assert SECRET not in path.read_bytes(), path
    assert not (ws.root.parent / "escape.xml").exists() and not Path("/etc/evil.xml").exists()
    assert secret.read_bytes() == SECRET


def test_hostile_member_does_not_spoil_the_rest_of_its_batch(hostile_run) -> None:
    """A billion-laughs member of a ZIP is refused on its own; the good member beside it is delivered."""
    ws, acks, _, _ = hostile_run
    good, evil = acks["hostile-member.zip"]["documents"]
    assert good["status"] == "200" and good["queue"] == "unrouted"
    assert evil["status"] == "501" and evil["findings"][0]["code"] == "IRR_SYNTAX"
    assert (ws.root / "queues" / "unrouted" / "new" / good["delivered_as"][0]).is_file()


# -- invoice-level duplicates ------------------------------------------------------------------------------------


def _invoice(number: str, *, credit: bool = False, year: str = "2026") -> bytes:
    source = FLOWS / "acme" / ("02-ubl-creditnote.xml" if credit else "01-ubl-invoice.xml")
    original = "AV-2026-0001" if credit else "FA-2026-0001"
    data = source.read_bytes().replace(original.encode(), number.encode())
    return data.replace(b">2026-", f">{year}-".encode())


def test_duplicate_invoice_is_caught_across_runs_and_restarts(workspace: Workspace, clock) -> None:
    """An accepted invoice sent again later, in another flow and after a restart, is DOUBLON naming the first."""
    workspace.drop("acme", "first.xml", _invoice("FA-2026-0500"))
    (first,) = run_batch(workspace.settings, clock=clock).outcomes
    workspace.drop("acme", "again.xml", _invoice("FA-2026-0500") + b"\n")  # other bytes, same invoice
    (again,) = run_batch(workspace.settings, clock=clock).outcomes
    assert (first.status.value, again.status.value) == ("IN_INTEGRE", "IN_REJETE")
    ack = json.loads((workspace.root / "acks" / "acme" / f"{again.flow_id}.json").read_text())
    (finding,) = ack["documents"][0]["findings"]
    assert finding["code"] == "DOUBLON" and first.flow_id in finding["message"] and "document 1" in finding["message"]
    assert len(workspace.queue("ville-exemple")) == 1


def test_credit_note_and_other_year_are_not_duplicates(workspace: Workspace, clock) -> None:
    """Same number as a credit note, or in another year, is another document, not a duplicate."""
    workspace.drop("acme", "a.xml", _invoice("X-1"), age=30)
    workspace.drop("acme", "b.xml", _invoice("X-1", credit=True), age=20)
    workspace.drop("acme", "c.xml", _invoice("X-1", year="2025"), age=10)
    report = run_batch(workspace.settings, clock=clock)
    assert [o.accepted for o in report.outcomes] == [1, 1, 1]


def test_duplicate_within_one_batch_names_the_earlier_member(workspace: Workspace, clock) -> None:
    """Two copies of one invoice in one ZIP: the first is delivered, the second is DOUBLON naming "this flow"."""
    workspace.drop("opdemat", "lot.zip", zip_of({"a.xml": _invoice("FA-2026-0600"), "b.xml": _invoice("FA-2026-0600")}))
    (outcome,) = run_batch(workspace.settings, clock=clock).outcomes
    ack = json.loads((workspace.root / "acks" / "opdemat" / f"{outcome.flow_id}.json").read_text())
    first, second = ack["documents"]
    assert first["status"] == "200" and second["status"] == "213"
    assert "this flow, document 1" in second["findings"][0]["message"]
    assert ack["status"] == "IN_INTEGRE_PARTIEL"


def test_a_rejected_invoice_may_be_sent_again(workspace: Workspace, clock) -> None:
    """Only accepted invoices count: once fixed, an invoice that was rejected is accepted under the same number."""
    workspace.drop("acme", "bad.xml", _invoice("FA-2026-0700").replace(b">ACHATS<", b">CANTINE<"), age=30)
    workspace.drop("acme", "fixed.xml", _invoice("FA-2026-0700"), age=10)
    report = run_batch(workspace.settings, clock=clock)
    assert [o.status.value for o in report.outcomes] == ["IN_REJETE", "IN_INTEGRE"]


# -- mutated real invoices ---------------------------------------------------------------------------------------

SEEDS = [
    INVOICE,
    (FLOWS / "acme" / "03-cii-invoice.xml").read_bytes(),
    PDF,
    (FLOWS / "opdemat" / "03-batch-partial.zip").read_bytes(),
    (FLOWS / "opdemat" / "04-batch.tar.gz").read_bytes(),
]


@st.composite
def mutated(draw: Callable) -> bytes:
    """A seed with bytes flipped, cut, or a slice duplicated (the ways transfers and editors damage files)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif how == "cut":
            del data[at:]
        else:
            size = draw(st.integers(1, 200))
            data[at:at] = data[at : at + size]
    return bytes(data)


@pytest.fixture(scope="module")
def fuzz_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from edi.config import load_settings
    from edi.runner import init_workspace

    config = tmp_path_factory.mktemp("fuzz") / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    return Workspace(config, settings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_invoices_always_end_in_exactly_one_acknowledgement(fuzz_workspace: Workspace, data: bytes) -> None:
    """Whatever the damage, the intake answers with one final acknowledgement and never fails internally."""
    before = set(fuzz_workspace.acks("mallory"))
    fuzz_workspace.drop("mallory", "mutated.bin", data)
    report = run_batch(fuzz_workspace.settings, clock=FixedClock())
    (outcome,) = report.outcomes
    assert outcome.status.final, outcome
    (new,) = set(fuzz_workspace.acks("mallory")) - before
    ack = json.loads(new.read_text())
    assert ack["flow_id"] == outcome.flow_id and ack["status"] == outcome.status.value
