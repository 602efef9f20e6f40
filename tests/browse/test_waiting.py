"""The look at what waits in the inboxes and the spool (edi.browse.waiting): ages, files waiting too long, entries
never taken, the spool's folders, a sender's scope, and the bound on a huge folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

from edi.browse import waiting
from tests.conftest import Workspace


def aged(path: Path, seconds: float, data: bytes = b"<x/>") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    moment = time.time() - seconds
    os.utime(path, (moment, moment))
    return path


def test_inbox_ages_and_problems(workspace: Workspace) -> None:
    """Files a run would take are aged; past the threshold (the grace, at least 5 minutes) a file is "not taken"
    and an upload still named as in progress "not finished"; dotfiles and young uploads are left out; a FIFO, a
    sub-folder and a folder that is no declared sender's are never taken."""
    layout = workspace.settings.workspace.layout()
    inbox = workspace.inbox("acme")
    aged(inbox / "fresh.xml", 10)
    aged(inbox / "late.xml", 3600)
    aged(inbox / "upload.xml.part", 3600)
    aged(inbox / "young.xml.part", 10)
    aged(inbox / ".hidden", 9999)
    os.mkfifo(inbox / "pipe")
    (inbox / "folder").mkdir()
    (layout.inbox / "stranger").mkdir()
    found = waiting.look(workspace.settings, layout, time.time(), None)
    assert found.threshold == waiting.MIN_THRESHOLD  # the test config's grace is 0
    acme = next(p for p in found.places if p.name == "inbox/acme")
    assert sorted(round(a, -1) for a in acme.ages) == [10, 3600]
    assert {(p.name, p.why) for p in found.stalled} == {
        ("late.xml", "waiting, not taken by a run"),
        ("upload.xml.part", "upload not finished: its name says in progress"),
    }
    assert found.stalled_count == 2
    assert {(p.place, p.name) for p in found.unclaimable} == {
        ("inbox/acme", "pipe"),
        ("inbox/acme", "folder"),
        ("inbox", "stranger"),
    }
    assert [p.name for p in found.places] == [
        "inbox/acme",
        "inbox/opdemat",
        "spool/active",
        "spool/requeued",
        "failed",
    ]


def test_spool(workspace: Workspace) -> None:
    """The spool's hands (their lock file is not a flow), requeued/ and failed/ are aged for an operator."""
    layout = workspace.settings.workspace.layout()
    aged(layout.active / "123-abc" / "20260310T120000000000-aaaaaa", 120)
    aged(layout.active / "123-abc" / "lock", 120, b"")
    aged(layout.requeued / "20260310T110000000000-bbbbbb" / "payload", 60)
    aged(layout.failed / "20260310T100000000000-cccccc" / "payload", 60)
    aged(layout.failed / "20260310T090000000000-dddddd" / "payload", 60)
    found = waiting.look(workspace.settings, layout, time.time(), None)
    counts = {p.name: len(p.ages) for p in found.places}
    assert counts == {"inbox/acme": 0, "inbox/opdemat": 0, "spool/active": 1, "spool/requeued": 1, "failed": 2}


def test_sender_sees_its_inbox_only(workspace: Workspace) -> None:
    """A sender account's look holds its own inbox: no other inbox, no spool, no stray folder, no other name."""
    layout = workspace.settings.workspace.layout()
    aged(workspace.inbox("acme") / "mine.xml", 3600)
    aged(workspace.inbox("opdemat") / "theirs.xml", 3600)
    os.mkfifo(workspace.inbox("opdemat") / "their-pipe")
    (layout.inbox / "stranger").mkdir()
    aged(layout.failed / "20260310T100000000000-cccccc" / "payload", 60)
    found = waiting.look(workspace.settings, layout, time.time(), "acme")
    assert [p.name for p in found.places] == ["inbox/acme"]
    assert [p.name for p in found.stalled] == ["mine.xml"] and found.unclaimable == []
    assert "opdemat" not in repr(found) and "stranger" not in repr(found)


def test_symlinked_inbox(workspace: Workspace, tmp_path: Path) -> None:
    """An inbox that is a symbolic link is reported (a run never follows it) and not looked into."""
    inbox = workspace.inbox("acme")
    elsewhere = tmp_path / "elsewhere"
    aged(elsewhere / "a.xml", 3600)
    inbox.rmdir()
    inbox.symlink_to(elsewhere)
    found = waiting.look(workspace.settings, workspace.settings.workspace.layout(), time.time(), None)
    assert [p.why for p in found.unclaimable] == [
        "the inbox is a symbolic link: edi never follows links, nothing in it is taken"
    ]
    assert found.places[0].ages == []


def test_huge_inbox_is_bounded(workspace: Workspace) -> None:
    """Past MAX_ENTRIES entries an inbox is counted up to that and said to hold more; at most MAX_NAMES problems
    are named, all are counted."""
    inbox = workspace.inbox("acme")
    old = time.time() - 3600
    for n in range(waiting.MAX_ENTRIES + 20):
        path = inbox / f"f{n:05d}.xml"
        path.write_bytes(b"")
        os.utime(path, (old, old))
    found = waiting.look(workspace.settings, workspace.settings.workspace.layout(), time.time(), "acme")
    assert found.truncated and found.places[0].truncated
    assert len(found.places[0].ages) == waiting.MAX_ENTRIES
    assert found.stalled_count == waiting.MAX_ENTRIES and len(found.stalled) == waiting.MAX_NAMES
