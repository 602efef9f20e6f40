"""What webhooks cost: the events queued in the transaction that records outcomes, and a delivery pass.

1. ``record_outcomes`` of --flows acknowledgements (one document each, a CDAR message each), in groups of 50 as a batch
   records them, five rounds without a webhook policy and five with one, alternated (the store grows), the sender's
   client holding --webhooks webhooks that match everything (and 20 other senders' webhooks that never match): ms per
   group, and the events queued.
2. ``deliver_due`` of those events to a real HTTP server on 127.0.0.1 (http.server, answers 200): events per second
   (each event: the Flow JSON built by :func:`edi.api.flows.flow_json`, signed, one connection, one POST, its
   outcome recorded).

Measured, never asserted. Usage:

  .venv/bin/python benchmarks/bench_webhooks.py [--flows 2000] [--webhooks 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edi.api import signing, webhooks  # noqa: E402
from edi.api.clients import add_client  # noqa: E402
from edi.api.deliver import deliver_due  # noqa: E402
from edi.api.events import Policy  # noqa: E402
from edi.config import ApiSettings, SenderSettings, Settings, WorkspaceSettings  # noqa: E402
from edi.logs import configure_logging  # noqa: E402
from edi.store import open_store  # noqa: E402

GROUP = 50
ROUNDS = 5
AT = datetime(2026, 12, 6, 12, tzinfo=UTC)


def ack(flow_id: str) -> dict[str, Any]:
    """A final acknowledgement of an accepted one-invoice flow of acme, as the processor shapes it."""
    return {
        "flow_id": flow_id,
        "sender": "acme",
        "file_name": f"{flow_id}.xml",
        "size": 4000,
        "sha256": flow_id.ljust(64, "0")[:64],
        "received_at": "2026-12-06T11:59:59.000Z",
        "processed_at": "2026-12-06T12:00:00.000Z",
        "status": "IN_INTEGRE",
        "documents_total": 1,
        "documents_accepted": 1,
        "findings": [],
        "cdar": None,
        "documents": [
            {"index": 1, "name": f"{flow_id}.xml", "status": "200", "reason": None, "findings": [], "syntax": "UBL",
             "invoice_number": f"F-{flow_id}", "cdar": f"{flow_id}.0001.cdar.xml", "lifecycle": None}
        ],
    }  # fmt: skip


def record(settings: Settings, flows: int, policy: bool, round_: int) -> float:
    """Seconds to record ``flows`` outcomes in groups."""
    store = open_store(settings.workspace.layout())
    store.webhooks = Policy() if policy else None
    acks = [ack(f"20261206T12{round_:04d}{n:06d}-{'p' if policy else 'n'}") for n in range(flows)]
    started = time.perf_counter()
    for i in range(0, flows, GROUP):
        store.record_outcomes(acks[i : i + GROUP], AT)
    took = time.perf_counter() - started
    store.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--webhooks", type=int, default=2)
    args = parser.parse_args()
    configure_logging("warning")  # as `edi batch` logs: one line per event would be timed too

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *more: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as work:
        senders = (SenderSettings("acme", ("*",)), *(SenderSettings(f"s{i}", ("*",)) for i in range(20)))
        settings = Settings(
            workspace=WorkspaceSettings(root=Path(work) / "ws"),
            senders=senders,
            api=ApiSettings(webhook_allowed_hosts=(f"127.0.0.1:{port}",)),
        )
        from edi.runner import init_workspace

        init_workspace(settings)
        layout = settings.workspace.layout()
        key = signing.workspace_key(layout, make=True)
        assert key is not None
        store = open_store(layout)
        url = f"http://127.0.0.1:{port}/hook"
        for sender in [s.id for s in senders]:
            client, _ = add_client(store, f"c-{sender}", sender, AT)
            for n in range(args.webhooks if sender == "acme" else 1):
                asked: dict[str, Any] = {
                    "callback_url": f"{url}{n}",
                    "flow_types": [],
                    "flow_direction": None,
                    "ack_status": None,
                }
                webhooks.create(store, client, asked, key, AT)
        store.close()
        plains, hookeds = [], []
        for round_ in range(ROUNDS):  # alternated: the store grows as the rounds go
            plains.append(record(settings, args.flows, False, round_))
            hookeds.append(record(settings, args.flows, True, round_))
        plain, hooked = statistics.median(plains), statistics.median(hookeds)
        store = open_store(layout)
        (queued,) = store.db.conn.execute("SELECT count(*) FROM api_webhook_events").fetchone()
        store.close()
        groups = args.flows / GROUP
        print(f"record_outcomes, {args.flows} flows in groups of {GROUP} (median of {ROUNDS} alternated rounds):")
        print(f"  without webhooks: {plain / groups * 1000:.2f} ms per group")
        print(
            f"  with {args.webhooks} matching webhooks: {hooked / groups * 1000:.2f} ms per group "
            f"({(hooked / plain - 1) * 100:+.0f} %), {queued} events queued"
        )
        started = time.perf_counter()
        sent = 0
        while True:
            report = deliver_due(settings, budget=600)
            sent += report.sent
            if not report.tried:
                break
        took = time.perf_counter() - started
        print(f"deliver_due: {sent} events in {took:.1f} s: {sent / took:.0f} events/s")
    server.shutdown()


if __name__ == "__main__":
    main()
