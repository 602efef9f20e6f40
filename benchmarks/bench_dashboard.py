"""Time of the console's dashboard on a large store: its data function (the queries: edi.browse.dashboard) and the
whole page through the app (queries, the look at the folders, charts, template), for each period, as an operator and
as a sender account.

Makes (once, kept for the next runs) a workspace whose store holds N flows spread over the days before now (the
same number each day: 2,700 by default, so that 30 days hold ~80,000 flows as on a store of 1,000,000 spread over a
year), over 30 senders of very different sizes, with realistic statuses (most integrated, a fifth rejected, a few
failed or in process), documents (one per flow, or a ZIP batch of 2 to 20) for 40 recipients, and fatal findings
from 60 rules on the rejected ones (a few rules far more often than the others). Rows are written with plain SQL
into a store made by ``Tracking(path, create=True)``, ids in time order as edi writes them.

Usage:

  .venv/bin/python benchmarks/bench_dashboard.py [--flows 300000] [--per-day 2700] [--rounds 20] [--dir /tmp/bench-dash]
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from starlette.testclient import TestClient

from edi import accounts
from edi.browse import Reader
from edi.browse import dashboard as board
from edi.clock import iso
from edi.config import load_settings
from edi.runner import init_workspace
from edi.tracking import Tracking
from edi.web import charts
from edi.web.app import create_app

SENDERS = [f"sender{n:02d}" for n in range(30)]
RECIPIENTS = [f"recipient{n:02d}" for n in range(40)]
RULES = [f"BR-{n:02d}" for n in range(60)]
PASSWORD = "bench-pass-1"


def weights(n: int) -> list[float]:
    """Zipf-like weights: the first few far more often than the rest."""
    return [1 / (i + 1) for i in range(n)]


def make_store(root: Path, flows: int, per_day: int, now: datetime) -> Path:
    """A workspace under ``root`` with a store of ``flows`` flows (made once); its config file."""
    config = root / "config.toml"
    if config.is_file():
        return config
    root.mkdir(parents=True, exist_ok=True)
    senders = "".join(f'\n[[senders]]\nid = "{s}"\nsellers = ["*"]\n' for s in SENDERS)
    config.write_text(textwrap.dedent('[workspace]\nroot = "ws"\n') + senders, encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    store = Tracking(settings.workspace.layout().database, create=True)
    rng = random.Random(23)
    days = -(-flows // per_day)
    start = now - timedelta(days=days)
    step = (now - start) / flows
    sw, rw, fw = weights(len(SENDERS)), weights(len(RECIPIENTS)), weights(len(RULES))
    conn = store.db.conn
    batch_f: list[tuple[object, ...]] = []
    batch_d: list[tuple[object, ...]] = []
    batch_x: list[tuple[object, ...]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO flows (flow_id, sender, file_name, size, sha256, received_at, processed_at, status, "
            "documents_total, documents_accepted, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch_f,
        )
        conn.executemany(
            "INSERT INTO documents (flow_id, idx, name, recipient, queue, status, invoice_number) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            batch_d,
        )
        conn.executemany(
            "INSERT INTO findings (flow_id, idx, code, rule, layer, severity, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
            batch_x,
        )
        conn.execute("COMMIT")
        batch_f.clear()
        batch_d.clear()
        batch_x.clear()

    for n in range(flows):
        at = start + step * n
        flow_id = f"{at.strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(3)}"
        sender = rng.choices(SENDERS, sw)[0]
        roll = rng.random()
        recent = now - at < timedelta(hours=1)
        status = (
            "IN_RECU"
            if recent and roll < 0.05
            else "IN_EN_ATTENTE_RETRAITEMENT"
            if roll < 0.01
            else "IN_REJETE"
            if roll < 0.21
            else "IN_INTEGRE_PARTIEL"
            if roll < 0.27
            else "IN_INTEGRE"
        )
        docs = rng.randint(2, 20) if rng.random() < 0.1 else 1
        if status in ("IN_RECU", "IN_EN_ATTENTE_RETRAITEMENT"):
            total, accepted = None, None
        else:
            accepted = {"IN_INTEGRE": docs, "IN_REJETE": 0}.get(status, rng.randint(1, max(1, docs - 1)))
            total = docs if not (status == "IN_INTEGRE_PARTIEL" and docs == 1) else 2
            for idx in range(1, (total or 0) + 1):
                ok = idx <= accepted
                recipient = rng.choices(RECIPIENTS, rw)[0]
                batch_d.append(
                    (
                        flow_id,
                        idx,
                        f"doc{idx}.xml",
                        recipient,
                        recipient if ok else None,
                        "200" if ok else "213",
                        f"F{n}",
                    )
                )
                if not ok:
                    for rule in set(rng.choices(RULES, fw, k=rng.randint(1, 3))):
                        batch_x.append((flow_id, idx, "BR", rule, "en16931", "fatal", "a rule was broken"))
                elif rng.random() < 0.05:
                    batch_x.append((flow_id, idx, "BR", "BR-FR-W", "br-fr", "warning", "a warning"))
        batch_f.append(
            (
                flow_id,
                sender,
                f"file{n}.xml",
                1000,
                secrets.token_hex(32),
                iso(at),
                iso(at),
                status,
                total,
                accepted,
                iso(at),
            )
        )
        if len(batch_f) >= 20_000:
            flush()
    flush()
    conn.execute("ANALYZE")
    store.close()
    return config


def timed(function: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """p50 and p95 in milliseconds of ``rounds`` calls (after one to warm the caches), and the median CPU time of
    this process per call (what a call costs on a machine others are using too)."""
    function()
    times, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=300_000)
    parser.add_argument("--per-day", type=int, default=2700)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-dash"))
    args = parser.parse_args()
    now = datetime.now(UTC)
    started = time.perf_counter()
    config = make_store(args.dir / f"{args.flows}", args.flows, args.per_day, now)
    print(f"store ready in {time.perf_counter() - started:.1f} s: {config.parent}")
    settings = load_settings(config)
    layout = settings.workspace.layout()
    reader = Reader(layout.database)
    count = reader.one("SELECT count(*) AS n FROM flows")
    print(f"{count['n'] if count else 0} flows")
    print(f"{'what':<34}{'scope':<10}{'flows':>8}{'p50 ms':>9}{'p95 ms':>9}{'cpu ms':>9}")
    for name in ("today", "7d", "30d"):
        span = board.period({"period": name}, now)
        for scope in (None, SENDERS[0]):
            data = board.dashboard(reader, settings, layout, scope, span, now, charts.age_buckets)
            p50, p95, cpu = timed(
                lambda s=scope, p=span: board.dashboard(reader, settings, layout, s, p, now, charts.age_buckets),
                args.rounds,
            )
            who = scope or "operator"
            print(f"{'data ' + name:<34}{who:<10}{data['totals']['flows']:>8}{p50:>9.1f}{p95:>9.1f}{cpu:>9.1f}")
    logging.getLogger().setLevel(logging.WARNING)  # one line per request would drown the table
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    client = TestClient(create_app(settings), base_url="http://127.0.0.1")
    store = Tracking(layout.database)
    if accounts.find_user(store, "bench") is None:
        accounts.add_user(store, "bench", "operator", PASSWORD, now)
    store.close()
    form = client.get("/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf": csrf})
    for path in ("/?period=30d", "/dashboard.json?period=30d", "/dashboard.csv?period=30d"):
        p50, p95, cpu = timed(lambda p=path: client.get(p).raise_for_status(), args.rounds)
        print(f"{'page ' + path:<34}{'operator':<10}{'':>8}{p50:>9.1f}{p95:>9.1f}{cpu:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
