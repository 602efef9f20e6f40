"""Crash safety, proven: `edi batch` killed with SIGKILL at random moments, over and over, loses nothing.

The short version of tools/torture.py (which runs it for longer): the real command, really killed (its whole process
group, workers included), then one run to the end, then every invariant checked.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from edi.runner import POOL_FILES
from tools.torture import PARTNER, Drop, _place, check, drop_files, make_workspace, run_to_end, status_message, torture


# with 2 workers, more files than runner.POOL_FILES: the worker processes start (and are killed with the batch)
@pytest.mark.parametrize(("workers", "seed", "files"), [(1, 3, 90), (2, 5, 300)])
def test_random_sigkills_lose_nothing_and_answer_every_file_once(
    tmp_path: Path, workers: int, seed: int, files: int
) -> None:
    """A dozen runs killed at random moments, files dropped in between, then a run to the end: every file has
    exactly one final acknowledgement, every accepted document is in its queue once, nothing is left in the inbox or
    the spool, and the store agrees with the files."""
    assert workers == 1 or files > POOL_FILES
    problems, counts = torture(tmp_path, rounds=12, files=files, workers=workers, seed=seed, longest=2.5)
    assert problems == [], "\n".join(problems[:20])
    assert counts["killed"] >= 3 and counts["mid_flow"] >= 1  # kills did land, some with flows in hand


def test_the_checker_sees_what_goes_wrong(tmp_path: Path) -> None:
    """The invariants can fail: a lost acknowledgement, a second delivery, a file left in the inbox, a lost or
    partial CDAR message and an orphan one are all reported (so that the test above means something)."""
    config, root = make_workspace(tmp_path)
    drop = Drop()
    drop_files(root, drop, 12, random.Random(1))
    assert run_to_end(config, 1).returncode == 0
    assert check(root, drop) == []
    lost = next((root / "acks" / "acme").glob("*.json"))
    lost.unlink()
    queued = next(p for p in (root / "queues").rglob("new/*") if p.is_file())
    (queued.parent / (queued.name + "-copy")).write_bytes(queued.read_bytes())
    (root / "inbox" / "acme" / "stuck.xml").write_bytes(b"<x/>")
    lost_ack_cdars = set((root / "acks" / "acme").glob(lost.name.removesuffix(".json") + ".*.cdar.xml"))
    first, second, *_ = sorted(set((root / "acks" / "acme").glob("*.cdar.xml")) - lost_ack_cdars)
    first.unlink()
    second.write_bytes(second.read_bytes()[:200])
    problems = check(root, drop)
    assert not [p for p in problems if "relay" in p or "lifecycle" in p or "recorded" in p]
    assert any(f"{first.name}: CDAR message missing or partial" in p for p in problems)
    assert any(f"{second.name}: CDAR message missing or partial" in p for p in problems)
    assert any("CDAR message of no acknowledged document" in p for p in problems)  # the lost ack's messages
    assert any("0 acknowledgements" in p for p in problems)
    assert any("-copy: 1 in the queue, 0 accepted" in p for p in problems)
    assert any("stuck.xml: left behind" in p for p in problems)
    assert any("with no acknowledgement" in p for p in problems)


def test_the_checker_sees_what_goes_wrong_with_statuses(tmp_path: Path) -> None:
    """Recipients' status flows: with every invariant holding after a run, a lost relay, a truncated one, a relay
    with no recorded row, a held row left behind and a status recorded out of order are each reported."""
    config, root = make_workspace(tmp_path)
    drop = Drop()
    rng = random.Random(7)
    drop_files(root, drop, 10, rng)
    assert run_to_end(config, 1).returncode == 0
    for number, *rest in list(drop.invoices):  # a 204 then a 211 about every invoice: new, relayed, recorded
        for status in ("204", "211"):
            data = status_message((number, *rest), random.Random(0), (status, None))
            _place(root, drop, PARTNER, f"s-{number}-{status}.xml", data)
        assert run_to_end(config, 1).returncode == 0
    assert check(root, drop) == []
    db = sqlite3.connect(root / "tracking.sqlite")
    try:
        rows = list(db.execute("SELECT id, relay, flow_id, idx FROM lifecycle ORDER BY id"))
        assert len(rows) >= 4
        relays = {r[1]: next((root / "acks").glob(f"*/{r[1]}")) for r in rows}
        relays[rows[0][1]].unlink()
        relays[rows[1][1]].write_bytes(relays[rows[1][1]].read_bytes()[:150])
        db.execute("DELETE FROM lifecycle WHERE id = ?", [rows[2][0]])
        db.execute("UPDATE lifecycle SET state = 'held' WHERE id = ?", [rows[3][0]])
        db.execute(
            "INSERT INTO lifecycle (flow_id, idx, status, source_flow_id, source_idx, relay, state) "
            "VALUES (?, ?, '209', 'X', 1, 'X.0001.cdar.xml', 'recorded')",
            [rows[0][2], rows[0][3]],
        )
        db.commit()
    finally:
        db.close()
    problems = check(root, drop)
    assert any(f"{rows[0][1]}: CDAR message missing or partial" in p for p in problems)
    assert any(f"{rows[1][1]}: CDAR message missing or partial" in p for p in problems)
    assert any(f"{rows[2][1]}: relayed with no recorded row" in p for p in problems)
    assert any("a lifecycle row still held" in p for p in problems)
    assert any("status 209 recorded after" in p for p in problems)
