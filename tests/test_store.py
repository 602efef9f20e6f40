"""Which store a workspace may open: a lost one (deleted, emptied, not a database, without its tables) is refused by
every command with one line, a new workspace gets one, a store from another workspace is refused, ids are given to
stores and markers made before them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edi.cli import main
from edi.errors import StoreError, WorkspaceError
from edi.store import WORKSPACE_ID, history, open_store
from edi.tracking import Tracking
from edi.workspace import Layout
from tests.conftest import FLOWS, Workspace

INVOICE = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()


def run(ws: Workspace, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(ws.config), *args], catch_exceptions=False)


def edi(ws: Workspace, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real `edi` in a process of its own."""
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def store_files(ws: Workspace) -> list[Path]:
    return [ws.root / f"tracking.sqlite{suffix}" for suffix in ("", "-wal", "-shm")]


def delete(ws: Workspace) -> None:
    for path in store_files(ws):
        path.unlink(missing_ok=True)


def truncate(ws: Workspace) -> None:
    delete(ws)
    (ws.root / "tracking.sqlite").write_bytes(b"")


def corrupt(ws: Workspace) -> None:
    delete(ws)
    (ws.root / "tracking.sqlite").write_bytes(os.urandom(8192))


def cut_short(ws: Workspace) -> None:
    """Keep only the store's first page (its header and the start of its schema)."""
    for path in store_files(ws)[1:]:
        path.unlink(missing_ok=True)
    with (ws.root / "tracking.sqlite").open("r+b") as store:
        store.truncate(4096)


def damage(ws: Workspace) -> None:
    """Zero the store's second page (the meta table's, made first): its schema still reads, its data does not."""
    for path in store_files(ws)[1:]:
        path.unlink(missing_ok=True)
    with (ws.root / "tracking.sqlite").open("r+b") as store:
        store.seek(4096)
        store.write(bytes(4096))


def other_tables(ws: Workspace) -> None:
    delete(ws)
    with sqlite3.connect(ws.root / "tracking.sqlite") as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()


def no_tables(ws: Workspace) -> None:
    delete(ws)
    with sqlite3.connect(ws.root / "tracking.sqlite") as conn:
        conn.execute("PRAGMA user_version = 7")  # an SQLite file, with a header and no table
    conn.close()


LOSSES: dict[str, tuple[Callable[[Workspace], None], str]] = {
    "deleted": (delete, "is missing"),
    "truncated": (truncate, "is empty (0 bytes)"),
    "corrupt": (corrupt, "is not an SQLite database"),
    "cut-short": (cut_short, "is damaged (database disk image is malformed)"),
    "damaged": (damage, "is damaged (database disk image is malformed)"),
    "other-tables": (other_tables, "lacks its tables (flows, documents)"),
    "no-tables": (no_tables, "holds no tables"),
}


@pytest.fixture
def processed(workspace: Workspace) -> Workspace:
    """A workspace where one invoice was accepted and delivered."""
    workspace.drop("acme", "01.xml", INVOICE)
    assert run(workspace, "batch").exit_code == 0
    assert len(workspace.queue("ville-exemple")) == 1
    return workspace


def assert_refused(result_output: str, exit_code: int, why: str) -> None:
    assert exit_code == 1, result_output
    (line,) = result_output.strip().splitlines()
    assert why in line and "`edi store rebuild`" in line and "Traceback" not in line, line


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_lost_store_makes_every_command_refuse_in_one_line(processed: Workspace, loss: str) -> None:
    """Deleted, emptied, corrupt or without its tables: batch, flows, show, report, recover, requeue, schedule
    --list and init each exit 1 with one line saying what is wrong and to run `edi store rebuild`; nothing is
    claimed, nothing delivered again, and no empty store is made in its place."""
    make_loss, why = LOSSES[loss]
    make_loss(processed)
    before = sorted(p.name for p in store_files(processed) if p.exists())
    processed.drop("acme", "again.xml", INVOICE)  # sent again: must not be accepted and delivered twice
    batch = edi(processed, "batch")
    assert_refused(batch.stderr + batch.stdout, batch.returncode, why)
    for command in (["flows"], ["show", "2026"], ["report"], ["recover"], ["requeue", "--failed"], ["init"]):
        result = run(processed, *command)
        assert_refused(result.output, result.exit_code, why)
    result = run(processed, "schedule", "--list")
    assert_refused(result.output, result.exit_code, why)
    assert (processed.inbox("acme") / "again.xml").exists()
    assert len(processed.queue("ville-exemple")) == 1
    assert sorted(p.name for p in store_files(processed) if p.exists()) == before


def test_watch_and_schedule_refuse_a_lost_store_before_they_start(processed: Workspace) -> None:
    """The long-running commands refuse at once (exit 1, one line), rather than process with an empty store."""
    delete(processed)
    text = processed.config.read_text(encoding="utf-8") + '\n[[schedule.jobs]]\njob = "batch"\nevery_seconds = 1\n'
    processed.config.write_text(text, encoding="utf-8")
    for command in ("watch", "schedule"):
        result = edi(processed, command, timeout=60)
        assert_refused(result.stderr + result.stdout, result.returncode, "is missing")
    assert not (processed.root / "tracking.sqlite").exists()


def test_a_workspace_restored_without_marker_nor_store_is_refused(processed: Workspace) -> None:
    """A backup restored without its dotfiles and its store still has acknowledgements, an archive and
    deliveries: that history is named, and `edi init` refuses to start an empty store there."""
    delete(processed)
    (processed.root / ".edi-workspace").unlink()
    found = history(processed.settings.workspace.layout())
    assert found == ["acknowledgements in acks/", "archived flows in archive/", "deliveries in queues/"]
    for command in ("init", "batch", "flows"):
        result = run(processed, command)
        assert_refused(result.output, result.exit_code, "is missing, but the workspace has history")
    assert not (processed.root / "tracking.sqlite").exists()


def test_a_workspace_never_initialised_is_told_to_run_init(make_workspace: Callable[..., Workspace]) -> None:
    """No marker, no store, no history: not a workspace yet (`edi init`), and no store is made by asking."""
    ws = make_workspace(init=False)
    result = run(ws, "flows")
    assert result.exit_code == 1 and "is not an edi workspace: run `edi init` first" in result.output
    assert not (ws.root / "tracking.sqlite").exists()


def test_init_of_a_new_workspace_makes_the_store_and_the_marker_with_one_id(
    make_workspace: Callable[..., Workspace],
) -> None:
    """`edi init` makes the store, then the marker; both hold the same new id, and a second init keeps it."""
    ws = make_workspace(init=False)
    assert run(ws, "init").exit_code == 0
    layout = ws.settings.workspace.layout()
    marked = layout.workspace_id
    assert marked is not None and len(marked) == 32
    store = open_store(layout)
    try:
        assert store.meta(WORKSPACE_ID) == marked
    finally:
        store.close()
    assert run(ws, "init").exit_code == 0
    assert layout.workspace_id == marked


def test_a_store_from_another_workspace_is_refused(make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    """A store copied from another workspace (another id) is refused, naming both ids and what to do."""
    ws = make_workspace()
    other = tmp_path / "other"
    other.mkdir()
    layout = ws.settings.workspace.layout()
    other_layout = Layout(other)
    other_layout.create([])
    open_store(other_layout, init=True).close()
    delete(ws)
    for name in ("tracking.sqlite", "tracking.sqlite-wal"):
        if (other / name).exists():
            (ws.root / name).write_bytes((other / name).read_bytes())
    result = run(ws, "batch")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "belongs to another workspace" in line and str(other_layout.workspace_id) in line
    assert str(layout.workspace_id) in line and "`edi store rebuild` --force" in line


def test_a_store_and_a_marker_from_before_ids_get_the_same_id(workspace: Workspace) -> None:
    """An older workspace (a marker without id, a store without one) is not refused: its store gets an id and the
    marker is written again with it."""
    layout = workspace.settings.workspace.layout()
    layout.marker.write_text("edi workspace\n", encoding="utf-8")
    with sqlite3.connect(layout.database) as conn:
        conn.execute("DELETE FROM meta WHERE key = ?", [WORKSPACE_ID])
    conn.close()
    assert layout.workspace_id is None
    assert run(workspace, "flows").exit_code == 0
    marked = layout.workspace_id
    assert marked is not None
    store = Tracking(layout.database)
    try:
        assert store.meta(WORKSPACE_ID) == marked
    finally:
        store.close()


def test_a_marker_from_before_ids_takes_the_id_its_store_has(workspace: Workspace) -> None:
    """A marker without an id next to a store with one (a crash between the two writes): the store's id is kept."""
    layout = workspace.settings.workspace.layout()
    marked = layout.workspace_id
    layout.marker.write_text("edi workspace\n", encoding="utf-8")
    open_store(layout).close()
    assert layout.workspace_id == marked


def test_open_store_errors_are_workspace_errors(make_workspace: Callable[..., Workspace]) -> None:
    """Both refusals are WorkspaceErrors (the CLI's exit 1): a lost store is a StoreError."""
    ws = make_workspace()
    delete(ws)
    with pytest.raises(StoreError, match="is missing, but the workspace has history"):
        open_store(ws.settings.workspace.layout())
    assert issubclass(StoreError, WorkspaceError)
