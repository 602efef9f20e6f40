"""Hand-built stores and logged-in clients for the console's tests: rows written with plain SQL into the real store
that ``edi init`` made, accounts with sessions made the way ``/login`` makes them (without Argon2's cost)."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from edi.browse.flows import stamp
from edi.clock import iso
from edi.web import auth
from edi.web.app import create_app
from tests.conftest import FixedClock, Workspace

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def flow_id(at: datetime) -> str:
    """A flow id made at ``at`` (claim time to the microsecond, and a random suffix)."""
    return f"{stamp(at)}-{secrets.token_hex(3)}"


class Store:
    """Rows written straight into a workspace's store (its schema and indexes are edi's own)."""

    def __init__(self, workspace: Workspace) -> None:
        self.conn = sqlite3.connect(workspace.root / "tracking.sqlite", isolation_level=None)

    def close(self) -> None:
        self.conn.close()

    def flow(self, sender: str, at: datetime, status: str = "IN_REJETE", **columns: Any) -> str:
        """A flow of ``sender`` received at ``at``; its id."""
        row = {
            "flow_id": flow_id(at),
            "sender": sender,
            "file_name": f"{sender}-{at:%H%M%S%f}.xml",
            "received_at": iso(at),
            "processed_at": iso(at + timedelta(seconds=1)),
            "status": status,
            "documents_total": 1,
            "documents_accepted": 1 if status == "IN_INTEGRE" else 0,
            **columns,
        }
        self._insert("flows", row)
        return str(row["flow_id"])

    def document(self, flow: str, idx: int = 1, **columns: Any) -> None:
        """A document of ``flow``."""
        row = {"flow_id": flow, "idx": idx, "name": f"doc-{idx}.xml", "status": "200", **columns}
        self._insert("documents", row)

    def finding(
        self,
        flow: str,
        rule: str | None,
        *,
        idx: int = 1,
        severity: str = "fatal",
        layer: str = "en16931",
        message: str | None = None,
        version: str | None = "CEN EN 16931 UBL 1.3.16",
        code: str = "REJ_SEMAN",
    ) -> None:
        """A finding of ``rule`` on a document of ``flow``."""
        self._insert(
            "findings",
            {
                "flow_id": flow,
                "idx": idx,
                "code": code,
                "reason": code,
                "rule": rule,
                "layer": layer,
                "severity": severity,
                "message": message if message is not None else f"[{rule}] text of the rule",
                "rule_set_version": version,
            },
        )

    def run(self, job: str, started: datetime, seconds: float, outcome: str = "ok") -> None:
        """A run of a scheduled job."""
        self._insert(
            "runs",
            {
                "job": job,
                "started_at": iso(started),
                "finished_at": iso(started + timedelta(seconds=seconds)),
                "outcome": outcome,
                "detail": "",
            },
        )

    def account(self, name: str, sender: str | None = None) -> None:
        """An account (an operator's, or a sender's when ``sender`` is given)."""
        self._insert(
            "users",
            {
                "name": name,
                "role": "sender" if sender else "operator",
                "sender": sender,
                "password_hash": "not used: the tests make sessions directly",
                "created_at": iso(NOW - timedelta(days=1)),
            },
        )

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        marks = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", list(row.values()))

    def wipe(self) -> None:
        """Remove every flow, document, finding and lifecycle row (a fresh store for the next example)."""
        for table in ("lifecycle", "findings", "documents", "flows"):
            self.conn.execute(f"DELETE FROM {table}")


@contextmanager
def store_of(workspace: Workspace) -> Iterator[Store]:
    """A :class:`Store` on the workspace, closed after."""
    store = Store(workspace)
    try:
        yield store
    finally:
        store.close()


def client(workspace: Workspace, user: str | None = None, clock: FixedClock | None = None) -> TestClient:
    """A test client of the workspace's console at :data:`NOW`, logged in as ``user`` (an account that exists) or
    not logged in."""
    app = create_app(workspace.settings, clock or FixedClock(NOW))
    test = TestClient(app, base_url="http://127.0.0.1")
    if user is not None:
        console = app.state.console
        _, cookie = auth.new_session(console.key, user, console.now().timestamp())
        test.cookies.set(auth.SESSION_COOKIE, cookie)
    return test
