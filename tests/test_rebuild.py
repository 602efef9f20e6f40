"""`edi store rebuild`: a store lost after real batches is rebuilt from the workspace's acknowledgements, archive
and failed/, row for row; afterwards the old flows are listed and shown, a re-sent invoice is DOUBLON again (by its
key and by its bytes) and nothing is delivered twice. What cannot be read back stops the rebuild, a crash leaves no
half store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edi import accounts
from edi.api import clients, webhooks
from edi.cli import main
from edi.config import load_settings
from edi.store import WORKSPACE_ID
from edi.tracking import Tracking
from tests.conftest import DEFAULT_CONFIG, EXPECTED, FLOWS, Workspace
from tests.test_store import corrupt, cut_short, damage, delete, truncate

SAMPLES = [(sender, name) for sender, files in EXPECTED.items() for name in files]
INVOICE = FLOWS / "acme" / "01-ubl-invoice.xml"  # accepted, delivered to ville-exemple
ROWS = {  # what the store says of each flow, as the rebuild must say it again (not when, not which process)
    "flows": "SELECT flow_id, sender, file_name, raw_name, size, sha256, received_at, deposited_at, kind, "
    "processed_at, status, duplicate_of, documents_total, documents_accepted FROM flows ORDER BY flow_id",
    "documents": "SELECT * FROM documents ORDER BY flow_id, idx",
    "findings": "SELECT flow_id, idx, code, reason, rule, layer, severity, line, xpath, message, rule_set_version, "
    "rule_set_sha256 FROM findings ORDER BY flow_id, idx, id",
    "invoices": "SELECT * FROM invoices ORDER BY flow_id, idx",
    "api_messages": "SELECT message_id, sender, flow_id, idx, kind, status FROM api_messages ORDER BY message_id",
}


def run(ws: Workspace, *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", str(ws.config), *args], catch_exceptions=False)


def edi(ws: Workspace, *args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    """The real `edi` in a process of its own (with EDI_FAULTS when given)."""
    env = {**os.environ, "EDI_FAULTS": faults}
    command = [sys.executable, "-m", "edi", "--config", str(ws.config), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300, env=env)


def rows(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(ws.root / "tracking.sqlite")) as conn:
        return {table: conn.execute(sql).fetchall() for table, sql in ROWS.items()}


def delivered(ws: Workspace) -> list[str]:
    """Every file in every queue (new/ and cur/), by path."""
    return sorted(str(p.relative_to(ws.root)) for p in (ws.root / "queues").glob("*/*/*") if p.parent.name != "tmp")


def drop_samples(ws: Workspace) -> None:
    for position, (sender, name) in enumerate(SAMPLES):
        ws.drop(sender, name, (FLOWS / sender / name).read_bytes(), age=1000 - position)


def copy_of(template: Path, into: Path) -> Workspace:
    shutil.copytree(template, into, symlinks=True)
    config = into / "config.toml"
    return Workspace(config, load_settings(config))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace (config relative to its folder) after one real batch of every sample: accepted invoices in
    their queues, a partial ZIP batch, a tar.gz batch, a Factur-X PDF, rejections, a duplicate invoice."""
    base = tmp_path_factory.mktemp("processed")
    config = base / "config.toml"
    config.write_text(DEFAULT_CONFIG.format(directory=FLOWS / "directory.toml"), encoding="utf-8")
    ws = Workspace(config, load_settings(config))
    assert run(ws, "init").exit_code == 0
    drop_samples(ws)
    result = run(ws, "batch")
    assert result.exit_code == 0, result.output
    return base


@pytest.fixture
def processed(template: Path, tmp_path: Path) -> Workspace:
    return copy_of(template, tmp_path / "ws-copy")


LOSSES: dict[str, Callable[[Workspace], None]] = {
    "deleted": delete,
    "truncated": truncate,
    "corrupt": corrupt,
    "cut-short": cut_short,
    "damaged": damage,
}


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_lost_store_is_rebuilt_and_nothing_is_accepted_or_delivered_twice(processed: Workspace, loss: str) -> None:
    """Deleted, emptied, not a database, cut short or damaged after a real batch: `edi batch` refuses (one line,
    exit 1); `edi store rebuild` gives back every row (flows, documents, findings, invoice keys); `edi flows` lists
    the old flows and `edi show` shows them; every sample sent again is DOUBLON by its bytes, the accepted invoice
    re-sent with other bytes is DOUBLON by its key, and the queues hold exactly what they held."""
    before, queued = rows(processed), delivered(processed)
    assert before["invoices"] and before["api_messages"] and queued
    LOSSES[loss](processed)
    drop_samples(processed)
    processed.drop("acme", "01-again.xml", INVOICE.read_bytes() + b"<!-- sent again -->\n", age=1)

    refused = edi(processed, "batch")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "`edi store rebuild`" in refused.stderr and "Traceback" not in refused.stderr

    rebuilt = run(processed, "store", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    flows = len(before["flows"])
    assert f"acknowledgements: {flows} flows" in rebuilt.output
    assert f"{len(before['invoices'])} invoice keys" in rebuilt.output
    assert f"archive: {flows} payloads matched" in rebuilt.output
    assert rows(processed) == before

    listed = run(processed, "flows", "--json", "--limit", "1000").output.splitlines()
    assert len(listed) == flows
    old_id = before["flows"][0][0]
    shown = run(processed, "show", old_id)
    assert shown.exit_code == 0 and old_id in shown.output and "rebuilt from acks/" in shown.output

    again = run(processed, "batch")
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"{len(SAMPLES) + 1} flows, ")
    assert ": 0 integrated, 0 partially integrated" in again.output
    assert delivered(processed) == queued
    after = {r[0]: r for r in rows(processed)["flows"]}
    old = {r[0] for r in before["flows"]}
    new = [r for flow_id, r in after.items() if flow_id not in old]
    by_name = {r[2]: r for r in new}
    for sender, name in SAMPLES:
        status, duplicate_of = by_name[name][10], by_name[name][11]
        empty = not (FLOWS / sender / name).stat().st_size  # IRR_VIDE_F: no bytes to be a duplicate of
        assert status == "IN_REJETE" and (empty or duplicate_of in old), (sender, name)
    resent = run(processed, "show", by_name["01-again.xml"][0]).output
    assert "DOUBLON [DUPLICATE_INVOICE]" in resent, resent


def test_a_store_that_opens_is_replaced_only_with_force(processed: Workspace) -> None:
    """A usable store is not replaced (one line, exit 1); with --force it is, with the same rows."""
    before = rows(processed)
    refused = run(processed, "store", "rebuild")
    assert refused.exit_code == 1 and "is not replaced without --force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    forced = run(processed, "store", "rebuild", "--force")
    assert forced.exit_code == 0 and forced.output.startswith("replaced ")
    assert rows(processed) == before


def test_a_store_of_another_workspace_is_replaced_with_force(processed: Workspace, tmp_path: Path) -> None:
    """A store copied from another workspace is refused; `--force` rebuilds this workspace's own, with its id."""
    other = copy_of(processed.config.parent, tmp_path / "other")
    delete(other)
    (other.root / ".edi-workspace").unlink()
    assert run(other, "init").exit_code == 1  # it has history: init does not start an empty store
    assert run(other, "store", "rebuild").exit_code == 0
    add_people(other)  # another workspace's people must never open this one
    delete(processed)
    shutil.copy(other.root / "tracking.sqlite", processed.root / "tracking.sqlite")
    assert "belongs to another workspace" in run(processed, "flows").output
    forced = run(processed, "store", "rebuild", "--force")
    assert forced.exit_code == 0
    assert "kept from the old store: nothing, as it is not this workspace's" in forced.output, forced.output
    store = Tracking(processed.root / "tracking.sqlite")
    try:
        assert store.meta(WORKSPACE_ID) == processed.settings.workspace.layout().workspace_id
        assert accounts.find_user(store, "alice") is None
        assert clients.find_client(store, "erp") is None
    finally:
        store.close()
    assert run(processed, "flows").exit_code == 0


AT = datetime(2026, 12, 6, 12, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def add_people(ws: Workspace) -> tuple[str, str]:
    """A console account, an API client with a long-lived token and a webhook, in the workspace's store, with the
    console's session key made; the token and the key."""
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        accounts.add_user(store, "alice", "operator", PASSWORD, AT)
        client, _ = clients.add_client(store, "erp", "acme", AT)
        token, _ = clients.issue_bearer_token(store, "erp", AT, 30)
        webhooks.create(
            store,
            client,
            {"callback_url": "https://hooks.example/edi", "flow_types": [], "flow_direction": None, "ack_status": None},
            b"k" * 32,
            AT,
        )
        key = accounts.session_key(store).hex()
    finally:
        store.close()
    return token, key


def has_user(ws: Workspace, name: str) -> bool:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return accounts.find_user(store, name) is not None
    finally:
        store.close()


def audit_trail(ws: Workspace) -> list[dict[str, Any]]:
    store = Tracking(ws.root / "tracking.sqlite")
    try:
        return accounts.actions(store)
    finally:
        store.close()


def test_force_keeps_the_accounts_clients_tokens_and_webhooks_of_this_workspaces_store(processed: Workspace) -> None:
    """What no file holds survives a forced rebuild of a store that still reads: alice logs in with her password,
    the client's token still opens the API, its webhook and the audit trail are there, sessions keep their key."""
    token, key = add_people(processed)
    trail = audit_trail(processed)
    forced = run(processed, "store", "rebuild", "--force")
    assert forced.exit_code == 0, forced.output
    kept = "console accounts 1; audit entries 4; API clients 1; API tokens 1; webhooks 1"
    assert f"kept from the old store: {kept}\n" in forced.output, forced.output
    assert audit_trail(processed) == trail and len(trail) == 4
    store = Tracking(processed.root / "tracking.sqlite")
    try:
        assert accounts.authenticate(store, "alice", PASSWORD) is not None
        found = clients.client_of_token(store.db.conn, token, AT)
        assert found is not None and found.name == "erp"
        assert [w["callbackUrl"] for w in webhooks.listing(store.db.conn, found)] == ["https://hooks.example/edi"]
        assert accounts.session_key(store).hex() == key
    finally:
        store.close()


def test_a_lost_store_keeps_nothing_and_says_to_add_them_again(processed: Workspace) -> None:
    """A deleted store has nothing to give: the rebuild says nothing of keeping, and the account is gone."""
    add_people(processed)
    delete(processed)
    rebuilt = run(processed, "store", "rebuild")
    assert rebuilt.exit_code == 0 and "kept from the old store" not in rebuilt.output
    assert not has_user(processed, "alice")


def test_without_its_marker_a_workspace_keeps_nothing_from_its_store(processed: Workspace) -> None:
    """With the marker lost, nothing tells this workspace's store from another's: --force keeps no account."""
    add_people(processed)
    (processed.root / ".edi-workspace").unlink()
    forced = run(processed, "store", "rebuild", "--force")
    assert forced.exit_code == 0, forced.output
    assert "kept from the old store: nothing, as this workspace has lost its marker" in forced.output, forced.output
    assert not has_user(processed, "alice")


def test_a_workspace_restored_without_marker_nor_store_gets_both_back(processed: Workspace) -> None:
    """Restored without its dotfiles and its store: the rebuild writes the marker with the new store's id."""
    before = rows(processed)
    delete(processed)
    (processed.root / ".edi-workspace").unlink()
    assert run(processed, "store", "rebuild").exit_code == 0
    layout = processed.settings.workspace.layout()
    assert layout.workspace_id is not None
    assert rows(processed) == before
    assert run(processed, "flows").exit_code == 0


def test_failed_flows_are_rebuilt_and_can_be_requeued(workspace: Workspace) -> None:
    """A flow in failed/ is recorded as failed, with its digest; `edi requeue` and a batch then accept it once."""
    workspace.drop("acme", "01.xml", INVOICE.read_bytes())
    assert edi(workspace, "batch", faults="pipeline.after_decide=raise").returncode == 1
    (failed_id,) = [p.name for p in (workspace.root / "failed").iterdir()]
    delete(workspace)
    rebuilt = run(workspace, "store", "rebuild")
    assert rebuilt.exit_code == 0 and "failed/: 1 flows recorded" in rebuilt.output
    (row,) = [r for r in rows(workspace)["flows"] if r[0] == failed_id]
    assert (row[1], row[2], row[5], row[10]) == ("acme", "01.xml", _sha256(INVOICE), "IN_EN_ATTENTE_RETRAITEMENT")
    assert failed_id in run(workspace, "requeue", "--failed").output
    result = run(workspace, "batch")
    assert result.exit_code == 0 and "1 integrated" in result.output, result.output
    assert len(workspace.queue("ville-exemple")) == 1


def test_a_flow_answered_before_a_crash_is_only_archived_after_the_rebuild(workspace: Workspace) -> None:
    """A batch killed after publishing an acknowledgement, before recording it, leaves the flow in its hand; the
    rebuild records it from the acknowledgement and leaves it to recovery, which archives it: delivered once."""
    workspace.drop("acme", "01.xml", INVOICE.read_bytes())
    crashed = edi(workspace, "batch", faults="pipeline.after_ack=crash")
    assert crashed.returncode == -9, crashed.stderr
    delete(workspace)
    rebuilt = run(workspace, "store", "rebuild")
    assert rebuilt.exit_code == 0 and "spool: 1 flows left to `edi recover` (1 answered: archived)" in rebuilt.output
    result = run(workspace, "batch")
    assert result.exit_code == 0 and "1 recovered" in result.output, result.output
    assert len(workspace.queue("ville-exemple")) == 1 and len(workspace.acks("acme")) == 1
    assert len(list((workspace.root / "archive").rglob("*_01.xml"))) == 1


def test_a_flow_claimed_before_a_crash_keeps_its_record_through_a_forced_rebuild(workspace: Workspace) -> None:
    """A batch killed while deciding leaves a claimed flow that only the store knows the sender of: --force keeps
    the old store's record of it, and recovery then takes it to its outcome (accepted, delivered once)."""
    workspace.drop("acme", "01.xml", INVOICE.read_bytes())
    assert edi(workspace, "batch", faults="pipeline.after_decide=crash").returncode == -9
    rebuilt = run(workspace, "store", "rebuild", "--force")
    assert rebuilt.exit_code == 0 and "(1 with the old store's record: decided again)" in rebuilt.output
    result = run(workspace, "batch")
    assert result.exit_code == 0 and "1 integrated" in result.output and "1 recovered" in result.output
    assert len(workspace.queue("ville-exemple")) == 1


def test_a_claimed_flow_whose_record_was_lost_is_kept_in_failed(workspace: Workspace) -> None:
    """The same crash, then the store lost: nothing says which sender the flow came from; the rebuild says so, and
    recovery keeps its bytes in failed/ for an operator (never deleted, never delivered)."""
    workspace.drop("acme", "01.xml", INVOICE.read_bytes())
    assert edi(workspace, "batch", faults="pipeline.after_decide=crash").returncode == -9
    delete(workspace)
    rebuilt = run(workspace, "store", "rebuild")
    assert "(1 with no record of their sender: moved to failed/ for an operator)" in rebuilt.output
    assert run(workspace, "batch").exit_code == 0
    (kept,) = (workspace.root / "failed").iterdir()
    assert (kept / "payload").read_bytes() == INVOICE.read_bytes()
    assert workspace.queue("ville-exemple") == []


@pytest.mark.parametrize("damage", ["cut", "incomplete"])
def test_an_unreadable_acknowledgement_stops_the_rebuild_unless_partial(processed: Workspace, damage: str) -> None:
    """An acknowledgement that reads neither as JSON nor as XML (cut short, or without its documents): refused in
    one line naming it (the store is not made: its invoices could be accepted again); --partial rebuilds without
    that flow and says so."""
    json_ack = sorted((processed.root / "acks" / "acme").glob("*.json"))[0]
    stem, sender = json_ack.stem, json_ack.parent.name
    incomplete = f'{{"flow_id": "{stem}", "sender": "{sender}", "status": "IN_INTEGRE", "documents": null}}'
    json_ack.write_bytes(b'{"flow_id": ' if damage == "cut" else incomplete.encode())
    json_ack.with_suffix(".xml").write_bytes(b"<acknowledgement")
    delete(processed)
    refused = run(processed, "store", "rebuild")
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert "1 acknowledgements cannot be read" in refused.output and str(json_ack) in refused.output
    assert not (processed.root / "tracking.sqlite").exists()
    partial = run(processed, "store", "rebuild", "--partial")
    assert partial.exit_code == 0 and "left out (unreadable acknowledgement): 1 flows" in partial.output
    assert json_ack.stem not in {r[0] for r in rows(processed)["flows"]}


def test_an_acknowledgement_whose_json_is_broken_is_read_from_its_xml(processed: Workspace) -> None:
    """The XML twin of a broken JSON acknowledgement gives the same rows."""
    before = rows(processed)
    for json_ack in (processed.root / "acks").rglob("*.json"):
        json_ack.write_bytes(json_ack.read_bytes()[:20])
    delete(processed)
    assert run(processed, "store", "rebuild").exit_code == 0
    assert rows(processed) == before


def test_an_archived_flow_without_acknowledgement_stops_the_rebuild_unless_partial(processed: Workspace) -> None:
    """A payload in the archive whose acknowledgement is gone cannot be recorded (its sender and answer are in
    the acknowledgement): refused, or left out and named with --partial."""
    json_ack = sorted((processed.root / "acks" / "opdemat").glob("*.json"))[0]
    json_ack.unlink()
    json_ack.with_suffix(".xml").unlink()
    delete(processed)
    refused = run(processed, "store", "rebuild")
    assert refused.exit_code == 1 and "1 archived flows have no acknowledgement" in refused.output
    assert run(processed, "store", "rebuild", "--partial").exit_code == 0


def test_acknowledgements_made_before_seller_keys_give_the_keys_again(processed: Workspace) -> None:
    """An acknowledgement without seller_key (made by an older edi): the key is derived from the seller id as the
    pipeline derives it (its SIREN), so the same invoice keys come back."""
    before = rows(processed)
    for json_ack in (processed.root / "acks").rglob("*.json"):
        ack = json.loads(json_ack.read_bytes())
        for doc in ack["documents"]:
            del doc["seller_key"]
        json_ack.write_text(json.dumps(ack), encoding="utf-8")
    delete(processed)
    assert run(processed, "store", "rebuild").exit_code == 0
    assert rows(processed)["invoices"] == before["invoices"]


def test_a_crash_before_the_new_store_is_in_place_leaves_no_half_store(processed: Workspace) -> None:
    """Killed once the new store is built, before its rename: no store appears, batch still refuses; the next
    rebuild removes the dead one's file from tmp/ and succeeds."""
    before = rows(processed)
    delete(processed)
    crashed = edi(processed, "store", "rebuild", faults="rebuild.before_install=crash")
    assert crashed.returncode == -9
    assert not (processed.root / "tracking.sqlite").exists()
    assert list((processed.root / "tmp").glob("tracking.sqlite.rebuild-*"))
    assert edi(processed, "batch").returncode == 1
    assert run(processed, "store", "rebuild").exit_code == 0
    assert not list((processed.root / "tmp").glob("tracking.sqlite.rebuild-*"))
    assert rows(processed) == before


def test_a_stale_write_ahead_log_is_not_applied_to_the_rebuilt_store(processed: Workspace, tmp_path: Path) -> None:
    """A -wal left beside the lost store (SQLite would replay it into the new file) is removed with it."""
    before = rows(processed)
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE stale (x)")
        conn.executemany("INSERT INTO stale VALUES (?)", [(n,) for n in range(500)])
        conn.commit()
        shutil.copy(f"{other}-wal", tmp_path / "stale-wal")
    delete(processed)
    shutil.copy(tmp_path / "stale-wal", processed.root / "tracking.sqlite-wal")
    assert run(processed, "store", "rebuild").exit_code == 0
    assert rows(processed) == before
    with closing(sqlite3.connect(processed.root / "tracking.sqlite")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_rebuild_outside_a_workspace_is_one_line(make_workspace: Callable[..., Workspace]) -> None:
    """No workspace folder at all: one line, exit 1."""
    ws = make_workspace(init=False)
    result = run(ws, "store", "rebuild")
    assert result.exit_code == 1 and "nothing to rebuild from" in result.output


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cdar_messages_the_api_shows_are_rebuilt_with_the_relays(make_workspace: Callable[..., Workspace]) -> None:
    """api_messages after `edi store rebuild`: the same rows, time included, for edi's own messages (a document's,
    a file refused whole) and a status relayed to the invoice's sender (in that sender's folder); none for a failed
    flow."""
    from edi.rebuild import rebuild
    from edi.runner import run_batch
    from tests.conftest import FixedClock
    from tests.lifecycle.statuses import status_message
    from tests.lifecycle.test_intake import PARTNERS

    ws = make_workspace(DEFAULT_CONFIG + PARTNERS)
    clock = FixedClock()
    ws.drop("opdemat", "invoice.xml", (FLOWS / "opdemat" / "01-initech-cii-basic.xml").read_bytes())
    ws.drop("acme", "empty.xml", b"")
    run_batch(ws.settings, clock=clock)
    clock.advance(10)
    ws.drop("dupont-pa", "status.xml", status_message("204"))
    run_batch(ws.settings, clock=clock)
    query = "SELECT * FROM api_messages ORDER BY message_id"
    with closing(sqlite3.connect(ws.root / "tracking.sqlite")) as conn:
        before = conn.execute(query).fetchall()
    assert sorted((r[1], r[4], r[5]) for r in before) == [
        ("acme", "cdar", "501"),
        ("opdemat", "cdar", "200"),
        ("opdemat", "relay", "204"),
    ]
    for _, sender, *_ in before:
        assert len(list((ws.root / "acks" / sender).glob("*.cdar.xml"))) >= 1
    types = "SELECT flow_id, status_flow FROM flows ORDER BY flow_id"  # the API search's stored flow type
    with closing(sqlite3.connect(ws.root / "tracking.sqlite")) as conn:
        kinds = conn.execute(types).fetchall()
    assert sorted(kind for _, kind in kinds) == [0, 0, 1]  # the invoice, the empty file; dupont-pa's status flow
    rebuild(ws.settings.workspace.layout(), force=True)
    with closing(sqlite3.connect(ws.root / "tracking.sqlite")) as conn:
        assert conn.execute(query).fetchall() == before
        assert conn.execute(types).fetchall() == kinds
