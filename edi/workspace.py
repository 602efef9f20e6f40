"""The workspace layout: which folder is for what. Pure path arithmetic plus ``create`` for ``edi init``.

::

    <root>/
      inbox/<sender>/          senders drop files here (SFTP chroot or shared folder)
      spool/active/<hand>/     one folder per processing process (flock on its lock): <flow_id> files are the
                               bytes of the flows it claimed, as they came
      spool/requeued/<flow_id>/  failed flows put back by ``edi requeue``: payload, meta.json
      queues/<queue>/{tmp,new,cur}/   Maildir-style delivery of accepted documents
      acks/<sender>/           <flow_id>.json and <flow_id>.xml, one final acknowledgement per flow
      archive/YYYY/MM/DD/<flow_id>_<file name>   the original bytes of every finished flow
      failed/<flow_id>/        flows that failed for our own reason (payload, meta.json), kept for ``edi requeue``
      tmp/                     temporary files on their way to acks/ (same filesystem, renamed into place)
      tracking.sqlite          the flow-tracking store (and SQLite's -wal and -shm files beside it)
      tracking.sqlite-writers  flocked by a process for each of its write transactions (writers queue on it)
      .edi-workspace           written by ``edi init``: this folder is a workspace, and its id (which its store
                               holds too: a store from another workspace is refused)
      webhooks.key             the API's webhook key (edi.api.signing: every webhook's signing key is derived from
                               it), mode 0600, made with the first webhook

Reads the marker (:attr:`Layout.workspace_id`); ``create`` makes folders and raises :class:`WorkspaceError` when
it cannot (the marker is written through the spool, see :mod:`edi.store`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edi.errors import WorkspaceError

MARKER = ".edi-workspace"


NAME_MAX = 255  # bytes in one file name (Linux)


def marker_text(workspace_id: str) -> bytes:
    """What the marker holds: what it is, and the workspace's id (read back by :attr:`Layout.workspace_id`)."""
    return f"edi workspace\nid {workspace_id}\n".encode()


def archive_name(flow_id: str, name: str) -> str:
    """``<flow_id>_<the name it came with>``: one file per flow, found by its id, named as the sender named it. A
    name too long for that keeps its beginning and its extension (the whole name is in the store and the
    acknowledgement)."""
    raw = os.fsencode(name)
    room = NAME_MAX - len(flow_id) - 1
    if len(raw) > room:
        head, dot, ext = raw.rpartition(b".")
        tail = dot + ext if head and len(ext) <= 16 else b""
        kept = raw[: room - len(tail)]
        if _utf8(raw):  # not in the middle of a character
            kept = kept.decode("utf-8", "ignore").encode("utf-8")
        raw = kept + tail
    return f"{flow_id}_{os.fsdecode(raw)}"


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Layout:
    """The paths of one workspace."""

    root: Path
    inbox_folder: Path | None = None  # elsewhere than root/inbox (an SFTP chroot): same filesystem
    acks_folder: Path | None = None  # elsewhere than root/acks

    @property
    def inbox(self) -> Path:
        """Parent of the per-sender drop folders."""
        return self.inbox_folder or self.root / "inbox"

    @property
    def active(self) -> Path:
        """Claimed flows being processed (or left by a crash, for recovery)."""
        return self.root / "spool" / "active"

    @property
    def requeued(self) -> Path:
        """Failed flows put back by an operator, waiting for the next run."""
        return self.root / "spool" / "requeued"

    @property
    def queues(self) -> Path:
        """Parent of the delivery queues."""
        return self.root / "queues"

    @property
    def acks(self) -> Path:
        """Parent of the per-sender acknowledgement folders."""
        return self.acks_folder or self.root / "acks"

    @property
    def archive(self) -> Path:
        """Parent of the dated archive folders."""
        return self.root / "archive"

    @property
    def failed(self) -> Path:
        """Flows that failed for our own reason."""
        return self.root / "failed"

    @property
    def tmp(self) -> Path:
        """Where files are written before being renamed into place."""
        return self.root / "tmp"

    @property
    def database(self) -> Path:
        """The SQLite flow-tracking store."""
        return self.root / "tracking.sqlite"

    def sender_inbox(self, sender: str) -> Path:
        """Where ``sender`` drops its files."""
        return self.inbox / sender

    def sender_acks(self, sender: str) -> Path:
        """Where ``sender`` reads its acknowledgements."""
        return self.acks / sender

    def queue(self, name: str) -> Path:
        """A Maildir-style queue folder."""
        return self.queues / name

    def archive_day(self, day: datetime) -> Path:
        """The archive folder of one UTC day."""
        day = day.astimezone(UTC)
        return self.archive / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"

    def archived(self, flow_id: str, received_at: datetime, name: str) -> Path:
        """Where the original bytes of a finished flow are kept (see :func:`archive_name`)."""
        return self.archive_day(received_at) / archive_name(flow_id, name)

    @property
    def marker(self) -> Path:
        """The file ``edi init`` writes once the workspace and its store exist."""
        return self.root / MARKER

    @property
    def initialised(self) -> bool:
        """Whether ``edi init`` has created this workspace."""
        return self.marker.is_file()

    @property
    def workspace_id(self) -> str | None:
        """The id the marker gives this workspace; None without a marker, or with one written before ids were."""
        try:
            text = self.marker.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "id" and value.strip():
                return value.strip()
        return None

    def create(self, senders: Iterable[str], queues: Iterable[str] = ()) -> list[Path]:
        """Make every folder (idempotent); return the ones that did not exist yet. The marker is not among them:
        ``edi init`` writes it once the store exists."""
        wanted = [self.root, self.inbox, self.active, self.requeued, self.queues, self.acks, self.archive]
        wanted += [self.failed, self.tmp]
        for sender in senders:
            wanted += [self.sender_inbox(sender), self.sender_acks(sender)]
        for name in queues:
            wanted += [self.queue(name) / sub for sub in ("tmp", "new", "cur")]
        made = []
        try:
            for path in wanted:
                if not path.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    made.append(path)
        except OSError as exc:
            raise WorkspaceError(
                f"cannot create the workspace under {self.root}: {exc.strerror}: {exc.filename}"
            ) from None
        return made

    def check_writable(self) -> None:
        """Raise :class:`WorkspaceError` unless the workspace is initialised and writable."""
        if not self.initialised:
            raise WorkspaceError(f"{self.root} is not an edi workspace: run `edi init` first")
        if self.inbox.is_dir() and self.inbox.stat().st_dev != self.active.stat().st_dev:
            raise WorkspaceError(
                f"{self.inbox} and {self.active} are on two filesystems: files could not be claimed by rename"
            )
        probe = self.tmp / f".probe-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(f"the workspace is not writable: {exc.strerror}: {exc.filename}") from None


def kind_of(mode: int) -> str:
    """What an entry of a folder is, in words, from its ``st_mode`` (as scans and the console name it)."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISDIR(mode):
        return "sub-folder"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"
