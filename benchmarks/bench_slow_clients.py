"""Whether `edi serve` stays responsive while slow clients hold connections.

Starts the real `edi serve --port 0` on a fresh workspace (its `[api] read_timeout_seconds` from --timeout), then:

  baseline   GET {base}/v1/healthcheck from one well-behaved client, --requests times: latency p50 / p99 / max;
  attacked   the same while --slowloris connections each send their request headers one byte every --interval
             seconds (never silent long) and --stuck connections announce a 1,000-byte token request, send 11
             bytes of it and then nothing: latency p50 / p99 / max, and when the server had closed all the slow
             connections (a trickled header by the header deadline, a stuck body by the 408).

Usage: python benchmarks/bench_slow_clients.py [--slowloris 500] [--stuck 100] [--timeout 2] [--requests 200]
Nothing is kept: the workspace is a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

EDI = Path(sys.executable).parent / "edi"
READY = re.compile(r"^edi console on (http://127\.0\.0\.1:(\d+)/)")
CONFIG = '[workspace]\nroot = "ws"\n\n[[senders]]\nid = "acme"\nsellers = ["*"]\n\n[api]\nread_timeout_seconds = {t}\n'


def latencies(url: str, count: int) -> list[float]:
    """Seconds each of `count` GETs of `url` takes (a new connection each, as a monitor does)."""
    out = []
    for _ in range(count):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
        out.append(time.perf_counter() - began)
    return out


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:10} n={len(values)}  p50 {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
        f"max {ordered[-1] * 1000:7.1f} ms"
    )


def seconds(value: float | None) -> str:
    return "never (within 120 s)" if value is None else f"{value:.2f} s"


def closed(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--stuck", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=2.0, help="[api] read_timeout_seconds")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.toml"
        config.write_text(CONFIG.format(t=args.timeout), encoding="utf-8")
        subprocess.run([str(EDI), "--config", str(config), "init"], check=True, capture_output=True)
        server = subprocess.Popen(
            [str(EDI), "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "EDI_FAULTS": ""},
        )
        try:
            assert server.stdout is not None
            found = READY.match(server.stdout.readline())
            assert found, "edi serve did not start"
            url, port = found.group(1) + "afnor-flow/v1/healthcheck", int(found.group(2))
            latencies(url, 20)  # warm up
            print(f"edi serve, header deadline and read timeout {args.timeout:g} s, 127.0.0.1:{port}")
            print(summary("baseline", latencies(url, args.requests)))
            began = time.monotonic()
            slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.slowloris)]
            stuck = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.stuck)]
            for sock in stuck:
                sock.sendall(
                    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 1000\r\n\r\ngrant_type="
                )
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000
            measured: list[float] = []
            sent, last_trickle = 0, 0.0
            open_slow, open_stuck = set(range(len(slow))), set(range(len(stuck)))
            slow_gone = stuck_gone = None
            while len(measured) < args.requests or open_slow or open_stuck:
                now = time.monotonic()
                if now - last_trickle >= args.interval:
                    for i in list(open_slow):
                        with contextlib.suppress(OSError):
                            slow[i].send(request[sent : sent + 1])
                    sent, last_trickle = sent + 1, now
                open_slow = {i for i in open_slow if not closed(slow[i])}
                open_stuck = {i for i in open_stuck if not closed(stuck[i])}
                if not open_slow and slow_gone is None:
                    slow_gone = time.monotonic() - began
                if not open_stuck and stuck_gone is None:
                    stuck_gone = time.monotonic() - began
                if len(measured) < args.requests:
                    measured += latencies(url, 1)
                if time.monotonic() - began > 120:
                    break
            print(summary("attacked", measured) + f"  ({args.slowloris} slowloris + {args.stuck} stuck connections)")
            print(f"slowloris connections all closed after {seconds(slow_gone)}", end="; ")
            print(f"stuck bodies all cut off after {seconds(stuck_gone)}")
            for sock in slow + stuck:
                sock.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
