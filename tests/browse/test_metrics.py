"""What /metrics reads: folder depths (dotfiles skipped, oldest age, bounded), the spool's areas, the store's counts
with the rules' label cardinality capped."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from edi.browse import Reader
from edi.browse.metrics import Depth, folder_depth, inbox_depths, seconds_between, spool_depths, store_counts
from tests.conftest import Workspace
from tests.console_store import NOW, store_of


def touch(path: Path, age: float) -> Path:
    """A file (or the folder holding a file named payload) aged ``age`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


def test_a_folder_counts_its_files_skips_dotfiles_and_knows_the_oldest(tmp_path: Path) -> None:
    """Files count, dotfiles and sub-folders do not; the oldest file's age comes from its modification time."""
    touch(tmp_path / "a.xml", 30)
    touch(tmp_path / "b.xml", 300)
    touch(tmp_path / ".partial.xml", 9000)
    (tmp_path / "sub").mkdir()
    depth = folder_depth(tmp_path)
    assert depth.files == 2 and not depth.truncated
    assert 299 <= depth.age(time.time()) <= 310
    assert folder_depth(tmp_path, files_only=False).files == 3
    assert folder_depth(tmp_path / "missing") == Depth()
    assert Depth().age(time.time()) == 0.0


def test_counting_stops_at_the_budget(tmp_path: Path) -> None:
    """A folder holding more entries than the budget is counted that far and says it was cut short."""
    for n in range(12):
        touch(tmp_path / f"{n}.xml", 10)
    depth = folder_depth(tmp_path, budget=5)
    assert depth.truncated and depth.files == 5


def test_inboxes_and_spool_areas(workspace: Workspace) -> None:
    """Each declared sender's inbox; the spool's active flows (a hand's lock file is not one), requeued and failed
    flows (each a folder)."""
    layout = workspace.settings.workspace.layout()
    touch(layout.sender_inbox("acme") / "one.xml", 120)
    touch(layout.sender_inbox("acme") / "two.xml", 60)
    touch(layout.active / "123-abc" / "20261126T110000000000-aaaaaa", 50)
    touch(layout.active / "123-abc" / "lock", 5000)
    touch(layout.failed / "20261126T100000000000-bbbbbb" / "payload", 10)
    touch(layout.failed / "20261126T090000000000-cccccc" / "payload", 10)
    inboxes = inbox_depths(layout, ["acme", "opdemat"])
    assert (inboxes["acme"].files, inboxes["opdemat"].files) == (2, 0)
    assert 119 <= inboxes["acme"].age(time.time()) < 130
    spool = spool_depths(layout)
    assert {k: v.files for k, v in spool.items()} == {"active": 1, "requeued": 0, "failed": 2}
    assert 49 <= spool["active"].age(time.time()) < 60


def test_store_counts_cap_the_rules_and_sum_the_rest(workspace: Workspace) -> None:
    """Flows by status, documents by status and reason, fatal findings of the most frequent rules (warnings left
    out), the rest summed; each job's last run."""
    with store_of(workspace) as s:
        f1 = s.flow("acme", NOW - timedelta(hours=1), "IN_REJETE")
        f2 = s.flow("acme", NOW - timedelta(hours=2), "IN_INTEGRE")
        s.document(f1, 1, status="213", reason="REJ_SEMAN")
        s.document(f2, 1)
        for rule, n in (("R-A", 3), ("R-B", 2), ("R-C", 1), ("R-D", 1)):
            for _ in range(n):
                s.finding(f1, rule)
        s.finding(f1, "R-W", severity="warning")
        s.run("batch", NOW - timedelta(hours=3), 5)
        s.run("batch", NOW - timedelta(hours=1), 12.5, "failed")
        s.run("report", NOW - timedelta(hours=2), 1)
    reader = Reader(workspace.root / "tracking.sqlite")
    try:
        counts = store_counts(reader, top=2)
    finally:
        reader.close()
    assert counts["flows"] == {"IN_REJETE": 1, "IN_INTEGRE": 1}
    assert sorted(counts["documents"]) == [("200", "", 1), ("213", "REJ_SEMAN", 1)]
    assert counts["fatal_rules"] == [("R-A", 3), ("R-B", 2)]
    assert (counts["fatal_other"], counts["fatal_other_rules"]) == (2, 2)
    runs = {r["job"]: r for r in counts["runs"]}
    assert runs["batch"]["outcome"] == "failed"
    assert seconds_between(runs["batch"]["started_at"], runs["batch"]["finished_at"]) == 12.5
    assert seconds_between(None, "2026-11-26T00:00:00Z") is None and seconds_between("x", "y") is None
