"""The only module that moves files: claim, stage and publish, archive, fail, requeue, recover.

Every move is an ``os.rename`` inside the workspace (one filesystem); every new file is written under a temporary
name, made durable, then renamed into place, so a crash at any instant leaves each file either where it was or where
it was going, never half-written.

Each processing process owns one folder, its *hand*: ``spool/active/<pid>-<random>/``, held by an ``flock`` on its
``lock`` file for the life of the process. Claiming a flow is one rename of the inbox file to ``<hand>/<flow_id>``
(what the sender called it and when it came were recorded in the tracking store just before). The kernel drops the
lock when its owner dies, however it dies: a hand whose lock can be taken is an orphan, and recovery renames its
flows into the recovering process's own hand, one at a time, so that two recovering processes never take the same.

Durability is batched: files are written without waiting for the disk, and :meth:`Spool.barrier` makes everything
written so far durable at once (``syncfs`` of the workspace's filesystem on Linux, else an ``fsync`` of each file and
folder touched). A caller writes a group of files, calls the barrier, renames them into place, calls it again.

Raises OSError (and InjectedFault) from the filesystem; callers decide what a failure means for the flow. Raises
WorkspaceError when this process's hand cannot be made: no flow can be claimed at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edi.errors import WorkspaceError
from edi.faults import fault_point
from edi.workspace import Layout, archive_name

LOCK = "lock"
META = "meta.json"
PAYLOAD = "payload"


@dataclass(frozen=True, slots=True)
class Claim:
    """A flow this process owns: the bytes the sender dropped, now in its hand, and what is known about them."""

    flow_id: str
    sender: str
    name: str  # the file name as it was in the inbox (may hold undecodable bytes as surrogates)
    payload: Path
    received_at: datetime
    deposited_at: datetime | None

    def meta(self) -> dict[str, Any]:
        """What ``failed/<flow_id>/meta.json`` keeps, so a failed flow can be requeued without the store."""
        return {
            "flow_id": self.flow_id,
            "sender": self.sender,
            "name_hex": os.fsencode(self.name).hex(),
            "received_at": self.received_at.isoformat(),
            "deposited_at": self.deposited_at.isoformat() if self.deposited_at else None,
        }


@dataclass(frozen=True, slots=True)
class Staged:
    """A file written under a temporary name, waiting to be renamed into place."""

    tmp: Path
    target: Path


def claim_from_meta(meta: dict[str, Any], payload: Path) -> Claim:
    """A claim rebuilt from what :meth:`Claim.meta` wrote; raises KeyError / ValueError when it is not that."""
    deposited = meta.get("deposited_at")
    texts = [meta["flow_id"], meta["sender"], meta["name_hex"], meta["received_at"]]
    if not all(isinstance(text, str) for text in texts) or not isinstance(deposited, str | None):
        raise ValueError("meta.json: flow_id, sender, name_hex, received_at and deposited_at must be strings")
    return Claim(
        flow_id=meta["flow_id"],
        sender=meta["sender"],
        name=os.fsdecode(bytes.fromhex(meta["name_hex"])),
        payload=payload,
        received_at=datetime.fromisoformat(meta["received_at"]),
        deposited_at=datetime.fromisoformat(deposited) if deposited else None,
    )


def name_in_meta(meta: dict[str, Any]) -> str:
    """The inbox file name a ``meta.json`` keeps, ``?`` if it keeps none that can be read."""
    try:
        return os.fsdecode(bytes.fromhex(meta["name_hex"]))
    except (KeyError, TypeError, ValueError):
        return "?"


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place(source: Path, target: Path) -> None:
    """Rename ``source`` (a whole file, made durable by its writer) to ``target`` without ever replacing a file that
    is there (FileExistsError then, ``source`` left as it was), and make the rename durable. A flow deposited through
    the API enters its sender's inbox so: a sender's own file of that name is never overwritten."""
    fault_point("place.before_rename")
    if RENAMEAT2 is None or RENAMEAT2(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), NOREPLACE) != 0:
        number = ctypes.get_errno() if RENAMEAT2 is not None else errno.ENOSYS
        if number not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: a filesystem without RENAME_NOREPLACE
            raise OSError(number, os.strerror(number), str(source), None, str(target))
        os.link(source, target)  # FileExistsError if taken; then the one name goes
        os.unlink(source)
    fsync_dir(target.parent)


def _fsync_file(path: Path) -> None:
    if path.is_symlink():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where there is none. Looked up among the process's own symbols, which
    include libc's (``ctypes.util.find_library`` would run ``ldconfig -p`` in a subprocess, in every process)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) on Windows
        return None
    return function


SYNCFS = _syncfs()
AT_FDCWD, NOREPLACE = -100, 1  # renameat2(2): the current directory, RENAME_NOREPLACE


def _renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    """libc's ``renameat2`` (Linux, glibc 2.28+), or None where there is none."""
    try:
        function: Callable[[int, bytes, int, bytes, int], int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    return function


RENAMEAT2 = _renameat2()


def _write(path: Path, data: bytes, mode: int | None, fault: str | None = None) -> None:
    """Create ``path`` holding ``data`` (a leftover of a crashed process is replaced); with ``mode``, exactly those
    permissions."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600 if mode is not None else 0o666)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o600 if mode is not None else 0o666)
    try:
        if fault:
            fault_point(fault)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if mode is not None:
            os.fchmod(fd, mode)  # whatever the umask
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


class Spool:
    """File moves of one workspace, for one process."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        # names this process's hand and its temporary files (``.<target>.<token>-<n>.tmp``): recovery removes the
        # temporary files of a hand it takes back
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._hand: Path | None = None
        self._hand_fd: int | None = None
        self._root_fd: int | None = None
        self._touched: set[Path] = set()  # files and folders to fsync where there is no syncfs
        self._queues: dict[str, tuple[Path, Path, Path]] = {}  # queue -> its tmp/, new/, cur/
        self._days: dict[tuple[int, int, int], Path] = {}  # UTC day -> its archive folder, made
        self._tmp = layout.tmp
        self._staged = 0  # stages so far: numbers the temporary files
        self._root = layout.root
        self._stage_in: dict[Path, Path] = {}  # a target's folder -> where its temporary files are written

    # -- this process's hand -------------------------------------------------------------------------------------

    @property
    def hand(self) -> Path:
        """This process's folder in ``spool/active`` (made and locked on first use); WorkspaceError when it cannot
        be made (no flow can be claimed: the workspace is unusable, not any one flow)."""
        if self._hand is None:
            name = self.token
            making = self._tmp / f".hand-{name}"  # locked before it appears in active/: never taken for dead
            folder = self.layout.active / name
            fd: int | None = None
            try:
                self.layout.active.mkdir(parents=True, exist_ok=True)
                making.mkdir(parents=True)
                fd = _try_lock(making)
                assert fd is not None  # nobody else knows this brand-new folder
                os.rename(making, folder)
                fsync_dir(self.layout.active)
            except OSError as exc:
                if fd is not None:
                    os.close(fd)
                _remove_unborn_hand(making)
                where = exc.filename2 or exc.filename or self.layout.active
                raise WorkspaceError(
                    f"cannot make this process's folder in the spool: {exc.strerror}: {where}"
                ) from None
            self._hand, self._hand_fd = folder, fd
        return self._hand

    def close(self) -> None:
        """Make everything durable, remove this process's hand if nothing is left in it, and let it go."""
        with contextlib.suppress(OSError):
            self.barrier()
        if self._hand is not None and self._hand_fd is not None:
            with contextlib.suppress(OSError):
                if os.listdir(self._hand) == [LOCK]:
                    os.unlink(self._hand / LOCK)
                    os.rmdir(self._hand)
            os.close(self._hand_fd)
            self._hand = self._hand_fd = None
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    # -- durability ----------------------------------------------------------------------------------------------

    def barrier(self) -> None:
        """Make every file written and every rename done so far durable; raises OSError if the disk says no."""
        fault_point("barrier")
        if SYNCFS is not None:
            if self._root_fd is None:
                self._root_fd = os.open(self.layout.root, os.O_RDONLY | os.O_DIRECTORY)
            if SYNCFS(self._root_fd) != 0:
                number = ctypes.get_errno()
                raise OSError(number, f"syncfs: {os.strerror(number)}", str(self.layout.root))
            self._touched.clear()
            return
        touched, self._touched = self._touched, set()
        for path in sorted(touched, key=lambda p: (p.is_dir(), str(p))):  # files first, then their folders
            with contextlib.suppress(FileNotFoundError):
                if path.is_dir():
                    fsync_dir(path)
                else:
                    _fsync_file(path)

    def _touch(self, *paths: Path) -> None:
        if SYNCFS is None:
            self._touched.update(paths)

    # -- claim ---------------------------------------------------------------------------------------------------

    def claim(self, source: Path, flow_id: str) -> Path | None:
        """Rename ``source`` out of the inbox to ``<hand>/<flow_id>``; None if another process took it first."""
        target = self.hand / flow_id
        fault_point("claim.before_rename")
        try:
            os.rename(source, target)
        except FileNotFoundError:  # another process claimed it between our scan and our rename
            return None
        self._touch(source.parent, self.hand)
        fault_point("claim.after_rename")
        return target

    # -- recovery ------------------------------------------------------------------------------------------------

    def orphans(self) -> list[tuple[str, list[Path]]]:
        """Take every flow left in the hand of a process that died into this one's: for each dead hand, its name
        and the new paths of its flows (the dead hand's folder is removed, and the temporary files it staged:
        acknowledgements that were never renamed into place)."""
        try:
            names = sorted(os.listdir(self.layout.active))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            folder = self.layout.active / name
            if folder == self._hand or not folder.is_dir() or folder.is_symlink():
                continue
            try:
                lock_fd = _try_lock(folder)
            except OSError:
                continue
            if lock_fd is None:  # a live process owns it
                continue
            taken = []
            try:
                for entry in sorted(os.listdir(folder)):
                    if entry == LOCK or entry.startswith("."):
                        continue
                    target = self.hand / entry
                    try:
                        os.rename(folder / entry, target)
                    except FileNotFoundError:
                        continue
                    self._touch(folder, self.hand)
                    taken.append(target)
                with contextlib.suppress(OSError):
                    os.unlink(folder / LOCK)
                    os.rmdir(folder)
            finally:
                os.close(lock_fd)
            found.append((name, taken))
        if found:
            self._remove_temporaries({name for name, _ in found})
        return found

    def _remove_temporaries(self, hands: set[str]) -> int:
        """Remove the temporary files staged by these (dead) hands; return how many. Their flows are decided
        again or finished by the recovering process, which stages its own."""
        folders = [self.layout.tmp]
        if self.layout.acks_folder is not None:  # acknowledgements kept outside: staged beside them
            with contextlib.suppress(OSError):
                folders += [Path(e.path) for e in os.scandir(self.layout.acks) if e.is_dir(follow_symlinks=False)]
        removed = 0
        for folder in folders:
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    if staged_by(entry.name) in hands and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
        return removed

    def requeued(self) -> Iterator[tuple[Path, dict[str, Any] | None]]:
        """Take every flow an operator put back (``spool/requeued/<flow_id>/``) into this hand; yield each new path
        with the metadata it was failed with (None if unreadable: the store knows it)."""
        try:
            names = sorted(os.listdir(self.layout.requeued))
        except FileNotFoundError:
            return
        for name in names:
            folder = self.layout.requeued / name
            meta = _read_meta(folder)
            target = self.hand / name
            try:
                os.rename(folder / PAYLOAD, target)
            except FileNotFoundError:  # taken by another process, or a leftover of one already taken
                if not (folder / PAYLOAD).exists():
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            except NotADirectoryError:
                continue
            self._touch(folder, self.hand)
            shutil.rmtree(folder, ignore_errors=True)
            yield target, meta

    def sweep_tmp(self, older_than: float, now: float) -> int:
        """Remove temporary files that a crash left behind; return how many."""
        removed = 0
        folders = [self.layout.tmp, *self.layout.queues.glob("*/tmp")]
        if self.layout.acks_folder is not None:  # temporary files beside acknowledgements kept outside
            folders += [p for p in self.layout.acks.iterdir() if p.is_dir()] if self.layout.acks.is_dir() else []
        for folder in folders:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if folder.parent == self.layout.acks and not entry.name.startswith("."):
                        continue
                    if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > older_than:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
                    elif (
                        entry.name.startswith(".hand-")
                        and entry.is_dir(follow_symlinks=False)
                        and now - entry.stat().st_mtime > older_than
                    ):
                        removed += _remove_unborn_hand(Path(entry.path))
        return removed

    # -- staging and publishing ----------------------------------------------------------------------------------

    def stage(self, target: Path, data: bytes, mode: int | None = None, fault: str | None = None) -> Staged:
        """Write ``data`` under a temporary name for ``target`` (not durable until the next barrier); with ``mode``
        the file gets exactly those permissions. The temporary file is in the workspace's ``tmp/`` for targets in
        the workspace, else beside the target, hidden (a rename must stay on one filesystem)."""
        parent = target.parent
        folder = self._stage_in.get(parent)
        if folder is None:
            folder = self._stage_in[parent] = self._tmp if parent.is_relative_to(self._root) else parent
        self._staged += 1
        tmp = folder / f".{target.name}.{self.token}-{self._staged}.tmp"  # one per stage: targets may share a name
        _write(tmp, data, mode, fault)
        self._touch(tmp)
        return Staged(tmp, target)

    def stage_delivery(self, queue: str, name: str, data: bytes, again: bool = True) -> Staged | None:
        """Write a document for ``queues/<queue>/new/<name>`` through the queue's ``tmp/`` (Maildir); None when it
        is already delivered (in ``new/``, or read by a consumer into ``cur/``): delivered at most once. A flow
        decided for the first time (``again`` false: its id is new) cannot have been delivered: nothing to look up."""
        tmp_folder, new_folder, _ = self._queue(queue)
        if again and self.delivered(queue, name) is not None:
            return None
        tmp = tmp_folder / name
        _write(tmp, data, None, "write.delivery")
        self._touch(tmp)
        return Staged(tmp, new_folder / name)

    def delivery_path(self, queue: str, name: str) -> Path:
        """Where a document named ``name`` is delivered in ``queue``: ``queues/<queue>/new/<name>``."""
        return self._queue(queue)[1] / name

    def _queue(self, queue: str) -> tuple[Path, Path, Path]:
        folders = self._queues.get(queue)
        if folders is None:
            base = self.layout.queue(queue)
            folders = (base / "tmp", base / "new", base / "cur")
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            self._queues[queue] = folders
        return folders

    def publish(self, staged: Staged, fault: str | None = None) -> Path:
        """Rename a staged file into place (replacing what is there); the temporary file goes if this fails."""
        try:
            if fault:
                fault_point(fault)
            os.replace(staged.tmp, staged.target)
        except BaseException:
            self.unstage(staged)
            raise
        self._touch(staged.target.parent)
        return staged.target

    def unstage(self, staged: Staged) -> None:
        """Remove a staged file that will not be published."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged.tmp)

    def delivered(self, queue: str, name: str) -> Path | None:
        """Where ``name`` already sits in ``queue`` (``new/`` or, read by a consumer, ``cur/``), if it does."""
        _, new_folder, cur_folder = self._queue(queue)
        new = new_folder / name
        if os.path.lexists(new):
            return new
        with contextlib.suppress(FileNotFoundError), os.scandir(cur_folder) as entries:
            for entry in entries:
                if entry.name == name or entry.name.startswith(name + ":"):
                    return Path(entry.path)
        return None

    def write_atomic(self, target: Path, data: bytes, fault: str | None = None, mode: int | None = None) -> None:
        """Write ``data`` to ``target`` durably, so that readers see the old file or the whole new one, never a part
        (reports, exports: one file at a time)."""
        staged = self.stage(target, data, mode)
        try:
            _fsync_file(staged.tmp)
        except BaseException:
            self.unstage(staged)
            raise
        self.publish(staged, fault)
        fsync_dir(target.parent)

    def write_once(self, target: Path, data: bytes, mode: int = 0o600) -> bytes:
        """Create ``target`` durably holding ``data`` (exactly ``mode``) unless it exists, and return what it holds:
        processes that create it at once all get the one that was linked first (a key made once, never replaced)."""
        staged = self.stage(target, data, mode)
        try:
            _fsync_file(staged.tmp)
            with contextlib.suppress(FileExistsError):
                os.link(staged.tmp, target)
        finally:
            self.unstage(staged)
        fsync_dir(target.parent)
        return target.read_bytes()

    def install(self, built: Path, target: Path, stale: tuple[Path, ...] = ()) -> None:
        """Put ``built``, a whole file made in the workspace (a rebuilt store), in ``target``'s place for good:
        made durable, ``stale`` files removed (a replaced SQLite store's ``-wal`` and ``-shm``: SQLite would apply
        an old write-ahead log to the new file), then one rename. A crash leaves ``target`` as it was (without
        those files) or the new file whole, never a part of it."""
        _fsync_file(built)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.replace(built, target)
        fsync_dir(target.parent)

    # -- outcomes ------------------------------------------------------------------------------------------------

    def archive(self, claim: Claim) -> Path:
        """Move the payload of a finished flow to ``archive/YYYY/MM/DD/<flow_id>_<its name>`` (durable at the next
        barrier); a payload already there (recovery after a crash past this point) stays."""
        at = claim.received_at.astimezone(UTC)
        day = self._days.get((at.year, at.month, at.day))
        if day is None:
            day = self.layout.archive_day(at)
            day.mkdir(parents=True, exist_ok=True)
            self._days[(at.year, at.month, at.day)] = day
        target = day / archive_name(claim.flow_id, claim.name)
        with contextlib.suppress(FileNotFoundError):
            os.rename(claim.payload, target)
            self._touch(day, claim.payload.parent)
        fault_point("archive.after_rename")
        return target

    def fail(self, claim: Claim) -> Path:
        """Move a flow that failed for our own reason to ``failed/<flow_id>/`` (its bytes as ``payload``, beside
        ``meta.json``), durably."""
        folder = self.layout.failed / claim.flow_id
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / META
        try:
            if not meta.exists():
                self.write_atomic(meta, json.dumps(claim.meta()).encode())
            with contextlib.suppress(FileNotFoundError):  # already moved by an earlier attempt
                os.rename(claim.payload, folder / PAYLOAD)
        except OSError:  # the flow stays where it is (the spool): leave no half-made folder in failed/
            if not (folder / PAYLOAD).exists():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(meta)
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            raise
        fsync_dir(folder)
        fsync_dir(self.layout.failed)
        fsync_dir(claim.payload.parent)
        return folder

    def failed_meta(self, flow_id: str) -> dict[str, Any] | None:
        """What ``failed/<flow_id>/meta.json`` says, None if it cannot be read."""
        return _read_meta(self.layout.failed / flow_id)

    def failed_ids(self) -> list[str]:
        """The flows waiting in ``failed/``, oldest first."""
        try:
            return sorted(n for n in os.listdir(self.layout.failed) if (self.layout.failed / n / PAYLOAD).is_file())
        except FileNotFoundError:
            return []

    def requeue(self, flow_id: str) -> bool:
        """Put a failed flow back for the next run (``spool/requeued/``); False if it is not in ``failed/``."""
        source = self.layout.failed / flow_id
        if not (source / PAYLOAD).exists():
            return False
        self.layout.requeued.mkdir(parents=True, exist_ok=True)
        os.rename(source, self.layout.requeued / flow_id)
        fsync_dir(self.layout.requeued)
        fsync_dir(self.layout.failed)
        return True

    def withdraw(self, *paths: Path) -> None:
        """Remove files that must not stand (an acknowledgement or a delivery of a flow that then failed)."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                fsync_dir(path.parent)

    def discard(self, path: Path) -> None:
        """Remove a file or folder of the workspace for good (retention)."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(path.parent)

    def move_out(self, path: Path, target: Path) -> None:
        """Move a file or folder out of the workspace to ``target`` (retention), across filesystems if need be:
        copied and made durable there first, removed here only then."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = target.with_name(target.name + ".partial")
            if path.is_dir():
                shutil.copytree(path, partial, symlinks=True)
                for folder, _, names in os.walk(partial):
                    for name in names:
                        _fsync_file(Path(folder) / name)
            else:
                shutil.copy2(path, partial, follow_symlinks=False)
                _fsync_file(partial)
            os.rename(partial, target)
            self.discard(path)
        fsync_dir(target.parent)


def staged_by(name: str) -> str | None:
    """The token of the process that staged a temporary file named ``.<target>.<token>-<n>.tmp``, else None."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    token, dash, number = name[:-4].rpartition(".")[2].rpartition("-")
    return token if dash and number.isdigit() and token else None


def _remove_unborn_hand(folder: Path) -> int:
    """Remove a hand that a process died making (still in tmp/, lock not held, nothing else in it); 1 if removed."""
    with contextlib.suppress(OSError):
        if set(os.listdir(folder)) <= {LOCK}:
            fd = _try_lock(folder)
            if fd is not None:
                try:
                    os.unlink(folder / LOCK)
                    os.rmdir(folder)
                    return 1
                finally:
                    os.close(fd)
    return 0


def _try_lock(folder: Path) -> int | None:
    """Open and lock ``folder/lock`` without waiting; None if someone else holds it, or if the file locked is no
    longer ``folder/lock``: whoever removes a hand unlinks its lock file while holding it, then the folder, and a
    process that opened the file before the unlink gets the lock once it is let go, of a folder that is gone (two
    recoveries at once: the second listed a removed folder and stopped with FileNotFoundError)."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held, named = os.fstat(fd), os.stat(folder / LOCK, follow_symlinks=False)
        if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None
