"""The workspace layout's path arithmetic: where a finished flow's bytes are archived."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edi.workspace import NAME_MAX, Layout, archive_name

FLOW_ID = "20261126T204626483912-9f3ab2"


@pytest.mark.parametrize(
    "name",
    ["FA-2026-0001.xml", "facture été.pdf", os.fsdecode(b"n\xb01.xml"), "no-extension", ".hidden", "a" * 200],
)
def test_a_name_that_fits_is_kept_whole_after_the_flow_id(name: str) -> None:
    """<flow_id>_<name>, the name's bytes exactly as they came."""
    assert archive_name(FLOW_ID, name) == f"{FLOW_ID}_{name}"


@pytest.mark.parametrize(
    ("name", "ending"),
    [("é" * 120 + ".xml", ".xml"), ("x" * 300, "x"), ("y" * 240 + "." + "z" * 40, "y"), ("w" * 250 + ".tar.gz", ".gz")],
)
def test_a_name_too_long_keeps_its_start_and_its_extension_within_name_max(name: str, ending: str) -> None:
    """Cut to NAME_MAX bytes, keeping a short extension; never a broken multi-byte character for a valid name."""
    made = archive_name(FLOW_ID, name)
    raw = os.fsencode(made)
    assert len(raw) <= NAME_MAX and made.startswith(f"{FLOW_ID}_") and made.endswith(ending)
    kept = made[len(FLOW_ID) + 1 :]
    assert name.startswith(kept.removesuffix(ending)) and "\udcc3" not in made  # whole characters only


def test_archived_is_the_day_folder_of_the_received_time_in_utc(tmp_path: Path) -> None:
    """The day is the UTC day the flow was received."""
    layout = Layout(tmp_path)
    late = datetime.fromisoformat("2026-11-26T23:30:00-02:00")  # already the 27th in UTC
    assert layout.archived(FLOW_ID, late, "a.xml") == tmp_path / "archive" / "2026" / "11" / "27" / f"{FLOW_ID}_a.xml"
    assert layout.archive_day(datetime(2026, 1, 2, tzinfo=UTC)) == tmp_path / "archive" / "2026" / "01" / "02"
