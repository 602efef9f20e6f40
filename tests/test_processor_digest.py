"""Tests for how the processor hashes a claimed payload (edi.processor._digest): size, SHA-256 and, for a small
payload, its bytes, read once; real files in tmp_path."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import time
from pathlib import Path

import pytest

from edi.processor import (
    EMPTY_SHA256,
    FADVISE_DONTNEED,
    FADVISE_WILLNEED,
    IN_MEMORY_BYTES,
    _digest,
    _read_ahead,
    _read_at_most,
)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 65537, IN_MEMORY_BYTES - 1, IN_MEMORY_BYTES])
def test_a_small_payload_is_hashed_and_kept(tmp_path: Path, size: int) -> None:
    """Up to IN_MEMORY_BYTES, the bytes come back with their size and digest."""
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert _digest(path) == (size, hashlib.sha256(data).hexdigest(), data)


def test_a_big_payload_is_hashed_not_kept(tmp_path: Path) -> None:
    """Over IN_MEMORY_BYTES, size and digest only: later steps read it as a stream."""
    data = os.urandom(IN_MEMORY_BYTES + 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert _digest(path) == (len(data), hashlib.sha256(data).hexdigest(), None)


def test_a_link_or_special_file_hashes_as_empty(tmp_path: Path) -> None:
    """A symlink is not followed and a FIFO is not opened (it would block): both hash as empty."""
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    assert _digest(tmp_path / "link")[1:] == (EMPTY_SHA256, None)
    assert _digest(tmp_path / "fifo") == (0, EMPTY_SHA256, None)


def test_reading_past_the_expected_size(tmp_path: Path) -> None:
    """A file that grew since its size was looked at is read to its end, or refused once it passes the limit."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    for expected, limit, wanted in [(10, 100_000, b"x" * 5000), (5000, 5000, b"x" * 5000), (10, 4999, None)]:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert _read_at_most(fd, expected, limit) == wanted
        finally:
            os.close(fd)


def test_reading_a_file_that_shrank(tmp_path: Path) -> None:
    """A file shorter than expected is read to its end, whatever it holds."""
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_at_most(fd, 1000, IN_MEMORY_BYTES) == b"abc"
    finally:
        os.close(fd)


def test_a_payload_that_grows_past_the_limit_while_read_is_hashed_whole(tmp_path: Path) -> None:
    """The size from lstat says small, the file holds more than the limit by the time it is read: hashed as a big
    one, from its start."""
    path = tmp_path / "f"
    path.write_bytes(b"a")
    real_lstat = os.lstat
    data = os.urandom(IN_MEMORY_BYTES + 10)

    def lstat_then_grow(target: str | os.PathLike[str]) -> os.stat_result:
        result = real_lstat(target)
        path.write_bytes(data)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "lstat", lstat_then_grow)
        assert _digest(path) == (len(data), hashlib.sha256(data).hexdigest(), None)


def cached_pages(path: Path) -> int:
    """How many of a file's pages are in the page cache (mincore over a private mapping of it, which reads
    nothing)."""
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    vector = (ctypes.c_ubyte * pages)()
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), size, flags=mmap.MAP_PRIVATE) as mapped:
        address = ctypes.c_char.from_buffer(mapped)
        try:
            result = libc.mincore(ctypes.c_void_p(ctypes.addressof(address)), ctypes.c_size_t(size), vector)
        finally:
            del address  # the mapping cannot close while a ctypes object points into it
    assert result == 0, os.strerror(ctypes.get_errno())
    return sum(byte & 1 for byte in vector)


@pytest.mark.skipif(FADVISE_DONTNEED is None, reason="no posix_fadvise here")
def test_a_payload_kept_in_memory_leaves_the_page_cache_and_a_big_one_stays(tmp_path: Path) -> None:
    """Once a small payload's bytes are in memory, its pages (written to disk) are dropped from the page cache, to
    be reused for the files the flow writes next; a big payload, which later steps read again, keeps them."""
    small, big = tmp_path / "small", tmp_path / "big"
    for path, size in ((small, 64 * 1024), (big, IN_MEMORY_BYTES + 1)):
        path.write_bytes(os.urandom(size))
        with path.open("rb") as stream:
            os.fsync(stream.fileno())  # clean pages: the only kind the kernel drops
            stream.read()
    assert cached_pages(small) == 16 and cached_pages(big) > 0
    assert _digest(small)[2] is not None and _digest(big)[2] is None
    assert cached_pages(small) == 0
    assert cached_pages(big) == (IN_MEMORY_BYTES + 1 + mmap.PAGESIZE - 1) // mmap.PAGESIZE


def out_of_the_page_cache(path: Path, size: int) -> None:
    """Write ``size`` random bytes to ``path``, durably, and drop them from the page cache."""
    path.write_bytes(os.urandom(size))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert cached_pages(path) == 0


@pytest.mark.skipif(FADVISE_WILLNEED is None or FADVISE_DONTNEED is None, reason="no posix_fadvise here")
def test_a_payload_read_ahead_comes_into_the_page_cache_before_it_is_hashed(tmp_path: Path) -> None:
    """A payload out of the page cache is opened and read ahead in the background (up to IN_MEMORY_BYTES of it,
    not a big one whole); hashing it through the descriptor gives what hashing it by path gives, and closes it."""
    small, big = tmp_path / "small", tmp_path / "big"
    out_of_the_page_cache(small, 64 * 1024)
    out_of_the_page_cache(big, 3 * IN_MEMORY_BYTES)
    opened = [_read_ahead(small), _read_ahead(big)]
    assert None not in opened
    deadline = time.monotonic() + 10
    while cached_pages(small) < 16 and time.monotonic() < deadline:  # the kernel reads it: nothing here waits
        time.sleep(0.01)
    assert cached_pages(small) == 16
    assert cached_pages(big) <= 2 * IN_MEMORY_BYTES // mmap.PAGESIZE  # the part that will be read, not 3 MiB
    small_fd, big_fd = opened
    assert small_fd is not None and big_fd is not None
    data = small.read_bytes()
    assert _digest(small, small_fd) == (len(data), hashlib.sha256(data).hexdigest(), data)
    assert _digest(big, big_fd) == _digest(big)
    for fd in (small_fd, big_fd):
        with pytest.raises(OSError):
            os.fstat(fd)  # closed by the hash


def test_only_a_regular_file_is_read_ahead(tmp_path: Path) -> None:
    """A symlink (not followed) and a FIFO (not blocked on) are not opened: they are hashed by path, as empty."""
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    assert _read_ahead(tmp_path / "link") is None
    assert _read_ahead(tmp_path / "fifo") is None
    assert _read_ahead(tmp_path / "missing") is None


def test_a_payload_over_the_limit_is_not_read(tmp_path: Path) -> None:
    """Over ``max_bytes`` the size comes from the metadata and there is no digest: not a byte is read."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    assert _digest(path, None, 4999) == (5000, None, None)
    assert _digest(path, None, 5000)[1] == hashlib.sha256(b"x" * 5000).hexdigest()
    opened = _read_ahead(path)
    assert _digest(path, opened, 10) == (5000, None, None)
