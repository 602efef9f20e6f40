"""edi.browse.Reader: read-only connections, one per thread, that follow a store renamed into place."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from edi.browse import Reader
from edi.errors import StoreError


def make_store(path: Path, numbers: range) -> None:
    """A SQLite file at ``path`` holding table ``t`` with ``numbers``."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in numbers])
    conn.close()


def total(reader: Reader) -> int:
    return int(reader.rows("SELECT sum(n) AS total FROM t")[0]["total"])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "tracking.sqlite"
    make_store(path, range(10))
    return path


def test_a_store_renamed_into_place_is_read_at_the_next_query(store: Path) -> None:
    """As `edi store rebuild` does, a new file renamed under the store's name is what the next read sees (the old
    connection would have gone on reading the replaced file), and the old connection is closed."""
    reader = Reader(store)
    assert total(reader) == 45
    old = reader.connection()
    rebuilt = store.with_name("rebuilt.sqlite")
    make_store(rebuilt, range(100))
    rebuilt.rename(store)
    assert total(reader) == 4950
    assert reader.connection() is not old
    with pytest.raises(sqlite3.ProgrammingError):  # closed, not left open on the replaced file
        old.execute("SELECT 1")
    reader.close()


def test_the_same_file_keeps_its_connection(store: Path) -> None:
    """While the file under the store's name is the same one, each thread keeps its one connection, and sees rows
    written meanwhile."""
    reader = Reader(store)
    first = reader.connection()
    with sqlite3.connect(store) as conn:
        conn.execute("INSERT INTO t VALUES (1000)")
    conn.close()
    assert total(reader) == 1045
    assert reader.connection() is first
    reader.close()


def test_each_thread_follows_the_new_store_on_its_own(store: Path) -> None:
    """A thread that had a connection to the replaced store gets one to the new store at its next read."""
    reader = Reader(store)
    seen: list[int] = []
    go = threading.Event()
    read_once = threading.Event()

    def thread() -> None:
        seen.append(total(reader))
        read_once.set()
        go.wait(10)
        seen.append(total(reader))

    worker = threading.Thread(target=thread)
    worker.start()
    assert read_once.wait(10)
    rebuilt = store.with_name("rebuilt.sqlite")
    make_store(rebuilt, range(3))
    rebuilt.rename(store)
    go.set()
    worker.join(10)
    assert seen == [45, 3]
    reader.close()


def test_a_store_gone_since_is_missing_not_read_from_the_unlinked_file(store: Path) -> None:
    """A store removed after the first read is reported missing at the next one, not read from the unlinked file."""
    reader = Reader(store)
    assert total(reader) == 45
    store.unlink()
    with pytest.raises(StoreError, match="missing"):
        reader.rows("SELECT sum(n) AS total FROM t")
    reader.close()
