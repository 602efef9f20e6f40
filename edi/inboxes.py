"""A look at every declared sender's inbox: the oldest files ready to be claimed across them, and what else was seen
(files still arriving, stalled uploads, files dated in the future, entries that are not files, sender folders that are
not looked into); why a file cannot be claimed, for an operator; whether there is a backlog worth worker processes.

Reads the inbox folders (through :func:`edi.ingest.scan.scan_inbox`); writes nothing but the caller's record of files
dated in the future; raises nothing for a missing inbox.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from edi.clock import Clock
from edi.config import Settings
from edi.ingest.scan import Ready, Sighting, Skipped, scan_inbox
from edi.workspace import Layout


@dataclass(frozen=True, slots=True)
class SenderScan:
    """What a look at every declared sender's inbox found: the oldest ready files with their sender."""

    ready: list[tuple[str, Ready]]
    skipped: list[Skipped]
    young: int
    more: int  # ready files past the limit, for the next scan
    stalled: list[Path]
    refused: dict[Path, str] = field(default_factory=dict)  # sender folders not looked into, and why
    future: list[Path] = field(default_factory=list)  # files dated in the future, taken as steady
    unsteady: list[Path] = field(default_factory=list)  # files dated in the future, not seen steady yet


def scan_inboxes(
    settings: Settings,
    layout: Layout,
    clock: Clock,
    settled: Collection[Path],
    writing: Collection[Path],
    limit: int,
    cutoff: float,
    leave: Collection[Path],
    sightings: dict[str, Sighting] | None = None,
) -> SenderScan:
    """Every declared sender's inbox: the ``limit`` oldest ready files across them, and what else was seen."""
    now = clock.now().timestamp()
    found: list[tuple[str, list[Ready]]] = []  # each inbox with files ready: oldest first, then by name
    skipped: list[Skipped] = []
    stalled: list[Path] = []
    young = more = 0
    refused: dict[Path, str] = {}
    future: list[Path] = []
    unsteady: list[Path] = []
    declared = sorted({s.id for s in settings.senders})
    for sender in declared:
        folder = layout.sender_inbox(sender)
        why = not_a_folder(folder)
        if why is not None:
            refused[folder] = why
            continue
        scan = scan_inbox(
            folder,
            min_age=settings.intake.min_age_seconds,
            ignore=settings.intake.ignore,
            now=now,
            grace=settings.intake.incomplete_grace_seconds,
            settled=settled,
            writing=writing,
            limit=limit,
            cutoff=cutoff,
            exclude=leave,
            sightings=sightings,
        )
        if scan.ready:
            found.append((sender, scan.ready))
        skipped += scan.skipped
        stalled += scan.stalled
        future += scan.future
        unsteady += scan.unsteady
        young += scan.young
        more += scan.more
    try:
        for entry in os.scandir(layout.inbox):
            if entry.name not in declared and not entry.name.startswith("."):
                skipped.append(Skipped(Path(entry.path), "not the inbox of a declared sender"))
    except FileNotFoundError:
        pass
    # one inbox holding files (the usual case in a backlog): in its order already, no key built (~45 ms for 20,000)
    if len(found) == 1:
        sender, only = found[0]
        kept, total = [(sender, item) for item in only[:limit]], len(only)
    else:  # oldest first across the inboxes, then by sender, then by name
        ready = [(r.mtime, sender, os.fsencode(r.path.name), r) for sender, items in found for r in items]
        ready.sort(key=lambda item: item[:3])
        kept, total = [(sender, item) for _, sender, _, item in ready[:limit]], len(ready)
    return SenderScan(kept, skipped, young, more + max(0, total - limit), stalled, refused, future, unsteady)


def not_a_folder(folder: Path) -> str | None:
    """Why a sender's inbox folder is not looked into (a symbolic link, which edi never follows, or not a folder),
    or None (a folder, or none yet: an empty inbox)."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be looked at: {exc.strerror}"
    if stat.S_ISLNK(mode):
        return (
            "a symbolic link: edi never follows links in the inbox (make it a real folder on the workspace's "
            "filesystem, or set workspace.inbox to where the senders' folders are)"
        )
    if not stat.S_ISDIR(mode):
        return "not a folder"
    return None


def claim_error(exc: OSError) -> str:
    """Why an inbox file cannot be claimed (renamed into the spool), for an operator."""
    if exc.errno == errno.EXDEV:
        return "on another filesystem than the workspace: it cannot be claimed by rename"
    if exc.errno in (errno.EPERM, errno.EACCES):
        return f"{exc.strerror}: it cannot be renamed (immutable or append-only, or the folder's permissions)"
    return f"cannot be renamed into the spool: {exc.strerror or exc}"


def backlog(settings: Settings, layout: Layout, more_than: int) -> bool:
    """Whether the declared senders' inboxes hold more than ``more_than`` entries between them: names only, no
    ``stat`` (a hint, read in well under a millisecond, that worker processes will pay off, before a scan that takes
    ~0.2 s per 8,000 files; a scan then says what is ready)."""
    seen = 0
    for sender in {s.id for s in settings.senders}:
        try:
            with os.scandir(layout.sender_inbox(sender)) as entries:
                for _ in entries:
                    seen += 1
                    if seen > more_than:
                        return True
        except OSError:  # no inbox (yet), or not readable: the scan will say
            continue
    return False
