"""Find the files in a sender's inbox that are finished and safe to claim.

Reads directory entries, their ``lstat``, and the head and tail of files old enough to be candidates (to check they
are whole); writes nothing but the caller's record of files dated in the future (``sightings``); raises nothing for
an inbox that is missing (it is simply empty). A file counts as finished when its name does not say "still being
written" (dotfiles, ``*.tmp``, ``*.part``, ``*.filepart``, ...), it was last modified at least ``min_age`` seconds
ago (or its writer closed it) and it is structurally whole. A file dated in the future (a sender's clock ahead of
ours with ``sftp put -p`` or ``rsync -t``, or our clock stepped back) has no age to go by: it is judged by stability
instead, finished once its size, modification time and inode stayed the same across looks at least ``min_age``
seconds apart (or its writer closed it), and it is then treated as modified when it was first seen so. Symlinks are
never followed; FIFOs, sockets, devices and sub-folders are reported as skipped.
"""

from __future__ import annotations

import fnmatch
import functools
import heapq
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edi.ingest.complete import is_complete
from edi.workspace import kind_of

# seconds a modification time may be ahead of the clock before the file counts as dated in the future: a file written
# while the inbox is looked at (a look at 100,000 files takes about a second) is not
FUTURE_SLACK = 5.0


@dataclass(frozen=True, slots=True)
class Sighting:
    """How a file dated in the future looked (size, modification time in ns, inode), and since when it looks so."""

    state: tuple[int, int, int]
    since: float


@dataclass(frozen=True, slots=True)
class Ready:
    """A finished regular file waiting to be claimed."""

    path: Path
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Skipped:
    """An inbox entry that will never be processed, and why (to be logged for an operator)."""

    path: Path
    why: str


@dataclass(frozen=True, slots=True)
class Scan:
    """What one look at an inbox found."""

    ready: list[Ready] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    young: int = 0  # finished-looking files younger than min_age, left for the next scan
    incomplete: int = 0  # files that stopped growing but look cut short, within their grace period
    more: int = 0  # files old enough past the ``limit`` oldest: not looked at further this time
    stalled: list[Path] = field(default_factory=list)  # the incomplete ones
    future: list[Path] = field(default_factory=list)  # dated in the future, steady: ready (or stalled) like the others
    unsteady: list[Path] = field(default_factory=list)  # dated in the future, waiting for a look that finds them steady


def in_progress(name: str, ignore: Sequence[str]) -> bool:
    """Whether a file name says the file is still being written (or is not for us)."""
    return _in_progress(tuple(ignore))(name)


@functools.lru_cache(maxsize=16)
def _in_progress(ignore: tuple[str, ...]) -> Callable[[str], bool]:
    """:func:`in_progress` for these patterns, made once: one regular expression for all of them (matched
    case-blind). An inbox of 100,000 files is looked at over and over while its backlog lasts, and one match costs a
    fifth of five ``fnmatch`` calls."""
    match = re.compile("|".join(fnmatch.translate(p.lower()) for p in ignore)).match if ignore else None

    def test(name: str) -> bool:
        return name.startswith(".") or (match is not None and match(name.lower()) is not None)

    return test


def scan_inbox(
    folder: Path,
    *,
    min_age: float,
    ignore: Sequence[str],
    now: float,
    grace: float = 0.0,
    settled: Collection[Path] = (),
    writing: Collection[Path] = (),
    limit: int | None = None,
    cutoff: float | None = None,
    exclude: Collection[Path] = (),
    sightings: dict[str, Sighting] | None = None,
) -> Scan:
    """List what is ready in ``folder``, oldest first (then by name).

    A file is ready when its name does not say "in progress", it is at least ``min_age`` seconds old (or in
    ``settled``: its writer closed it or renamed it into place since it last changed), and it is structurally whole;
    a file that looks cut short is left for ``grace`` seconds after its last change (an upload that stalled), then
    taken anyway (and refused as truncated). A file in ``writing`` (written to since its writer last closed it:
    a slow link, a stalled upload) is treated as cut short, however whole it looks. With ``min_age`` 0 files are
    declared finished when they appear (senders rename them into place): one that looks cut short is truncated, not
    arriving, and is taken at once.

    Memory stays bounded whatever the backlog: with ``limit``, only the ``limit`` oldest candidates are kept (and
    checked for completeness); the others are counted in ``more``, for a later scan. Files modified after
    ``cutoff`` (a run's start) and files in ``exclude`` are left out.

    Files dated more than :data:`FUTURE_SLACK` seconds ahead of ``now`` are judged by stability: ``sightings``
    (kept by the caller from look to look, by path) records how each looked and since when; one that has not changed
    for ``min_age`` seconds (or is in ``settled``, or any with ``min_age`` 0) is a candidate like the others, as if
    modified when first seen so, and is listed in ``future``; the others are in ``unsteady`` (and counted young).
    Without ``sightings`` such a file waits, unsteady, for ever.
    """
    candidates: list[tuple[float, bytes, str, int]] = []  # a max-heap (negated) of the oldest
    excluded = {os.fspath(path) for path in exclude}  # compared with each entry's path as it comes: no Path built
    ignored = _in_progress(tuple(ignore))
    skipped: list[Skipped] = []
    future: list[Path] = []
    unsteady: list[Path] = []
    sighted: set[str] = set()  # future-dated files seen in this look
    young = more = 0
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return Scan()
    with entries:
        for entry in entries:
            if ignored(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone since the listing
                continue
            kind = kind_of(st.st_mode)
            if kind != "file":
                skipped.append(Skipped(Path(entry.path), f"{kind}: only regular files are processed"))
                continue
            if excluded and entry.path in excluded:
                continue
            mtime = st.st_mtime
            if mtime > now + FUTURE_SLACK:  # its age means nothing: is it steady?
                sighted.add(entry.path)
                since = _steady_since(sightings, entry.path, st, now)
                if min_age > 0 and now - since < min_age and Path(entry.path) not in settled:
                    unsteady.append(Path(entry.path))
                    young += 1
                    continue
                future.append(Path(entry.path))
                mtime = since
            elif (cutoff is not None and mtime > cutoff) or (now - mtime < min_age and Path(entry.path) not in settled):
                young += 1  # changed since this pass began, or not old enough: the next pass takes it
                continue
            if limit is not None and len(candidates) >= limit and -mtime < candidates[0][0]:
                more += 1  # newer than every file kept (the usual case in a backlog): no key to build
                continue
            item = (-mtime, _negated(os.fsencode(entry.name)), entry.path, st.st_size)
            if limit is None or len(candidates) < limit:
                heapq.heappush(candidates, item)
            else:
                heapq.heappushpop(candidates, item)
                more += 1
    if sightings:  # forget the files of this folder that are gone or are no longer dated in the future
        prefix = os.fspath(folder).rstrip(os.sep) + os.sep
        for gone in [p for p in sightings if p.startswith(prefix) and p not in sighted and p not in excluded]:
            del sightings[gone]
    ready: list[Ready] = []
    stalled: list[Path] = []
    candidates.sort()  # the oldest last, then by name (the keys are negated), and popped: each candidate is let go
    while candidates:  # as its Ready is made, so the two (~0.3 and ~0.45 KiB a file) are not both held whole
        negated_mtime, _, name, size = candidates.pop()
        path, mtime = Path(name), -negated_mtime
        if now - mtime < grace and (path in writing or (min_age > 0 and not is_complete(path))):
            stalled.append(path)
        else:
            ready.append(Ready(path, size, mtime))
    return Scan(ready, skipped, young, len(stalled), more, stalled, future, unsteady)


def _steady_since(sightings: dict[str, Sighting] | None, path: str, st: os.stat_result, now: float) -> float:
    """Since when a file dated in the future has looked as it looks now (``now`` if it changed or is new to us)."""
    state = (st.st_size, st.st_mtime_ns, st.st_ino)
    if sightings is None:
        return now
    seen = sightings.get(path)
    if seen is None or seen.state != state:
        sightings[path] = seen = Sighting(state, now)
    return seen.since


_COMPLEMENT = bytes(range(255, -1, -1))


def _negated(name: bytes) -> bytes:
    """A key that sorts names in reverse, for the max-heap (a name's bytes, each complemented, then a high end)."""
    return name.translate(_COMPLEMENT) + b"\xff"
