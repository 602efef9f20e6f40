"""The only module that moves files: claim, write atomically, deliver, archive, fail, requeue, recover.

Every move is an ``os.rename`` inside the workspace (one filesystem), every write is temp file + fsync + rename +
fsync of the folder, so a crash at any instant leaves each file either where it was or where it was going, never
half-written. A claimed flow lives in ``spool/active/<flow_id>/`` and is owned by whoever holds the ``flock`` on its
``lock`` file: the kernel drops the lock when the owner dies, which is how recovery knows a flow is orphaned.

Raises OSError (and InjectedFault) from the filesystem; callers decide what a failure means for the flow.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from edi.faults import fault_point
from edi.workspace import Layout

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Claim:
    """A flow this process owns: its folder in the spool, what the sender dropped, and the lock that proves it."""

    flow_id: str
    sender: str
    name: str  # the file name as it was in the inbox (may hold undecodable bytes as surrogates)
    folder: Path
    received_at: datetime
    deposited_at: datetime | None
    lock_fd: int

    @property
    def payload(self) -> Path:
        """The bytes the sender dropped."""
        return self.folder / "payload"

    def release(self) -> None:
        """Give up ownership (the folder stays where it is)."""
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(tmp: Path, chunks: Iterator[bytes] | list[bytes], mode: int | None = None) -> None:
    with open(tmp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        if mode is not None:
            os.fchmod(out.fileno(), mode)  # whatever the umask
        os.fsync(out.fileno())


def _publish(
    chunks: Iterator[bytes] | list[bytes], tmp: Path, target: Path, fault: str | None, mode: int | None = None
) -> None:
    """Write ``tmp`` durably, rename it to ``target`` (replacing it), make the rename durable; no temp left."""
    try:
        _write_durably(tmp, chunks, mode)
        if fault:
            fault_point(fault)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def _fsync_file(path: Path) -> None:
    if path.is_symlink():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


class Spool:
    """File moves of one workspace."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # -- atomic writes -------------------------------------------------------------------------------------------

    def write_atomic(self, target: Path, data: bytes, fault: str | None = None, mode: int | None = None) -> None:
        """Write ``data`` to ``target`` so that readers see the old file or the whole new one, never a part; with
        ``mode`` its permissions are exactly that, whatever the umask.

        The temporary file is in the workspace's ``tmp/`` for targets in the workspace, else beside the target (a
        rename must stay on one filesystem)."""
        inside = target.resolve().is_relative_to(self.layout.root.resolve())
        folder = self.layout.tmp if inside else target.parent
        _publish([data], folder / f".{target.name}.{os.getpid()}.tmp", target, fault, mode)

    # -- claim ---------------------------------------------------------------------------------------------------

    def claim(self, source: Path, sender: str, flow_id: str, received_at: datetime) -> Claim | None:
        """Take ``source`` out of the inbox into ``spool/active/<flow_id>/payload``; None if another took it first."""
        try:
            stat = source.lstat()
        except FileNotFoundError:
            return None
        folder = self.layout.active / flow_id
        folder.mkdir()
        lock_fd = _try_lock(folder)
        if lock_fd is None:  # recovery grabbed the brand-new folder first: it will remove it; the file stays put
            return None
        deposited_at = datetime.fromtimestamp(stat.st_mtime, UTC)
        meta = {
            "flow_id": flow_id,
            "sender": sender,
            "name": source.name,
            "received_at": received_at.isoformat(),
            "deposited_at": deposited_at.isoformat(),
        }
        claim = Claim(flow_id, sender, source.name, folder, received_at, deposited_at, lock_fd)
        try:
            _write_durably(folder / "meta.tmp", [json.dumps(meta).encode()])
            os.replace(folder / "meta.tmp", folder / "meta.json")
            fault_point("claim.before_rename")
            os.rename(source, claim.payload)
        except FileNotFoundError:  # another process claimed it between our scan and our rename
            self._discard(claim)
            return None
        except BaseException:
            self._discard(claim)
            raise
        fsync_dir(folder)
        fsync_dir(source.parent)
        fault_point("claim.after_rename")
        return claim

    def _discard(self, claim: Claim) -> None:
        """Remove a claim folder that holds no payload."""
        shutil.rmtree(claim.folder, ignore_errors=True)
        claim.release()

    # -- recovery ------------------------------------------------------------------------------------------------

    def orphans(self) -> Iterator[Claim]:
        """Claim every flow left in ``spool/active`` by a process that died; clean up claims that never completed."""
        try:
            names = sorted(os.listdir(self.layout.active))
        except FileNotFoundError:
            return
        for name in names:
            folder = self.layout.active / name
            try:
                lock_fd = _try_lock(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if lock_fd is None:  # a live process owns it
                continue
            claim = _read_claim(folder, lock_fd)
            if not (folder / "payload").exists():  # the claim never completed, or the flow was already archived
                shutil.rmtree(folder, ignore_errors=True)
                os.close(lock_fd)
            elif claim is None:  # bytes without readable metadata: never delete them, park them for an operator
                self.layout.failed.mkdir(parents=True, exist_ok=True)
                os.rename(folder, self.layout.failed / name)
                os.close(lock_fd)
            else:
                yield claim

    def sweep_tmp(self, older_than: float, now: float) -> int:
        """Remove temporary files that a crash left behind; return how many."""
        removed = 0
        for folder in [self.layout.tmp, *self.layout.queues.glob("*/tmp")]:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > older_than:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed += 1
        return removed

    # -- delivery ------------------------------------------------------------------------------------------------

    def delivered(self, queue: str, name: str) -> Path | None:
        """Where ``name`` already sits in ``queue`` (``new/`` or, read by a consumer, ``cur/``), if it does."""
        folder = self.layout.queue(queue)
        new = folder / "new" / name
        if new.exists():
            return new
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder / "cur"):
                if entry.name == name or entry.name.startswith(name + ":"):
                    return Path(entry.path)
        return None

    def deliver(self, queue: str, name: str, source: BinaryIO) -> Path:
        """Put a document in ``queues/<queue>/new/<name>`` Maildir-style, at most once."""
        existing = self.delivered(queue, name)
        if existing is not None:
            return existing
        folder = self.layout.queue(queue)
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        final = folder / "new" / name
        _publish(_chunks(source), folder / "tmp" / name, final, "deliver.before_rename")
        return final

    # -- outcomes ------------------------------------------------------------------------------------------------

    def archive(self, claim: Claim) -> Path:
        """Move the payload of a finished flow to ``archive/YYYY/MM/DD/<flow_id>/<its name>``, drop its spool folder."""
        folder = self.layout.archive_day(claim.received_at) / claim.flow_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / claim.name
        if claim.payload.exists():
            os.rename(claim.payload, target)
            fsync_dir(folder)
        fault_point("archive.after_rename")
        shutil.rmtree(claim.folder, ignore_errors=True)
        claim.release()
        return target

    def withdraw(self, *paths: Path) -> None:
        """Remove files that must not stand (an acknowledgement of a flow that then failed)."""
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

    def fail(self, claim: Claim) -> Path:
        """Move a flow that failed for our own reason to ``failed/``, keeping everything it had."""
        target = self.layout.failed / claim.flow_id
        self.layout.failed.mkdir(parents=True, exist_ok=True)
        os.rename(claim.folder, target)
        fsync_dir(self.layout.failed)
        claim.release()
        return target

    def failed_ids(self) -> list[str]:
        """The flows waiting in ``failed/``, oldest first."""
        try:
            return sorted(n for n in os.listdir(self.layout.failed) if (self.layout.failed / n).is_dir())
        except FileNotFoundError:
            return []

    def requeue(self, flow_id: str) -> bool:
        """Put a failed flow back in the spool for the next run; False if it is not in ``failed/``."""
        source = self.layout.failed / flow_id
        if not (source / "payload").exists():
            return False
        self.layout.active.mkdir(parents=True, exist_ok=True)
        os.rename(source, self.layout.active / flow_id)
        fsync_dir(self.layout.active)
        fsync_dir(self.layout.failed)
        return True


def _try_lock(folder: Path) -> int | None:
    """Open and lock ``folder/lock`` without waiting; None if someone else holds it."""
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_claim(folder: Path, lock_fd: int) -> Claim | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        deposited = meta.get("deposited_at")
        return Claim(
            flow_id=meta["flow_id"],
            sender=meta["sender"],
            name=meta["name"],
            folder=folder,
            received_at=datetime.fromisoformat(meta["received_at"]),
            deposited_at=datetime.fromisoformat(deposited) if deposited else None,
            lock_fd=lock_fd,
        )
    except (OSError, ValueError, KeyError):
        return None
