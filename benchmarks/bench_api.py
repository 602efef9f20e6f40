"""The deposit API under load: deposits per second with N concurrent clients, GET and search latencies on a store of
1,000,000 flows, and the server's memory during a 100 MB upload; each against a bare baseline measured in the same run.

  deposits    a live `edi serve` (the real executable) of a fresh workspace; C client threads, each an API client of
              its own (its own token, its own keep-alive connection), POST {base}/v1/flows one-line UBL and CII
              invoices (benchmarks/invoices.py, 4.8-6.8 KB) as fast as the 202s come back. Deposits per second, and
              p50 / p99 of the time to the 202 (durable: fsynced, recorded, renamed into the inbox).
  bare        the same clients against a bare Starlette app under uvicorn (one process, as `edi serve` is) that
  deposit     reads the upload's body, writes it to a temporary file, fsyncs it, renames it into a folder, fsyncs the
              folder and answers 202: the floor of "an HTTP upload made durable" on this machine with this stack.
              Measured before and after edi; edi is compared with the mean of the two.
  store       a workspace whose store holds --store-flows flows (default 1,000,000): flows deposited through the API
              and processed by `edi batch` (real rows: documents, findings, CDAR messages, deposits), then copied in
              SQL under new ids and times until the store holds that many, half of them the client's sender's (the
              rest spread over nine other senders), the CDAR messages and deposits with them.
  GET, search GET {base}/v1/flows/{id} (Metadata) of random flows of the sender; POST {base}/v1/flows/search: the
              first page of each ackStatus, of a flowType, a trackingId, and 20 pages followed by cursor; p50 / p99
              of each, against the bare SQLite reads that answer the same (the flow's row by its key; a keyset page
              of 25 of the sender's flows by updatedAt) on the same store in this process.
  upload      a --upload-mb file (default 99 MiB: under the 100 MB limit) deposited in one request: its time, and the
              server's peak resident memory (VmHWM) before and after, against the file's size.

Usage (docs/performance.md gives the numbers this printed):

  .venv/bin/python benchmarks/bench_api.py [--deposits 2000] [--clients 1 4 16] [--store-flows 1000000]
                                           [--upload-mb 99] [--skip deposits,store,upload]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.invoices import directory_without_rules, flows
from edi.tracking import API_ACK_STATUS

EDI = Path(sys.executable).parent / "edi"
BASE = "/afnor-flow"
READY = re.compile(r"^edi console on (http://127\.0\.0\.1:\d+)/")
SENDER = "acme"
OTHERS = [f"other{n}" for n in range(1, 10)]
CONFIG = """
[workspace]
root = "ws"
[intake]
min_age_seconds = 0
incomplete_grace_seconds = 0
{senders}
[routing]
directory = "{directory}"
[validation]
rules = ["xsd"]
[logging]
level = "warning"
[api]
rate_per_minute = 100000000  # the benchmark measures the server, not its brakes
rate_burst = 100000
guess_burst = 100000
guesses_per_minute = 100000000
"""

BARE = """
import os, sys, uuid, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
folder = sys.argv[1]
async def deposit(request):
    tmp = os.path.join(folder, ".tmp-" + uuid.uuid4().hex)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        async for chunk in request.stream():
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    name = uuid.uuid4().hex
    os.rename(tmp, os.path.join(folder, name))
    dfd = os.open(folder, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return JSONResponse({"flowId": name}, status_code=202)
app = Starlette(routes=[Route("/afnor-flow/v1/flows", deposit, methods=["POST"])])
print("ready", flush=True)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def configure(work: Path) -> Path:
    """A workspace configured in ``work`` (the client's sender and nine others, XSD only) and `edi init`-ed."""
    work.mkdir(parents=True, exist_ok=True)
    senders = "".join(f'[[senders]]\nid = "{s}"\nsellers = ["*"]\n' for s in [SENDER, *OTHERS])
    directory = directory_without_rules(work / "directory.toml")
    config = work / "config.toml"
    config.write_text(CONFIG.format(senders=senders, directory=directory), encoding="utf-8")
    subprocess.run([str(EDI), "--config", str(config), "init"], check=True, capture_output=True)
    return config


class Server:
    """A live `edi serve --port 0` of a workspace."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [str(EDI), "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        found = READY.match(self.process.stdout.readline())
        assert found, "edi serve did not start"
        self.url = found.group(1)

    def peak_kib(self) -> tuple[int, int]:
        """The server's resident memory now and its peak so far (VmRSS, VmHWM), in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return rss, hwm

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def client_token(config: Path, url: str, name: str) -> str:
    """A new API client of the sender (`edi clients add --json`) and an access token for it."""
    made = subprocess.run(
        [str(EDI), "--config", str(config), "clients", "add", name, "--sender", SENDER, "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    pair = json.loads(made.stdout)
    answer = httpx.post(
        f"{url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(pair["client_id"], pair["client_secret"]),
        timeout=60,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def small_invoices(count: int) -> list[tuple[str, str, bytes]]:
    """``count`` valid one-line invoices: (name, flowSyntax, bytes)."""
    made = []
    for flow in flows(count * 2, seed=26, lines=1):
        if flow.broken:
            continue
        syntax = "CII" if b"CrossIndustryInvoice" in flow.data[:2000] else "UBL"
        made.append((flow.name, syntax, flow.data))
        if len(made) == count:
            break
    return made


def load(url: str, tokens: list[str], files: list[tuple[str, str, bytes]]) -> tuple[float, list[float]]:
    """Deposit ``files`` with one thread per token; wall seconds and each deposit's seconds to its 202."""
    times: list[float] = []
    lock = threading.Lock()
    queue = iter(enumerate(files))

    def work(token: str) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                n, (name, syntax, data) = item
                info = json.dumps({"name": name, "flowSyntax": syntax, "trackingId": f"bench-{n}"})
                start = time.perf_counter()
                answer = http.post(
                    f"{url}{BASE}/v1/flows",
                    files={"flowInfo": (None, info, "application/json"), "file": (name, data, "application/xml")},
                )
                took = time.perf_counter() - start
                if answer.status_code != 202:
                    raise SystemExit(f"deposit {n}: {answer.status_code} {answer.text[:200]}")
                with lock:
                    times.append(took)

    threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, times


def bare_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    """The bare durable-upload app under uvicorn, on a free port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", BARE, str(folder), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().startswith("ready")
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return process, url


def quantiles(times: list[float]) -> str:
    """p50 / p99 in ms."""
    cuts = statistics.quantiles(times, n=100)
    return f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms"


def bench_deposits(work: Path, count: int, client_counts: list[int]) -> None:
    """Deposits per second with C concurrent clients, against the bare durable upload."""
    files = small_invoices(count)
    print(
        f"\n== deposits: {len(files)} one-line invoices per run, {statistics.mean(len(f[2]) for f in files):.0f} B each"
    )
    for clients in client_counts:
        rates: dict[str, list[float]] = {"bare": [], "edi": []}
        for label in ("bare", "edi", "bare"):
            folder = work / f"{label}-{clients}-{len(rates[label])}"
            if label == "bare":
                process, url = bare_server(folder)
                try:
                    wall, times = load(url, ["-"] * clients, files)
                finally:
                    process.terminate()
                    process.wait()
            else:
                config = configure(folder)
                server = Server(config)
                try:
                    tokens = [client_token(config, server.url, f"bench-{c}") for c in range(clients)]
                    wall, times = load(server.url, tokens, files)
                finally:
                    server.stop()
            rates[label].append(len(files) / wall)
            print(f"  {clients:3d} clients  {label:4s}  {len(files) / wall:7.0f} deposits/s  {quantiles(times)}")
        bare = statistics.mean(rates["bare"])
        print(f"  {clients:3d} clients  edi / bare = {rates['edi'][0] / bare:.2f}")


def seed_store(work: Path, seed_flows: int) -> tuple[Path, Path]:
    """A workspace whose store holds real rows: ``seed_flows`` deposits through the API, processed by `edi batch`."""
    config = configure(work)
    server = Server(config)
    try:
        token = client_token(config, server.url, "seed")
        load(server.url, [token], small_invoices(seed_flows))
    finally:
        server.stop()
    subprocess.run([str(EDI), "--config", str(config), "batch"], check=True, capture_output=True)
    return config, work / "ws" / "tracking.sqlite"


def grow(database: Path, total: int) -> None:
    """Copy the store's flows (and their documents, findings, deposits, CDAR messages) under new ids and times until
    it holds ``total`` flows; half the copies the sender's, the rest spread over the others."""
    conn = sqlite3.connect(database, isolation_level=None)
    seeds = [r[0] for r in conn.execute("SELECT flow_id FROM flows ORDER BY flow_id")]
    copies = max(0, total - len(seeds))
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE seeds (k INTEGER PRIMARY KEY, flow_id TEXT)")
    conn.executemany("INSERT INTO temp.seeds VALUES (?, ?)", list(enumerate(seeds)))
    # new ids: one a millisecond from 2025-01-01, as edi's ids are made (time, then 6 hex digits)
    conn.execute(
        "CREATE TEMP TABLE made AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) "
        "SELECT i, (SELECT flow_id FROM temp.seeds WHERE k = i % ?) AS seed, "
        "strftime('%Y%m%dT%H%M%S', 1735689600 + i / 1000, 'unixepoch') || printf('%03d000-%06x', i % 1000, i) AS id, "
        "strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + i / 1000, 'unixepoch') || printf('.%03dZ', i % 1000) AS at, "
        f"CASE WHEN i % 2 = 0 THEN '{SENDER}' ELSE 'other' || (1 + i / 2 % 9) END AS sender FROM n",
        [copies, len(seeds)],
    )
    conn.execute("CREATE INDEX temp.made_seed ON made (seed)")

    def copy(table: str, key: str = "flow_id", when: tuple[str, ...] = ("updated_at",), extra: str = "") -> None:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
        picked = []
        for column in columns:
            if column == key:
                picked.append("m.id" if key == "flow_id" else f"m.id || substr(t.{key}, length(t.flow_id) + 1)")
            elif column == "flow_id":
                picked.append("m.id")
            elif column == "sender":
                picked.append("m.sender")
            elif column == "inbox_name":  # unique per sender
                picked.append("m.id")
            elif column in when:
                picked.append("m.at")
            else:
                picked.append(f"t.{column}")
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(picked)} "
            f"FROM temp.made m JOIN {table} t ON t.flow_id = m.seed {extra}"
        )

    copy("flows", when=("received_at", "deposited_at", "processed_at", "updated_at"))
    copy("documents")
    copy("findings")
    copy("api_deposits", when=("submitted_at",))
    copy("api_messages", key="message_id")
    conn.execute("COMMIT")
    conn.close()


def search(http: Any, url: str, where: dict[str, Any]) -> None:
    """One search request, raising on an error status."""
    http.post(url, json={"where": where, "limit": 25}).raise_for_status()


def timed(call: Callable[[], Any], times: int) -> list[float]:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
    return took


def bench_store(work: Path, total: int) -> None:
    """GET and search latencies on a store of ``total`` flows, against bare SQLite reads of the same."""
    print(f"\n== a store of {total:,} flows")
    start = time.perf_counter()
    config, database = seed_store(work, 60)
    grow(database, total)
    print(f"  made in {time.perf_counter() - start:.0f} s ({database.stat().st_size / 2**20:.0f} MiB)")
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    ids = [
        r[0] for r in conn.execute("SELECT flow_id FROM flows WHERE sender = ? ORDER BY random() LIMIT 500", [SENDER])
    ]
    server = Server(config)
    try:
        token = client_token(config, server.url, "reader")
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            picks = iter(ids * 2)
            get = timed(lambda: http.get(f"{server.url}{BASE}/v1/flows/{next(picks)}").raise_for_status(), 500)
            bare_picks = iter(ids * 2)

            def bare_get() -> None:
                flow_id = next(bare_picks)
                conn.execute("SELECT * FROM flows WHERE flow_id = ?", [flow_id]).fetchall()
                conn.execute("SELECT * FROM documents WHERE flow_id = ?", [flow_id]).fetchall()
                conn.execute("SELECT * FROM findings WHERE flow_id = ?", [flow_id]).fetchall()

            bare = timed(bare_get, 500)
            print(f"  GET Metadata        edi {quantiles(get)}; bare SQLite {quantiles(bare)}")
            searches: dict[str, dict[str, Any]] = {
                "ackStatus Ok": {"ackStatus": "Ok"},
                "ackStatus Error": {"ackStatus": "Error"},
                "flowType CustomerInvoiceLC": {"flowType": ["CustomerInvoiceLC"]},
                "trackingId": {"trackingId": "bench-7"},
                "updatedAfter": {"updatedAfter": "2025-01-02T00:00:00Z"},
            }
            for label, where in searches.items():
                took = timed(functools.partial(search, http, f"{server.url}{BASE}/v1/flows/search", where), 50)
                print(f"  search {label:28s} first page of 25: edi {quantiles(took)}")
            pages: list[float] = []
            cursor = None
            for _ in range(20):
                body: dict[str, Any] = {"where": {"updatedAfter": "2025-01-01T00:00:00Z"}, "limit": 100}
                if cursor:
                    body["cursor"] = cursor
                start = time.perf_counter()
                answer = http.post(f"{server.url}{BASE}/v1/flows/search", json=body)
                pages.append(time.perf_counter() - start)
                answer.raise_for_status()
                cursor = answer.json().get("nextCursor")
            print(f"  search 20 pages of 100 by cursor:  edi {quantiles(pages * 5)}")
            bare_page = timed(
                lambda: conn.execute(
                    f"SELECT * FROM flows INDEXED BY idx_flows_api WHERE sender = ? AND {API_ACK_STATUS} = 'Ok' "
                    "AND updated_at > ? ORDER BY updated_at, flow_id LIMIT 25",
                    [SENDER, "2025-01-02T00:00:00Z"],
                ).fetchall(),
                50,
            )
            print(
                f"  bare SQLite: a keyset page of 25 of the sender's Ok flows (the index edi's search uses): "
                f"{quantiles(bare_page)}"
            )
    finally:
        server.stop()
        conn.close()


def bench_upload(work: Path, megabytes: float) -> None:
    """The server's peak memory while it takes a ``megabytes`` file."""
    config = configure(work)
    server = Server(config)
    try:
        token = client_token(config, server.url, "big")
        head = next(f for f in small_invoices(4) if f[1] == "UBL")[2]
        cut = head.index(b">", head.index(b"<Invoice")) + 1
        size = int(megabytes * 2**20)
        filler = size - len(head) - len(b"<!--  -->")

        def body() -> Iterator[bytes]:
            yield head[:cut] + b"<!-- "
            block = b"x" * 2**20
            left = filler
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)
            yield b" -->" + head[cut:]

        rss, before = server.peak_kib()
        boundary = "benchboundary"
        info = json.dumps({"name": "big.xml", "flowSyntax": "UBL"})

        def multipart() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="flowInfo"\r\n'
                f"Content-Type: application/json\r\n\r\n{info}\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.xml"\r\n'
                "Content-Type: application/xml\r\n\r\n"
            ).encode()
            yield from body()
            yield f"\r\n--{boundary}--\r\n".encode()

        start = time.perf_counter()
        answer = httpx.post(
            f"{server.url}{BASE}/v1/flows",
            content=multipart(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=600,
        )
        took = time.perf_counter() - start
        _, after = server.peak_kib()
        if answer.status_code != 202:
            raise SystemExit(f"the upload was refused: {answer.status_code} {answer.text[:300]}")
        print(
            f"\n== one upload of {size / 2**20:.0f} MiB: {answer.status_code} in {took:.1f} s "
            f"({size / 2**20 / took:.0f} MiB/s)"
        )
        print(
            f"  server resident before {rss / 1024:.0f} MiB, peak before {before / 1024:.0f} MiB, "
            f"peak after {after / 1024:.0f} MiB: +{(after - before) / 1024:.1f} MiB for a {size / 2**20:.0f} MiB file"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deposits", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--store-flows", type=int, default=1_000_000)
    parser.add_argument("--upload-mb", type=float, default=99.0)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: deposits, store, upload")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory(prefix="bench-api-", dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        print(f"bench_api.py {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, edi at {EDI}")
        if "deposits" not in skip:
            bench_deposits(work / "deposits", args.deposits, args.clients)
        if "upload" not in skip:
            bench_upload(work / "upload", args.upload_mb)
        if "store" not in skip:
            bench_store(work / "store", args.store_flows)


if __name__ == "__main__":
    main()
