"""Which tracking store a workspace may open: every command that opens it goes through :func:`open_store`.

A workspace with history (its ``.edi-workspace`` marker, acknowledgements, archived payloads, failed flows,
deliveries) whose store is missing, empty, not a database or without its tables is refused: an empty store there
would accept and deliver its invoices again. ``edi store rebuild`` (:mod:`edi.rebuild`) makes the store again from
those files. Only ``edi init`` of a workspace without history makes a new store. The marker and the store both hold
the workspace's id; a store holding another id (copied from another workspace) is refused. A store or marker from
before ids gets one when opened.

Reads the workspace's folders (a first entry in each) and the marker; writes the marker through the spool; raises
:class:`StoreError` (one line: what is missing, what to do) and :class:`WorkspaceError`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from edi.errors import StoreError, WorkspaceError
from edi.spool import LOCK, Spool
from edi.tracking import Tracking
from edi.workspace import MARKER, Layout, marker_text

WORKSPACE_ID = "workspace_id"  # the key of the id in the store's meta table
REBUILD = "`edi store rebuild`"
_LOST = f"an empty store would accept and deliver its invoices again; run {REBUILD}"


def new_workspace_id() -> str:
    """A new workspace id: 32 random hex digits."""
    return secrets.token_hex(16)


def open_store(layout: Layout, *, init: bool = False) -> Tracking:
    """The workspace's tracking store, once it is known to be the workspace's own. ``init`` (``edi init``): a new
    store is made when the workspace has no history, and a workspace without its marker is not refused (the
    marker is written once the store is there)."""
    try:
        store = Tracking(layout.database)
    except StoreError as exc:
        found = history(layout)
        if found:
            raise StoreError(f"{exc}, but the workspace has history ({', '.join(found)}): {_LOST}") from None
        if not init:
            if not layout.database.exists():
                raise WorkspaceError(f"{layout.root} is not an edi workspace: run `edi init` first") from None
            raise StoreError(f"{exc}: run {REBUILD}") from None
        try:  # a new workspace
            store = Tracking(layout.database, create=True)
        except StoreError as again:  # not a database, or not the store's tables
            raise StoreError(f"{again}: run {REBUILD}") from None
    try:
        if not init and not layout.initialised:
            raise WorkspaceError(f"{layout.root} is not an edi workspace: run `edi init` first")
        _check_identity(layout, store)
    except BaseException:
        store.close()
        raise
    return store


def _check_identity(layout: Layout, store: Tracking) -> None:
    """Refuse a store that holds another workspace's id; give an id to a store or marker that has none."""
    marked = layout.workspace_id
    held = store.meta(WORKSPACE_ID)
    if marked and held and marked != held:
        raise StoreError(
            f"the tracking store {layout.database} belongs to another workspace (id {held}; this one is {marked}): "
            f"put this workspace's own store back, or run {REBUILD} --force"
        )
    if held is None:
        held = store.keep_meta(WORKSPACE_ID, marked or new_workspace_id())
    if marked is None:
        write_marker(layout, held)


def write_marker(layout: Layout, workspace_id: str) -> None:
    """Write the workspace's marker with its id (whole or not at all)."""
    try:
        layout.tmp.mkdir(parents=True, exist_ok=True)
        Spool(layout).write_atomic(layout.marker, marker_text(workspace_id))
    except OSError as exc:
        raise WorkspaceError(f"cannot write the workspace marker {layout.marker}: {exc.strerror or exc}") from None


def history(layout: Layout) -> list[str]:
    """What says flows were processed in this workspace: its marker, acknowledgements, archived payloads, failed
    flows, deliveries, flows in the spool (a first entry of each is enough)."""
    found = []
    if layout.marker.exists():
        found.append(f"its {MARKER} marker")
    places = [
        ("acknowledgements in", layout.acks, 2, ()),
        ("archived flows in", layout.archive, 4, ()),
        ("failed flows in", layout.failed, 2, ()),
        ("deliveries in", layout.queues, 3, ("tmp",)),  # queues/<q>/{new,cur}/<file>
        ("flows in", layout.active, 2, (LOCK,)),  # a hand's lock file is not a flow
        ("flows in", layout.requeued, 2, ()),
    ]
    for what, folder, depth, skip in places:
        if _holds_file(folder, depth, skip):
            found.append(f"{what} {_shown(layout, folder)}/")
    return found


def _shown(layout: Layout, folder: Path) -> str:
    return str(folder.relative_to(layout.root)) if folder.is_relative_to(layout.root) else str(folder)


def _holds_file(folder: Path, depth: int, skip: tuple[str, ...]) -> bool:
    """Whether a file is ``depth`` levels below ``folder`` (``queues/<q>/new/<file>``: 3); dotfiles and entries
    named in ``skip`` do not count."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name in skip:
                    continue
                if depth == 1:
                    if entry.is_file(follow_symlinks=False):
                        return True
                elif entry.is_dir(follow_symlinks=False) and _holds_file(Path(entry.path), depth - 1, skip):
                    return True
    except OSError:  # no such folder, or not readable
        return False
    return False
