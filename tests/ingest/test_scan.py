"""Tests for edi.ingest.scan: which inbox entries are ready, which are left for later, which are skipped."""

from __future__ import annotations

import fnmatch
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.ingest.scan import FUTURE_SLACK, Ready, Scan, in_progress, scan_inbox

IGNORE = ("*.tmp", "*.part", "*.filepart")
NOW = 1_795_000_000.0  # a whole second, so that mtimes set with os.utime compare exactly


def put(folder: Path, name: str, age: float = 60.0, data: bytes = b"<Invoice/>") -> Path:
    """A regular file in ``folder`` last modified ``age`` seconds before NOW."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (NOW - age, NOW - age))
    return path


def scan(folder: Path, min_age: float = 10.0) -> Scan:
    return scan_inbox(folder, min_age=min_age, ignore=IGNORE, now=NOW)


def test_finished_file_is_ready_with_its_size_and_mtime(tmp_path: Path) -> None:
    """A regular file older than min_age is ready, with its size and mtime from lstat."""
    path = put(tmp_path, "a.xml", age=60, data=b"12345")
    result = scan(tmp_path)
    assert result.ready == [Ready(path, 5, NOW - 60)]
    assert result.skipped == []
    assert result.young == 0


@pytest.mark.parametrize(
    "name",
    [".hidden.xml", ".a", "a.tmp", "a.TMP", "a.xml.part", "a.PaRt", "a.filepart", "a.FilePart"],
    ids=lambda n: n,
)
def test_names_that_say_still_being_written_are_ignored(tmp_path: Path, name: str) -> None:
    """Dotfiles and *.tmp / *.part / *.filepart (any case) are neither ready, skipped nor young."""
    put(tmp_path, name, age=3600)
    put(tmp_path, "other.xml", age=3600)
    result = scan(tmp_path)
    assert [r.path.name for r in result.ready] == ["other.xml"]
    assert result.skipped == []
    assert result.young == 0


def test_a_dot_folder_is_ignored_not_skipped(tmp_path: Path) -> None:
    """A hidden sub-folder (e.g. an uploader's work folder) is silently ignored, not reported."""
    (tmp_path / ".upload").mkdir()
    assert scan(tmp_path) == Scan()


@given(st.text(alphabet="abcXYZ.-_~*tmpPARTfile", min_size=1, max_size=20))
def test_in_progress_ignores_case(name: str) -> None:
    """Whether a name is in progress does not depend on the case of its letters."""
    assert in_progress(name, IGNORE) == in_progress(name.swapcase(), IGNORE)


@given(
    st.text(alphabet="abcXYZ.-_~*?[]!tmpPARTfile\u00e9\n", min_size=1, max_size=20),
    st.lists(st.text(alphabet="abcXYZ.-_~*?[]!tmpPART\u00e9", min_size=1, max_size=8), max_size=4),
)
def test_in_progress_matches_each_pattern_as_fnmatch_does(name: str, patterns: list[str]) -> None:
    """The one expression made of all the patterns says what fnmatch says of them one by one (case-blind)."""
    expected = name.startswith(".") or any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)
    assert in_progress(name, tuple(patterns)) == expected


@given(st.text(min_size=0, max_size=20))
def test_every_dotfile_is_in_progress(rest: str) -> None:
    """A name that starts with a dot is always treated as not finished, whatever the patterns."""
    assert in_progress("." + rest, ())


def test_young_file_is_counted_and_left(tmp_path: Path) -> None:
    """A file modified less than min_age ago is not ready; it is counted as young for the next scan."""
    put(tmp_path, "young.xml", age=5)
    put(tmp_path, "old.xml", age=60)
    result = scan(tmp_path, min_age=10)
    assert [r.path.name for r in result.ready] == ["old.xml"]
    assert result.young == 1
    assert result.skipped == []


def test_file_exactly_min_age_old_is_ready(tmp_path: Path) -> None:
    """The age limit is inclusive: a file exactly min_age seconds old is ready."""
    put(tmp_path, "edge.xml", age=10)
    result = scan(tmp_path, min_age=10)
    assert [r.path.name for r in result.ready] == ["edge.xml"]
    assert result.young == 0


def test_a_file_dated_in_the_future_is_taken_once_it_stays_the_same_for_min_age(tmp_path: Path) -> None:
    """A file whose mtime is an hour ahead of the clock (a sender's skewed clock) has no age to go by: it waits,
    young, until a look finds it unchanged for min_age, then is ready as if modified when first seen so."""
    path = put(tmp_path, "future.xml", age=-3600)
    sightings: dict = {}
    first = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, sightings=sightings)
    assert (first.ready, first.young, first.unsteady, first.future) == ([], 1, [path], [])
    early = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 9.5, sightings=sightings)
    assert (early.ready, early.young, early.unsteady) == ([], 1, [path])
    steady = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 10, sightings=sightings)
    assert steady.ready == [Ready(path, path.stat().st_size, NOW)] and steady.future == [path]
    assert (steady.young, steady.unsteady) == (0, [])


@pytest.mark.parametrize("change", ["size", "mtime", "inode"])
def test_a_file_dated_in_the_future_that_changes_waits_again(tmp_path: Path, change: str) -> None:
    """Its size, its mtime or its inode (replaced) changing between two looks starts its wait again."""
    path = put(tmp_path, "future.xml", age=-3600)
    sightings: dict = {}
    scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, sightings=sightings)
    if change == "size":
        path.write_bytes(b"<Invoice>more</Invoice>")
        os.utime(path, (NOW + 3600, NOW + 3600))
    elif change == "mtime":
        os.utime(path, (NOW + 7200, NOW + 7200))
    else:
        other = put(tmp_path, "new.tmp", age=-3600)
        other.replace(path)
    second = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 8, sightings=sightings)
    assert second.unsteady == [path]
    third = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 12, sightings=sightings)
    assert (third.ready, third.unsteady) == ([], [path])  # 4 s since the change, not 10
    last = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 18, sightings=sightings)
    assert [r.path for r in last.ready] == [path] and last.ready[0].mtime == NOW + 8


def test_a_file_dated_in_the_future_is_taken_at_once_when_closed_or_with_min_age_0(tmp_path: Path) -> None:
    """Its writer closed it (watch mode), or min_age 0 says files are finished when they appear: taken at once."""
    path = put(tmp_path, "future.xml", age=-86400 * 365)
    closed = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW, settled={path}, sightings={})
    assert [r.path for r in closed.ready] == [path] and closed.future == [path]
    at_once = scan_inbox(tmp_path, min_age=0, ignore=IGNORE, now=NOW, sightings={})
    assert [r.path for r in at_once.ready] == [path] and at_once.ready[0].mtime == NOW


def test_a_file_a_little_ahead_of_the_clock_is_only_young(tmp_path: Path) -> None:
    """An mtime within FUTURE_SLACK of the clock (written while the inbox is looked at) is young as usual, and a
    file dated in the future is never taken without a record of the looks."""
    put(tmp_path, "now.xml", age=-FUTURE_SLACK)
    put(tmp_path, "later.xml", age=-3600)
    result = scan(tmp_path, min_age=10)
    assert (result.ready, result.young, [p.name for p in result.unsteady]) == ([], 2, ["later.xml"])
    again = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 100)
    assert [p.name for p in again.unsteady] == ["later.xml"] and [r.path.name for r in again.ready] == ["now.xml"]


def test_a_file_dated_in_the_future_that_looks_cut_short_waits_its_grace_from_when_first_seen(tmp_path: Path) -> None:
    """Steady but cut short (a stalled upload): it waits the grace period counted from when it was first seen so,
    then is taken (and refused as truncated), never stuck."""
    path = put(tmp_path, "cut.xml", age=-3600, data=b"<Invoice><ID>1</ID>")
    sightings: dict = {}
    for moment, stalled in [(NOW, []), (NOW + 10, [path]), (NOW + 99, [path])]:
        result = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=moment, grace=100, sightings=sightings)
        assert result.stalled == stalled and result.ready == []
    taken = scan_inbox(tmp_path, min_age=10, ignore=IGNORE, now=NOW + 100, grace=100, sightings=sightings)
    assert [r.path for r in taken.ready] == [path]


def test_the_record_of_looks_forgets_files_that_are_gone_or_back_in_the_past(tmp_path: Path) -> None:
    """A file dated in the future that went, or whose mtime was set back, leaves the record; other folders' stay."""
    gone = put(tmp_path / "a", "gone.xml", age=-3600)
    fixed = put(tmp_path / "a", "fixed.xml", age=-3600)
    other = put(tmp_path / "b", "other.xml", age=-3600)
    sightings: dict = {}
    for folder in ("a", "b"):
        scan_inbox(tmp_path / folder, min_age=10, ignore=IGNORE, now=NOW, sightings=sightings)
    assert set(sightings) == {str(gone), str(fixed), str(other)}
    gone.unlink()
    os.utime(fixed, (NOW - 60, NOW - 60))
    result = scan_inbox(tmp_path / "a", min_age=10, ignore=IGNORE, now=NOW + 1, sightings=sightings)
    assert [r.path for r in result.ready] == [fixed] and set(sightings) == {str(other)}


def _symlink_to_file(folder: Path) -> Path:
    target = put(folder.parent / "elsewhere", "target.xml", age=3600)
    link = folder / "link.xml"
    link.symlink_to(target)
    return link


def _symlink_to_dir(folder: Path) -> Path:
    (folder.parent / "adir").mkdir()
    link = folder / "dirlink"
    link.symlink_to(folder.parent / "adir", target_is_directory=True)
    return link


def _dangling_symlink(folder: Path) -> Path:
    link = folder / "dangling.xml"
    link.symlink_to(folder.parent / "nowhere.xml")
    return link


def _sub_folder(folder: Path) -> Path:
    sub = folder / "batch"
    sub.mkdir()
    put(sub, "inner.xml", age=3600)
    return sub


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.xml"
    os.mkfifo(path)
    return path


def _socket(folder: Path) -> Path:
    cwd = Path.cwd()
    os.chdir(folder)  # bind a short relative name: AF_UNIX paths are limited to about 100 bytes
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind("sock.xml")
    finally:
        os.chdir(cwd)
    return folder / "sock.xml"


SPECIAL = [
    (_symlink_to_file, "symbolic link"),
    (_symlink_to_dir, "symbolic link"),
    (_dangling_symlink, "symbolic link"),
    (_sub_folder, "sub-folder"),
    (_fifo, "FIFO"),
    (_socket, "socket"),
]


@pytest.mark.parametrize(("make", "kind"), SPECIAL, ids=[m.__name__.lstrip("_") for m, _ in SPECIAL])
def test_non_regular_entries_are_skipped_with_a_reason(tmp_path: Path, make, kind: str) -> None:
    """Symlinks, sub-folders, FIFOs and sockets are reported as skipped with their kind, and never ready."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    entry = make(inbox)
    put(inbox, "good.xml", age=3600)
    result = scan(inbox, min_age=0)
    assert [r.path.name for r in result.ready] == ["good.xml"]
    assert len(result.skipped) == 1
    skipped = result.skipped[0]
    assert skipped.path == entry
    assert skipped.why.startswith(f"{kind}:")
    assert "only regular files" in skipped.why
    assert result.young == 0


def test_every_special_entry_at_once(tmp_path: Path) -> None:
    """With all kinds of special entries in one inbox, each is skipped once and none is ready."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    entries = {make(inbox) for make, _ in SPECIAL}
    result = scan(inbox, min_age=0)
    assert result.ready == []
    assert {s.path for s in result.skipped} == entries
    assert len(result.skipped) == len(SPECIAL)


def test_missing_inbox_is_an_empty_scan(tmp_path: Path) -> None:
    """An inbox that does not exist yet is simply empty, not an error."""
    assert scan(tmp_path / "no-such-inbox") == Scan()


def test_inbox_that_is_a_file_is_an_empty_scan(tmp_path: Path) -> None:
    """An inbox path that is a regular file is treated as an empty inbox, not an error."""
    path = put(tmp_path, "not-a-folder")
    assert scan(path) == Scan()


def test_ready_files_are_sorted_oldest_first_then_by_name(tmp_path: Path) -> None:
    """Ready files come oldest first; files with the same mtime come in name order."""
    put(tmp_path, "b.xml", age=100)
    put(tmp_path, "a.xml", age=50)
    put(tmp_path, "c.xml", age=100)
    put(tmp_path, "0.xml", age=20)
    put(tmp_path, "A.xml", age=100)
    result = scan(tmp_path)
    assert [r.path.name for r in result.ready] == ["A.xml", "b.xml", "c.xml", "a.xml", "0.xml"]


def test_non_utf8_file_name_is_listed(tmp_path: Path) -> None:
    """A file whose name is not valid UTF-8 is listed, and its path gives back the exact bytes of the name."""
    raw = b"facture-\xe9t\xe9.xml"
    try:
        put(tmp_path, os.fsdecode(raw), age=60)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    result = scan(tmp_path)
    assert len(result.ready) == 1
    path = result.ready[0].path
    assert os.fsencode(path.name) == raw
    assert path.read_bytes() == b"<Invoice/>"
