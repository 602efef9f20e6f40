"""How fast the console's invoices search, rules pages and /metrics scrape are on a large store.

Generates a store of N flows (default 300,000) straight into a fresh workspace's SQLite (edi's own schema and
indexes, no ANALYZE: as edi leaves a store): 90 days of flows over 12 senders, statuses spread as in production
(most integrated, a fifth rejected, a few failed), 1.2 documents per flow, 1 to 3 findings per rejected flow over
300 rules of skewed frequency; and a few thousand files in an inbox and the spool. Then times, through the real
app (Starlette's test client, an operator's session), each page R times and prints p50 / p95 in milliseconds.
Measured, never asserted.

Usage:

  .venv/bin/python benchmarks/bench_console_lists.py [--flows 300000] [--repeat 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edi.browse.flows import stamp
from edi.clock import iso
from edi.config import load_settings
from edi.runner import init_workspace

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SENDERS = [f"sender{n:02d}" for n in range(12)]
STATUSES = [
    ("IN_INTEGRE", 0.72),
    ("IN_INTEGRE_PARTIEL", 0.05),
    ("IN_REJETE", 0.21),
    ("IN_EN_ATTENTE_RETRAITEMENT", 0.02),
]
RULES = [f"BR-{n:03d}" for n in range(300)]
CONFIG = """
[workspace]
root = "ws"
""" + "".join(f'\n[[senders]]\nid = "{s}"\nsellers = ["*"]\n' for s in SENDERS)


def generate(root: Path, flows: int) -> Path:
    """A workspace under ``root`` whose store holds ``flows`` generated flows; its config file."""
    config = root / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    rng = random.Random(23)
    weights = [1 / (n + 1) for n in range(len(RULES))]
    db = sqlite3.connect(settings.workspace.layout().database)
    flow_rows, doc_rows, finding_rows = [], [], []
    start = NOW - timedelta(days=90)
    step = timedelta(days=90) / flows
    for n in range(flows):
        at = start + step * n
        fid = f"{stamp(at)}-{n % 0xFFFFFF:06x}"
        sender = SENDERS[int(rng.paretovariate(1.2)) % len(SENDERS)]
        status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        docs = 1 if rng.random() < 0.9 else rng.randint(2, 4)
        flow_rows.append((fid, sender, f"{sender}-{n}.xml", iso(at), iso(at + timedelta(seconds=2)), status, docs))
        for idx in range(1, docs + 1):
            doc_status = "200" if status == "IN_INTEGRE" or (status == "IN_INTEGRE_PARTIEL" and idx > 1) else "213"
            reason = None if doc_status == "200" else "REJ_SEMAN"
            seller = f"SIREN{rng.randint(0, 2000):05d}"
            doc_rows.append(
                (
                    fid,
                    idx,
                    f"doc{idx}.xml",
                    f"INV-{n}-{idx}",
                    (at - timedelta(days=rng.randint(0, 20))).date().isoformat(),
                    seller,
                    f"BUYER{rng.randint(0, 500):04d}",
                    doc_status,
                    reason,
                )
            )
            if doc_status != "200":
                for rule in set(rng.choices(RULES, weights, k=rng.randint(1, 3))):
                    finding_rows.append(
                        (fid, idx, "REJ_SEMAN", rule, "en16931", "fatal", f"[{rule}] text", "CEN 1.3.16")
                    )
    with db:
        db.executemany(
            "INSERT INTO flows (flow_id, sender, file_name, received_at, processed_at, status, documents_total) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            flow_rows,
        )
        db.executemany(
            "INSERT INTO documents (flow_id, idx, name, invoice_number, issue_date, seller_id, buyer_id, status, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            doc_rows,
        )
        db.executemany(
            "INSERT INTO findings (flow_id, idx, code, rule, layer, severity, message, rule_set_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            finding_rows,
        )
        db.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ('bench', 'operator', 'x', ?)", [iso(NOW)]
        )
    db.close()
    layout = settings.workspace.layout()
    for n in range(2000):  # a backlog in one inbox, and flows waiting in failed/
        (layout.sender_inbox(SENDERS[0]) / f"waiting-{n}.xml").write_bytes(b"<x/>")
    for n in range(500):
        (layout.failed / f"{stamp(NOW)}-{n:06x}").mkdir(parents=True)
    print(f"store: {flows} flows, {len(doc_rows)} documents, {len(finding_rows)} findings", flush=True)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from edi.web import auth
    from edi.web.app import create_app
    from tests.conftest import FixedClock

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-console-"))
    config = work / "config.toml"
    if not config.exists():
        started = time.perf_counter()
        config = generate(work, args.flows)
        print(f"generated in {time.perf_counter() - started:.0f} s under {work}", flush=True)
    app = create_app(load_settings(config), FixedClock(NOW))
    test = TestClient(app, base_url="http://127.0.0.1")
    _, cookie = auth.new_session(app.state.console.key, "bench", NOW.timestamp())
    test.cookies.set(auth.SESSION_COOKIE, cookie)
    deep = test.get("/invoices.json?limit=50").json()["next"]
    for _ in range(200):  # 10,000 invoices down
        deep = test.get(f"/invoices.json?limit=50&cursor={deep}").json()["next"]
    pages = {
        "/metrics": "/metrics",
        "/invoices (first page)": "/invoices",
        "/invoices (10,000 down)": f"/invoices?cursor={deep}",
        "/invoices?invoice=": "/invoices?invoice=INV-1234-1",
        "/invoices?seller=": "/invoices?seller=SIREN00042",
        "/invoices?buyer=": "/invoices?buyer=BUYER0042",
        "/invoices?seller=&invoice=": "/invoices?seller=SIREN00042&invoice=INV-1234-1",
        "/invoices?from=&to= (issue dates)": "/invoices?from=2026-09-01&to=2026-09-02",
        "/invoices?status=213": "/invoices?status=213",
        "/invoices?status=501 (none: every row read)": "/invoices?status=501",
        "/rules (30 days)": "/rules",
        "/rules (7 days)": "/rules?period=7d",
        "/rules/BR-000 (30 days)": "/rules/BR-000",
        "/rules/BR-250 (30 days)": "/rules/BR-250",
    }
    print(f"{'page':40} {'p50 ms':>8} {'p95 ms':>8}")
    for name, url in pages.items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            answer = test.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (url, answer.status_code, answer.text[:200])
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:40} {statistics.median(times):8.1f} {p95:8.1f}", flush=True)


if __name__ == "__main__":
    main()
