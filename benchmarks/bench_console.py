"""How fast the console answers on a big store: p50 / p95 of each page, and the CSV export's rate and memory.

Builds (once, kept in --work) a workspace whose store holds N flows (default 1,000,000) spread as a platform's are:
a year of days (weekdays busier, the last weeks busier still), 25 senders of very different sizes, 60 recipients,
statuses 80 % integrated / 5 % partially / 14 % rejected / 0.5 % failed, a ZIP batch now and then (2 to 20
invoices), 1 to 3 fatal findings per rejected invoice over ~70 rules (a few rules fire most), warnings on some
accepted ones, the events each flow has, and the statuses recipients returned for delivered invoices (204 for
9 in 10 after a day, then mostly 205, 211, 212; some 207, 210). Rows are written with plain SQL in the store
`edi init` made (the real schema and indexes). Then runs the real `edi serve` on it (a process of its own, as
users run it), logs in as an operator and as a sender, and times each page over HTTP, with the same-run baselines:

  - ``/healthz``: an HTTP round trip to the same server that reads one row (the floor of any page);
  - the bare SQL of the flows list's first page on a sqlite3 connection of this process (what the list costs the
    database alone).

Each page's p50 / p95 is printed with its ratio to the /healthz p50. The CSV export streams ``--csv-rows`` rows
(default 100,000): its rate is printed per 10,000 rows (steady means flat), with the server's resident memory
before, during (sampled) and after. Measured, never asserted.

Usage:

  .venv/bin/python benchmarks/bench_console.py [--flows 1000000] [--rounds 40] [--work DIR] [--csv-rows 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
SENDERS = [f"sender{n:02d}" for n in range(25)]
RECIPIENTS = [f"recipient{n:02d}" for n in range(60)]
RULES = (
    [(f"BR-CO-{n:02d}", "en16931") for n in range(3, 27)]
    + [(f"BR-S-{n:02d}", "en16931") for n in range(1, 11)]
    + [(f"BR-{n:02d}", "en16931") for n in range(1, 20)]
    + [(f"BR-FR-{n:02d}", "br-fr") for n in range(1, 15)]
    + [("CVC-COMPLEX-TYPE-2.4", "xsd"), ("CVC-DATATYPE-VALID", "xsd")]
)
PASSWORD = "bench-password-1"
CHUNK = 20_000


def config_text(work: Path) -> str:
    senders = "\n".join(f'[[senders]]\nid = "{s}"\nsellers = ["*"]\n' for s in SENDERS)
    return f'[workspace]\nroot = "{work / "var"}"\n\n{senders}\n[logging]\nlevel = "error"\n'


def weights(count: int, skew: float) -> list[float]:
    """Zipf-like: the first is the biggest."""
    return [1 / (n + 1) ** skew for n in range(count)]


def moments(flows: int, now: datetime, rng: random.Random) -> list[datetime]:
    """``flows`` arrival times over the last 365 days (none after ``now``): weekdays 3x the weekend, the last 30
    days 1.5x, between 06:00 and 20:00 UTC, sorted."""
    days = [now - timedelta(days=d) for d in range(365)]
    day_weight = [(3 if d.weekday() < 5 else 1) * (1.5 if i < 30 else 1) for i, d in enumerate(days)]
    out = []
    for i in rng.choices(range(365), weights=day_weight, k=flows):
        start = datetime(days[i].year, days[i].month, days[i].day, 6, tzinfo=UTC)
        moment = start + timedelta(seconds=rng.uniform(0, 14 * 3600))
        out.append(moment if moment < now else now - timedelta(seconds=rng.uniform(1, 3600)))
    return sorted(out)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows(
    flows: int, now: datetime, seed: int
) -> Iterator[tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]]:
    """Chunks of (flows, documents, findings, events, lifecycle) rows."""
    rng = random.Random(seed)
    sender_w, recipient_w, rule_w = weights(len(SENDERS), 1.1), weights(len(RECIPIENTS), 0.8), weights(len(RULES), 1.2)
    f_rows: list[Any] = []
    d_rows: list[Any] = []
    x_rows: list[Any] = []
    e_rows: list[Any] = []
    l_rows: list[Any] = []
    last_micro = 0
    for n, at in enumerate(moments(flows, now, rng)):
        micro = max(int(at.timestamp() * 1_000_000), last_micro + 1)
        last_micro = micro
        at = datetime.fromtimestamp(micro / 1_000_000, UTC)
        flow_id = f"{at:%Y%m%dT%H%M%S}{at.microsecond:06d}-{rng.getrandbits(24):06x}"
        sender = rng.choices(SENDERS, sender_w)[0]
        r = rng.random()
        status = (
            "IN_INTEGRE"
            if r < 0.80
            else "IN_INTEGRE_PARTIEL"
            if r < 0.85
            else "IN_REJETE"
            if r < 0.99
            else "IN_EN_ATTENTE_RETRAITEMENT"
            if r < 0.995
            else "IN_RECU"
        )
        batch = rng.random() < 0.05
        total = rng.randint(2, 20) if batch else 1
        if status == "IN_INTEGRE_PARTIEL" and total == 1:
            total = 2
        final = status not in ("IN_EN_ATTENTE_RETRAITEMENT", "IN_RECU")
        partial = status == "IN_INTEGRE_PARTIEL"
        accepted = rng.randint(1, total - 1) if partial else total if status == "IN_INTEGRE" else 0
        name = f"{sender}-{n:07d}.{'zip' if batch else 'xml'}"
        processed = iso(at + timedelta(milliseconds=rng.randint(5, 900))) if final else None
        f_rows.append(
            [
                flow_id,
                sender,
                name,
                rng.randint(3_000, 400_000),
                f"{rng.getrandbits(256):064x}",
                iso(at),
                iso(at),
                "zip" if batch else "xml",
                processed,
                status,
                None,
                total if final else None,
                accepted if final else None,
                processed or iso(at),
                None,
                None,
            ]
        )
        e_rows.append([flow_id, None, iso(at), "IN_RECU", "claimed from the inbox"])
        if not final:
            if status == "IN_EN_ATTENTE_RETRAITEMENT":
                e_rows.append([flow_id, None, iso(at), status, "RuntimeError: injected"])
            continue
        for idx in range(1, total + 1):
            ok = idx <= accepted
            recipient = rng.choices(RECIPIENTS, recipient_w)[0]
            reason = None if ok else rng.choice(["REJ_SEMAN", "REJ_SEMAN", "REJ_SEMAN", "DOUBLON", "DEST_INC"])
            number = f"F{n:07d}-{idx}"
            d_rows.append(
                [
                    flow_id,
                    idx,
                    name if not batch else f"invoice-{idx}.xml",
                    "zip" if batch else None,
                    "UBL",
                    "invoice",
                    "urn:cen.eu:en16931:2017",
                    number,
                    "380",
                    f"{at:%Y-%m-%d}",
                    "EUR",
                    f"{100000000 + SENDERS.index(sender) * 1000 + rng.randint(0, 50):09d}",
                    f"Seller of {sender}",
                    f"{200000000 + RECIPIENTS.index(recipient):09d}",
                    f"Buyer {recipient}",
                    recipient,
                    recipient if ok else None,
                    "200" if ok else "213",
                    reason,
                ]
            )
            e_rows.append([flow_id, idx, processed, "200" if ok else "213", reason or ""])
            if ok:
                l_rows += lifecycle(flow_id, idx, recipient, at, now, rng)
            if reason == "REJ_SEMAN":
                for _ in range(rng.choice([1, 1, 2, 3])):
                    rule, layer = rng.choices(RULES, rule_w)[0]
                    x_rows.append(
                        [
                            flow_id,
                            idx,
                            "RULE_FAILED",
                            "REJ_SEMAN",
                            rule,
                            rule,
                            layer,
                            "fatal",
                            rng.randint(10, 300),
                            "/Invoice/cac:LegalMonetaryTotal",
                            f"[{rule}] The rule {rule} failed.",
                            "1.3.14",
                            None,
                        ]
                    )
            elif ok and rng.random() < 0.1:
                rule, layer = rng.choices(RULES, rule_w)[0]
                x_rows.append(
                    [
                        flow_id,
                        idx,
                        "RULE_WARNING",
                        None,
                        rule,
                        rule,
                        layer,
                        "warning",
                        rng.randint(10, 300),
                        "/Invoice",
                        f"[{rule}] A warning.",
                        "1.3.14",
                        None,
                    ]
                )
        e_rows.append([flow_id, None, processed, status, f"{accepted}/{total} accepted"])
        if len(f_rows) >= CHUNK:
            yield f_rows, d_rows, x_rows, e_rows, l_rows
            f_rows, d_rows, x_rows, e_rows, l_rows = [], [], [], [], []
    yield f_rows, d_rows, x_rows, e_rows, l_rows


_SOURCES = iter(range(1, 1 << 62))


def lifecycle(flow_id: str, idx: int, recipient: str, at: datetime, now: datetime, rng: random.Random) -> list[Any]:
    """The statuses a delivered invoice's recipient returned (recorded rows of the lifecycle table), as time passed:
    9 in 10 taken in charge (204) after a day or so; then most approved (205) and paid (211, some 212 cashed), a
    few disputed (207) or refused (210); an invoice younger than its next step has not had it yet."""
    out: list[Any] = []
    moment = at

    def status(code: str, after_days: float, reason: str | None = None) -> bool:
        nonlocal moment
        moment = moment + timedelta(days=after_days * rng.uniform(0.5, 1.5))
        if moment >= now:
            return False
        source = f"S{next(_SOURCES):012d}"
        out.append(
            [flow_id, idx, code, reason, None, f"{recipient}-pa", iso(moment), iso(moment), source, 1,
             f"{source}.0001.cdar.xml", "recorded"]
        )  # fmt: skip
        return True

    if rng.random() < 0.9 and status("204", 1):
        r = rng.random()
        if r < 0.03:
            status("210", 4, rng.choice(["DOUBLON", "CALCUL_ERR", "CMD_ERR"]))
        elif r < 0.08:
            status("207", 4, "CALCUL_ERR")
        elif r < 0.9 and status("205", 4) and status("211", 15) and rng.random() < 0.5:
            status("212", 10)
    return out


FLOW_SQL = (
    "INSERT INTO flows (flow_id, sender, file_name, size, sha256, received_at, deposited_at, kind, processed_at, "
    "status, duplicate_of, documents_total, documents_accepted, updated_at, claimed_by, raw_name) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DOC_SQL = (
    "INSERT INTO documents (flow_id, idx, name, container, syntax, kind, specification_id, invoice_number, type_code, "
    "issue_date, currency, seller_id, seller_name, buyer_id, buyer_name, recipient, queue, status, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
FINDING_SQL = (
    "INSERT INTO findings (flow_id, idx, code, reason, rule, assert_id, layer, severity, line, xpath, message, "
    "rule_set_version, rule_set_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EVENT_SQL = "INSERT INTO events (flow_id, idx, at, status, detail) VALUES (?, ?, ?, ?, ?)"
LIFECYCLE_SQL = (
    "INSERT INTO lifecycle (flow_id, idx, status, reason, text, set_by, set_at, recorded_at, source_flow_id, "
    "source_idx, relay, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def build(work: Path, flows: int, now: datetime) -> Path:
    """The workspace with its filled store (kept: a second run with the same count reuses it)."""
    config = work / "config.toml"
    store = work / "var" / "tracking.sqlite"
    marker = work / f"filled-{flows}-lifecycle"
    if marker.exists():
        return config
    work.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text(work), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "edi", "--config", str(config), "init"], check=True, capture_output=True)
    started = time.perf_counter()
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    total = 0
    for f_rows, d_rows, x_rows, e_rows, l_rows in rows(flows, now, seed=23):
        conn.execute("BEGIN")
        conn.executemany(FLOW_SQL, f_rows)
        conn.executemany(DOC_SQL, d_rows)
        conn.executemany(FINDING_SQL, x_rows)
        conn.executemany(EVENT_SQL, e_rows)
        conn.executemany(LIFECYCLE_SQL, l_rows)
        conn.execute("COMMIT")
        total += len(f_rows)
        print(f"\r  {total:,} flows written ({time.perf_counter() - started:.0f} s)", end="", flush=True)
    waiting(work / "var", now, random.Random(7))
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print()
    marker.write_text(iso(now), encoding="utf-8")
    return config


def waiting(root: Path, now: datetime, rng: random.Random) -> None:
    """What a busy platform has waiting at any moment: 2,000 files in the inboxes, aged from seconds to days (the
    dashboard's qshape and /metrics count them)."""
    for n in range(2000):
        sender = rng.choices(SENDERS, weights(len(SENDERS), 1.1))[0]
        path = root / "inbox" / sender / f"waiting-{n:05d}.xml"
        path.write_bytes(b"<Invoice/>")
        age = rng.expovariate(1 / 600) if rng.random() < 0.95 else rng.uniform(3600, 5 * 86400)
        stamp = (now - timedelta(seconds=age)).timestamp()
        os.utime(path, (stamp, stamp))


class Server:
    """The real `edi serve` in a process of its own."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edi", "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"http://[^ ]+/", line)
        if not found:
            raise SystemExit(f"edi serve did not start: {line}{self.proc.stdout.read()}")
        self.url = found.group(0).rstrip("/")

    def rss_kib(self) -> tuple[int, int]:
        """The server's resident memory now and at its peak (KiB)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        now = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return now, peak

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def add_user(config: Path, name: str, *role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(config), "users", "add", name, *role, "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        capture_output=True,
        check=False,
    )


def login(url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120)
    page = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    answer = client.post("/login", data={"username": name, "password": PASSWORD, "csrf": csrf})
    if answer.status_code not in (200, 303):
        raise SystemExit(f"login of {name} failed: {answer.status_code}")
    return client


def timed(client: httpx.Client, path: str, rounds: int) -> tuple[list[float], int]:
    """Milliseconds of each round (after one warm-up), and the last status."""
    status = client.get(path).status_code
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    return out, status


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def deep_cursor(client: httpx.Client, depth: int) -> str:
    """The cursor of a page ``depth`` flows down the list, found by walking it 1,000 at a time."""
    cursor = None
    for _ in range(depth // 1000):
        data = client.get("/flows.json", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        cursor = data["next"]
    assert isinstance(cursor, str)
    return cursor


def csv_export(server: Server, client: httpx.Client, rows_wanted: int) -> None:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(server.rss_kib()[0])
            time.sleep(0.05)

    before = server.rss_kib()[0]
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    started = time.perf_counter()
    marks = []
    count = -1  # the header line
    with client.stream("GET", "/flows.csv", params={"limit": rows_wanted}) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"/flows.csv answered {answer.status_code}: {answer.read()!r}")
        for _line in answer.iter_lines():
            count += 1
            if count and count % 10_000 == 0:
                marks.append(time.perf_counter() - started)
    seconds = time.perf_counter() - started
    done.set()
    watcher.join()
    after = server.rss_kib()[0]
    rates = [10_000 / (b - a) for a, b in zip([0.0, *marks], marks, strict=False)]
    print(f"\n/flows.csv: {count:,} rows in {seconds:.2f} s ({count / seconds:,.0f} rows/s)")
    print("  rows/s per 10,000 rows: " + ", ".join(f"{r:,.0f}" for r in rates))
    print(
        f"  server resident memory: {before / 1024:.0f} MiB before, {max(samples, default=before) / 1024:.0f} MiB "
        f"at most while streaming, {after / 1024:.0f} MiB after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/edi-bench-console"))
    args = parser.parse_args()
    now = datetime.now(UTC)
    print(f"store of {args.flows:,} flows in {args.work} (made once, then reused)")
    config = build(args.work, args.flows, now)
    add_user(config, "bench-operator", "--role", "operator")
    add_user(config, "bench-sender", "--role", "sender", "--sender", SENDERS[3])
    store = args.work / "var" / "tracking.sqlite"
    counts = (
        sqlite3.connect(store)
        .execute(
            "SELECT (SELECT count(*) FROM flows), (SELECT count(*) FROM documents), (SELECT count(*) FROM findings), "
            "(SELECT count(*) FROM events), (SELECT count(*) FROM lifecycle)"
        )
        .fetchone()
    )
    print(
        f"  {counts[0]:,} flows, {counts[1]:,} documents, {counts[2]:,} findings, {counts[3]:,} events, "
        f"{counts[4]:,} lifecycle statuses"
    )
    server = Server(config)
    try:
        operator = login(server.url, "bench-operator")
        sender = login(server.url, "bench-sender")
        conn = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
        bare = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            conn.execute("SELECT * FROM flows ORDER BY flow_id DESC LIMIT 51").fetchall()
            bare.append((time.perf_counter() - started) * 1000)
        health, _ = timed(operator, "/healthz", args.rounds)
        floor = statistics.median(health)
        some = conn.execute("SELECT flow_id FROM flows WHERE status = 'IN_REJETE' ORDER BY flow_id DESC LIMIT 200")
        rejected = [r[0] for r in some.fetchall()]
        number = conn.execute("SELECT invoice_number FROM documents ORDER BY rowid DESC LIMIT 1 OFFSET 5000").fetchone()
        depth = min(500_000, counts[0] // 2 // 1000 * 1000)
        seller = conn.execute("SELECT seller_id FROM documents ORDER BY rowid DESC LIMIT 1 OFFSET 9000").fetchone()
        deep = deep_cursor(operator, depth)
        paid = conn.execute("SELECT flow_id FROM lifecycle WHERE status = '212' ORDER BY id DESC LIMIT 1").fetchone()
        month_ago = (now - timedelta(days=30)).date().isoformat()
        pages: list[tuple[str, httpx.Client, str]] = [
            ("flows, first page", operator, "/flows"),
            (f"flows, a page {depth:,} flows deep", operator, f"/flows?cursor={deep}"),
            ("flows, sender + status", operator, f"/flows?sender={SENDERS[1]}&status=IN_REJETE"),
            ("flows, one rule, 30 days", operator, f"/flows?rule=BR-CO-10&from={month_ago}"),
            ("flows, a rare rule", operator, "/flows?rule=BR-FR-14"),
            ("flows, an invoice number", operator, f"/flows?invoice={number[0]}"),
            ("flows, a file name part", operator, "/flows?file=0012345"),
            ("flows, sender account", sender, "/flows"),
            ("flows.json, first page", operator, "/flows.json"),
            ("a flow's page", operator, f"/flows/{rejected[0]}"),
            ("dashboard, 30 days", operator, "/?period=30d"),
            ("dashboard, 7 days", operator, "/?period=7d"),
            ("dashboard, 30 days, sender account", sender, "/?period=30d"),
            ("invoices, first page", operator, "/invoices"),
            ("rules, 30 days", operator, "/rules"),
            ("one rule", operator, "/rules/BR-CO-10"),
            ("invoices, a seller", operator, f"/invoices?seller={seller[0]}"),
            ("invoices, status now 210 Refusée", operator, "/invoices?status=210"),
            ("invoices, status now 204 Prise en charge", operator, "/invoices?status=204"),
            ("invoices, status now 200 (no status since)", operator, "/invoices?status=200"),
            ("invoices, status now 211, sender account", sender, "/invoices?status=211"),
            ("invoices, a recipient", operator, f"/invoices?recipient={RECIPIENTS[5]}"),
            ("an invoice's page (its lifecycle)", operator, f"/invoices/{paid[0]}/1"),
            ("a paid invoice's flow page", operator, f"/flows/{paid[0]}"),
            ("rules, 7 days", operator, "/rules?period=7d"),
            ("metrics", operator, "/metrics"),
        ]
        print(
            f"\nbaselines: /healthz p50 {floor:.1f} ms over HTTP; bare SQL of the first page "
            f"p50 {statistics.median(bare):.2f} ms\n"
        )
        print(f"{'page':44} {'p50 ms':>8} {'p95 ms':>8} {'x healthz':>10}")
        for label, client, path in pages:
            values, status = timed(client, path, args.rounds)
            if status != 200:
                print(f"{label:44} {'-':>8} {'-':>8} {'':>10}  (answered {status}: not measured)")
                continue
            print(f"{label:44} {p(values, 0.5):8.1f} {p(values, 0.95):8.1f} {p(values, 0.5) / floor:10.1f}")
        flows_pages = [f"/flows/{f}" for f in rejected[: args.rounds]]
        spread = []
        for path in flows_pages:
            started = time.perf_counter()
            operator.get(path)
            spread.append((time.perf_counter() - started) * 1000)
        label = f"{len(spread)} different flow pages"
        print(f"{label:44} {p(spread, 0.5):8.1f} {p(spread, 0.95):8.1f} {p(spread, 0.5) / floor:10.1f}")
        csv_export(server, operator, args.csv_rows)
    finally:
        code = server.stop()
        print(f"\nedi serve stopped on SIGTERM with exit status {code}")


if __name__ == "__main__":
    main()
