"""Read-only queries over the tracking store for the console: what each page shows, scoped to what an account sees.

Every query takes the account's ``scope`` (a sender id, or None for an operator) and applies it in SQL, before any
paging; a flow outside the scope is reported exactly as an unknown one. Opens ``<workspace>/tracking.sqlite``
read-only (one connection per thread, ``mode=ro``: the console never writes through it; opened again when another
file is put under the store's name, as ``edi store rebuild`` does); raises :class:`edi.errors.StoreError` when the
store is missing, :class:`edi.errors.WorkspaceError` when it cannot be read.
"""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from edi.errors import StoreError, WorkspaceError

BUSY_TIMEOUT_MS = 5_000
CSV_CHUNK = 1000  # rows per query while a CSV streams: each chunk its own short read
_T = TypeVar("_T")
_K = TypeVar("_K")


class Reader:
    """Read-only access to one store, a connection per thread (Starlette runs sync endpoints in a thread pool)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use, and again when the file under the store's name is no longer
        the one it reads (``edi store rebuild`` renames a new store into place: the old connection would go on
        showing the replaced file until the server restarts). Costs a ``stat`` per call."""
        try:
            st = self.path.stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise StoreError(f"the tracking store {self.path} is missing")
        file = (st.st_dev, st.st_ino)
        held: tuple[sqlite3.Connection, tuple[int, int]] | None = getattr(self._local, "held", None)
        if held is not None and held[1] != file:
            self._forget(held[0])
            held = None
        if held is None:
            try:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise WorkspaceError(f"cannot open the tracking store {self.path}: {exc}") from None
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = ON")
            held = self._local.held = (conn, file)
            with self._lock:
                self._all.append(conn)
        return held[0]

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close this thread's connection to a replaced store."""
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        conn.close()
        self._local.held = None

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """All rows of a query, as dicts."""
        with self.reading():
            return [dict(r) for r in self.connection().execute(sql, args)]

    def one(self, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of a query, None if it has none."""
        with self.reading():
            row = self.connection().execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A read: a SQLite error (a damaged or vanished store) becomes a WorkspaceError naming the store."""
        try:
            yield
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot read the tracking store {self.path}: {exc}") from None

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class Beside(Generic[_T]):
    """A read run beside the caller, on another core: in a thread of its own with a connection of its own, both
    gone once :meth:`result` returns (no thread outlives the request: Saxon's stderr is silenced only while no
    other thread runs, see edi.validate.saxon)."""

    def __init__(self, reader: Reader, work: Callable[[Reader], _T]) -> None:
        self._value: list[_T] = []
        self._error: list[BaseException] = []

        def run() -> None:
            apart = Reader(reader.path)
            try:
                self._value.append(work(apart))
            except BaseException as exc:  # handed to the caller by result()
                self._error.append(exc)
            finally:
                apart.close()

        self._thread = threading.Thread(target=run, name="edi-browse-beside", daemon=True)
        self._thread.start()

    def result(self) -> _T:
        """What the read gave (or what it raised), once its thread has ended."""
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._value[0]


def every_row(
    page: Callable[[_K | None, int], tuple[list[dict[str, Any]], _K | None]], start: _K | None, limit: int | None
) -> Iterator[dict[str, Any]]:
    """Every row of a keyset list from ``start`` (at most ``limit``), asked of ``page(cursor, size)`` a chunk of
    :data:`CSV_CHUNK` at a time: a CSV export in bounded memory, each chunk its own short read."""
    cursor, left = start, limit
    while left is None or left > 0:
        rows, cursor = page(cursor, CSV_CHUNK if left is None else min(CSV_CHUNK, left))
        yield from rows
        if left is not None:
            left -= len(rows)
        if cursor is None:
            return


def scoped(scope: str | None, column: str = "sender") -> tuple[str, list[Any]]:
    """The SQL condition that keeps a scope's rows (``1`` for an operator) and its arguments."""
    return (f"{column} = ?", [scope]) if scope is not None else ("1", [])


class Where:
    """A WHERE clause built condition by condition, the account's scope first, with its bound arguments."""

    def __init__(self, scope: str | None, column: str = "sender") -> None:
        cond, args = scoped(scope, column)
        self.conditions = [cond]
        self.args: list[Any] = list(args)

    def add(self, sql: str, *args: Any) -> None:
        """One more condition (ANDed), with the values its placeholders take."""
        self.conditions.append(sql)
        self.args.extend(args)

    def sql(self) -> str:
        """The conditions joined with AND."""
        return " AND ".join(self.conditions)
