"""edi.browse.Beside: a read on another core that leaves no thread and no connection behind."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from edi.browse import Beside, Reader
from edi.errors import WorkspaceError


@pytest.fixture
def reader(tmp_path: Path) -> Reader:
    path = tmp_path / "store.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(10)])
    return Reader(path)


def test_a_read_beside_gives_its_rows_and_no_thread_outlives_it(reader: Reader) -> None:
    """The read's value comes back, and once it has, no thread of it is left (Saxon's stderr is silenced only
    while edi runs a single thread)."""
    before = threading.active_count()
    beside = Beside(reader, lambda apart: apart.rows("SELECT sum(n) AS total FROM t"))
    assert beside.result() == [{"total": 45}]
    assert threading.active_count() == before
    reader.close()


def test_what_a_read_beside_raises_reaches_the_caller(reader: Reader) -> None:
    """An error of the read (a table that is not there) is raised by result(), as the read would raise it."""
    beside = Beside(reader, lambda apart: apart.rows("SELECT * FROM missing"))
    with pytest.raises(WorkspaceError, match="no such table"):
        beside.result()
