"""Read the members of a ZIP or tar.gz batch safely, one at a time, and never write anything.

:func:`members` yields each regular member as a :class:`Member` (index, name, size, SHA-256 and bytes), keeping at
most ``max_document_bytes`` of it in memory: ``data`` is None for a member over that limit, which is then only
hashed, and refused on its own. It raises :class:`FlowRejected` with the finding that refuses the whole archive:
corrupt or truncated, encrypted members, compression methods other than stored and deflate, links, devices,
absolute or ``..`` paths, nested archives, too many entries, too many bytes uncompressed or a compression ratio that
says "bomb". Limits are checked against what the archive declares before anything is decompressed, and again
against what decompression actually produces. :func:`reread` streams chosen members again (for delivery) with the
same checks.
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

# Magic numbers of archive formats the sniffer does not name: 7z, RAR, bzip2, xz, zstd.
OTHER_ARCHIVE_MAGIC = (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
MAX_NAME = 1024  # characters in a member path
MAX_TAR_METADATA = 64 * 1024  # bytes in one GNU long-name / pax header record
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # the methods zipfile inflates in bounded memory
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
    if len(name) > MAX_NAME:
        raise _reject(Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH", f"a member path is {len(name)} characters long")
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    drive = len(posix) > 1 and posix[1] == ":" and posix[0].isascii() and posix[0].isalpha()
    if "\x00" in name or posix.startswith("/") or drive or ".." in parts:
        raise _reject(Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH", f"member {shown!r} has an absolute or '..' path")


def _nested(name: str, head: bytes) -> None:
    """Refuse a member whose bytes are an archive (whatever its name says)."""
    if sniff(head) in (Kind.ZIP, Kind.GZIP) or head.startswith(OTHER_ARCHIVE_MAGIC) or _is_tar(head):
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_NESTED", f"member {display(name)!r} is itself an archive")


def _is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"


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
    """Counts entries (files and folders) and uncompressed bytes against the limits."""

    def __init__(self, limits: Limits, compressed: int) -> None:
        self.limits = limits
        self.compressed = max(compressed, 1)
        self.members = 0
        self.uncompressed = 0

    def count(self) -> None:
        """One more entry."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise _reject(
                Code.IRR_TAILLE_F, "max_members", f"the archive holds more than {self.limits.max_members} entries"
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
    _zip_directory_fits(path, limits)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", f"not a readable ZIP archive: {exc}") from None
    with archive:
        budget = _Budget(limits, path.stat().st_size)
        for info in archive.infolist():  # everything the central directory declares, before anything is inflated
            budget.count()
            check_name(info.filename)
            if not info.is_dir():
                _zip_type(info)
                budget.ratio(info.file_size, info.compress_size)
        infos = [i for i in archive.infolist() if not i.is_dir()]
        declared = sum(i.file_size for i in infos)
        budget.total(declared)
        budget.ratio(declared, budget.compressed)
        for index, info in enumerate(infos, start=1):
            yield _zip_member(archive, info, index, limits, budget)


def _zip_directory_fits(path: Path, limits: Limits) -> None:
    """Refuse a ZIP whose central directory is too big for ``max_members`` entries, before zipfile reads it."""
    try:
        with path.open("rb") as handle:
            end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # the end-of-central-directory record
    except OSError as exc:
        raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", f"not a readable ZIP archive: {exc}") from None
    if end is None:
        raise _reject(Code.IRR_SYNTAX, "ARCHIVE_CORRUPT", "not a readable ZIP archive: no central directory")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.max_members or size > limits.max_members * (46 + MAX_NAME + 512):
        raise _reject(
            Code.IRR_TAILLE_F,
            "max_members",
            f"the archive declares {entries} entries in a {size}-byte directory; the limit is {limits.max_members}",
        )


def _zip_type(info: zipfile.ZipInfo) -> None:
    name = display(info.filename)
    mode = info.external_attr >> 16 if info.create_system == 3 else 0  # Unix file type bits, when a Unix zip
    if stat.S_ISLNK(mode):
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_LINK", f"member {name!r} is a link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # no type given means a plain file
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_SPECIAL_FILE", f"member {name!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_ENCRYPTED", f"member {name!r} is encrypted")
    if info.compress_type not in ZIP_METHODS:
        raise _reject(
            Code.IRR_TYPE_F,
            "ARCHIVE_COMPRESSION",
            f"member {name!r} uses compression method {info.compress_type}; only stored and deflate are accepted",
        )


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, index: int, limits: Limits, budget: _Budget) -> Member:
    name = display(info.filename)
    try:
        with archive.open(info) as stream:
            data, size, sha = _read(stream, limits.max_document_bytes, budget)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
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
                tarfile.open(fileobj=unzipped, mode="r|", tarinfo=_BoundedTarInfo) as archive,
            ):
                for info in archive:
                    budget.count()  # folders count too: tarfile keeps every entry it reads
                    check_name(info.name)
                    if info.isdir():
                        continue
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


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses GNU long-name and pax header records too big to be metadata (tarfile would read
    them whole into memory)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        metadata = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)
        if self.type in metadata and self.size > MAX_TAR_METADATA:
            raise tarfile.HeaderError(f"a {self.size}-byte header record (the limit is {MAX_TAR_METADATA})")
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


def _tar_type(info: tarfile.TarInfo) -> None:
    name = display(info.name)
    if info.issym() or info.islnk():
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_LINK", f"member {name!r} is a link")
    if not info.isreg() or info.issparse():
        raise _reject(Code.IRR_TYPE_F, "ARCHIVE_SPECIAL_FILE", f"member {name!r} is not a regular file")
