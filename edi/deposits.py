"""Flows deposited through the API, on their way into a sender's inbox: the file being written, its name there, and
the recovery of what a crashed server left.

A deposit is written to ``tmp/deposits/<flow_id>`` (never in the inbox: the scanner cannot see a file being
uploaded), locked (``flock``) by the process writing it for as long as it is there, made durable, then recorded
(its ``api_deposits`` row), then renamed into ``inbox/<sender>/<inbox name>`` by :func:`edi.spool.place`, which
never replaces a file. The claim of that file takes the row's flow id (:mod:`edi.runner`).

The order is what makes a crash at any instant safe (docs/api.md, "Depositing"; :mod:`edi.api.deposit` answers
``202`` only after the last step):

1. bytes written, not yet durable or not recorded: a crash leaves an unlocked file in ``tmp/deposits/`` with no row:
   :func:`recover_deposits` deletes it. No ``202`` was given; nothing the client was promised is lost.
2. recorded, not yet renamed: an unlocked file with a row: :func:`recover_deposits` renames it into the inbox (the
   bytes were durable before the row was written), and it is processed under the row's id. No ``202`` was given;
   a client that sends it again gets a second flow, which its acknowledgement calls a duplicate of the first.
3. renamed, not yet answered: the file is in the inbox with its row: processed under the row's id, as in 2.

The row is committed before the rename, never after: a file in the inbox without its row would be claimed under a
new id by a scan that ran in between (``edi watch`` claims a file as soon as it is renamed into place), and the
``202`` would then give an id the flow does not have.

Reads and writes ``tmp/deposits/`` and the inboxes; reads the tracking store. Raises OSError from the filesystem.
"""

from __future__ import annotations

import fcntl
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edi.faults import fault_point
from edi.ingest.scan import in_progress
from edi.spool import fsync_dir, place
from edi.tracking import Tracking
from edi.workspace import Layout, archive_name

DEPOSITS = "deposits"  # in the workspace's tmp/: deposits being written (a sub-folder: sweep_tmp leaves it alone)


def deposits_folder(layout: Layout) -> Path:
    """Where deposits are written before they enter an inbox."""
    return layout.tmp / DEPOSITS


def safe_name(name: str) -> str:
    """The client's file name as a flow's file name: what a file name cannot hold (``/``, NUL) and control
    characters become ``_``, a lone surrogate (which no file name can encode) ``\ufffd``; ``.``, ``..`` and an empty
    name become ``_``."""
    kept = "".join(
        "_" if c in "/\0" or unicodedata.category(c) == "Cc" else "\ufffd" if unicodedata.category(c) == "Cs" else c
        for c in name
    )
    return "_" if kept in ("", ".", "..") else kept


def inbox_name(flow_id: str, name: str, ignore: Sequence[str]) -> str:
    """The deposit's file name in its sender's inbox: ``<flow_id>_<its name>`` (within the 255 bytes a name may
    have), unique by its flow id; the flow id alone when the name would say "still being written" to the scanner
    (``*.tmp``, ...)."""
    named = archive_name(flow_id, safe_name(name))
    return flow_id if in_progress(named, ignore) else named


class Upload:
    """A deposit's bytes, written to ``tmp/deposits/<flow_id>`` and locked by this process until they are renamed
    into the inbox or removed (close it in every case)."""

    def __init__(self, layout: Layout, flow_id: str) -> None:
        folder = deposits_folder(layout)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / flow_id
        self.size = 0
        self.recorded = False  # its api_deposits row is committed: kept if it is not placed (recovery places it)
        self._placed = False
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it

    def write(self, data: bytes) -> None:
        """Append ``data`` (to the page cache: :meth:`make_durable` waits for the disk)."""
        fault_point("write.deposit")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(data)

    def make_durable(self) -> None:
        """Wait until the bytes written are on the disk."""
        os.fsync(self._fd)

    def place(self, target: Path) -> None:
        """Rename the file into the inbox as ``target`` (never over another file: FileExistsError), durably."""
        target.parent.mkdir(parents=True, exist_ok=True)
        place(self.path, target)
        self._placed = True

    def close(self) -> None:
        """Let the file go: removed unless it was placed or recorded (then left for :func:`recover_deposits` to
        place)."""
        if not self._placed and not self.recorded:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


@dataclass(slots=True)
class Recovered:
    """What :func:`recover_deposits` did: flow ids placed in an inbox, removed, and left (with why)."""

    placed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)


def recover_deposits(layout: Layout, tracking: Tracking) -> Recovered:
    """Finish what crashed deposits left in ``tmp/deposits/`` (files no live process holds): a recorded one is
    renamed into its sender's inbox, one never recorded is removed; one that cannot be renamed (the disk says no)
    stays for the next run."""
    folder = deposits_folder(layout)
    done = Recovered()
    try:
        names = sorted(p.name for p in folder.iterdir())
    except FileNotFoundError:
        return done
    for name in names:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, IsADirectoryError):
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != path.lstat().st_ino:
                    continue  # renamed into the inbox by its writer since it was opened here
            except (BlockingIOError, FileNotFoundError):
                continue  # being written by a live process, or gone
            row = tracking.deposit(name)
            if row is None:
                path.unlink()
                fsync_dir(folder)
                done.removed.append(name)
                continue
            target = layout.sender_inbox(str(row["sender"])) / str(row["inbox_name"])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                place(path, target)
            except OSError as exc:
                done.left[name] = f"cannot rename it to {target}: {exc.strerror or exc}"
                continue
            done.placed.append(name)
        finally:
            os.close(fd)
    return done
