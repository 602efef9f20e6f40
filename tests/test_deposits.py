"""The way of a deposit into an inbox (edi.deposits): its file name there, the upload written under tmp/deposits
and locked while its writer lives, and the recovery of what a dead writer left."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edi.deposits import Upload, deposits_folder, inbox_name, recover_deposits, safe_name
from edi.tracking import Tracking
from edi.workspace import NAME_MAX, Layout
from tests.test_tracking import deposit_row

FLOW = "20261206T120000000000-abcdef"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "ws")
    layout.create(["acme"])
    return layout


@pytest.fixture
def store(layout: Layout) -> Iterator[Tracking]:
    tracking = Tracking(layout.database, create=True)
    yield tracking
    tracking.close()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("a\nb\x00c.xml", "a_b_c.xml"),
        ("..", "_"),
        ("", "_"),
        ("facture \u00e9t\u00e9.xml", "facture \u00e9t\u00e9.xml"),
        ("\ud800x.xml", "\ufffdx.xml"),
    ],
    ids=["path", "control", "dotdot", "empty", "accents", "surrogate"],
)
def test_the_clients_name_is_made_a_file_name(name: str, shown: str) -> None:
    """What a file name cannot hold, and control characters, become _; a lone surrogate U+FFFD."""
    assert safe_name(name) == shown


def test_the_inbox_name_holds_the_flow_id_fits_a_file_name_and_is_never_an_upload(tmp_path: Path) -> None:
    """<flow_id>_<name>, cut to 255 bytes keeping the extension; the flow id alone when the name would look like a
    file still being written (an ignore pattern, or a dotfile can never be: the flow id comes first)."""
    assert inbox_name(FLOW, "a/b.xml", ("*.tmp",)) == f"{FLOW}_a_b.xml"
    assert inbox_name(FLOW, "x.tmp", ("*.tmp",)) == FLOW
    long = inbox_name(FLOW, "\u00e9" * 255 + ".xml", ())
    assert len(os.fsencode(long)) <= NAME_MAX and long.startswith(FLOW) and long.endswith(".xml")
    (tmp_path / long).write_bytes(b"")  # a name the filesystem takes


def test_an_upload_is_placed_in_the_inbox_and_leaves_nothing_behind(layout: Layout) -> None:
    """An upload is written to tmp/deposits/<flow_id>, then renamed into the inbox: nothing left in tmp/deposits."""
    upload = Upload(layout, FLOW)
    upload.write(b"<x/>")
    upload.make_durable()
    assert (deposits_folder(layout) / FLOW).read_bytes() == b"<x/>" and upload.size == 4
    upload.place(layout.sender_inbox("acme") / f"{FLOW}_x.xml")
    upload.close()
    assert list(deposits_folder(layout).iterdir()) == []
    assert (layout.sender_inbox("acme") / f"{FLOW}_x.xml").read_bytes() == b"<x/>"


def test_an_upload_let_go_unplaced_is_removed_unless_recorded(layout: Layout) -> None:
    """close() removes an upload that was refused; one recorded (its row committed) is kept for recovery."""
    refused = Upload(layout, FLOW)
    refused.close()
    kept = Upload(layout, FLOW + "0")
    kept.recorded = True
    kept.close()
    assert [p.name for p in deposits_folder(layout).iterdir()] == [FLOW + "0"]


def test_recovery_leaves_an_upload_its_writer_still_holds(layout: Layout, store: Tracking) -> None:
    """An upload whose writer is alive (its lock held) is left alone, recorded or not."""
    upload = Upload(layout, FLOW)
    upload.write(b"<x/>")
    store.record_deposit(deposit_row(FLOW))
    done = recover_deposits(layout, store)
    assert (done.placed, done.removed, done.left) == ([], [], {})
    assert (deposits_folder(layout) / FLOW).exists()
    upload.close()


def dead_upload(layout: Layout, flow_id: str, data: bytes) -> None:
    """An upload whose writer died (its descriptor closed without removing the file: the lock goes with it)."""
    upload = Upload(layout, flow_id)
    upload.write(data)
    upload.recorded = True  # as if killed: close() keeps the file
    upload.close()


def test_recovery_places_a_recorded_upload_and_removes_an_unrecorded_one(layout: Layout, store: Tracking) -> None:
    """A dead writer's upload with its row (crash between the commit and the rename) is renamed into its sender's
    inbox under the row's inbox name; one without a row (crash before the commit: no 202 was given) is removed."""
    dead_upload(layout, FLOW, b"<recorded/>")
    dead_upload(layout, FLOW + "1", b"<not recorded/>")
    store.record_deposit(deposit_row(FLOW))
    done = recover_deposits(layout, store)
    assert (done.placed, done.removed, done.left) == ([FLOW], [FLOW + "1"], {})
    assert list(deposits_folder(layout).iterdir()) == []
    assert (layout.sender_inbox("acme") / f"{FLOW}_invoice.xml").read_bytes() == b"<recorded/>"
    assert recover_deposits(layout, store).placed == []  # nothing more to do


def test_recovery_never_replaces_a_file_and_says_what_it_left(layout: Layout, store: Tracking) -> None:
    """A recorded upload whose inbox name is taken (by anything) stays in tmp/deposits, said in ``left``."""
    dead_upload(layout, FLOW, b"<recorded/>")
    store.record_deposit(deposit_row(FLOW))
    (layout.sender_inbox("acme") / f"{FLOW}_invoice.xml").write_bytes(b"someone else's")
    done = recover_deposits(layout, store)
    assert done.placed == [] and FLOW in done.left and "File exists" in done.left[FLOW]
    assert (layout.sender_inbox("acme") / f"{FLOW}_invoice.xml").read_bytes() == b"someone else's"
    assert (deposits_folder(layout) / FLOW).read_bytes() == b"<recorded/>"


def test_recovery_without_a_deposits_folder_does_nothing(layout: Layout, store: Tracking) -> None:
    """A workspace where nothing was ever deposited: nothing to recover."""
    done = recover_deposits(layout, store)
    assert (done.placed, done.removed, done.left) == ([], [], {})
