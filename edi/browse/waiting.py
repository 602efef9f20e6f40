"""What waits in the workspace's folders, for the console: the senders' inboxes and the spool, with each file's age,
the files that have waited too long and the entries that will never be claimed.

A cheap look, never a scan that decides: it lists folders (``os.scandir`` and one ``lstat`` per entry), never opens
a file, never moves one, and stops counting a folder after :data:`MAX_ENTRIES` entries (saying so), so that a huge
inbox never makes a page slow. What a run will do with a file is decided by :mod:`edi.ingest.scan`, which this
module does not import (the console never imports ingest): a file still here past the threshold is reported as not
taken, whatever the reason (no run since, a claim that fails, an upload that stalled), a name that says "in
progress" past it as an upload that never finished. Reads the folders :class:`edi.workspace.Layout` names; writes
nothing; raises nothing (a folder that is missing or cannot be read is empty, or reported as a problem).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edi.config import Settings
from edi.workspace import Layout, kind_of

MAX_ENTRIES = 10_000  # entries looked at per folder: past this the folder is counted as "more than"
MAX_NAMES = 50  # problems named per list (the rest are counted)
MIN_THRESHOLD = 300.0  # seconds: a file younger than this is never "not taken" (a grace of 0 means "take at once")
LOCK = "lock"  # a spool hand's lock file (edi.spool.LOCK), not a flow


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry an operator should look at: where it is, its name, why, and how long it has been there."""

    place: str
    name: str
    why: str
    age: float | None


@dataclass(slots=True)
class Place:
    """One folder that holds waiting flows: its name for people, the ages (seconds) of what is in it."""

    name: str
    kind: str  # inbox | active | requeued | failed
    ages: list[float] = field(default_factory=list)
    truncated: bool = False  # more than MAX_ENTRIES entries: only the first ones were looked at


@dataclass(slots=True)
class Waiting:
    """What one look found: the places, and the problems (at most MAX_NAMES of each kind named, all counted)."""

    places: list[Place] = field(default_factory=list)
    stalled: list[Problem] = field(default_factory=list)
    stalled_count: int = 0
    unclaimable: list[Problem] = field(default_factory=list)
    unclaimable_count: int = 0
    threshold: float = MIN_THRESHOLD

    def note(self, kind: str, problem: Problem) -> None:
        """Count a problem of ``kind`` (``stalled`` or ``unclaimable``), naming it while there is room."""
        if kind == "stalled":
            self.stalled_count += 1
            if len(self.stalled) < MAX_NAMES:
                self.stalled.append(problem)
        else:
            self.unclaimable_count += 1
            if len(self.unclaimable) < MAX_NAMES:
                self.unclaimable.append(problem)

    @property
    def truncated(self) -> bool:
        """Whether a folder held more than could be looked at."""
        return any(p.truncated for p in self.places)


def look(settings: Settings, layout: Layout, now: float, scope: str | None) -> Waiting:
    """The declared senders' inboxes (only ``scope``'s for a sender account) and, for an operator, the spool's
    ``active`` hands, ``requeued`` and ``failed``: each entry's age at ``now`` (a UNIX time) and the problems."""
    threshold = max(settings.intake.incomplete_grace_seconds, MIN_THRESHOLD)
    found = Waiting(threshold=threshold)
    declared = sorted({s.id for s in settings.senders})
    senders = declared if scope is None else [s for s in declared if s == scope]
    in_progress = _patterns(settings.intake.ignore)
    for sender in senders:
        _inbox(found, layout.sender_inbox(sender), f"inbox/{sender}", now, threshold, in_progress)
    if scope is not None:
        return found
    _strangers(found, layout.inbox, set(declared))
    active = Place("spool/active", "active")
    for hand in _names(layout.active, dirs_only=True):
        _ages(active, layout.active / hand, now, skip={LOCK})
    found.places.append(active)
    for folder, name, kind in ((layout.requeued, "spool/requeued", "requeued"), (layout.failed, "failed", "failed")):
        place = Place(name, kind)
        _ages(place, folder, now)
        found.places.append(place)
    return found


def _patterns(ignore: Sequence[str]) -> re.Pattern[str] | None:
    """The "still being written" name patterns of ``intake.ignore`` as one case-blind expression."""
    return re.compile("|".join(fnmatch.translate(p.lower()) for p in ignore)) if ignore else None


def _inbox(
    found: Waiting, folder: Path, name: str, now: float, threshold: float, in_progress: re.Pattern[str] | None
) -> None:
    """One sender's inbox: the age of each file a run would take, files past ``threshold``, entries never taken."""
    place = Place(name, "inbox")
    found.places.append(place)
    why = _not_a_folder(folder)
    if why is not None:
        found.note("unclaimable", Problem(name, "", why, None))
        return
    try:
        entries = os.scandir(folder)
    except OSError:  # missing (an empty inbox) or unreadable: nothing to count
        return
    with entries:
        for seen, entry in enumerate(entries):
            if seen >= MAX_ENTRIES:
                place.truncated = True
                break
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:  # gone since the listing
                continue
            age = now - st.st_mtime
            shown = _shown(entry.name)
            if not stat.S_ISREG(st.st_mode):
                found.note(
                    "unclaimable", Problem(name, shown, f"{kind_of(st.st_mode)}: only regular files are taken", age)
                )
            elif in_progress is not None and in_progress.match(entry.name.lower()):
                if age >= threshold:
                    found.note("stalled", Problem(name, shown, "upload not finished: its name says in progress", age))
            else:
                place.ages.append(age)
                if age >= threshold:
                    found.note("stalled", Problem(name, shown, "waiting, not taken by a run", age))


def _strangers(found: Waiting, inbox: Path, declared: set[str]) -> None:
    """Entries of the inbox folder that are not a declared sender's inbox: nothing takes files from them."""
    for entry in _names(inbox, dirs_only=False):
        if entry not in declared:
            found.note("unclaimable", Problem("inbox", _shown(entry), "not the inbox of a declared sender", None))


def _names(folder: Path, *, dirs_only: bool) -> list[str]:
    """The names in a folder (no dotfiles; only real sub-folders when ``dirs_only``), at most MAX_ENTRIES."""
    out: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if len(out) >= MAX_ENTRIES:
                    break
                if entry.name.startswith("."):
                    continue
                if dirs_only and not entry.is_dir(follow_symlinks=False):
                    continue
                out.append(entry.name)
    except OSError:
        return []
    return sorted(out)


def _ages(place: Place, folder: Path, now: float, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """The ages of the entries of a spool folder (a flow's file, or a flow's folder in requeued/ and failed/)."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return
    with entries:
        for entry in entries:
            if len(place.ages) >= MAX_ENTRIES:
                place.truncated = True
                break
            if entry.name.startswith(".") or entry.name in skip:
                continue
            try:
                place.ages.append(now - entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue


def _not_a_folder(folder: Path) -> str | None:
    """Why a sender's inbox is never looked into by a run (a symbolic link, or not a folder), None if it is fine."""
    try:
        mode = os.lstat(folder).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return "the inbox is a symbolic link: edi never follows links, nothing in it is taken"
    if not stat.S_ISDIR(mode):
        return "the inbox is not a folder"
    return None


def _shown(name: str) -> str:
    """A file name as text (its undecodable bytes, kept by os.scandir as surrogates, shown as ``\\xNN``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")
