"""Rebuild a workspace's lost tracking store from what the workspace holds (``edi store rebuild``).

Reads, under the workspace's processor lock:

- ``acks/<sender>/<flow_id>.json`` (its ``.xml`` twin when the JSON cannot be read): each finished flow, its
  documents, findings and statuses, and the keys of its accepted invoices, so that a re-sent invoice is
  ``DOUBLON`` again and the same bytes sent again too; for a recipient's status flow, the lifecycle statuses it
  relayed (the invoices' recorded history);
- ``archive/YYYY/MM/DD/<flow_id>_<name>``: each payload's size, SHA-256 and day, checked against its
  acknowledgement, and the bytes of its name (what retention needs to find it when they are not UTF-8);
- ``failed/<flow_id>/{payload,meta.json}``: flows waiting for ``edi requeue``, recorded as failed with their size
  and SHA-256;
- the spool (``spool/active/``, ``spool/requeued/``): counted, and left to recovery, which archives a flow whose
  acknowledgement is in place, processes a requeued one, and keeps in ``failed/`` a claimed one that nothing says
  the sender of; with ``force``, the old store's rows of claimed flows are kept (recovery then decides them again).

Writes the new store in ``tmp/``, then puts it in place with one rename through the spool (a crash leaves no half
store), and the workspace marker when it has no id. Refuses (:class:`StoreError`) to replace a store that opens
without ``force``, and to leave out flows it cannot read back (an unreadable acknowledgement, an archived payload
without one: their invoices could be accepted again) without ``partial``. What only the old store knew is not
rebuilt: the events before the rebuild (each flow gets one saying where it was rebuilt from), the runs of scheduled
jobs, the details of failures. With ``force``, when the old store still reads and is this workspace's own, what
no file holds is kept from it (:data:`KEPT`): the console's accounts, their ended sessions, audit trail and session
key, the API's clients, tokens, webhooks, their events and deposit records, and the notifications (sent or due: none
is sent twice); a lost store cannot give them back. Every refusal or
failure is a :class:`WorkspaceError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from edi.ack import from_xml, xml_safe
from edi.clock import Clock, SystemClock, iso
from edi.config import Settings
from edi.errors import StoreError, WorkspaceError
from edi.faults import fault_point
from edi.lock import processor_lock
from edi.model import FlowStatus, Party
from edi.spool import LOCK, META, PAYLOAD, Spool
from edi.store import WORKSPACE_ID, new_workspace_id, open_store, write_marker
from edi.text import printable
from edi.tracking import Tracking
from edi.workspace import Layout

CHUNK = 1000  # acknowledgements written to the new store per transaction (memory stays that of one chunk)
FINAL = frozenset(str(s) for s in FlowStatus if s.final)
BUILT = "tracking.sqlite.rebuild-"  # + the pid: the new store, in tmp/ until it is complete
CDAR = ".cdar"  # <flow_id>.<index>.cdar.xml, beside the acknowledgements: never read as one
UNKNOWN_SENDER = "?"  # a failed flow whose meta.json cannot be read (as recovery names one)
_FORCE = "`edi store rebuild --force` rebuilds it from the workspace's files"
# what only the store knows and no file of the workspace holds, kept from a store replaced with ``force`` (the
# table, and what the rebuild's report calls its rows); and the meta values kept with them
KEPT = {
    "users": "console accounts",
    "ended_sessions": "ended console sessions",
    "actions": "audit entries",
    "api_clients": "API clients",
    "api_tokens": "API tokens",
    "api_webhooks": "webhooks",
    "api_webhook_events": "webhook events",
    "api_deposits": "API deposit records",
    "notifications": "notifications",
}
KEPT_META = ("console_session_key",)


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild found and wrote."""

    store: Path
    replaced: bool = False  # a store that opened was replaced (``force``)
    by_status: Counter[str] = field(default_factory=Counter)  # flows from acknowledgements
    documents: int = 0
    invoice_keys: int = 0
    archived: int = 0  # payloads in the archive, matched to their acknowledgement
    differing: list[str] = field(default_factory=list)  # archived payloads that differ from what their ack says
    failed: int = 0  # flows in failed/
    # flows in the spool, left to recovery: answered (it archives them), requeued (it processes them), claimed
    # with the old store's row kept (``force``: it decides them again), claimed with no record left (it moves them
    # to failed/ for an operator: nothing says which sender they came from)
    spool: Counter[str] = field(default_factory=Counter)
    unreadable: list[Path] = field(default_factory=list)  # acknowledgements left out (``partial``)
    unanswered: list[Path] = field(default_factory=list)  # archived payloads without an acknowledgement, left out
    kept: Counter[str] = field(default_factory=Counter)  # rows kept from the replaced store, by table (``force``)
    not_kept: str = ""  # why nothing was kept from the replaced store, if it was not (``force``)
    seconds: float = 0.0

    @property
    def flows(self) -> int:
        """Flows recorded from acknowledgements."""
        return sum(self.by_status.values())


def rebuild_store(
    settings: Settings, *, force: bool = False, partial: bool = False, clock: Clock | None = None
) -> RebuildReport:
    """Rebuild the store of the workspace ``settings`` names, holding its processor lock (no batch meanwhile)."""
    layout = settings.workspace.layout()
    if not layout.root.is_dir():
        raise WorkspaceError(f"{layout.root} does not exist: nothing to rebuild from (`edi init` makes a workspace)")
    with processor_lock(settings, "edi store rebuild"):
        return rebuild(layout, force=force, partial=partial, clock=clock)


def rebuild(layout: Layout, *, force: bool = False, partial: bool = False, clock: Clock | None = None) -> RebuildReport:
    """Rebuild the store of ``layout`` from its files (see the module's docstring)."""
    started = time.monotonic()
    report = RebuildReport(layout.database)
    built = layout.tmp / f"{BUILT}{os.getpid()}"
    workspace_id = layout.workspace_id or new_workspace_id()
    try:
        _build(layout, built, workspace_id, (clock or SystemClock()).now(), force, report)
        if (report.unreadable or report.unanswered) and not partial:
            raise StoreError(_left_out(report))
        fault_point("rebuild.before_install")
        stale = (Path(f"{layout.database}-wal"), Path(f"{layout.database}-shm"))
        Spool(layout).install(built, layout.database, stale)
    except OSError as exc:
        raise WorkspaceError(f"cannot rebuild the tracking store: {exc.strerror or exc}: {exc.filename}") from None
    except sqlite3.Error as exc:
        raise WorkspaceError(f"cannot write the rebuilt tracking store {built}: {exc}") from None
    finally:
        _remove_store(built)
    if layout.workspace_id != workspace_id:
        write_marker(layout, workspace_id)
    open_store(layout).close()  # it is the workspace's own store now
    report.seconds = time.monotonic() - started
    return report


def _build(layout: Layout, built: Path, workspace_id: str, now: datetime, force: bool, report: RebuildReport) -> None:
    """Write the new store at ``built`` from the workspace's files, noting in ``report`` what was found."""
    spool = Spool(layout)
    in_hands, requeued = _in_spool(layout)
    old_rows = _old_rows(layout, in_hands, force, report)
    archived = _archived(layout)
    answered = _ack_files(layout)
    failed = [f for f in spool.failed_ids() if f not in answered]
    layout.tmp.mkdir(parents=True, exist_ok=True)
    for leftover in layout.tmp.glob(f"{BUILT}*"):
        pid = leftover.name.removeprefix(BUILT)
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):  # of a rebuild that was killed
            _remove_store(leftover)
    store = Tracking(built, create=True)
    try:
        store.keep_meta(WORKSPACE_ID, workspace_id)
        store.keep_meta("rebuilt_at", iso(now))
        ids = sorted(answered)  # in id order: an invoice key goes to the first flow that has it
        for start in range(0, len(ids), CHUNK):
            acks = list(_read_acks(ids[start : start + CHUNK], answered, archived, layout, report))
            report.invoice_keys += store.restore_answered(acks, now)
        store.restore_failed([_failed_flow(layout, spool, f, archived) for f in failed], now)
        report.failed = len(failed)
        store.record_claims([row for flow_id, row in old_rows.items() if flow_id not in answered], now)
        if report.replaced and not report.not_kept:
            _keep(layout.database, store, report)
    finally:
        store.close()
    report.spool.update("answered" if f in answered else "kept" if f in old_rows else "unknown" for f in in_hands)
    if requeued:
        report.spool["requeued"] += len(requeued)
    report.unanswered = sorted(map(Path, archived.values()))


def _left_out(report: RebuildReport) -> str:
    """The one line refusing to rebuild without flows it could not read back."""
    parts = []
    if report.unreadable:
        first = printable(str(report.unreadable[0]))
        parts.append(f"{len(report.unreadable)} acknowledgements cannot be read (first: {first})")
    if report.unanswered:
        first = printable(str(report.unanswered[0]))  # a name as a sender gave it: maybe a line break in it
        parts.append(f"{len(report.unanswered)} archived flows have no acknowledgement (first: {first})")
    return (
        f"{' and '.join(parts)}: the store would not know them and their invoices could be accepted again; put "
        "them back, or run `edi store rebuild --partial` to rebuild without them"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's
        return True
    return True


def _remove_store(path: Path) -> None:
    for leftover in (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal", "-writers"))):
        leftover.unlink(missing_ok=True)


def _old_rows(layout: Layout, in_hands: list[str], force: bool, report: RebuildReport) -> dict[str, dict[str, Any]]:
    """Refuse to replace a store that opens, unless ``force``; then the rows it has for the flows in the hands of
    processes (recovery needs to know where they came from)."""
    try:
        old = Tracking(layout.database)
    except StoreError:  # lost: what this command is for
        return {}
    try:
        try:
            flows = sum(old.counts().values())
            rows = {f: row for f in in_hands if (row := old.claimed(f)) is not None}
        except sqlite3.Error as exc:  # damaged past its first pages
            if not force:
                raise StoreError(
                    f"the tracking store {layout.database} opens but cannot be read ({exc}): {_FORCE}"
                ) from None
            rows = {}
            report.not_kept = f"it cannot be read ({exc})"
        else:
            if not force:
                raise StoreError(
                    f"the tracking store {layout.database} opens and holds {flows} flows: it is not replaced "
                    f"without --force ({_FORCE})"
                )
        report.replaced = True
        if not report.not_kept:
            try:
                theirs = old.meta(WORKSPACE_ID)
            except sqlite3.Error as exc:
                report.not_kept = f"it cannot be read ({exc})"
            else:
                mine = layout.workspace_id
                if mine is None:  # nothing to tell this workspace's store from another's
                    report.not_kept = "this workspace has lost its marker (.edi-workspace) to match the store with"
                elif theirs != mine:  # another workspace's accounts and clients must not open this one
                    report.not_kept = f"it is not this workspace's (its id: {theirs or 'none'})"
        return rows
    finally:
        old.close()


def _keep(old_path: Path, store: Tracking, report: RebuildReport) -> None:
    """Copy the rows of :data:`KEPT` (and the :data:`KEPT_META` values) from the replaced store at ``old_path`` into
    the new ``store``, in one transaction, by the columns both have; a store that cannot be read past this point
    keeps nothing, and ``report`` says why."""
    try:
        old = sqlite3.connect(f"{old_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        report.not_kept = f"it cannot be opened again ({exc})"
        return
    kept: Counter[str] = Counter()
    try:
        with store.transaction():
            new = store.db.conn
            for table in KEPT:
                theirs = {row[1] for row in old.execute(f"PRAGMA table_info({table})")}
                columns = [row[1] for row in new.execute(f"PRAGMA table_info({table})") if row[1] in theirs]
                if not columns:
                    continue  # a store made before the table was
                listed = ", ".join(columns)
                marks = ", ".join("?" * len(columns))
                insert = f"INSERT OR REPLACE INTO {table} ({listed}) VALUES ({marks})"  # noqa: S608 (ours: KEPT, its schema)
                rows = old.execute(f"SELECT {listed} FROM {table}")  # noqa: S608 (a table of KEPT, columns of our schema)
                while chunk := rows.fetchmany(CHUNK):
                    new.executemany(insert, chunk)
                    kept[table] += len(chunk)
            for key in KEPT_META:
                found = old.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
                if found is not None:
                    new.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, found[0]])
    except sqlite3.Error as exc:  # damaged past what the first look read: nothing is kept, the flows are rebuilt
        report.not_kept = f"it cannot be read ({exc})"
        return
    finally:
        old.close()
    report.kept = kept


def _in_spool(layout: Layout) -> tuple[list[str], list[str]]:
    """The flows in the spool: in the hand of a process (dead: no other runs now), and put back by ``edi
    requeue``."""
    hands: list[str] = []
    requeued: list[str] = []
    with contextlib.suppress(OSError):
        for hand in sorted(os.scandir(layout.active), key=lambda e: e.name):
            if hand.is_dir(follow_symlinks=False):
                hands += [p.name for p in Path(hand.path).iterdir() if p.name != LOCK and not p.name.startswith(".")]
    with contextlib.suppress(OSError):
        requeued += [p.name for p in layout.requeued.iterdir() if not p.name.startswith(".")]
    return sorted(hands), sorted(requeued)


def _archived(layout: Layout) -> dict[str, str]:
    """Every archived payload's path by flow id (``archive/YYYY/MM/DD/<flow_id>_<name>``; strings: a Path object
    for each of 100,000 flows would weigh ~100 MB)."""
    found: dict[str, str] = {}
    for folder in _folders(layout.archive, 3):
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                flow_id, underscore, _ = entry.name.partition("_")
                if underscore and not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    found.setdefault(flow_id, entry.path)
    return found


def _folders(root: Path, depth: int) -> Iterator[Path]:
    """The folders ``depth`` levels below ``root``, in name order."""
    if depth == 0:
        yield root
        return
    try:
        with os.scandir(root) as scan:
            entries = sorted(
                (e for e in scan if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")),
                key=lambda e: e.name,
            )
    except OSError:
        return
    for entry in entries:
        yield from _folders(Path(entry.path), depth - 1)


def _ack_files(layout: Layout) -> dict[str, tuple[str, str]]:
    """Every acknowledgement in the workspace: flow id -> (sender, its JSON path, or its XML one when there is
    no JSON)."""
    found: dict[str, tuple[str, str]] = {}
    for folder in _folders(layout.acks, 1):
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                stem, dot, ext = entry.name.rpartition(".")
                if not dot or entry.name.startswith(".") or ext not in ("json", "xml") or stem.endswith(CDAR):
                    continue  # a CDAR lifecycle message (<flow_id>.<index>.cdar.xml) is not an acknowledgement
                if ext == "json" or stem not in found:
                    found[stem] = (folder.name, entry.path)
    return found


def _read_acks(
    ids: list[str],
    answered: dict[str, tuple[str, str]],
    archived: dict[str, str],
    layout: Layout,
    report: RebuildReport,
) -> Iterator[dict[str, Any]]:
    """The acknowledgements of these flows, read back, checked against their archived payload (taken out of
    ``archived``), with ``raw_name`` and ``origin`` added; the unreadable ones go to ``report.unreadable``."""
    for flow_id in ids:
        sender, name = answered[flow_id]
        path = Path(name)
        ack = _read_ack(path) or _read_ack(path.with_suffix(".xml"))
        if ack is None or not _belongs(ack, flow_id, sender):
            report.unreadable.append(path)
            archived.pop(flow_id, None)  # counted with the unreadable acknowledgement, not twice
            continue
        for doc in ack["documents"]:
            if doc.get("seller_key") is None and doc.get("seller_id"):  # an acknowledgement made before the key
                doc["seller_key"] = Party(legal_id=doc["seller_id"]).key
        payload = archived.pop(flow_id, None)
        ack["raw_name"] = None
        if payload is not None:
            report.archived += 1
            ack["raw_name"] = _check_archived(ack, Path(payload), report)
        origin = path if not path.is_relative_to(layout.root) else path.relative_to(layout.root)
        ack["origin"] = str(origin)
        report.by_status[ack["status"]] += 1
        report.documents += len(ack["documents"])
        yield ack


def _read_ack(path: Path) -> dict[str, Any] | None:
    """An acknowledgement file read back (JSON or XML), None if it cannot be."""
    try:
        data = path.read_bytes()
        ack = json.loads(data) if path.suffix == ".json" else from_xml(data)
    except (OSError, ValueError, SyntaxError):  # lxml's XMLSyntaxError is a SyntaxError
        return None
    return ack if isinstance(ack, dict) else None


def _belongs(ack: dict[str, Any], flow_id: str, sender: str) -> bool:
    """Whether ``ack`` is the final acknowledgement of ``flow_id`` by ``sender``, with what the store needs."""
    documents = ack.get("documents")
    if not _records(documents) or not _records(ack.get("findings")):
        return False
    return (
        ack.get("flow_id") == flow_id
        and ack.get("sender") == sender
        and ack.get("status") in FINAL
        and _time(ack.get("received_at")) is not None
        and isinstance(ack.get("processed_at"), str)
        and all(isinstance(d.get("index"), int) and isinstance(d.get("status"), str) for d in documents)
        and all(_records(d.get("findings")) for d in documents)
    )


def _records(value: object) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _time(value: object) -> datetime | None:
    """A time an acknowledgement or ``meta.json`` wrote, in UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _check_archived(ack: dict[str, Any], payload: Path, report: RebuildReport) -> str | None:
    """Compare an archived payload with its acknowledgement (size, SHA-256, day), noting any difference; return
    the hex of its name's bytes when they are not what the acknowledgement's text shows (the store's
    ``raw_name``), None when they are, or when the archive cut the name."""
    differences = []
    size = payload.stat().st_size
    if ack.get("size") is not None and size != ack["size"]:
        differences.append(f"{size} bytes, not {ack['size']}")
    elif ack.get("sha256"):  # none for a payload refused by its size alone, never read
        with payload.open("rb") as stream:
            sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
        if sha256 != ack["sha256"]:
            differences.append(f"SHA-256 {sha256[:16]}..., not {ack['sha256'][:16]}...")
    received = _time(ack["received_at"])
    assert received is not None  # checked when it was read
    if payload.parent.parts[-3:] != (f"{received:%Y}", f"{received:%m}", f"{received:%d}"):
        differences.append(f"in the folder of another day than {received:%Y-%m-%d}")
    if differences:
        report.differing.append(f"{payload}: {', '.join(differences)}")
    raw = os.fsencode(payload.name)[len(ack["flow_id"]) + 1 :]
    shown = raw.decode("utf-8", "backslashreplace")
    if xml_safe(shown) != ack.get("file_name"):  # cut to fit a file name, or renamed: the name is not known
        return None
    return raw.hex() if shown.encode("utf-8") != raw else None


def _failed_flow(layout: Layout, spool: Spool, flow_id: str, archived: dict[str, str]) -> dict[str, Any]:
    """A flow in ``failed/`` as the store records it: what its ``meta.json`` says, its payload's size and
    SHA-256."""
    archived.pop(flow_id, None)
    meta = spool.failed_meta(flow_id) or {}
    text = {k: v if isinstance(v, str) else None for k, v in meta.items()}
    raw: bytes | None = None
    with contextlib.suppress(TypeError, ValueError):
        raw = bytes.fromhex(text.get("name_hex") or "")
    shown = raw.decode("utf-8", "backslashreplace") if raw else "?"
    payload = layout.failed / flow_id / PAYLOAD
    with payload.open("rb") as stream:
        sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    return {
        "flow_id": flow_id,
        "sender": text.get("sender") or UNKNOWN_SENDER,
        "file_name": shown,
        "raw_name": raw.hex() if raw and shown.encode("utf-8") != raw else None,
        "received_at": _iso(text.get("received_at")),
        "deposited_at": _iso(text.get("deposited_at")),
        "size": payload.stat().st_size,
        "sha256": sha256,
        "origin": str(Path(layout.failed.name) / flow_id / META),
    }


def _iso(value: str | None) -> str | None:
    """A time as the store writes it (``meta.json`` keeps Python's isoformat), None if it is not one."""
    moment = _time(value)
    return iso(moment) if moment else None
