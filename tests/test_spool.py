"""The file mover (edi/spool.py) on real folders: claim, recover, deliver, write, archive, fail, requeue, sweep."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edi import faults
from edi.errors import InjectedFault
from edi.spool import Claim, Spool
from edi.workspace import Layout

RECEIVED = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
MTIME = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "ws")
    layout.create(["acme"], ["dupont"])
    return layout


@pytest.fixture
def spool(layout: Layout) -> Spool:
    return Spool(layout)


@pytest.fixture
def claims() -> Iterator[list[Claim]]:
    """Claims a test makes; their locks are released at the end."""
    made: list[Claim] = []
    yield made
    for claim in made:
        claim.release()


def drop(layout: Layout, name: str = "invoice.xml", data: bytes = b"<Invoice/>") -> Path:
    path = layout.sender_inbox("acme") / name
    path.write_bytes(data)
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    return path


def claim_one(
    spool: Spool, layout: Layout, claims: list[Claim], flow_id: str = "F1", data: bytes = b"<Invoice/>"
) -> Claim:
    claim = spool.claim(drop(layout, data=data), "acme", flow_id, RECEIVED)
    assert claim is not None
    claims.append(claim)
    return claim


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- claim -------------------------------------------------------------------------------------------------------


def test_claim_moves_the_file_into_the_spool_with_its_metadata(
    spool: Spool, layout: Layout, claims: list[Claim]
) -> None:
    """Claiming renames the inbox file to spool/active/<id>/payload and writes meta.json beside it."""
    source = drop(layout, data=b"exact bytes \x00\xff")
    claim = spool.claim(source, "acme", "F1", RECEIVED)
    assert claim is not None
    claims.append(claim)
    assert not source.exists()
    assert claim.folder == layout.active / "F1"
    assert claim.payload.read_bytes() == b"exact bytes \x00\xff"
    assert names(claim.folder) == ["lock", "meta.json", "payload"]
    meta = json.loads((claim.folder / "meta.json").read_text(encoding="utf-8"))
    assert meta == {
        "flow_id": "F1",
        "sender": "acme",
        "name": "invoice.xml",
        "received_at": RECEIVED.isoformat(),
        "deposited_at": MTIME.isoformat(),
    }
    assert (claim.flow_id, claim.sender, claim.name) == ("F1", "acme", "invoice.xml")
    assert claim.received_at == RECEIVED and claim.deposited_at == MTIME


def test_claim_keeps_the_inode(spool: Spool, layout: Layout, claims: list[Claim]) -> None:
    """The payload is the very file the sender wrote (a rename, not a copy)."""
    source = drop(layout)
    inode = source.stat().st_ino
    claim = spool.claim(source, "acme", "F1", RECEIVED)
    assert claim is not None
    claims.append(claim)
    assert claim.payload.stat().st_ino == inode


def test_claiming_a_vanished_file_returns_none_and_leaves_no_folder(spool: Spool, layout: Layout) -> None:
    """A file gone before the claim: None, and nothing left in spool/active."""
    source = drop(layout)
    source.unlink()
    assert spool.claim(source, "acme", "F1", RECEIVED) is None
    assert names(layout.active) == []


def test_two_spools_claiming_the_same_file_one_wins(layout: Layout, claims: list[Claim]) -> None:
    """Two claimers of one file: the first gets it, the second gets None and leaves no folder."""
    source = drop(layout)
    first = Spool(layout).claim(source, "acme", "F1", RECEIVED)
    second = Spool(layout).claim(source, "acme", "F2", RECEIVED)
    assert first is not None and second is None
    claims.append(first)
    assert names(layout.active) == ["F1"]
    assert first.payload.read_bytes() == b"<Invoice/>"


def race_to_claim(layout: Layout, source: Path, runners: int, prefix: str) -> list[Claim | None]:
    """``runners`` threads, each with its own Spool, claim ``source`` at the same instant."""
    barrier = threading.Barrier(runners)
    results: list[Claim | None] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        barrier.wait()
        got = Spool(layout).claim(source, "acme", f"{prefix}-{n}", RECEIVED)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_claims_of_one_file_exactly_one_wins(layout: Layout, claims: list[Claim]) -> None:
    """Threads racing to claim the same file, many times over: exactly one wins each race, losers leave nothing."""
    for race in range(20):
        source = drop(layout, name=f"race-{race}.xml", data=f"race {race}".encode())
        results = race_to_claim(layout, source, 4, f"R{race:02d}")
        winners = [r for r in results if r is not None]
        assert len(results) == 4 and len(winners) == 1
        claims.extend(winners)
        assert winners[0].payload.read_bytes() == f"race {race}".encode()
        assert [n for n in names(layout.active) if n.startswith(f"R{race:02d}-")] == [winners[0].flow_id]


def test_claim_fault_before_rename_leaves_the_file_in_the_inbox(
    spool: Spool, layout: Layout, inject: Callable[[str], None]
) -> None:
    """An injected failure during a claim raises, leaves the file where it was and no claim folder."""
    inject("claim.before_rename=raise")
    source = drop(layout)
    with pytest.raises(InjectedFault):
        spool.claim(source, "acme", "F1", RECEIVED)
    assert source.read_bytes() == b"<Invoice/>"
    assert names(layout.active) == []


# -- recovery ----------------------------------------------------------------------------------------------------


def test_orphans_skip_a_claim_held_by_a_live_owner(spool: Spool, layout: Layout, claims: list[Claim]) -> None:
    """While the claim's lock is held, recovery does not touch it; once released, it is recovered once."""
    claim = claim_one(spool, layout, claims)
    assert list(Spool(layout).orphans()) == []
    assert claim.payload.exists()
    claim.release()
    (recovered,) = list(Spool(layout).orphans())
    claims.append(recovered)
    assert (recovered.flow_id, recovered.sender, recovered.name) == ("F1", "acme", "invoice.xml")
    assert recovered.received_at == RECEIVED and recovered.deposited_at == MTIME
    assert recovered.payload.read_bytes() == b"<Invoice/>"
    assert list(Spool(layout).orphans()) == []  # the recovered claim is now held by its new owner


def test_orphans_remove_a_claim_that_never_got_its_payload(spool: Spool, layout: Layout) -> None:
    """A claim folder without payload (crash mid-claim) is removed, and nothing is yielded."""
    folder = layout.active / "F1"
    folder.mkdir()
    (folder / "meta.json").write_text('{"flow_id": "F1"}', encoding="utf-8")
    assert list(spool.orphans()) == []
    assert not folder.exists()


@pytest.mark.parametrize(
    "meta",
    [None, b"{not json", b'{"flow_id": "F1"}', b'{"flow_id": "F1", "sender": "a", "name": "n", "received_at": "x"}'],
    ids=["missing", "not-json", "missing-keys", "bad-time"],
)
def test_orphans_park_payload_without_readable_metadata_in_failed(
    spool: Spool, layout: Layout, meta: bytes | None
) -> None:
    """Bytes whose meta.json is missing or unreadable are never deleted: the folder goes to failed/."""
    folder = layout.active / "F1"
    folder.mkdir()
    (folder / "payload").write_bytes(b"precious")
    if meta is not None:
        (folder / "meta.json").write_bytes(meta)
    assert list(spool.orphans()) == []
    assert not folder.exists()
    assert (layout.failed / "F1" / "payload").read_bytes() == b"precious"
    assert spool.failed_ids() == ["F1"]


def test_orphans_without_a_spool_folder_yield_nothing(tmp_path: Path) -> None:
    """A workspace without spool/active has no orphans."""
    assert list(Spool(Layout(tmp_path / "none")).orphans()) == []


def test_orphans_ignore_stray_files(spool: Spool, layout: Layout) -> None:
    """A plain file in spool/active is not a claim and is left alone."""
    (layout.active / "stray").write_bytes(b"x")
    assert list(spool.orphans()) == []
    assert (layout.active / "stray").read_bytes() == b"x"


# -- delivery ----------------------------------------------------------------------------------------------------


def test_deliver_is_maildir_style(spool: Spool, layout: Layout) -> None:
    """deliver writes through tmp/ and renames into new/; tmp/ is empty afterwards."""
    path = spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"<Invoice/>"))
    queue = layout.queue("dupont")
    assert path == queue / "new" / "F1.0001.xml"
    assert path.read_bytes() == b"<Invoice/>"
    assert names(queue / "tmp") == [] and names(queue / "cur") == []


def test_deliver_creates_a_new_queue(spool: Spool, layout: Layout) -> None:
    """Delivering to a queue that does not exist yet makes its tmp/, new/ and cur/."""
    path = spool.deliver("fresh", "F1.0001.xml", io.BytesIO(b"x" * (3 * 1024 * 1024 + 7)))
    assert path.stat().st_size == 3 * 1024 * 1024 + 7
    assert names(layout.queue("fresh")) == ["cur", "new", "tmp"]


def test_deliver_twice_delivers_once(spool: Spool, layout: Layout) -> None:
    """A second delivery of the same name returns the same path and writes nothing new."""
    first = spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"first"))
    before = listing(layout.queue("dupont"))
    second = spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"second"))
    assert second == first and first.read_bytes() == b"first"
    assert listing(layout.queue("dupont")) == before


@pytest.mark.parametrize("read_name", ["F1.0001.xml:2,S", "F1.0001.xml"], ids=["with-flags", "bare"])
def test_deliver_after_the_consumer_read_it(spool: Spool, layout: Layout, read_name: str) -> None:
    """Once a consumer moved the message to cur/ (with or without ':2,S'), delivering again finds it there."""
    spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"first"))
    queue = layout.queue("dupont")
    (queue / "new" / "F1.0001.xml").rename(queue / "cur" / read_name)
    again = spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"second"))
    assert again == queue / "cur" / read_name
    assert names(queue / "new") == [] and names(queue / "tmp") == []
    assert spool.delivered("dupont", "F1.0001.xml") == again


def test_delivered_does_not_confuse_names_sharing_a_prefix(spool: Spool, layout: Layout) -> None:
    """cur/F1.0001.xml0 is not F1.0001.xml; only the name itself or name + ':' counts."""
    queue = layout.queue("dupont")
    (queue / "cur" / "F1.0001.xml0").write_bytes(b"other")
    assert spool.delivered("dupont", "F1.0001.xml") is None
    assert spool.delivered("nowhere", "F1.0001.xml") is None


def test_deliver_fault_leaves_nothing(spool: Spool, layout: Layout, inject: Callable[[str], None]) -> None:
    """A failure just before the rename raises and leaves nothing in new/ nor tmp/."""
    inject("deliver.before_rename=raise")
    with pytest.raises(InjectedFault):
        spool.deliver("dupont", "F1.0001.xml", io.BytesIO(b"<Invoice/>"))
    queue = layout.queue("dupont")
    assert names(queue / "new") == [] and names(queue / "tmp") == []
    assert spool.delivered("dupont", "F1.0001.xml") is None


def test_bad_fault_spec_is_refused(inject: Callable[[str], None]) -> None:
    """An EDI_FAULTS action other than raise or crash is itself an error."""
    inject("deliver.before_rename=explode")
    with pytest.raises(InjectedFault, match="action must be one of"):
        faults.fault_point("deliver.before_rename")


# -- atomic writes -----------------------------------------------------------------------------------------------


def test_write_atomic_writes_and_replaces(spool: Spool, layout: Layout) -> None:
    """write_atomic creates the file, then replaces its whole content, leaving no temp file."""
    target = layout.sender_acks("acme") / "F1.json"
    spool.write_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    spool.write_atomic(target, b"two, longer")
    assert target.read_bytes() == b"two, longer"
    assert names(layout.tmp) == []
    assert names(target.parent) == ["F1.json"]


def test_write_atomic_fault_keeps_the_old_file(spool: Spool, layout: Layout, inject: Callable[[str], None]) -> None:
    """A failure at the named fault point raises, keeps the old content and leaves no temp file."""
    target = layout.sender_acks("acme") / "F1.json"
    spool.write_atomic(target, b"old")
    inject("ack.json.before_rename=raise")
    with pytest.raises(InjectedFault):
        spool.write_atomic(target, b"new", fault="ack.json.before_rename")
    assert target.read_bytes() == b"old"
    assert names(layout.tmp) == []
    spool.write_atomic(target, b"new", fault="another.point")
    assert target.read_bytes() == b"new"


def test_write_atomic_into_a_missing_folder_leaves_no_temp_file(spool: Spool, layout: Layout) -> None:
    """When the final rename fails (no such folder), the error propagates and the temp file is removed."""
    with pytest.raises(FileNotFoundError):
        spool.write_atomic(layout.acks / "nobody" / "F1.json", b"x")
    assert names(layout.tmp) == []


def test_withdraw_removes_files_and_ignores_missing_ones(spool: Spool, layout: Layout) -> None:
    """withdraw deletes the given files; a file already gone is no error."""
    json_ack, xml_ack = layout.sender_acks("acme") / "F1.json", layout.sender_acks("acme") / "F1.xml"
    spool.write_atomic(json_ack, b"{}")
    spool.withdraw(json_ack, xml_ack)
    assert names(layout.sender_acks("acme")) == []


# -- outcomes ----------------------------------------------------------------------------------------------------


def test_archive_moves_the_payload_to_its_day_and_removes_the_spool_folder(
    spool: Spool, layout: Layout, claims: list[Claim]
) -> None:
    """archive puts the payload at archive/YYYY/MM/DD/<flow_id>/<name> and removes spool/active/<flow_id>."""
    path = drop(layout, name="facture été.xml", data=b"original")
    claim = spool.claim(path, "acme", "F1", RECEIVED)
    assert claim is not None
    claims.append(claim)
    target = spool.archive(claim)
    assert target == layout.root / "archive" / "2026" / "11" / "26" / "F1" / "facture été.xml"
    assert target.read_bytes() == b"original"
    assert not claim.folder.exists()
    assert names(layout.active) == []


def test_archive_after_a_crash_that_already_moved_the_payload(
    spool: Spool, layout: Layout, claims: list[Claim]
) -> None:
    """Archiving again (recovery after a crash past the rename) keeps the archived bytes and cleans the spool."""
    claim = claim_one(spool, layout, claims, data=b"original")
    target = layout.archive_day(RECEIVED) / "F1" / "invoice.xml"
    target.parent.mkdir(parents=True)
    claim.payload.rename(target)
    assert spool.archive(claim) == target
    assert target.read_bytes() == b"original" and not claim.folder.exists()


def test_fail_moves_the_whole_folder_and_requeue_moves_it_back(
    spool: Spool, layout: Layout, claims: list[Claim]
) -> None:
    """fail keeps payload and metadata in failed/<id>; requeue puts them back in the spool for recovery."""
    claim = claim_one(spool, layout, claims, data=b"keep me")
    target = spool.fail(claim)
    assert target == layout.failed / "F1"
    assert names(target) == ["lock", "meta.json", "payload"]
    assert (target / "payload").read_bytes() == b"keep me"
    assert names(layout.active) == [] and spool.failed_ids() == ["F1"]

    assert spool.requeue("F1") is True
    assert spool.failed_ids() == [] and names(layout.active) == ["F1"]
    (recovered,) = list(spool.orphans())
    claims.append(recovered)
    assert recovered.flow_id == "F1" and recovered.payload.read_bytes() == b"keep me"


def test_requeue_of_an_unknown_flow_is_false(spool: Spool, layout: Layout) -> None:
    """requeue of a flow not in failed/ (or without payload) does nothing and says so."""
    assert spool.requeue("nope") is False
    (layout.failed / "empty").mkdir()
    assert spool.requeue("empty") is False
    assert names(layout.active) == []


def test_failed_ids_are_sorted_folders_only(spool: Spool, layout: Layout) -> None:
    """failed_ids lists the folders in failed/, oldest (smallest id) first, ignoring plain files."""
    for name in ("F3", "F1", "F2"):
        (layout.failed / name).mkdir()
    (layout.failed / "note.txt").write_text("x", encoding="utf-8")
    assert spool.failed_ids() == ["F1", "F2", "F3"]
    assert Spool(Layout(layout.root / "missing")).failed_ids() == []


def test_sweep_tmp_removes_only_old_temp_files(spool: Spool, layout: Layout) -> None:
    """sweep_tmp removes temp files older than the limit in tmp/ and queues/*/tmp/, and nothing else."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()

    def make(path: Path, age: float) -> Path:
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
        return path

    queue = layout.queue("dupont")
    old = [make(layout.tmp / "old.tmp", 7200), make(queue / "tmp" / "old.xml", 7200)]
    young = [make(layout.tmp / "young.tmp", 60), make(queue / "tmp" / "young.xml", 60)]
    delivered = make(queue / "new" / "old-but-delivered.xml", 7200)
    (layout.tmp / "folder").mkdir()
    assert spool.sweep_tmp(3600, now) == 2
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young) and delivered.exists() and (layout.tmp / "folder").is_dir()
    assert spool.sweep_tmp(3600, now) == 0
