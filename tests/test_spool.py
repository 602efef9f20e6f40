"""The file mover (edi/spool.py) on real folders and real processes: the hand, claim, recovery of dead hands and
requeued flows, staging and publishing, barriers, archive, fail, requeue, retention moves, sweep."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from edi import faults
from edi import spool as spool_module
from edi.errors import InjectedFault, WorkspaceError
from edi.spool import Claim, Spool, Staged, claim_from_meta, staged_by
from edi.workspace import Layout

RECEIVED = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
MTIME = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
RAW_NAME = b"facture-\xe9t\xe9.xml"  # Latin-1: not UTF-8, held as surrogates once decoded
PARIS2 = timezone(timedelta(hours=2))


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "ws")
    layout.create(["acme"], ["dupont"])
    return layout


@pytest.fixture
def spool(layout: Layout) -> Iterator[Spool]:
    spool = Spool(layout)
    yield spool
    spool.close()


@pytest.fixture
def spools(layout: Layout) -> Iterator[Callable[[], Spool]]:
    """More spools on the same workspace (as other processes would have), closed at the end."""
    made: list[Spool] = []

    def make() -> Spool:
        made.append(Spool(layout))
        return made[-1]

    yield make
    for spool in made:
        spool.close()


def drop(layout: Layout, name: str | bytes = "invoice.xml", data: bytes = b"<Invoice/>") -> Path:
    """A finished file in acme's inbox."""
    path = layout.sender_inbox("acme") / (os.fsdecode(name) if isinstance(name, bytes) else name)
    path.write_bytes(data)
    os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    return path


def claim_one(
    spool: Spool,
    layout: Layout,
    flow_id: str = "F1",
    name: str | bytes = "invoice.xml",
    data: bytes = b"<Invoice/>",
    received: datetime = RECEIVED,
) -> Claim:
    """Drop a file and claim it, as the runner does."""
    source = drop(layout, name, data)
    payload = spool.claim(source, flow_id)
    assert payload is not None
    return Claim(flow_id, "acme", source.name, payload, received, MTIME)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def hands(layout: Layout) -> list[str]:
    return names(layout.active)


def is_locked(folder: Path) -> bool:
    """Whether someone holds the flock on ``folder/lock`` (asked through a descriptor of our own)."""
    fd = os.open(folder / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def dead_hand(layout: Layout, name: str, flows: dict[str, bytes]) -> Path:
    """The hand a process left when it died: its folder, its lock file (held by nobody) and its flows."""
    folder = layout.active / name
    folder.mkdir(parents=True)
    (folder / "lock").write_bytes(b"")
    for flow_id, data in flows.items():
        (folder / flow_id).write_bytes(data)
    return folder


# -- other processes ---------------------------------------------------------------------------------------------

PROCESS = """
import json, sys, time
from pathlib import Path
from edi.spool import Spool
from edi.workspace import Layout

spool = Spool(Layout(Path(sys.argv[1])))
action, args = sys.argv[2], sys.argv[3:]
sources = sorted(Path(args[0]).iterdir()) if action == "claim" else []  # listed before the start, as a scan is
print(spool.hand.name, flush=True)
sys.stdin.readline()  # the start signal
if action == "claim":
    got = [s.name for s in sources if spool.claim(s, s.name) is not None]
elif action == "hold":
    got = [spool.claim(Path(a), Path(a).name).name for a in args]
elif action == "orphans":
    got = [p.name for _, paths in spool.orphans() for p in paths]
else:
    got = [p.name for p, _ in spool.requeued()]
print(json.dumps(got), flush=True)
if action == "hold":
    time.sleep(120)
spool.close()
"""


class Process:
    """A real process with its own Spool on the workspace; it says its hand's name, then waits for ``go``."""

    def __init__(self, layout: Layout, action: str, *args: str, faults: str = "") -> None:
        env = os.environ | {"EDI_FAULTS": faults}
        command = [sys.executable, "-c", PROCESS, str(layout.root), action, *args]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.hand = self.stdout.readline().strip()
        assert self.hand, "the process did not start"

    def go(self) -> None:
        self.stdin.write("go\n")
        self.stdin.flush()

    def result(self) -> list[str]:
        """What the process got (it is still running if it holds)."""
        line = self.stdout.readline()
        assert line, f"the process died first (exit {self.proc.wait(timeout=30)})"
        got: list[str] = json.loads(line)
        return got

    def finish(self) -> list[str]:
        got = self.result()
        assert self.proc.wait(timeout=30) == 0
        return got


@pytest.fixture
def processes() -> Iterator[Callable[..., Process]]:
    """Start processes (see :class:`Process`); any still running at the end is killed."""
    started: list[Process] = []

    def start(layout: Layout, action: str, *args: str, faults: str = "") -> Process:
        started.append(Process(layout, action, *args, faults=faults))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
        process.proc.wait(timeout=30)
        process.stdin.close()
        process.stdout.close()


# -- the hand ----------------------------------------------------------------------------------------------------


def test_the_hand_is_made_on_first_use_and_locked(spool: Spool, layout: Layout) -> None:
    """A Spool makes nothing until asked for its hand: spool/active/<pid>-<6 hex>/, its lock held, same every time."""
    assert hands(layout) == []
    hand = spool.hand
    assert hand.parent == layout.active
    assert re.fullmatch(rf"{os.getpid()}-[0-9a-f]{{6}}", hand.name)
    assert names(hand) == ["lock"] and is_locked(hand)
    assert spool.hand == hand and hands(layout) == [hand.name]


def test_the_hand_is_made_in_a_workspace_without_spool_folder(tmp_path: Path) -> None:
    """A hand in a workspace whose spool/active does not exist yet makes the folder."""
    spool = Spool(Layout(tmp_path / "bare"))
    try:
        assert spool.hand.parent == tmp_path / "bare" / "spool" / "active"
    finally:
        spool.close()


def test_a_hand_that_cannot_be_made_is_a_workspace_error_and_leaves_nothing(
    spool: Spool, layout: Layout, immutable
) -> None:
    """An immutable spool/active: asking for the hand raises WorkspaceError naming the folder (not a bare OSError),
    and the half-made hand is removed from tmp/; writable again, the hand is made."""
    immutable.set(layout.active)
    with pytest.raises(WorkspaceError, match=rf"cannot make this process's folder in the spool: .*{layout.active}/"):
        _ = spool.hand
    assert names(layout.tmp) == [] and hands(layout) == []
    immutable.release(layout.active)
    assert spool.hand.parent == layout.active and is_locked(spool.hand)


def test_two_spools_have_two_hands(spool: Spool, spools: Callable[[], Spool]) -> None:
    """Each Spool (each process) owns its own hand."""
    assert spool.hand != spools().hand


def test_close_removes_an_empty_hand_and_lets_it_go(layout: Layout) -> None:
    """close() removes a hand holding nothing but its lock; closing twice is harmless."""
    spool = Spool(layout)
    hand = spool.hand
    spool.close()
    assert not hand.exists() and hands(layout) == []
    spool.close()


def test_close_keeps_a_hand_with_flows_for_the_next_recovery(layout: Layout, spools: Callable[[], Spool]) -> None:
    """close() keeps a hand that still holds flows but lets its lock go: the next orphans() takes them."""
    spool = Spool(layout)
    inode = claim_one(spool, layout).payload.stat().st_ino
    hand = spool.hand
    spool.close()
    assert names(hand) == ["F1", "lock"] and not is_locked(hand)
    other = spools()
    assert other.orphans() == [(hand.name, [other.hand / "F1"])]
    assert not hand.exists() and (other.hand / "F1").stat().st_ino == inode


def test_close_lets_the_hand_go_even_when_the_disk_fails(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """A barrier error at close() does not keep the hand locked."""
    spool = Spool(layout)
    claim_one(spool, layout)
    hand = spool.hand

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(spool_module, "SYNCFS", failing)
    spool.close()
    assert not is_locked(hand)


def test_a_hand_being_made_is_not_taken_for_a_dead_one(
    layout: Layout, spools: Callable[[], Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recovery that runs while another process is making its hand leaves that hand alone."""
    recovering = spools()
    real = spool_module._try_lock

    def recovery_in_between(folder: Path) -> int | None:
        monkeypatch.setattr(spool_module, "_try_lock", real)
        recovering.orphans()  # another process recovers at that very instant
        return real(folder)

    monkeypatch.setattr(spool_module, "_try_lock", recovery_in_between)
    spool = spools()
    assert names(spool.hand) == ["lock"] and is_locked(spool.hand)


# -- claim -------------------------------------------------------------------------------------------------------


def test_claim_renames_the_inbox_file_into_the_hand(spool: Spool, layout: Layout) -> None:
    """claim is one rename of the inbox file to <hand>/<flow_id>: the very file (same inode, bytes, mtime)."""
    source = drop(layout, data=b"exact bytes \x00\xff")
    before = source.stat()
    payload = spool.claim(source, "F1")
    assert payload == spool.hand / "F1"
    assert not source.exists()
    after = payload.stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, before.st_mtime)
    assert payload.read_bytes() == b"exact bytes \x00\xff"
    assert names(spool.hand) == ["F1", "lock"]


def test_claiming_a_vanished_file_returns_none(spool: Spool, layout: Layout) -> None:
    """A file gone between the scan and the claim (another process took it) is None and leaves nothing."""
    source = drop(layout)
    source.unlink()
    assert spool.claim(source, "F1") is None
    assert names(spool.hand) == ["lock"]


def test_two_spools_claiming_one_file_one_wins(spool: Spool, layout: Layout, spools: Callable[[], Spool]) -> None:
    """Of two claimers of one file, the first gets it and the second gets None."""
    source = drop(layout)
    other = spools()
    assert spool.claim(source, "F1") == spool.hand / "F1"
    assert other.claim(source, "F2") is None
    assert names(other.hand) == ["lock"]


def test_two_processes_racing_over_the_same_files_claim_each_once(
    layout: Layout, processes: Callable[..., Process]
) -> None:
    """Two processes claiming the same 1,500 files at the same time: every file ends in exactly one hand, whole."""
    files = {f"{n:04d}.xml": f"flow {n}".encode() for n in range(1500)}
    for name, data in files.items():
        drop(layout, name, data)
    racers = [processes(layout, "claim", str(layout.sender_inbox("acme"))) for _ in range(2)]
    for racer in racers:
        racer.go()
    first, second = (racer.finish() for racer in racers)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(files)
    assert names(layout.sender_inbox("acme")) == []
    for racer, got in zip(racers, (first, second), strict=True):
        hand = layout.active / racer.hand
        assert {name: (hand / name).read_bytes() for name in got} == {name: files[name] for name in got}


def test_claim_fault_before_rename_leaves_the_file_in_the_inbox(
    spool: Spool, layout: Layout, inject: Callable[[str], None]
) -> None:
    """A failure just before the rename raises and leaves the file where the sender put it."""
    inject("claim.before_rename=raise")
    source = drop(layout)
    with pytest.raises(InjectedFault):
        spool.claim(source, "F1")
    assert source.read_bytes() == b"<Invoice/>"
    assert names(spool.hand) == ["lock"]


def test_claim_fault_after_rename_leaves_the_file_in_the_hand(
    spool: Spool, layout: Layout, inject: Callable[[str], None]
) -> None:
    """A failure just after the rename raises, and the flow is in the hand (where recovery finds it)."""
    inject("claim.after_rename=raise")
    source = drop(layout)
    with pytest.raises(InjectedFault):
        spool.claim(source, "F1")
    assert not source.exists()
    assert (spool.hand / "F1").read_bytes() == b"<Invoice/>"


def test_bad_fault_spec_is_refused(inject: Callable[[str], None]) -> None:
    """An EDI_FAULTS action other than raise or crash is itself an error."""
    inject("claim.before_rename=explode")
    with pytest.raises(InjectedFault, match="action must be one of"):
        faults.fault_point("claim.before_rename")


# -- recovery of dead hands --------------------------------------------------------------------------------------


def test_orphans_take_the_flows_of_a_killed_process(
    spool: Spool, layout: Layout, processes: Callable[..., Process]
) -> None:
    """A live process's hand is left alone; once it is SIGKILLed, orphans() takes its very files and removes it."""
    sources = [drop(layout, f"{n}.xml", f"flow {n}".encode()) for n in range(3)]
    holder = processes(layout, "hold", *map(str, sources))
    holder.go()
    assert holder.result() == ["0.xml", "1.xml", "2.xml"]
    dead = layout.active / holder.hand
    inodes = {p.name: p.stat().st_ino for p in dead.iterdir() if p.name != "lock"}
    assert spool.orphans() == []
    assert names(dead) == ["0.xml", "1.xml", "2.xml", "lock"]

    os.kill(holder.proc.pid, signal.SIGKILL)
    assert holder.proc.wait(timeout=30) == -signal.SIGKILL
    taken = spool.orphans()
    assert taken == [(holder.hand, [spool.hand / "0.xml", spool.hand / "1.xml", spool.hand / "2.xml"])]
    assert not dead.exists() and hands(layout) == [spool.hand.name]
    assert {p.name: p.stat().st_ino for _, paths in taken for p in paths} == inodes
    assert (spool.hand / "1.xml").read_bytes() == b"flow 1"
    assert spool.orphans() == []


@pytest.mark.parametrize(
    ("point", "in_inbox", "recovered"),
    [("claim.before_rename", True, []), ("claim.after_rename", False, ["F"])],
    ids=["before-rename", "after-rename"],
)
def test_a_process_killed_while_claiming_loses_nothing(
    spool: Spool, layout: Layout, processes: Callable[..., Process], point: str, in_inbox: bool, recovered: list[str]
) -> None:
    """A process SIGKILLed mid-claim leaves the file in the inbox or in its dead hand, whence orphans() takes it."""
    source = drop(layout, "F", b"bytes")
    crasher = processes(layout, "hold", str(source), faults=f"{point}=crash")
    crasher.go()
    assert crasher.proc.wait(timeout=30) == -signal.SIGKILL
    assert source.exists() is in_inbox
    assert spool.orphans() == [(crasher.hand, [spool.hand / name for name in recovered])]
    assert crasher.hand not in hands(layout)
    assert (source if in_inbox else spool.hand / "F").read_bytes() == b"bytes"


def test_orphans_leave_a_live_hand_of_this_process_alone(
    spool: Spool, layout: Layout, spools: Callable[[], Spool]
) -> None:
    """Another Spool's hand is held (even in this same process): orphans() does not touch it, nor its own hand."""
    other = spools()
    claim_one(other, layout)
    claim_one(spool, layout, "F2", name="second.xml")
    assert spool.orphans() == []
    assert names(other.hand) == ["F1", "lock"] and names(spool.hand) == ["F2", "lock"]


def test_orphans_take_every_dead_hand_in_name_order(spool: Spool, layout: Layout) -> None:
    """Each dead hand is reported with the new paths of its flows; a dead hand with nothing in it just goes."""
    dead_hand(layout, "111-aaaaaa", {"F2": b"two", "F1": b"one"})
    dead_hand(layout, "222-bbbbbb", {})
    dead_hand(layout, "333-cccccc", {"F3": b"three"})
    assert spool.orphans() == [
        ("111-aaaaaa", [spool.hand / "F1", spool.hand / "F2"]),
        ("222-bbbbbb", []),
        ("333-cccccc", [spool.hand / "F3"]),
    ]
    assert hands(layout) == [spool.hand.name]
    assert {p.name: p.read_bytes() for p in spool.hand.iterdir()} == {
        "F1": b"one",
        "F2": b"two",
        "F3": b"three",
        "lock": b"",
    }


def test_orphans_remove_what_a_dead_hand_staged_and_nothing_else(tmp_path: Path) -> None:
    """The temporary files a dead hand staged (in tmp/, or beside acknowledgements kept outside) go with it; a live
    process's, other hands' and files of other shapes stay."""
    layout = Layout(tmp_path / "ws", acks_folder=tmp_path / "sftp")
    layout.create(["acme"])
    dead_hand(layout, "111-aaaaaa", {"F1": b"one"})
    live, recovering = Spool(layout), Spool(layout)
    try:
        live.hand  # noqa: B018  # made and held
        kept = [
            live.stage(layout.root / "reports" / "r.json", b"live").tmp,
            layout.tmp / ".F9.json.222-bbbbbb-3.tmp",  # a hand that is not dead (nor in active/)
            layout.tmp / ".F1.json.111-aaaaaa.tmp",  # not a staged name
            layout.tmp / "F1.json.111-aaaaaa-1.tmp",
        ]
        gone = [
            layout.tmp / ".F1.json.111-aaaaaa-1.tmp",
            layout.tmp / ".F1.xml.111-aaaaaa-2.tmp",
            layout.sender_acks("acme") / ".F1.json.111-aaaaaa-7.tmp",
        ]
        for path in [*kept[1:], *gone]:
            path.write_bytes(b"x")
        taken = recovering.orphans()
        assert [name for name, _ in taken] == ["111-aaaaaa"]
        assert [p for p in kept if not p.exists()] == [] and [p for p in gone if p.exists()] == []
    finally:
        live.close()
        recovering.close()


def test_staged_by_reads_the_token_of_a_temporary_name() -> None:
    """``.<target>.<token>-<n>.tmp`` gives the token; any other name gives None."""
    assert staged_by(".F1.json.111-aaaaaa-12.tmp") == "111-aaaaaa"
    assert staged_by(".a.b-c.xml.9-ffffff-1.tmp") == "9-ffffff"
    for name in [".F1.json.tmp", "F1.json.1-a-1.tmp", ".F1.json.111-aaaaaa-x.tmp", ".hand-1-a", ".F.-1.tmp"]:
        assert staged_by(name) is None, name


def test_orphans_take_a_dead_hand_whose_lock_file_never_was(spool: Spool, layout: Layout) -> None:
    """A hand folder without a lock file (its process died before locking it) is dead: taken and removed."""
    folder = layout.active / "444-dddddd"
    folder.mkdir()
    (folder / "F1").write_bytes(b"one")
    assert spool.orphans() == [("444-dddddd", [spool.hand / "F1"])]
    assert not folder.exists()


def test_orphans_ignore_stray_files_and_a_missing_spool(spool: Spool, layout: Layout, tmp_path: Path) -> None:
    """A plain file in spool/active is no hand and stays; a workspace without spool/active has no orphans."""
    (layout.active / "stray").write_bytes(b"x")
    assert spool.orphans() == []
    assert (layout.active / "stray").read_bytes() == b"x"
    bare = Spool(Layout(tmp_path / "none"))
    assert bare.orphans() == []
    assert not (tmp_path / "none").exists()


def test_two_processes_recovering_at_once_take_each_flow_once(
    layout: Layout, processes: Callable[..., Process]
) -> None:
    """Two processes running orphans() over the same dead hands at the same time: each flow ends in one hand."""
    flows = {}
    for n in range(20):
        hand_flows = {f"F{n:02d}-{k:02d}": f"{n}/{k}".encode() for k in range(25)}
        dead_hand(layout, f"{1000 + n}-{n:06x}", hand_flows)
        flows |= hand_flows
    recoverers = [processes(layout, "orphans") for _ in range(2)]
    for recoverer in recoverers:
        recoverer.go()
    first, second = (recoverer.finish() for recoverer in recoverers)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(flows)
    held = {p.name: p.read_bytes() for r in recoverers for p in (layout.active / r.hand).iterdir() if p.name != "lock"}
    assert held == flows
    assert set(hands(layout)) <= {r.hand for r in recoverers}


def test_a_recovery_that_gets_the_lock_of_a_hand_just_removed_passes_it_by(
    layout: Layout, spools: Callable[[], Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a recovery opening a dead hand's lock file and locking it, another takes the hand's flows, removes
    the lock file and the folder, and lets the lock go: the first gets the lock of a file no longer there, and
    passes the hand by (it listed a folder that was gone and stopped with FileNotFoundError)."""
    dead_hand(layout, "1000-00000a", {"F01": b"one", "F02": b"two"})
    first, second = spools(), spools()
    real_flock = fcntl.flock
    taken: list[tuple[str, list[Path]]] = []

    def the_other_takes_it_first(fd: int, operation: int) -> None:
        if not taken and operation & fcntl.LOCK_NB:
            monkeypatch.setattr(spool_module.fcntl, "flock", real_flock)
            taken.extend(second.orphans())
        real_flock(fd, operation)

    assert first.hand.is_dir()  # made before the race: its own lock is not part of it
    monkeypatch.setattr(spool_module.fcntl, "flock", the_other_takes_it_first)
    assert first.orphans() == []
    assert [(name, sorted(p.name for p in paths)) for name, paths in taken] == [("1000-00000a", ["F01", "F02"])]
    assert not (layout.active / "1000-00000a").exists()
    assert {p.name for p in second.hand.iterdir()} == {"lock", "F01", "F02"}


# -- requeued flows ----------------------------------------------------------------------------------------------


def test_fail_requeue_and_take_back_round_trip(spool: Spool, layout: Layout) -> None:
    """fail -> requeue -> requeued() brings the same bytes back with metadata that rebuilds the same claim."""
    claim = claim_one(spool, layout, name=RAW_NAME, data=b"keep me")
    assert spool.fail(claim) == layout.failed / "F1"
    assert names(layout.failed / "F1") == ["meta.json", "payload"]
    assert (layout.failed / "F1" / "payload").read_bytes() == b"keep me"
    assert json.loads((layout.failed / "F1" / "meta.json").read_text(encoding="utf-8")) == claim.meta()
    assert names(spool.hand) == ["lock"] and spool.failed_ids() == ["F1"]

    assert spool.requeue("F1") is True
    assert spool.failed_ids() == [] and names(layout.requeued / "F1") == ["meta.json", "payload"]

    ((payload, meta),) = list(spool.requeued())
    assert payload == spool.hand / "F1" and payload.read_bytes() == b"keep me"
    assert meta is not None
    rebuilt = claim_from_meta(meta, payload)
    assert rebuilt == Claim("F1", "acme", os.fsdecode(RAW_NAME), payload, RECEIVED, MTIME)
    assert names(layout.requeued) == []


def test_requeued_without_readable_metadata_still_comes_back(spool: Spool, layout: Layout) -> None:
    """A requeued flow whose meta.json is gone or not a JSON object comes back with None (the store knows it)."""
    for flow_id, meta in (("F1", None), ("F2", b"{not json"), ("F3", b"[1, 2]")):
        folder = layout.requeued / flow_id
        folder.mkdir()
        (folder / "payload").write_bytes(flow_id.encode())
        if meta is not None:
            (folder / "meta.json").write_bytes(meta)
    taken = list(spool.requeued())
    assert taken == [(spool.hand / "F1", None), (spool.hand / "F2", None), (spool.hand / "F3", None)]
    assert (spool.hand / "F2").read_bytes() == b"F2" and names(layout.requeued) == []


def test_requeued_cleans_a_folder_whose_payload_is_gone(spool: Spool, layout: Layout) -> None:
    """A requeued folder without payload is removed and yields nothing; stray files and no folder are no error."""
    (layout.requeued / "F1").mkdir()
    (layout.requeued / "F1" / "meta.json").write_text("{}", encoding="utf-8")
    (layout.requeued / "stray").write_bytes(b"x")
    assert list(spool.requeued()) == []
    assert names(layout.requeued) == ["stray"]
    layout.requeued.joinpath("stray").unlink()
    layout.requeued.rmdir()
    assert list(spool.requeued()) == []


def test_two_processes_taking_back_requeued_flows_take_each_once(
    layout: Layout, processes: Callable[..., Process]
) -> None:
    """Two processes running requeued() at the same time: each requeued flow ends in exactly one hand."""
    for n in range(200):
        folder = layout.requeued / f"F{n:03d}"
        folder.mkdir()
        (folder / "payload").write_bytes(str(n).encode())
        (folder / "meta.json").write_text(json.dumps({"flow_id": folder.name}), encoding="utf-8")
    takers = [processes(layout, "requeued") for _ in range(2)]
    for taker in takers:
        taker.go()
    first, second = (taker.finish() for taker in takers)
    assert not set(first) & set(second)
    assert sorted(first + second) == [f"F{n:03d}" for n in range(200)]
    assert names(layout.requeued) == []


def test_requeue_of_what_is_not_in_failed_is_false(spool: Spool, layout: Layout) -> None:
    """requeue of a flow not in failed/, or whose payload is not there, does nothing and says so."""
    assert spool.requeue("nope") is False
    (layout.failed / "empty").mkdir()
    (layout.failed / "empty" / "meta.json").write_text("{}", encoding="utf-8")
    assert spool.requeue("empty") is False
    assert names(layout.requeued) == [] and spool.failed_ids() == []


def test_fail_again_after_a_crash_keeps_what_the_first_attempt_moved(spool: Spool, layout: Layout) -> None:
    """fail a second time (recovery after a crash past the move) succeeds and keeps the first meta.json."""
    claim = claim_one(spool, layout, data=b"bytes")
    spool.fail(claim)
    first_meta = (layout.failed / "F1" / "meta.json").read_bytes()
    again = Claim("F1", "other", "renamed.xml", claim.payload, RECEIVED, None)
    assert spool.fail(again) == layout.failed / "F1"
    assert (layout.failed / "F1" / "meta.json").read_bytes() == first_meta
    assert names(layout.failed / "F1") == ["meta.json", "payload"]


def test_failed_ids_are_sorted_folders_holding_a_payload(spool: Spool, layout: Layout) -> None:
    """failed_ids lists the folders in failed/ that hold a payload, smallest (oldest) id first, ignoring plain
    files and folders without one."""
    for name in ("F3", "F1", "F2", "F0"):
        (layout.failed / name).mkdir()
        if name != "F0":
            (layout.failed / name / "payload").write_bytes(b"x")
    (layout.failed / "note.txt").write_text("x", encoding="utf-8")
    assert spool.failed_ids() == ["F1", "F2", "F3"]
    assert Spool(Layout(layout.root / "missing")).failed_ids() == []


def test_fail_that_cannot_write_its_metadata_leaves_the_flow_in_the_hand_and_nothing_in_failed(
    spool: Spool, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while fail writes meta.json: OSError, the payload stays in the hand, no half-made folder."""
    claim = claim_one(spool, layout, data=b"bytes")

    def full(path: Path, data: bytes, mode: int | None, fault: str | None = None) -> None:
        path.write_bytes(data[:3])  # a part written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module, "_write", full)
    with pytest.raises(OSError, match="No space"):
        spool.fail(claim)
    assert names(layout.failed) == [] and claim.payload.read_bytes() == b"bytes"


# -- metadata ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["invoice.xml", "facture été.xml", os.fsdecode(RAW_NAME)], ids=["ascii", "utf8", "raw"]
)
@pytest.mark.parametrize("deposited", [MTIME, None], ids=["deposited", "no-deposit-time"])
def test_claim_meta_round_trips_through_json(name: str, deposited: datetime | None) -> None:
    """Claim.meta() survives JSON and claim_from_meta rebuilds the same claim, undecodable name bytes included."""
    claim = Claim("F1", "acme", name, Path("payload"), RECEIVED, deposited)
    meta = json.loads(json.dumps(claim.meta()))
    assert meta["name_hex"] == os.fsencode(name).hex()
    assert claim_from_meta(meta, Path("elsewhere")) == Claim("F1", "acme", name, Path("elsewhere"), RECEIVED, deposited)


GOOD_META = Claim("F1", "acme", "a.xml", Path("p"), RECEIVED, None).meta()


@pytest.mark.parametrize(
    "meta",
    [
        {k: v for k, v in GOOD_META.items() if k != "sender"},
        {k: v for k, v in GOOD_META.items() if k != "name_hex"},
        GOOD_META | {"name_hex": "zz"},
        GOOD_META | {"received_at": "yesterday"},
        GOOD_META | {"deposited_at": "not a time"},
    ],
    ids=["no-sender", "no-name", "bad-hex", "bad-time", "bad-deposit-time"],
)
def test_claim_from_meta_refuses_what_meta_did_not_write(meta: dict[str, object]) -> None:
    """Metadata that Claim.meta() did not write is a KeyError or ValueError, as documented."""
    with pytest.raises((KeyError, ValueError)):
        claim_from_meta(meta, Path("p"))


@pytest.mark.parametrize(
    "meta", [GOOD_META | {"name_hex": None}, GOOD_META | {"received_at": 5}], ids=["null-name", "number-time"]
)
def test_claim_from_meta_refuses_wrong_types_as_documented(meta: dict[str, object]) -> None:
    """Metadata with a value of the wrong JSON type is a KeyError or ValueError too, never another exception."""
    with pytest.raises((KeyError, ValueError)):
        claim_from_meta(meta, Path("p"))


# -- staging and publishing --------------------------------------------------------------------------------------


def test_stage_then_publish_inside_the_workspace(spool: Spool, layout: Layout) -> None:
    """stage writes a hidden temporary file in the workspace's tmp/ (nothing at the target); publish renames it."""
    target = layout.sender_acks("acme") / "F1.json"
    staged = spool.stage(target, b"{}")
    assert staged == Staged(layout.tmp / f".F1.json.{spool.token}-1.tmp", target)
    assert staged.tmp.read_bytes() == b"{}" and not target.exists()
    assert spool.publish(staged) == target
    assert target.read_bytes() == b"{}" and names(layout.tmp) == []


def test_stage_outside_the_workspace_writes_beside_the_target(tmp_path: Path) -> None:
    """For a target outside the workspace (acks kept elsewhere), the temporary file is hidden beside it."""
    outside = tmp_path / "sftp" / "acme"
    outside.mkdir(parents=True)
    spool = Spool(Layout(tmp_path / "ws", acks_folder=tmp_path / "sftp"))
    staged = spool.stage(outside / "F1.json", b"{}")
    assert staged.tmp == outside / f".F1.json.{spool.token}-1.tmp"
    spool.publish(staged)
    assert names(outside) == ["F1.json"]


def test_stage_replaces_a_temporary_file_left_by_a_crash(spool: Spool, layout: Layout) -> None:
    """A temporary file of the same name (left by an earlier process with our token) is replaced, not an error."""
    target = layout.sender_acks("acme") / "F1.json"
    (layout.tmp / f".F1.json.{spool.token}-1.tmp").write_bytes(b"half-written junk")
    spool.publish(spool.stage(target, b"whole"))
    assert target.read_bytes() == b"whole"


@pytest.mark.parametrize(
    ("umask", "mode", "expected"),
    [(0o077, 0o640, 0o640), (0o022, 0o600, 0o600), (0o000, 0o640, 0o640), (0o077, None, 0o600), (0o022, None, 0o644)],
)
def test_stage_mode_is_exact_whatever_the_umask(
    spool: Spool, layout: Layout, umask: int, mode: int | None, expected: int
) -> None:
    """With a mode the file gets exactly those permissions; without one, the umask decides (0o666 less it)."""
    old = os.umask(umask)
    try:
        staged = spool.stage(layout.sender_acks("acme") / "F1.json", b"{}", mode)
    finally:
        os.umask(old)
    assert spool.publish(staged).stat().st_mode & 0o777 == expected


def test_staging_two_targets_of_the_same_name_keeps_both(layout: Layout) -> None:
    """Two staged files for targets of the same name in two folders are published each with its own bytes."""
    layout.create(["acme", "opdemat"])
    spool = Spool(layout)
    first = spool.stage(layout.sender_acks("acme") / "F1.json", b"acme")
    second = spool.stage(layout.sender_acks("opdemat") / "F1.json", b"opdemat")
    spool.publish(first)
    spool.publish(second)
    assert first.target.read_bytes() == b"acme" and second.target.read_bytes() == b"opdemat"


def test_publish_replaces_the_target_whole(spool: Spool, layout: Layout) -> None:
    """publish over an existing file replaces it (same name, the new bytes)."""
    target = layout.sender_acks("acme") / "F1.json"
    spool.publish(spool.stage(target, b"old, longer"))
    spool.publish(spool.stage(target, b"new"))
    assert target.read_bytes() == b"new"


def test_publish_fault_keeps_the_target_and_removes_the_temporary_file(
    spool: Spool, layout: Layout, inject: Callable[[str], None]
) -> None:
    """A failure at publish's fault point (before the rename) raises, keeps the old target, removes the temp file."""
    target = layout.sender_acks("acme") / "F1.json"
    spool.publish(spool.stage(target, b"old"))
    inject("ack.json.before_rename=raise")
    staged = spool.stage(target, b"new")
    with pytest.raises(InjectedFault):
        spool.publish(staged, "ack.json.before_rename")
    assert target.read_bytes() == b"old" and names(layout.tmp) == []
    spool.publish(spool.stage(target, b"new"), "another.point")
    assert target.read_bytes() == b"new"


def test_publish_into_a_missing_folder_removes_the_temporary_file(spool: Spool, layout: Layout) -> None:
    """When the rename itself fails (no such folder), the error propagates and the temp file is removed."""
    staged = spool.stage(layout.acks / "nobody" / "F1.json", b"x")
    with pytest.raises(FileNotFoundError):
        spool.publish(staged)
    assert names(layout.tmp) == []


@pytest.mark.parametrize("action", ["enospc", "eio", "raise"])
def test_a_failed_write_leaves_no_temporary_file(
    spool: Spool, layout: Layout, inject: Callable[[str], None], action: str
) -> None:
    """A write that fails (disk full, I/O error) raises and leaves no temporary file, in tmp/ nor in the queue."""
    inject(f"write.ack={action},write.delivery={action}")
    expected = InjectedFault if action == "raise" else OSError
    with pytest.raises(expected) as raised:
        spool.stage(layout.sender_acks("acme") / "F1.json", b"{}", fault="write.ack")
    with pytest.raises(expected):
        spool.stage_delivery("dupont", "F1.0001.xml", b"<Invoice/>")
    assert action == "raise" or raised.value.errno == getattr(errno, action.upper())
    assert names(layout.tmp) == [] and names(layout.queue("dupont") / "tmp") == []


def test_unstage_removes_the_temporary_file(spool: Spool, layout: Layout) -> None:
    """unstage removes a staged file that will not be published; unstaging again is no error."""
    staged = spool.stage(layout.sender_acks("acme") / "F1.json", b"x")
    spool.unstage(staged)
    spool.unstage(staged)
    assert names(layout.tmp) == [] and not staged.target.exists()


def test_write_atomic_writes_replaces_and_sets_the_mode(spool: Spool, layout: Layout) -> None:
    """write_atomic creates then replaces the whole file, with the mode asked for, and leaves no temp file."""
    target = layout.root / "report.json"
    spool.write_atomic(target, b"one")
    spool.write_atomic(target, b"two, longer", mode=0o600)
    assert target.read_bytes() == b"two, longer" and target.stat().st_mode & 0o777 == 0o600
    assert names(layout.tmp) == []


def test_write_atomic_fault_keeps_the_old_file(spool: Spool, layout: Layout, inject: Callable[[str], None]) -> None:
    """A failure at write_atomic's fault point raises, keeps the old content and leaves no temp file."""
    target = layout.root / "report.json"
    spool.write_atomic(target, b"old")
    inject("report.before_rename=raise")
    with pytest.raises(InjectedFault):
        spool.write_atomic(target, b"new", fault="report.before_rename")
    assert target.read_bytes() == b"old" and names(layout.tmp) == []


def test_write_atomic_into_a_missing_folder_leaves_no_temp_file(spool: Spool, layout: Layout) -> None:
    """When the final rename fails (no such folder), the error propagates and the temp file is removed."""
    with pytest.raises(FileNotFoundError):
        spool.write_atomic(layout.acks / "nobody" / "F1.json", b"x")
    assert names(layout.tmp) == []


# -- deliveries --------------------------------------------------------------------------------------------------


def test_stage_delivery_is_maildir(spool: Spool, layout: Layout) -> None:
    """A delivery is written as queues/<q>/tmp/<name> and published as queues/<q>/new/<name>."""
    queue = layout.queue("dupont")
    staged = spool.stage_delivery("dupont", "F1.0001.xml", b"<Invoice/>")
    assert staged == Staged(queue / "tmp" / "F1.0001.xml", queue / "new" / "F1.0001.xml")
    assert names(queue / "new") == []
    assert spool.publish(staged).read_bytes() == b"<Invoice/>"
    assert names(queue / "tmp") == [] and names(queue / "cur") == []
    assert spool.delivered("dupont", "F1.0001.xml") == queue / "new" / "F1.0001.xml"


def test_stage_delivery_makes_a_new_queue(spool: Spool, layout: Layout) -> None:
    """Delivering to a queue that does not exist yet makes its tmp/, new/ and cur/."""
    staged = spool.stage_delivery("fresh", "F1.0001.xml", b"x" * (3 * 1024 * 1024 + 7))
    assert staged is not None
    assert spool.publish(staged).stat().st_size == 3 * 1024 * 1024 + 7
    assert names(layout.queue("fresh")) == ["cur", "new", "tmp"]


@pytest.mark.parametrize(
    "where", ["new/F1.0001.xml", "cur/F1.0001.xml", "cur/F1.0001.xml:2,S"], ids=["new", "cur", "cur-flags"]
)
def test_stage_delivery_of_what_is_delivered_is_none(spool: Spool, layout: Layout, where: str) -> None:
    """Already in new/, or read by a consumer into cur/ (with or without Maildir flags): not delivered again."""
    queue = layout.queue("dupont")
    (queue / where).write_bytes(b"first")
    assert spool.stage_delivery("dupont", "F1.0001.xml", b"second") is None
    assert spool.delivered("dupont", "F1.0001.xml") == queue / where
    assert names(queue / "tmp") == [] and (queue / where).read_bytes() == b"first"


def test_stage_delivery_of_a_new_flow_does_not_look(spool: Spool, layout: Layout) -> None:
    """With again=False (a flow decided for the first time) nothing is looked up: it is staged regardless."""
    (layout.queue("dupont") / "cur" / "F1.0001.xml").write_bytes(b"first")
    staged = spool.stage_delivery("dupont", "F1.0001.xml", b"second", again=False)
    assert staged is not None and staged.tmp.read_bytes() == b"second"


def test_delivered_does_not_confuse_names_sharing_a_prefix(spool: Spool, layout: Layout) -> None:
    """cur/F1.0001.xml0 and new/F1.0001.xml.bak are not F1.0001.xml; an unknown queue has delivered nothing."""
    queue = layout.queue("dupont")
    (queue / "cur" / "F1.0001.xml0").write_bytes(b"other")
    (queue / "new" / "F1.0001.xml.bak").write_bytes(b"other")
    assert spool.delivered("dupont", "F1.0001.xml") is None
    assert spool.delivered("nowhere", "F1.0001.xml") is None


def test_withdraw_removes_files_and_ignores_missing_ones(spool: Spool, layout: Layout) -> None:
    """withdraw deletes the given files (a delivery, an acknowledgement); one already gone is no error."""
    staged = spool.stage_delivery("dupont", "F1.0001.xml", b"x")
    assert staged is not None
    delivered = spool.publish(staged)
    spool.withdraw(delivered, layout.sender_acks("acme") / "F1.json")
    assert names(delivered.parent) == []


# -- barriers ----------------------------------------------------------------------------------------------------


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Without syncfs: every path the spool fsyncs, in order (still really fsynced)."""
    calls: list[Path] = []
    real_file, real_dir = spool_module._fsync_file, spool_module.fsync_dir

    def file(path: Path) -> None:
        calls.append(path)
        real_file(path)

    def folder(path: Path) -> None:
        calls.append(path)
        real_dir(path)

    monkeypatch.setattr(spool_module, "SYNCFS", None)
    monkeypatch.setattr(spool_module, "_fsync_file", file)
    monkeypatch.setattr(spool_module, "fsync_dir", folder)
    return calls


def test_barrier_without_syncfs_fsyncs_what_was_touched_files_first(
    spool: Spool, layout: Layout, fsynced: list[Path]
) -> None:
    """The fallback barrier fsyncs each file written, then each folder a rename touched, once, then forgets them."""
    hand = spool.hand
    fsynced.clear()
    source = drop(layout)
    spool.claim(source, "F1")
    staged = spool.stage(layout.sender_acks("acme") / "F1.json", b"{}")
    spool.barrier()
    assert fsynced == [staged.tmp, *sorted([hand, source.parent], key=str)]
    fsynced.clear()
    spool.publish(staged)
    claim = Claim("F1", "acme", "invoice.xml", hand / "F1", RECEIVED, MTIME)
    archived = spool.archive(claim)
    spool.barrier()
    assert fsynced == sorted([staged.target.parent, archived.parent, hand], key=str)
    fsynced.clear()
    spool.barrier()
    assert fsynced == []


def test_barrier_with_syncfs_syncs_the_workspace_filesystem(
    spool: Spool, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With syncfs, a barrier is one syncfs of the workspace's filesystem, and no per-file fsync."""
    if spool_module.SYNCFS is None:
        pytest.skip("no syncfs on this system")
    real = spool_module.SYNCFS
    synced: list[str] = []

    def syncfs(fd: int) -> int:
        synced.append(Path(f"/proc/self/fd/{fd}").readlink().as_posix())
        return real(fd)

    monkeypatch.setattr(spool_module, "SYNCFS", syncfs)
    monkeypatch.setattr(spool_module, "_fsync_file", lambda path: pytest.fail(f"fsync of {path}"))
    spool.claim(drop(layout), "F1")
    spool.stage(layout.sender_acks("acme") / "F1.json", b"{}")
    spool.barrier()
    spool.barrier()
    assert synced == [str(layout.root.resolve())] * 2


def test_barrier_raises_when_syncfs_fails(spool: Spool, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that refuses to sync is an OSError with its errno, naming the workspace."""

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(spool_module, "SYNCFS", failing)
    with pytest.raises(OSError, match="syncfs") as raised:
        spool.barrier()
    assert raised.value.errno == errno.EIO and raised.value.filename == str(layout.root)


def test_barrier_fault_is_the_disk_refusing(spool: Spool, inject: Callable[[str], None]) -> None:
    """An error injected at the barrier is the OSError a failing disk would give."""
    inject("barrier=eio")
    with pytest.raises(OSError, match="injected at barrier") as raised:
        spool.barrier()
    assert raised.value.errno == errno.EIO


# -- archive -----------------------------------------------------------------------------------------------------


def test_archive_moves_the_payload_to_its_utc_day_under_its_name(spool: Spool, layout: Layout) -> None:
    """archive renames the payload to archive/YYYY/MM/DD/<flow_id>_<original name>, the day being the UTC one."""
    claim = claim_one(spool, layout, name="facture été.xml", data=b"original")
    late = Claim(
        claim.flow_id, claim.sender, claim.name, claim.payload, datetime(2026, 11, 27, 1, 0, tzinfo=PARIS2), None
    )
    inode = claim.payload.stat().st_ino
    target = spool.archive(late)
    assert target == layout.archive / "2026" / "11" / "26" / "F1_facture été.xml"
    assert target == layout.archived("F1", late.received_at, claim.name)
    assert target.read_bytes() == b"original" and target.stat().st_ino == inode
    assert names(spool.hand) == ["lock"]
    next_day = claim_one(spool, layout, "F2", received=datetime(2026, 11, 27, 0, 30, tzinfo=UTC))
    assert spool.archive(next_day) == layout.archive / "2026" / "11" / "27" / "F2_invoice.xml"


def test_archive_keeps_undecodable_name_bytes(spool: Spool, layout: Layout) -> None:
    """A file name that is not UTF-8 is archived under the very bytes the sender used."""
    claim = claim_one(spool, layout, name=RAW_NAME)
    day = spool.archive(claim).parent
    assert [os.fsencode(p.name) for p in day.iterdir()] == [b"F1_" + RAW_NAME]


def test_archive_again_keeps_what_is_archived(spool: Spool, layout: Layout, inject: Callable[[str], None]) -> None:
    """After a failure past the rename, archiving again (recovery) returns the same place with the same bytes."""
    claim = claim_one(spool, layout, data=b"original")
    inject("archive.after_rename=raise")
    with pytest.raises(InjectedFault):
        spool.archive(claim)
    inject("")
    target = layout.archived("F1", RECEIVED, "invoice.xml")
    assert target.read_bytes() == b"original" and not claim.payload.exists()
    assert spool.archive(claim) == target
    assert target.read_bytes() == b"original"
    assert names(target.parent) == ["F1_invoice.xml"]


# -- retention ---------------------------------------------------------------------------------------------------


def test_discard_removes_files_and_folders(spool: Spool, layout: Layout) -> None:
    """discard removes a file, or a folder with what is in it; one already gone is no error."""
    claim = claim_one(spool, layout)
    archived = spool.archive(claim)
    failed = spool.fail(claim_one(spool, layout, "F2"))
    spool.discard(archived)
    spool.discard(archived)
    spool.discard(failed)
    assert names(archived.parent) == [] and spool.failed_ids() == []


def test_move_out_on_the_same_filesystem(spool: Spool, layout: Layout, tmp_path: Path) -> None:
    """move_out renames a file out of the workspace (the same inode), making the target's parents."""
    archived = spool.archive(claim_one(spool, layout, data=b"kept"))
    inode = archived.stat().st_ino
    target = tmp_path / "moved" / "archive" / "2026" / archived.name
    spool.move_out(archived, target)
    assert not archived.exists() and target.read_bytes() == b"kept" and target.stat().st_ino == inode


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path (/dev/shm), skipped where there is none."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_move_out_across_filesystems_copies_then_removes(
    spool: Spool, layout: Layout, other_filesystem: Path, what: str
) -> None:
    """Across filesystems, move_out copies (no .partial left), then removes the original."""
    archived = spool.archive(claim_one(spool, layout, data=b"kept"))
    source = archived.parent if what == "folder" else archived
    target = other_filesystem / "archive" / source.name
    spool.move_out(source, target)
    assert not source.exists()
    assert (target / archived.name if what == "folder" else target).read_bytes() == b"kept"
    assert names(target.parent) == [source.name]


# -- sweep -------------------------------------------------------------------------------------------------------


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()


def aged(path: Path, age: float) -> Path:
    path.write_bytes(b"x")
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_sweep_tmp_removes_only_old_temporary_files(spool: Spool, layout: Layout) -> None:
    """sweep_tmp removes temporary files older than the limit in tmp/ and queues/*/tmp/, and nothing else."""
    queue = layout.queue("dupont")
    old = [aged(layout.tmp / ".F1.json.1.tmp", 7200), aged(queue / "tmp" / "F1.0001.xml", 7200)]
    young = [aged(layout.tmp / ".F2.json.1.tmp", 60), aged(queue / "tmp" / "F2.0001.xml", 60)]
    delivered = aged(queue / "new" / "F0.0001.xml", 7200)
    (layout.tmp / "folder").mkdir()
    assert spool.sweep_tmp(3600, NOW) == 2
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young) and delivered.exists() and (layout.tmp / "folder").is_dir()
    assert spool.sweep_tmp(3600, NOW) == 0


def test_sweep_tmp_beside_acks_kept_outside_removes_only_hidden_files(tmp_path: Path) -> None:
    """With acknowledgements kept outside the workspace, only old hidden files beside them are swept."""
    acks = tmp_path / "sftp"
    layout = Layout(tmp_path / "ws", acks_folder=acks)
    layout.create(["acme"])
    spool = Spool(layout)
    stale = aged(acks / "acme" / ".F1.json.1.tmp", 7200)
    fresh = aged(acks / "acme" / ".F2.json.1.tmp", 60)
    ack = aged(acks / "acme" / "F0.json", 7200)
    assert spool.sweep_tmp(3600, NOW) == 1
    assert not stale.exists() and fresh.exists() and ack.exists()


def test_sweep_tmp_removes_a_hand_its_process_died_making(spool: Spool, layout: Layout) -> None:
    """A hand still in tmp/ (its process died before moving it into active/) goes once old and unlocked; one being
    made (locked) or just made stays."""
    dead = layout.tmp / ".hand-1-aaaaaa"
    dead.mkdir()
    (dead / "lock").write_bytes(b"")
    os.utime(dead, (NOW - 7200, NOW - 7200))
    being_made = layout.tmp / ".hand-2-bbbbbb"
    being_made.mkdir()
    held = spool_module._try_lock(being_made)
    assert held is not None
    os.utime(being_made, (NOW - 7200, NOW - 7200))
    young = layout.tmp / ".hand-3-cccccc"
    young.mkdir()
    os.utime(young, (NOW - 60, NOW - 60))
    try:
        assert spool.sweep_tmp(older_than=3600, now=NOW) == 1
        assert names(layout.tmp) == [".hand-2-bbbbbb", ".hand-3-cccccc"]
    finally:
        os.close(held)


def test_install_puts_a_whole_file_in_place_and_removes_what_would_be_applied_to_it(tmp_path: Path) -> None:
    """install: the built file takes the target's place by one rename, and the stale files named go first (a
    replaced SQLite store's -wal and -shm)."""
    layout = Layout(tmp_path / "ws")
    layout.create([])
    built, target = layout.tmp / "built", layout.root / "store"
    built.write_bytes(b"new")
    target.write_bytes(b"old")
    stale = (layout.root / "store-wal", layout.root / "store-shm")
    stale[0].write_bytes(b"log of the old one")
    Spool(layout).install(built, target, stale)
    assert target.read_bytes() == b"new" and not built.exists()
    assert not any(path.exists() for path in stale)


def test_place_renames_without_ever_replacing_a_file(layout: Layout) -> None:
    """place renames a file into a folder; a file already at the target is never replaced (FileExistsError, the
    source left as it was); without renameat2's RENAME_NOREPLACE it links then unlinks, with the same guarantee."""
    source, other = layout.tmp / "deposit", layout.tmp / "other"
    source.write_bytes(b"new")
    taken = layout.sender_inbox("acme") / "taken.xml"
    taken.write_bytes(b"the sender's")
    with pytest.raises(FileExistsError):
        spool_module.place(source, taken)
    assert taken.read_bytes() == b"the sender's" and source.read_bytes() == b"new"
    spool_module.place(source, layout.sender_inbox("acme") / "free.xml")
    assert not source.exists() and (layout.sender_inbox("acme") / "free.xml").read_bytes() == b"new"
    other.write_bytes(b"fallback")
    real = spool_module.RENAMEAT2
    try:
        spool_module.RENAMEAT2 = None
        with pytest.raises(FileExistsError):
            spool_module.place(other, taken)
        spool_module.place(other, layout.sender_inbox("acme") / "linked.xml")
    finally:
        spool_module.RENAMEAT2 = real
    assert taken.read_bytes() == b"the sender's" and not other.exists()
    assert (layout.sender_inbox("acme") / "linked.xml").read_bytes() == b"fallback"
