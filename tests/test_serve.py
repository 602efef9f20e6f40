"""`edi serve` (edi/serve.py) as the real executable in a process of its own: it says where it listens, answers,
stops cleanly on SIGTERM and SIGINT, and refuses a port in use or a lost store in one line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_CONFIG, Workspace

EDI = Path(sys.executable).parent / "edi"
READY = re.compile(r"^edi console on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C stops it\)$")


def start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    """`edi --config <ws> serve ARGS` in a process of its own."""
    return subprocess.Popen(
        [str(EDI), "--config", str(ws.config), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EDI_FAULTS": ""},
    )


def ready_url(process: subprocess.Popen[str], seconds: float = 30) -> str:
    """The URL the console printed once listening (fails if the process ends or stays silent)."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    line = process.stdout.readline()  # the first line: nothing else goes to stdout before it
    assert time.monotonic() < deadline, "edi serve said nothing in time"
    found = READY.match(line.rstrip("\n"))
    assert found, (
        f"unexpected first line {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
    )  # type: ignore[union-attr]
    return found.group(1)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_on_port_0_prints_its_url_answers_and_stops_cleanly(workspace: Workspace, signum: int) -> None:
    """`edi serve --port 0` prints the URL with the port it bound, /healthz answers 200, and SIGTERM or SIGINT
    ends it with exit 0 within a few seconds, saying so, with no traceback."""
    process = start(workspace, "--port", "0")
    try:
        url = ready_url(process)
        assert not url.endswith(":0/")
        with urllib.request.urlopen(url + "healthz", timeout=10) as answer:
            assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok"}
        with urllib.request.urlopen(url + "login", timeout=10) as answer:
            assert answer.status == 200 and "content-security-policy" in answer.headers
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == "console stopped\n" and "Traceback" not in err


def test_a_port_in_use_is_one_line_and_exit_1(workspace: Workspace) -> None:
    """`edi serve --port N` on a port another program listens on says so in one line and exits 1."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(EDI), "--config", str(workspace.config), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert errors(result.stderr) == [f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_a_host_that_is_not_this_machines_is_one_line_and_exit_1(workspace: Workspace) -> None:
    """`edi serve --host` with an address this machine does not have says so in one line and exits 1."""
    result = subprocess.run(
        [str(EDI), "--config", str(workspace.config), "serve", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = errors(result.stderr)
    assert line.startswith("Error: cannot listen on 192.0.2.1:0: ")


def test_a_lost_store_is_one_line_naming_store_rebuild(workspace: Workspace) -> None:
    """`edi serve` on a workspace whose tracking store is gone refuses to start in one line that names
    `edi store rebuild`, exit 1, and listens on nothing."""
    (workspace.root / "tracking.sqlite").unlink()
    result = subprocess.run(
        [str(EDI), "--config", str(workspace.config), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    (line,) = errors(result.stderr)
    assert line.startswith("Error: ") and "edi store rebuild" in line and "Traceback" not in result.stderr


SLOW = "\n[api]\nread_timeout_seconds = 1\n"  # the header deadline is min(HEADER_SECONDS, this)


def _closed(sock: socket.socket) -> bool:
    """The server closed this connection (an end of file or a reset is waiting), without waiting for it."""
    sock.settimeout(0.05)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def _get(url: str) -> float:
    """Seconds a GET of `url` takes to answer 200."""
    began = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.status == 200
        answer.read()
    return time.monotonic() - began


def test_slowloris_connections_are_closed_and_others_served_meanwhile(make_workspace) -> None:
    """Many connections that send their request headers a byte at a time (none silent for long) are all closed
    once the header deadline passes, as is one that sends nothing; meanwhile the server answers others at once."""
    ws = make_workspace(DEFAULT_CONFIG + SLOW)
    process = start(ws, "--port", "0")
    slow: list[socket.socket] = []
    try:
        url = ready_url(process)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        silent = socket.create_connection(("127.0.0.1", port))
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
        began, waits = time.monotonic(), []
        for byte in range(12):  # 3 s: one byte every 0.25 s on each connection, while they are open
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(request[byte : byte + 1])
            waits.append(_get(url + "healthz"))
            time.sleep(0.25)
        assert max(waits) < 0.5, waits
        assert _closed(silent)
        assert all(_closed(sock) for sock in slow)
        assert time.monotonic() - began < 5
    finally:
        for sock in slow:
            sock.close()
        process.terminate()
        process.communicate(timeout=15)


def test_a_kept_alive_connection_has_the_header_deadline_again(make_workspace) -> None:
    """After an answer on a kept-alive connection, the next request's headers must come within the deadline too:
    a whole request is answered, a trickled second one is cut off."""
    ws = make_workspace(DEFAULT_CONFIG + SLOW)
    process = start(ws, "--port", "0")
    try:
        url = ready_url(process)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            for byte in b"GET /healthz HTTP/1.1\r\n":  # 0.2 s a byte: 4.6 s for the line alone
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                if _closed(sock):
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the trickled request was not cut off")
    finally:
        process.terminate()
        process.communicate(timeout=15)
