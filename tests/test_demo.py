"""The demo (demo.sh, flows/drop.py, config.toml): a new user's first run answers every sample, as flows/expected.toml
says, and leaves nothing waiting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edi.lifecycle.validate import check
from flows.drop import LEFT_LONG_AGO, drop, samples
from tests.conftest import EXPECTED, EXPECTED_LATER, FLOWS, REPO, assert_expected_answer

LATER = EXPECTED_LATER  # what the second batch answers, once the later samples are dropped
STEPS = [".venv/bin/edi init", ".venv/bin/python flows/drop.py var/inbox", "sleep 2", "echo", ".venv/bin/edi batch"]
LATER_STEPS = [".venv/bin/python flows/drop.py --later var/inbox", "sleep 2", ".venv/bin/edi batch"]


def demo_lines() -> list[str]:
    """demo.sh's lines, without their comments."""
    return [line.split("#")[0].strip() for line in (REPO / "demo.sh").read_text(encoding="utf-8").splitlines()]


def demo_steps() -> list[str]:
    """The commands demo.sh runs from the workspace's creation to its batch."""
    lines = demo_lines()
    return lines[lines.index(STEPS[0]) : lines.index(STEPS[-1]) + 1]


def later_steps() -> list[str]:
    """The commands demo.sh runs to drop the later samples and answer them."""
    lines = demo_lines()
    start = lines.index(LATER_STEPS[0])
    return lines[start : start + len(LATER_STEPS)]


def edi(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real edi command, run in ``folder`` with the configuration there, as demo.sh runs it."""
    env = {**os.environ, "EDI_CONFIG": "config.toml"}
    command = [sys.executable, "-m", "edi", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_demo_answers_every_sample_as_expected_toml_says(tmp_path: Path) -> None:
    """demo.sh's steps (edi init, flows/drop.py, sleep 2, edi batch) on the shipped config.toml: every sample is
    answered in the first run, with the answer flows/expected.toml gives, and no file is left stalled or young."""
    assert demo_steps() == STEPS  # what this test runs is what demo.sh runs
    shutil.copyfile(REPO / "config.toml", tmp_path / "config.toml")  # unchanged: relative paths resolve here
    (tmp_path / "flows").mkdir()
    shutil.copyfile(FLOWS / "directory.toml", tmp_path / "flows" / "directory.toml")
    assert edi(tmp_path, "init").returncode == 0
    dropped = subprocess.run(
        [sys.executable, str(FLOWS / "drop.py"), "var/inbox"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert dropped.stdout.startswith("dropped 21 sample files: 16 in var/inbox/acme/, 5 in var/inbox/opdemat/\n")
    time.sleep(2)

    batch = edi(tmp_path, "batch")

    assert batch.returncode == 0, batch.stderr
    assert batch.stdout == "21 flows, 22 documents: 8 integrated, 1 partially integrated, 12 rejected, 0 failed\n"
    answered = {}
    for sender in EXPECTED:
        for path in (tmp_path / "var" / "acks" / sender).glob("*.json"):
            ack = json.loads(path.read_text(encoding="utf-8"))
            answered[(sender, ack["file_name"])] = ack
    assert sorted(answered) == sorted((sender, name) for sender, files in EXPECTED.items() for name in files)
    for (sender, name), ack in answered.items():
        assert_expected_answer(ack, EXPECTED[sender][name])
    assert not [p for p in (tmp_path / "var" / "inbox").rglob("*") if p.is_file()]

    # later: the recipients' platform returns statuses about the invoices just delivered
    assert later_steps() == LATER_STEPS
    dropped = subprocess.run(
        [sys.executable, str(FLOWS / "drop.py"), "--later", "var/inbox"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert dropped.stdout == "dropped 6 sample files: 6 in var/inbox/exemple-pa/\n"
    time.sleep(2)

    batch = edi(tmp_path, "batch")

    assert batch.returncode == 0, batch.stderr
    assert batch.stdout == "6 flows, 6 documents: 3 integrated, 0 partially integrated, 3 rejected, 0 failed\n"
    for sender, files in LATER.items():
        acks = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "var" / "acks" / sender).glob("*.json")]
        assert sorted(a["file_name"] for a in acks) == sorted(files)
        for ack in acks:
            want = files[ack["file_name"]]
            assert_expected_answer(ack, want)
            relay = ack["documents"][0]["lifecycle"]["relay"]
            if relay:
                message = (tmp_path / "var" / "acks" / want["relayed_to"] / relay).read_bytes()
                assert [f for f in check(message) if f.fatal] == []
    assert not [p for p in (tmp_path / "var" / "inbox").rglob("*") if p.is_file()]


def test_drop_copies_every_sample_and_dates_back_only_the_abandoned_upload(tmp_path: Path) -> None:
    """flows/drop.py copies each sender's samples byte for byte (no __pycache__ or dot folder is a sender), dated now,
    except the files of LEFT_LONG_AGO, dated that long back."""
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows, ignore=shutil.ignore_patterns("*.py", "*.md", "*.toml"))
    (flows / "__pycache__").mkdir()
    (flows / "__pycache__" / "drop.cpython-311.pyc").write_bytes(b"\x00")
    (flows / ".hidden").mkdir()
    (flows / ".hidden" / "x.xml").write_bytes(b"<x/>")
    before = time.time()

    dropped = drop(tmp_path / "inbox", flows)

    assert [(p.parent.name, p.name) for p in dropped] == [(s, p.name) for s, p in samples(FLOWS)]
    assert {p.parent.name for p in dropped} == set(EXPECTED)
    for path in dropped:
        assert path.read_bytes() == (FLOWS / path.parent.name / path.name).read_bytes()
        back = LEFT_LONG_AGO.get((path.parent.name, path.name), 0.0)
        assert abs(path.stat().st_mtime - (before - back)) < 60
    assert LEFT_LONG_AGO == {("acme", "12-empty.xml"): 3600.0}
