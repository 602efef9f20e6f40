"""Tests for edi.ingest.archives: reading ZIP and tar.gz batches safely, and refusing hostile ones whole.

Every archive, good or hostile, is built here in tmp_path with the real zipfile / tarfile / gzip modules; the limits
are small (1 MiB a member, 8 MiB in all) so that bombs stay cheap to build and cheap to refuse.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edi.ingest.archives import Limits, Member, check_name, display, members, reread
from edi.model import Code, FlowRejected, Layer
from tests.peak import alone

MIB = 1024 * 1024
LIMITS = Limits(max_document_bytes=MIB, max_uncompressed_bytes=8 * MIB, max_compression_ratio=200, max_members=1000)
PEAK = 4 * LIMITS.max_document_bytes  # what reading any archive may hold in memory at once
KINDS = ["zip", "tar.gz"]
XML = b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><ID>FA-1</ID></Invoice>\n'

Entry = tuple[str, bytes | None]  # a file, or a directory when the bytes are None


# -- building archives -------------------------------------------------------------------------------------------


def zip_bytes(entries: list[Entry], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            if data is None:
                archive.writestr(name.rstrip("/") + "/", b"")
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def tar_info(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if data is None and kind == tarfile.REGTYPE else kind
    info.size = len(data) if data is not None else 0
    return info


def tar_gz_bytes(entries: list[Entry | tarfile.TarInfo], level: int = 6) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                name, data = entry
                info = tar_info(name, data)
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def archive_bytes(kind: str, entries: list[Entry]) -> bytes:
    return zip_bytes(entries) if kind == "zip" else tar_gz_bytes(list(entries))


def write(tmp_path: Path, kind: str, data: bytes, stem: str = "batch") -> Path:
    path = tmp_path / f"{stem}.{kind}"
    path.write_bytes(data)
    return path


def build(tmp_path: Path, kind: str, entries: list[Entry]) -> Path:
    return write(tmp_path, kind, archive_bytes(kind, entries))


def zip_directory(data: bytes) -> Iterator[tuple[int, int]]:
    """(central directory header offset, local header offset) of each entry, walked from the end record."""
    end = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, end + 10)
    offset = start
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        yield offset, struct.unpack_from("<I", data, offset + 42)[0]
        offset += 46 + name_len + extra_len + comment_len


def patch_zip(data: bytes, *, flags: int = 0, local_flags: int = 0, size: int | None = None) -> bytes:
    """Set flag bits (in both headers unless ``local_flags`` only) and rewrite every declared uncompressed size."""
    patched = bytearray(data)
    for central, local in zip_directory(data):
        for offset in (central + 8, local + 6):
            patched[offset : offset + 2] = struct.pack("<H", struct.unpack_from("<H", patched, offset)[0] | flags)
        old = struct.unpack_from("<H", patched, local + 6)[0]
        patched[local + 6 : local + 8] = struct.pack("<H", old | local_flags)
        if size is not None:
            struct.pack_into("<I", patched, central + 24, size)
            struct.pack_into("<I", patched, local + 22, size)
    return bytes(patched)


# -- reading -----------------------------------------------------------------------------------------------------


def read_all(path: Path, kind: str, limits: Limits = LIMITS) -> list[Member]:
    return list(members(path, kind, limits))


def refusal(path: Path, kind: str, limits: Limits = LIMITS) -> FlowRejected:
    """The FlowRejected that reading the whole archive raises (and nothing else may escape)."""
    with pytest.raises(FlowRejected) as caught:
        read_all(path, kind, limits)
    finding = caught.value.finding
    assert finding.layer is Layer.INTAKE
    assert finding.fatal
    return caught.value


def assert_refused(path: Path, kind: str, code: Code, rule: str, limits: Limits = LIMITS) -> FlowRejected:
    rejected = refusal(path, kind, limits)
    assert (rejected.finding.code, rejected.finding.rule) == (code, rule), rejected.finding.message
    return rejected


def measured(path: Path, kind: str) -> tuple[object, int, float]:
    """What reading the archive returned or raised (FlowRejected), its peak traced memory and wall time, measured
    alone (tests/peak.py)."""
    return alone(read_all, path, kind, catch=FlowRejected)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- a good batch ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_members_come_in_archive_order_with_index_name_size_sha_and_data(tmp_path: Path, kind: str) -> None:
    """Regular members are yielded in archive order, numbered from 1, with their path, size, SHA-256 and bytes."""
    entries: list[Entry] = [
        ("zz-last-by-name.xml", XML),
        ("lot/", None),
        ("lot/b.pdf", b"%PDF-1.7\n" + b"x" * 500),
        ("lot/sub/", None),
        ("lot/sub/a.xml", XML.replace(b"FA-1", b"FA-2")),
        ("notes.txt", b"not an invoice"),
    ]
    path = build(tmp_path, kind, entries)

    got = read_all(path, kind)

    files = [(name, data) for name, data in entries if data is not None]
    assert [m.index for m in got] == [1, 2, 3, 4]
    assert [(m.name, m.size, m.sha256, m.data) for m in got] == [
        (name, len(data), sha(data), data) for name, data in files
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_directories_are_not_members(tmp_path: Path, kind: str) -> None:
    """An archive of directories only has no members at all (and is not refused for it)."""
    path = build(tmp_path, kind, [("a/", None), ("a/b/", None), ("c/", None)])

    assert read_all(path, kind) == []


@pytest.mark.parametrize("kind", KINDS)
def test_member_over_the_limit_has_no_data_but_its_real_size_and_sha(tmp_path: Path, kind: str) -> None:
    """A member over max_document_bytes comes with data None, its true size and SHA-256; the others still come."""
    big = os.urandom(LIMITS.max_document_bytes + 1)
    exact = os.urandom(LIMITS.max_document_bytes)
    path = build(tmp_path, kind, [("first.xml", XML), ("big.xml", big), ("exact.xml", exact), ("last.xml", XML)])

    got = read_all(path, kind)

    assert [(m.index, m.name) for m in got] == [(1, "first.xml"), (2, "big.xml"), (3, "exact.xml"), (4, "last.xml")]
    assert (got[1].data, got[1].size, got[1].sha256) == (None, len(big), sha(big))
    assert got[2].data == exact  # exactly at the limit is still read
    assert got[0].data == got[3].data == XML


def test_tar_member_name_that_is_not_utf8_is_shown_with_escapes(tmp_path: Path) -> None:
    """A tar member name with undecodable bytes (surrogateescape) comes out as text with \\xNN escapes."""
    name = os.fsdecode(b"factures/caf\xe9-\xff.xml")
    path = write(tmp_path, "tar.gz", tar_gz_bytes([(name, XML), ("d\xe9j\xe0.xml", XML)]))

    got = read_all(path, "tar.gz")

    assert [m.name for m in got] == ["factures/caf\\xe9-\\xff.xml", "d\xe9j\xe0.xml"]
    assert all(m.data == XML for m in got)


def test_zip_member_name_in_cp437_is_decoded_as_cp437(tmp_path: Path) -> None:
    """A zip name without the UTF-8 flag is read as cp437, so every byte becomes a character."""
    data = zip_bytes([("cafX.xml", XML), ("endY.xml", XML)])
    data = data.replace(b"cafX.xml", b"caf\x82.xml").replace(b"endY.xml", b"end\xff.xml")
    path = write(tmp_path, "zip", data)

    got = read_all(path, "zip")

    assert [m.name for m in got] == ["caf\xe9.xml", "end\xa0.xml"]  # 0x82 is é and 0xFF a no-break space in cp437
    assert all(m.data == XML for m in got)


def test_zip_name_flagged_utf8_that_is_not_is_corrupt(tmp_path: Path) -> None:
    """A zip entry whose name claims UTF-8 in both headers but is not UTF-8 refuses the archive as corrupt."""
    data = zip_bytes([("cafX.xml", XML)]).replace(b"cafX.xml", b"caf\x82.xml")
    path = write(tmp_path, "zip", patch_zip(data, flags=0x800))

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_local_header_claiming_utf8_for_a_cp437_name_is_corrupt(tmp_path: Path) -> None:
    """A local header that claims a UTF-8 name the central directory gives in cp437 refuses the archive as corrupt."""
    data = zip_bytes([("cafX.xml", XML)]).replace(b"cafX.xml", b"caf\x82.xml")
    path = write(tmp_path, "zip", patch_zip(data, local_flags=0x800))

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


@pytest.mark.parametrize("kind", KINDS)
def test_max_members_is_allowed_and_one_more_is_refused(tmp_path: Path, kind: str) -> None:
    """Exactly max_members members are read; one more refuses the archive with IRR_TAILLE_F max_members."""
    limits = Limits(MIB, 8 * MIB, 200, max_members=3)
    three = build(tmp_path, kind, [(f"{i}.xml", XML) for i in range(3)])
    assert len(read_all(three, kind, limits)) == 3

    four = write(tmp_path, kind, archive_bytes(kind, [(f"{i}.xml", XML) for i in range(4)]), stem="four")
    assert_refused(four, kind, Code.IRR_TAILLE_F, "max_members", limits)


# -- reread ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_reread_yields_exactly_the_wanted_members_in_order(tmp_path: Path, kind: str) -> None:
    """reread gives the bytes of the wanted members only, numbered as members() numbers them, in archive order."""
    datas = [XML.replace(b"FA-1", f"FA-{i}".encode()) for i in range(1, 6)]
    path = build(tmp_path, kind, [("d/", None), *[(f"d/{i}.xml", d) for i, d in enumerate(datas, 1)]])

    assert list(reread(path, kind, LIMITS, {4, 1, 3})) == [(1, datas[0]), (3, datas[2]), (4, datas[3])]
    assert list(reread(path, kind, LIMITS, {5})) == [(5, datas[4])]
    assert list(reread(path, kind, LIMITS, set())) == []
    assert list(reread(path, kind, LIMITS, {9})) == []


@pytest.mark.parametrize("kind", KINDS)
def test_reread_skips_a_member_over_the_limit(tmp_path: Path, kind: str) -> None:
    """A member over max_document_bytes is never given back by reread, even when asked for."""
    path = build(tmp_path, kind, [("a.xml", XML), ("big.xml", os.urandom(LIMITS.max_document_bytes + 1))])

    assert list(reread(path, kind, LIMITS, {1, 2})) == [(1, XML)]


@pytest.mark.parametrize("kind", KINDS)
def test_reread_applies_the_same_checks(tmp_path: Path, kind: str) -> None:
    """reread refuses a hostile archive the same way members() does."""
    path = build(tmp_path, kind, [("a.xml", XML), ("../b.xml", XML)])

    with pytest.raises(FlowRejected) as caught:
        list(reread(path, kind, LIMITS, {1}))
    assert caught.value.finding.rule == "ARCHIVE_UNSAFE_PATH"


# -- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a.xml", "lot/a.xml", "./a.xml", "a..b.xml", "..a.xml", "a/..b/c.xml", ".hidden/a.xml", "caf\udce9.xml"],
)
def test_check_name_accepts_paths_that_stay_inside(name: str) -> None:
    """check_name lets relative paths through, including dots that are not a '..' component."""
    check_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "../x.xml",
        "a/../../x.xml",
        "a/../x.xml",
        "a/..",
        "..",
        "/etc/x.xml",
        "/x.xml",
        "C:\\x.xml",
        "C:x.xml",
        "c:/x.xml",
        "..\\x.xml",
        "a\\..\\..\\x.xml",
        "\\x.xml",
        "\\\\server\\share\\x.xml",
        "x\x00.xml",
        "caf\udce9/../../x.xml",
    ],
)
def test_check_name_refuses_absolute_climbing_drive_and_nul_paths(name: str) -> None:
    """check_name refuses absolute paths, '..' components (either slash), drive letters and NUL bytes."""
    with pytest.raises(FlowRejected) as caught:
        check_name(name)
    finding = caught.value.finding
    assert (finding.code, finding.rule) == (Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH")
    assert repr(display(name)) in finding.message


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a.xml", "a.xml"),
        ("café/ü.xml", "café/ü.xml"),
        (os.fsdecode(b"caf\xe9.xml"), "caf\\xe9.xml"),
        (os.fsdecode(b"\xff\xfe/\xc3\xa9\x80.xml"), "\\xff\\xfe/é\\x80.xml"),
        ("back\\slash.xml", "back\\slash.xml"),
    ],
)
def test_display_escapes_only_undecodable_bytes(name: str, shown: str) -> None:
    """display shows decodable text as is and each undecodable byte as \\xNN."""
    assert display(name) == shown


# -- whole-archive refusals: paths, links, special files --------------------------------------------------------


UNSAFE = ["../x.xml", "a/../../x.xml", "/etc/x.xml", "C:\\x.xml", "..\\x.xml"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_member_path_refuses_the_archive(tmp_path: Path, kind: str, name: str) -> None:
    """A member with an absolute or climbing path refuses the whole archive with IRR_NOM_F ARCHIVE_UNSAFE_PATH."""
    path = build(tmp_path, kind, [("good.xml", XML), (name, XML)])

    assert_refused(path, kind, Code.IRR_NOM_F, "ARCHIVE_UNSAFE_PATH")


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        (tarfile.SYMTYPE, "ARCHIVE_LINK"),
        (tarfile.LNKTYPE, "ARCHIVE_LINK"),
        (tarfile.CHRTYPE, "ARCHIVE_SPECIAL_FILE"),
        (tarfile.BLKTYPE, "ARCHIVE_SPECIAL_FILE"),
        (tarfile.FIFOTYPE, "ARCHIVE_SPECIAL_FILE"),
    ],
    ids=["symlink", "hardlink", "char-device", "block-device", "fifo"],
)
def test_tar_link_or_special_member_refuses_the_archive(tmp_path: Path, kind: bytes, rule: str) -> None:
    """A tar link, device or FIFO member refuses the whole archive with IRR_TYPE_F and its rule."""
    odd = tar_info("invoice.xml", kind=kind)
    odd.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    path = write(tmp_path, "tar.gz", tar_gz_bytes([("good.xml", XML), odd]))

    assert_refused(path, "tar.gz", Code.IRR_TYPE_F, rule)


@pytest.mark.parametrize(
    ("mode", "rule"),
    [
        (stat.S_IFLNK | 0o777, "ARCHIVE_LINK"),
        (stat.S_IFCHR | 0o644, "ARCHIVE_SPECIAL_FILE"),
        (stat.S_IFBLK | 0o644, "ARCHIVE_SPECIAL_FILE"),
        (stat.S_IFIFO | 0o644, "ARCHIVE_SPECIAL_FILE"),
        (stat.S_IFSOCK | 0o644, "ARCHIVE_SPECIAL_FILE"),
        (stat.S_IFDIR | 0o755, "ARCHIVE_SPECIAL_FILE"),  # a directory by its mode that does not end in "/"
    ],
    ids=["symlink", "char-device", "block-device", "fifo", "socket", "directory-without-slash"],
)
def test_zip_link_or_special_member_refuses_the_archive(tmp_path: Path, mode: int, rule: str) -> None:
    """A Unix zip entry whose mode says link or special file refuses the whole archive with IRR_TYPE_F."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.xml", XML)
        info = zipfile.ZipInfo("invoice.xml")
        info.create_system = 3
        info.external_attr = mode << 16
        archive.writestr(info, b"/etc/passwd")
    path = write(tmp_path, "zip", buffer.getvalue())

    assert_refused(path, "zip", Code.IRR_TYPE_F, rule)


def test_zip_link_bits_from_a_non_unix_system_are_ignored(tmp_path: Path) -> None:
    """Mode bits count only when the zip says it was made on Unix: from MS-DOS they are a plain file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("invoice.xml")
        info.create_system = 0
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, XML)
    path = write(tmp_path, "zip", buffer.getvalue())

    assert [m.data for m in read_all(path, "zip")] == [XML]


def test_tar_regular_file_mode_bits_are_accepted(tmp_path: Path) -> None:
    """A plain tar file with unusual permission bits is still a regular member."""
    info = tar_info("x.xml", XML)
    info.mode = 0o4777
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(info, io.BytesIO(XML))
    path = write(tmp_path, "tar.gz", gzip.compress(raw.getvalue()))

    assert [m.data for m in read_all(path, "tar.gz")] == [XML]


# -- nested archives and encryption ------------------------------------------------------------------------------


def inner_zip() -> bytes:
    return zip_bytes([("a.xml", XML)])


def inner_tar() -> bytes:
    return tar_gz_bytes([("a.xml", XML)])


def nested_cases() -> list[tuple[str, str, Callable[[], bytes]]]:
    return [
        ("zip", "inner.zip", inner_zip),
        ("zip", "invoice.xml", inner_zip),  # a zip under an innocent name: judged by its bytes
        ("zip", "invoice.xml", inner_tar),
        ("tar.gz", "inner.tar.gz", inner_tar),
        ("tar.gz", "invoice.xml", inner_tar),
        ("tar.gz", "invoice.xml", inner_zip),
        ("tar.gz", "inner.7z", lambda: b"7z\xbc\xaf\x27\x1c"),
        ("zip", "INNER.ZIP", lambda: b"PK\x05\x06" + b"\x00" * 18),
    ]


@pytest.mark.parametrize(
    ("kind", "name", "inner"), nested_cases(), ids=[f"{k}-{n}-{i}" for i, (k, n, _) in enumerate(nested_cases())]
)
def test_nested_archive_refuses_the_archive(tmp_path: Path, kind: str, name: str, inner: Callable[[], bytes]) -> None:
    """A member that is itself an archive, by its name or by its bytes, refuses the whole archive as nested."""
    path = build(tmp_path, kind, [("good.xml", XML), (name, inner())])

    assert_refused(path, kind, Code.IRR_TYPE_F, "ARCHIVE_NESTED")


def test_zip_encrypted_member_refuses_the_archive(tmp_path: Path) -> None:
    """A zip member with the encryption flag set refuses the whole archive with IRR_TYPE_F ARCHIVE_ENCRYPTED."""
    data = zip_bytes([("a.xml", XML)])
    path = write(tmp_path, "zip", patch_zip(data, flags=0x1))

    assert_refused(path, "zip", Code.IRR_TYPE_F, "ARCHIVE_ENCRYPTED")


# -- corrupt archives --------------------------------------------------------------------------------------------


def small(kind: str) -> bytes:
    return archive_bytes(kind, [("lot/", None), ("lot/a.xml", XML * 4), ("b.xml", XML)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", [1, 2, 10, 40, 0.5, -30, -1])
def test_truncated_archive_is_corrupt(tmp_path: Path, kind: str, where: float) -> None:
    """An archive cut short is refused whole with IRR_SYNTAX ARCHIVE_CORRUPT."""
    data = small(kind)
    cut = int(len(data) * where) if isinstance(where, float) else where % len(data)
    path = write(tmp_path, kind, data[:cut])

    assert_refused(path, kind, Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


@pytest.mark.parametrize("kind", KINDS)
def test_flipped_bytes_in_the_middle_are_corrupt(tmp_path: Path, kind: str) -> None:
    """An archive whose compressed member bytes are damaged is refused whole as ARCHIVE_CORRUPT."""
    data = bytearray(archive_bytes(kind, [("a.xml", os.urandom(64) + XML * 40)]))
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path = write(tmp_path, kind, bytes(data))

    assert_refused(path, kind, Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


@pytest.mark.parametrize(
    "data",
    [gzip.compress(XML), gzip.compress(b""), gzip.compress(os.urandom(700)), b"\x1f\x8b" + os.urandom(100)],
    ids=["gzip-of-xml", "gzip-of-nothing", "gzip-of-noise", "gzip-magic-then-noise"],
)
def test_gzip_that_is_not_a_tar_is_corrupt(tmp_path: Path, data: bytes) -> None:
    """A gzip file that does not hold a tar is refused as ARCHIVE_CORRUPT."""
    path = write(tmp_path, "tar.gz", data)

    assert_refused(path, "tar.gz", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_without_central_directory_is_corrupt(tmp_path: Path) -> None:
    """A zip whose central directory (and end record) is missing is refused as ARCHIVE_CORRUPT."""
    data = zip_bytes([("a.xml", XML), ("b.xml", XML)])
    path = write(tmp_path, "zip", data[: data.find(b"PK\x01\x02")])

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_with_wrong_crc_is_corrupt(tmp_path: Path) -> None:
    """A zip member whose bytes do not match its CRC-32 is refused as ARCHIVE_CORRUPT."""
    data = bytearray(zip_bytes([("a.xml", XML)], zipfile.ZIP_STORED))
    data[data.find(b"<Invoice>") + 1] ^= 0x20
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_whose_names_disagree_is_corrupt(tmp_path: Path) -> None:
    """A zip whose local header names another file than its central directory is refused as ARCHIVE_CORRUPT."""
    data = zip_bytes([("a.xml", XML)])
    local = data.replace(b"a.xml", b"b.xml", 1)  # only the local header (the first occurrence)
    path = write(tmp_path, "zip", local)

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    """A zip member compressed with an unknown method is refused before anything is inflated."""
    data = bytearray(zip_bytes([("a.xml", XML)]))
    for central, local in zip_directory(bytes(data)):
        struct.pack_into("<H", data, central + 10, 97)
        struct.pack_into("<H", data, local + 8, 97)
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_TYPE_F, "ARCHIVE_COMPRESSION")


def test_zip_needing_an_unknown_version_is_corrupt(tmp_path: Path) -> None:
    """A zip whose central directory asks for an unknown format version is refused as ARCHIVE_CORRUPT."""
    data = bytearray(zip_bytes([("a.xml", XML)]))
    central, _ = next(zip_directory(bytes(data)))
    data[central + 6] = 0xFF  # version needed to extract: 25.5
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_zip_lzma_member_is_refused_unread(tmp_path: Path) -> None:
    """A zip member compressed with LZMA (which zipfile inflates without a bound) is refused, even when damaged."""
    data = bytearray(zip_bytes([("a.xml", XML * 40)], zipfile.ZIP_LZMA))
    _, local = next(zip_directory(bytes(data)))
    start = local + 30 + len("a.xml") + 4 + 5  # past the LZMA properties header
    data[start : start + 16] = bytes(b ^ 0xFF for b in data[start : start + 16])
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_TYPE_F, "ARCHIVE_COMPRESSION")


def test_zip_bzip2_member_is_refused_unread(tmp_path: Path) -> None:
    """A zip member compressed with bzip2 (which zipfile inflates without a bound) is refused, even when damaged."""
    data = bytearray(zip_bytes([("a.xml", XML * 40)], zipfile.ZIP_BZIP2))
    _, local = next(zip_directory(bytes(data)))
    start = local + 30 + len("a.xml") + 10
    data[start : start + 16] = bytes(b ^ 0xFF for b in data[start : start + 16])
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_TYPE_F, "ARCHIVE_COMPRESSION")


def test_tar_gz_cut_inside_the_gzip_header_is_corrupt(tmp_path: Path) -> None:
    """A tar.gz cut inside its gzip header, after the magic and method bytes, is refused as ARCHIVE_CORRUPT."""
    path = write(tmp_path, "tar.gz", b"\x1f\x8b\x08")

    assert_refused(path, "tar.gz", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_tar_gz_with_a_damaged_gzip_trailer_is_corrupt(tmp_path: Path) -> None:
    """A tar.gz whose members read fine but whose gzip CRC is wrong is refused as ARCHIVE_CORRUPT."""
    data = bytearray(tar_gz_bytes([("a.xml", XML)]))
    data[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    path = write(tmp_path, "tar.gz", bytes(data))

    assert_refused(path, "tar.gz", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_tar_gz_with_garbage_after_the_gzip_stream_is_corrupt(tmp_path: Path) -> None:
    """Bytes after the end of the gzip stream refuse the tar.gz as ARCHIVE_CORRUPT."""
    path = write(tmp_path, "tar.gz", tar_gz_bytes([("a.xml", XML)]) + b"trailing garbage")

    assert_refused(path, "tar.gz", Code.IRR_SYNTAX, "ARCHIVE_CORRUPT")


def test_tar_gz_padding_after_the_tar_end_counts_against_the_limit(tmp_path: Path) -> None:
    """Zeros hidden after the tar's end (inside the gzip) are decompressed against max_uncompressed_bytes only."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tar_info("a.xml", XML), io.BytesIO(XML))
    path = write(tmp_path, "tar.gz", gzip.compress(raw.getvalue() + b"\x00" * (9 * MIB), compresslevel=6))

    result, peak, elapsed = measured(path, "tar.gz")

    assert isinstance(result, FlowRejected), result
    assert (result.finding.code, result.finding.rule) == (Code.IRR_TAILLE_F, "max_uncompressed_bytes")
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"
    assert elapsed < 5


def outcome(path: Path, kind: str) -> str:
    """ "ok" or the rule of the FlowRejected: any other exception fails the calling test."""
    try:
        read_all(path, kind)
    except FlowRejected as exc:
        return exc.finding.rule or exc.finding.code
    return "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_every_truncation_is_refused_as_corrupt(tmp_path: Path, kind: str) -> None:
    """Cutting a small archive at every length is refused as ARCHIVE_CORRUPT, never another exception."""
    data = small(kind)
    path = tmp_path / "cut"
    seen = set()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        seen.add(outcome(path, kind))
    assert seen == {"ARCHIVE_CORRUPT"}


FUZZ_FLIP = [
    pytest.param("zip", id="zip"),
    pytest.param("tar.gz", id="tar.gz"),
]


@pytest.mark.parametrize("kind", FUZZ_FLIP)
def test_every_byte_flip_is_read_or_refused(tmp_path: Path, kind: str) -> None:
    """Flipping any one byte of a small archive gives members or a FlowRejected, never another exception."""
    data = small(kind)
    path = tmp_path / "flipped"
    for offset in range(len(data)):
        for mask in (0xFF, 0x80, 0x01):
            flipped = bytearray(data)
            flipped[offset] ^= mask
            path.write_bytes(bytes(flipped))
            outcome(path, kind)


def test_every_byte_flip_in_tar_headers_is_read_or_refused(tmp_path: Path) -> None:
    """Damaging any byte of the tar headers under a sound gzip gives members or a FlowRejected, nothing else."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(tar_info("a.xml", XML), io.BytesIO(XML))
    data = raw.getvalue()
    path = tmp_path / "flipped.tar.gz"
    seen = set()
    for offset in range(512):  # the header block
        for mask in (0xFF, 0x30):
            flipped = bytearray(data)
            flipped[offset] ^= mask
            path.write_bytes(gzip.compress(bytes(flipped), compresslevel=1))
            seen.add(outcome(path, "tar.gz"))
    assert "ARCHIVE_CORRUPT" in seen


# -- size limits and bombs ---------------------------------------------------------------------------------------


def many_members(kind: str, count: int) -> bytes:
    if kind == "zip":
        return zip_bytes([(f"{i:05}.xml", b"<a/>") for i in range(count)], zipfile.ZIP_STORED)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for i in range(count):
            archive.addfile(tar_info(f"{i:05}.xml", b"<a/>"), io.BytesIO(b"<a/>"))
    return gzip.compress(raw.getvalue(), compresslevel=1)


@pytest.mark.parametrize("kind", KINDS)
def test_too_many_members_is_refused_quickly(tmp_path: Path, kind: str) -> None:
    """10,000 tiny members over max_members=1000 refuse the archive (IRR_TAILLE_F max_members) in little time."""
    path = write(tmp_path, kind, many_members(kind, 10_000))

    started = time.perf_counter()
    assert_refused(path, kind, Code.IRR_TAILLE_F, "max_members")
    assert time.perf_counter() - started < 3


MANY_MEMORY = [
    pytest.param("zip", id="zip"),
    pytest.param("tar.gz", id="tar.gz"),
]


@pytest.mark.parametrize("kind", MANY_MEMORY)
def test_too_many_members_is_refused_in_bounded_memory(tmp_path: Path, kind: str) -> None:
    """Refusing 10,000 members over max_members=1000 holds no more than a few times max_document_bytes."""
    path = write(tmp_path, kind, many_members(kind, 10_000))

    result, peak, elapsed = measured(path, kind)

    assert isinstance(result, FlowRejected)
    assert result.finding.rule == "max_members"
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"
    assert elapsed < 5


def test_zip_declared_total_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    """A zip whose central directory declares more than max_uncompressed_bytes is refused before inflating.

    The members really hold a few bytes (declared sizes are patched up): reading them would end in a corrupt-archive
    finding, so the max_uncompressed_bytes refusal shows the declared sizes were checked first.
    """
    data = bytearray(zip_bytes([("a.xml", XML), ("b.xml", XML), ("c.xml", XML)], zipfile.ZIP_STORED))
    for central, local in zip_directory(bytes(data)):
        for offset in (central + 20, central + 24):  # compressed and uncompressed: a ratio of 1, nothing to fear
            struct.pack_into("<I", data, offset, 3 * MIB)
        for offset in (local + 18, local + 22):
            struct.pack_into("<I", data, offset, 3 * MIB)
    path = write(tmp_path, "zip", bytes(data))

    assert_refused(path, "zip", Code.IRR_TAILLE_F, "max_uncompressed_bytes")


def test_tar_declared_size_over_the_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    """A tar member whose header declares more than max_uncompressed_bytes is refused before its bytes are read.

    The archive ends right after the header: reading the member would be a corrupt-archive finding.
    """
    header = tar_info("a.xml", b"")
    header.size = LIMITS.max_uncompressed_bytes + 1
    path = write(tmp_path, "tar.gz", gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + b"<a/>"))

    assert_refused(path, "tar.gz", Code.IRR_TAILLE_F, "max_uncompressed_bytes")


@pytest.mark.parametrize("kind", KINDS)
def test_total_over_the_limit_is_refused(tmp_path: Path, kind: str) -> None:
    """Three incompressible 3 MiB members (9 MiB in all, over 8 MiB) refuse the archive for max_uncompressed_bytes."""
    entries: list[Entry] = [(f"{i}.bin", os.urandom(3 * MIB)) for i in range(3)]
    data = zip_bytes(entries, zipfile.ZIP_STORED) if kind == "zip" else tar_gz_bytes(list(entries), level=1)
    path = write(tmp_path, kind, data)

    assert_refused(path, kind, Code.IRR_TAILLE_F, "max_uncompressed_bytes")


def bomb(kind: str, size: int = 7 * MIB) -> bytes:
    """A member of ``size`` zero bytes (under max_uncompressed_bytes) that compresses to a few KiB."""
    return archive_bytes(kind, [("a.xml", XML), ("bomb.xml", b"\x00" * size)])


@pytest.mark.parametrize("kind", KINDS)
def test_compression_bomb_is_refused_in_bounded_memory_and_time(tmp_path: Path, kind: str) -> None:
    """7 MiB of zeros in a few KiB refuses the archive for max_compression_ratio, holding little memory."""
    data = bomb(kind)
    assert len(data) < 64 * 1024
    path = write(tmp_path, kind, data)

    result, peak, elapsed = measured(path, kind)

    assert isinstance(result, FlowRejected), result
    assert (result.finding.code, result.finding.rule) == (Code.IRR_TAILLE_F, "max_compression_ratio")
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"
    assert elapsed < 5


@pytest.mark.parametrize("kind", KINDS)
def test_compressible_member_under_the_ratio_floor_is_read(tmp_path: Path, kind: str) -> None:
    """A highly compressible but small member (under 1 MiB) is not taken for a bomb."""
    data = b"\x00" * (512 * 1024)
    path = build(tmp_path, kind, [("zeros.xml", data)])

    assert [m.data for m in read_all(path, kind)] == [data]


def test_many_small_compressible_members_add_up_to_a_bomb(tmp_path: Path) -> None:
    """Many zip members each under the ratio floor are still refused when the whole archive expands too much."""
    path = write(tmp_path, "zip", zip_bytes([(f"{i}.xml", b"\x00" * (MIB // 2)) for i in range(12)]))

    assert_refused(path, "zip", Code.IRR_TAILLE_F, "max_compression_ratio")


def lying_zip(method: int, actual: int, declared: int = 1000) -> bytes:
    """A zip of one member of ``actual`` zero bytes whose headers say it is ``declared`` bytes."""
    return patch_zip(zip_bytes([("a.xml", b"\x00" * actual)], method), size=declared)


def assert_bounded(result: object) -> None:
    """Refused as corrupt, or read without ever holding more than max_document_bytes + 1 bytes of a member."""
    if isinstance(result, FlowRejected):
        assert result.finding.rule in ("ARCHIVE_CORRUPT", "ARCHIVE_COMPRESSION"), result.finding
    else:
        assert isinstance(result, list)
        for member in result:
            assert member.data is None or len(member.data) <= LIMITS.max_document_bytes + 1


def test_zip_declaring_a_small_size_for_a_big_member_stays_bounded(tmp_path: Path) -> None:
    """A deflated member declared as 1,000 bytes but holding 6 MiB never yields more than the limit, nor crashes."""
    path = write(tmp_path, "zip", lying_zip(zipfile.ZIP_DEFLATED, 6 * MIB))

    result, peak, elapsed = measured(path, "zip")

    assert_bounded(result)
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"
    assert elapsed < 5


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(zipfile.ZIP_BZIP2, id="bzip2"),
        pytest.param(zipfile.ZIP_LZMA, id="lzma"),
    ],
)
def test_zip_bzip2_or_lzma_member_declaring_a_small_size_stays_bounded(tmp_path: Path, method: int) -> None:
    """A bzip2 or LZMA member declared as 1,000 bytes but holding 24 MiB is read or refused in bounded memory."""
    path = write(tmp_path, "zip", lying_zip(method, 24 * MIB))

    result, peak, _ = measured(path, "zip")

    assert_bounded(result)
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"


def test_zip_bzip2_bomb_declared_honestly_is_refused(tmp_path: Path) -> None:
    """A bzip2 member that declares its huge expansion is refused from the central directory, never inflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("a.xml", b"\x00" * (6 * MIB))
    path = write(tmp_path, "zip", buffer.getvalue())
    assert len(bz2.compress(b"\x00" * MIB)) < 100  # a bzip2 bomb is tiny

    assert_refused(path, "zip", Code.IRR_TYPE_F, "ARCHIVE_COMPRESSION")


def gnu_long_name(size: int) -> bytes:
    """A tar.gz whose GNU long-name record is ``size`` bytes, then one small member."""
    raw = io.BytesIO()
    long_name = tarfile.TarInfo("././@LongLink")
    long_name.type = tarfile.GNUTYPE_LONGNAME
    long_name.size = size
    raw.write(long_name.tobuf(format=tarfile.GNU_FORMAT))
    raw.write(b"n" * size + b"\x00" * (-size % 512))
    member = tar_info("x.xml", XML)
    raw.write(member.tobuf(format=tarfile.GNU_FORMAT) + XML + b"\x00" * (-len(XML) % 512) + b"\x00" * 1024)
    return gzip.compress(raw.getvalue(), compresslevel=6)


def pax_record(size: int) -> bytes:
    """A tar.gz whose pax extended header holds a ``size``-byte comment, then one small member."""
    body = b" comment=" + b"c" * size + b"\n"
    digits = 1
    while len(str(len(body) + digits)) != digits:  # the length counts its own digits
        digits += 1
    record = str(len(body) + digits).encode() + body
    raw = io.BytesIO()
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = len(record)
    raw.write(header.tobuf(format=tarfile.USTAR_FORMAT) + record + b"\x00" * (-len(record) % 512))
    member = tar_info("x.xml", XML)
    raw.write(member.tobuf(format=tarfile.USTAR_FORMAT) + XML + b"\x00" * (-len(XML) % 512) + b"\x00" * 1024)
    return gzip.compress(raw.getvalue(), compresslevel=6)


def test_moderate_pax_header_is_read(tmp_path: Path) -> None:
    """A tar with a small pax extended header (a long comment) is read normally."""
    path = write(tmp_path, "tar.gz", pax_record(2000))

    assert [(m.name, m.data) for m in read_all(path, "tar.gz")] == [("x.xml", XML)]


@pytest.mark.parametrize(
    "make",
    [pytest.param(gnu_long_name, id="gnu-long-name"), pytest.param(pax_record, id="pax-header")],
)
def test_huge_tar_metadata_header_is_refused_in_bounded_memory(tmp_path: Path, make: Callable[[int], bytes]) -> None:
    """A tar.gz whose metadata header expands to 12 MiB (over max_uncompressed_bytes) is refused in bounded memory."""
    path = write(tmp_path, "tar.gz", make(12 * MIB))

    result, peak, _ = measured(path, "tar.gz")

    assert isinstance(result, FlowRejected), "accepted"
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"


def many_directories(kind: str, count: int) -> bytes:
    if kind == "zip":
        return zip_bytes([(f"d{i:05}/", None) for i in range(count)] + [("x.xml", XML)], zipfile.ZIP_STORED)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for i in range(count):
            archive.addfile(tar_info(f"d{i:05}"))
        archive.addfile(tar_info("x.xml", XML), io.BytesIO(XML))
    return gzip.compress(raw.getvalue(), compresslevel=6)


@pytest.mark.parametrize("kind", KINDS)
def test_many_directory_entries_stay_bounded(tmp_path: Path, kind: str) -> None:
    """20,000 directory entries are refused or read while holding no more than a few times max_document_bytes."""
    path = write(tmp_path, kind, many_directories(kind, 20_000))

    result, peak, _ = measured(path, kind)

    assert isinstance(result, FlowRejected | list)
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"
