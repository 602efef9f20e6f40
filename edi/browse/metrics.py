"""What ``/metrics`` reports, read fresh on each scrape: flows and documents by status, fatal findings by rule,
inbox and spool depth with the age of their oldest file, the last run of each scheduled job.

Counts come from the store's indexes (flows by status reads the ``(status, flow_id)`` index, findings by rule the
``(rule, flow_id)`` one); folders are counted with ``os.scandir`` (dotfiles skipped), at most :data:`MAX_ENTRIES`
entries each so that a flooded inbox cannot stall a scrape. Reads the store through :class:`edi.browse.Reader` and
the workspace's inbox and spool folders; writes nothing; raises what the reader raises (an unreadable store).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edi.browse import Beside, Reader
from edi.spool import LOCK
from edi.workspace import Layout

MAX_ENTRIES = 100_000  # entries counted per folder per scrape; past it the depth says "at least" (truncated)
TOP_RULES = 200  # fatal findings are reported for the most frequent rules only; the rest are summed apart
SPOOL_AREAS = ("active", "requeued", "failed")


@dataclass(frozen=True, slots=True)
class Depth:
    """What waits in a folder: how many files, the oldest one's modification time, whether counting stopped."""

    files: int = 0
    oldest: float | None = None  # a POSIX time
    truncated: bool = False

    def age(self, now: float) -> float:
        """Seconds since the oldest file's modification (0 when there is none; never negative)."""
        return max(0.0, now - self.oldest) if self.oldest is not None else 0.0

    def plus(self, other: Depth) -> Depth:
        """Both folders' files together."""
        oldest = min((t for t in (self.oldest, other.oldest) if t is not None), default=None)
        return Depth(self.files + other.files, oldest, self.truncated or other.truncated)


def folder_depth(
    folder: Path, *, skip: Iterable[str] = (), files_only: bool = True, budget: int = MAX_ENTRIES
) -> Depth:
    """The files directly in ``folder`` (with ``files_only`` False, folders count too: a failed flow is a folder);
    dotfiles and names in ``skip`` do not count; a missing or unreadable folder is empty."""
    skipped = set(skip)
    files, oldest, seen = 0, None, 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > budget:
                    return Depth(files, oldest, True)
                if entry.name.startswith(".") or entry.name in skipped:
                    continue
                try:
                    counted = entry.is_file(follow_symlinks=False) or (
                        not files_only and entry.is_dir(follow_symlinks=False)
                    )
                    if not counted:
                        continue
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                except OSError:  # gone since the listing: claimed, requeued
                    continue
                files += 1
                oldest = mtime if oldest is None else min(oldest, mtime)
    except OSError:
        return Depth()
    return Depth(files, oldest)


def inbox_depths(layout: Layout, senders: Iterable[str]) -> dict[str, Depth]:
    """Each declared sender's inbox: the files waiting to be claimed."""
    return {sender: folder_depth(layout.sender_inbox(sender)) for sender in senders}


def spool_depths(layout: Layout) -> dict[str, Depth]:
    """The spool's flows: ``active`` (in a process's hand: being processed, or left by a crash), ``requeued`` (put
    back by an operator) and ``failed`` (waiting for one), each flow a file or a folder."""
    active = Depth()
    try:
        with os.scandir(layout.active) as hands:
            names = [h.path for h in hands if not h.name.startswith(".") and h.is_dir(follow_symlinks=False)]
    except OSError:
        names = []
    for hand in names[:1000]:
        active = active.plus(folder_depth(Path(hand), skip=(LOCK,), files_only=False))
    return {
        "active": active,
        "requeued": folder_depth(layout.requeued, files_only=False),
        "failed": folder_depth(layout.failed, files_only=False),
    }


def store_counts(reader: Reader, top: int = TOP_RULES) -> dict[str, Any]:
    """The store's counts: ``flows`` {status: n}, ``documents`` [(status, reason, n)], ``fatal_rules``
    [(rule, n)] for the ``top`` rules with most fatal findings, ``fatal_other`` (the other rules' fatal findings,
    ``fatal_other_rules`` how many rules those are) and ``runs`` (each job's last run)."""
    # the two longest counts (each reads a whole index: ~70 and ~100 ms at a million flows) run on two cores
    by_document = Beside(
        reader, lambda apart: apart.rows("SELECT status, reason, count(*) AS n FROM documents GROUP BY status, reason")
    )
    flows = {
        str(r["status"]): int(r["n"]) for r in reader.rows("SELECT status, count(*) AS n FROM flows GROUP BY status")
    }
    documents = [(str(r["status"] or ""), str(r["reason"] or ""), int(r["n"])) for r in by_document.result()]
    rules = reader.rows(
        "SELECT rule, count(*) AS n FROM findings WHERE severity = 'fatal' AND rule IS NOT NULL "
        "GROUP BY rule ORDER BY n DESC, rule"
    )
    runs = reader.rows(
        "SELECT job, started_at, finished_at, outcome FROM runs WHERE id IN (SELECT max(id) FROM runs GROUP BY job) "
        "ORDER BY job"
    )
    return {
        "flows": flows,
        "documents": documents,
        "fatal_rules": [(str(r["rule"]), int(r["n"])) for r in rules[:top]],
        "fatal_other": sum(int(r["n"]) for r in rules[top:]),
        "fatal_other_rules": max(0, len(rules) - top),
        "runs": runs,
    }


def seconds_between(start: str | None, end: str | None) -> float | None:
    """The seconds from one ISO time to another, None when either is missing or malformed."""
    try:
        if not start or not end:
            return None
        return (_moment(end) - _moment(start)).total_seconds()
    except ValueError:
        return None


def timestamp(value: str | None) -> float | None:
    """An ISO time as a POSIX time, None when missing or malformed."""
    try:
        return _moment(value).timestamp() if value else None
    except ValueError:
        return None


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
