"""Read the members of a ZIP or tar.gz batch safely, one at a time, and never write anything.

:func:`members` yields each regular member as ``(index, name, data)``, reading at most ``max_document_bytes + 1``
bytes of it (``data`` is None for a member over the limit, which is refused on its own). It raises
:class:`FlowRejected` with the finding that refuses the whole archive: corrupt or truncated, encrypted members,
links, devices, absolute or ``..`` paths, nested archives, too many members, too many bytes uncompressed or a
compression ratio that says "bomb". Limits are checked against what the archive declares before anything is
decompressed, and again against what decompression actually produces. :func:`reread` streams chosen members again
(for delivery) with the same checks.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from edi.ingest.sniff import HEAD_BYTES, Kind, sniff
from edi.model import Code, Finding, FlowRejected, Layer

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
RATIO_FLOOR = 1024 * 1024  # ratios are only meaningful past this many bytes
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one archive may hold."""

    max_document_bytes: int
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_members: int


@dataclass(frozen=True, slots=True)
class Member:
    """One regular file of an archive: ``data`` is None when it is larger than ``max_document_bytes``."""

    index: int
    name: str
    size: int
    sha256: str
    data: bytes | None


def _reject(code: Code, rule: str, message: str) -> FlowRejected:
    return FlowRejected(Finding(code, Layer.INTAKE, message, rule=rule))


def display(name: str) -> str:
    """A member name as text: undecodable bytes as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace") if _has_surrogates(name) else name


def _has_surrogates(name: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in name)


def check_name(name: str) -> None:
    """Refuse a member path that is absolute, climbs out with ``..``, or hides in a NUL or a drive letter."""
    shown = display(name)
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if "\x00" in name or posix.startswith("/") or (len(posix) > 1 and posix[1] == ":") or ".." in parts:
        raise _reject(Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH", f"member {shown!r} has an absolute or '..' path")


def _nested(name: str, head: bytes) -> None:
    if name.lower().endswith(ARCHIVE_SUFFIXES) or sniff(head) in (Kind.ZIP, Kind.GZIP):
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_NESTED", f"member {display(name)!r} is itself an archive")


def _read(stream: IO[bytes], cap: int, budget: _Budget) -> tuple[bytes | None, int, str]:
    """Read a member to its end: its bytes (None past ``cap``, then only counted and hashed), size and SHA-256."""
    sha = hashlib.sha256()
    kept: list[bytes] | None = []
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        budget.add(len(chunk))
        sha.update(chunk)
        if kept is not None:
            kept.append(chunk)
            if size > cap:
                kept = None
    return (b"".join(kept) if kept is not None else None), size, sha.hexdigest()


class _Budget:
    """Counts members and uncompressed bytes against the limits."""

    def __init__(self, limits: Limits, compressed: int) -> None:
        self.limits = limits
        self.compressed = max(compressed, 1)
        self.members = 0
        self.uncompressed = 0

    def count(self) -> None:
        """One more member."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise _reject(
                Code.IRR_TAILLE_F, "max_members", f"the archive holds more than {self.limits.max_members} documents"
            )

    def total(self, total: int) -> None:
        """Refuse an archive that expands (or says it expands) to more than the limit."""
        if total > self.limits.max_uncompressed_bytes:
            raise _reject(
                Code.IRR_TAILLE_F,
                "max_uncompressed_bytes",
                f"the archive expands to more than {self.limits.max_uncompressed_bytes} bytes",
            )

    def add(self, size: int) -> None:
        """Bytes actually produced by decompression."""
        self.uncompressed += size
        self.total(self.uncompressed)

    def ratio(self, size: int, compressed: int) -> None:
        """Refuse ``size`` bytes made from ``compressed`` bytes when the ratio says "bomb"."""
        ratio = size / max(compressed, 1)
        if size > RATIO_FLOOR and ratio > self.limits.max_compression_ratio:
            raise _reject(
                Code.IRR_TAILLE_F,
                "max_compression_ratio",
                f"the archive expands {ratio:.0f} times (the limit is {self.limits.max_compression_ratio:g}): "
                "refused as a decompression bomb",
            )


def members(path: Path, kind: str, limits: Limits) -> Iterator[Member]:
    """The regular members of the ZIP or tar.gz at ``path``, in archive order."""
    if kind == "zip":
        yield from _zip_members(path, limits)
    else:
        yield from _tar_members(path, limits)


def reread(path: Path, kind: str, limits: Limits, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """The bytes of the members numbered ``wanted`` (as :func:`members` numbers them), in archive order."""
    for member in members(path, kind, limits):
        if member.index in wanted and member.data is not None:
            yield member.index, member.data


# -- ZIP ---------------------------------------------------------------------------------------------------------


def _zip_members(path: Path, limits: Limits) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", f"not a readable ZIP archive: {exc}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        budget = _Budget(limits, path.stat().st_size)
        for info in infos:  # everything the central directory declares, checked before anything is inflated
            budget.count()
            check_name(info.filename)
            _zip_type(info)
            budget.ratio(info.file_size, info.compress_size)
        declared = sum(i.file_size for i in infos)
        budget.total(declared)
        budget.ratio(declared, budget.compressed)
        for index, info in enumerate(infos, start=1):
            yield _zip_member(archive, info, index, limits, budget)


def _zip_type(info: zipfile.ZipInfo) -> None:
    name = display(info.filename)
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # Unix file type bits, when a Unix zip
    if stat.S_ISLNK(mode):
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_LINK", f"member {name!r} is a link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # no type given means a plain file
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_SPECIAL_FILE", f"member {name!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_ENCRYPTED", f"member {name!r} is encrypted")


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, index: int, limits: Limits, budget: _Budget) -> Member:
    name = display(info.filename)
    try:
        with archive.open(info) as stream:
            data, size, sha = _read(stream, limits.max_document_bytes, budget)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", f"member {name!r} cannot be read: {exc}") from None
    if data is not None:
        _nested(info.filename, data[:HEAD_BYTES])
    return Member(index, name, size, sha, data)


# -- tar.gz ------------------------------------------------------------------------------------------------------


class _Counting:
    """A read-only file wrapper that counts the compressed bytes consumed."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        return data


def _tar_members(path: Path, limits: Limits) -> Iterator[Member]:
    with path.open("rb") as raw:
        counting = _Counting(raw)
        budget = _Budget(limits, path.stat().st_size)
        index = 0
        try:
            with (
                gzip.GzipFile(fileobj=cast(IO[bytes], counting), mode="rb") as unzipped,
                tarfile.open(fileobj=unzipped, mode="r|") as archive,
            ):
                for info in archive:
                    if info.isdir():
                        continue
                    budget.count()
                    check_name(info.name)
                    _tar_type(info)
                    index += 1
                    budget.total(budget.uncompressed + info.size)  # as declared: refused before inflating
                    stream = archive.extractfile(info)
                    assert stream is not None  # a regular member always has a stream
                    data, size, sha = _read(stream, limits.max_document_bytes, budget)
                    budget.ratio(budget.uncompressed, counting.consumed)
                    if data is not None:
                        _nested(info.name, data[:HEAD_BYTES])
                    yield Member(index, display(info.name), size, sha, data)
                _drain(unzipped, budget)
        except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
            raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", f"not a readable tar.gz archive: {exc}") from None


def _drain(unzipped: gzip.GzipFile, budget: _Budget) -> None:
    """Decompress what follows the tar's end to the end of the gzip stream: the CRC check there catches a
    truncated or altered file (bounded by the budget, so trailing garbage cannot be a bomb)."""
    while chunk := unzipped.read(CHUNK):
        budget.add(len(chunk))


def _tar_type(info: tarfile.TarInfo) -> None:
    name = display(info.name)
    if info.issym() or info.islnk():
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_LINK", f"member {name!r} is a link")
    if not info.isreg() or info.issparse():
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_SPECIAL_FILE", f"member {name!r} is not a regular file")
