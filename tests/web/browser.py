"""Helpers of the real-browser tests (tests/web/test_browser.py): a workspace with real processed flows, the real
`edi serve --port 0` in a process of its own, and Debian's chromium driven headless by Playwright, watched for
every console error, failed request, error answer, dialog and request that leaves 127.0.0.1.

Nothing here downloads a browser: Playwright launches the system chromium (``executable_path``). Where chromium or
the Python ``playwright`` package is missing, :data:`NO_BROWSER` says why and the tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tests.conftest import FLOWS, REPO

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request, Response

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAUNCH_TIMEOUT_MS = 120_000  # a 2-core machine shared with other runs: chromium usually starts in 1-3 s
SERVE_TIMEOUT_S = 60.0
PAGE_TIMEOUT_MS = 30_000
PASSWORD = "secret-pass-1"
HOSTILE_FILE = "<b onmouseover=alert(1)>x.xml"
HOSTILE_INVOICE = '"><img src=x onerror=alert(1)>'
FAVICON = "/static/favicon.svg"
PAGE_SIZE = 5  # flows per page in the test workspace, so that a filtered list has a next page


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _no_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "no chromium executable (Debian: apt-get install chromium; .ci/run does it as root)"
    return None


NO_BROWSER = _no_browser()  # why the browser tests skip here, None when they can run


# -- the workspace -----------------------------------------------------------------------------------------------


def edi(config: Path, *args: str, faults: str = "", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `edi --config CONFIG ARGS` in a process of its own (EDI_FAULTS set to ``faults``)."""
    env = {**os.environ, "EDI_FAULTS": faults}
    command = [sys.executable, "-m", "edi", "--config", str(config), *args]
    return subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, check=False, timeout=600)


def edi_ok(config: Path, *args: str, stdin: str | None = None) -> str:
    """`edi ARGS`, which must succeed; its standard output."""
    run = edi(config, *args, stdin=stdin)
    assert run.returncode == 0, f"edi {' '.join(args)}: {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _dated_back(folder: Path, seconds: float) -> None:
    """Date every file under ``folder`` ``seconds`` back, unless it already is older: as if each had finished
    arriving then (min_age_seconds has passed; no sleep)."""
    stamp = time.time() - seconds
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_mtime > stamp:
            os.utime(path, (stamp, stamp))


@dataclass
class ConsoleWorkspace:
    """The shipped config.toml and flows/ in a temporary folder, every sample processed, an operator account."""

    config: Path
    failed: str  # the flow that failed (EDI_FAULTS at write.ack): IN_EN_ATTENTE_RETRAITEMENT, to requeue
    hostile: str  # the flow with the hostile file name and invoice number
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)  # by flow id, as `edi flows --json` says

    @property
    def root(self) -> Path:
        return self.config.parent / "var"

    def ack(self, flow_id: str) -> Path:
        """The acknowledgement (JSON) file the flow's sender reads."""
        return self.root / "acks" / self.flows[flow_id]["sender"] / f"{flow_id}.json"


def make_console_workspace(folder: Path) -> ConsoleWorkspace:
    """Copy config.toml (with a small page size) and flows/ into ``folder``; `edi init`; drop the samples and a
    hostile flow, `edi batch`; then one more invoice with a write fault injected, so that it fails; add alice, an
    operator."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    assert text.count("\npage_size = 50 ") == 1
    config = folder / "config.toml"
    config.write_text(text.replace("\npage_size = 50 ", f"\npage_size = {PAGE_SIZE} "), encoding="utf-8")
    shutil.copytree(FLOWS, folder / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    edi_ok(config, "init")
    inbox = folder / "var" / "inbox"
    subprocess.run([sys.executable, "flows/drop.py", str(inbox)], cwd=folder, check=True, capture_output=True)
    invoice = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    assert invoice.count(b"FA-2026-0001") == 2
    escaped = HOSTILE_INVOICE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    (inbox / "acme" / HOSTILE_FILE).write_bytes(invoice.replace(b"FA-2026-0001", escaped.encode()))
    _dated_back(inbox, 10)
    edi_ok(config, "batch")
    (inbox / "acme" / "failing.xml").write_bytes(invoice.replace(b"FA-2026-0001", b"FA-2026-0777"))
    _dated_back(inbox, 10)
    edi(config, "batch", faults="write.ack=eio")  # exits non-zero or not: the flow's status says what happened
    edi_ok(config, "users", "add", "alice", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
    flows = {row["flow_id"]: row for row in map(json.loads, edi_ok(config, "flows", "--json").splitlines())}
    (failed,) = [f for f, row in flows.items() if row["status"] == "IN_EN_ATTENTE_RETRAITEMENT"]
    (hostile,) = [f for f, row in flows.items() if row["file_name"] == HOSTILE_FILE]
    assert flows[failed]["file_name"] == "failing.xml"
    return ConsoleWorkspace(config, failed, hostile, flows)


# -- the console -------------------------------------------------------------------------------------------------


@dataclass
class Served:
    """A running `edi serve`: its URL (ending in /) and its log (standard error)."""

    url: str
    log: Path
    started_in: float

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve(config: Path, log: Path) -> Iterator[Served]:
    """The real `edi serve --port 0` (any free port on 127.0.0.1), its URL read from what it prints; stopped with
    SIGTERM at the end, which must end it with status 0."""
    start = time.monotonic()
    command = [sys.executable, "-m", "edi", "--config", str(config), "serve", "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "EDI_FAULTS": ""}
    with log.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read(stream: Any) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        url = _wait_for_url(lines, process, log, start)
        yield Served(url, log, time.monotonic() - start)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SERVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("edi serve did not stop within a minute of SIGTERM") from None
        reader.join(timeout=10)
    said = []
    while not lines.empty():
        said.append(lines.get_nowait())
    assert code == 0, f"edi serve ended with {code}: {log.read_text(encoding='utf-8', errors='replace')[-2000:]}"
    assert "console stopped\n" in said


def _wait_for_url(lines: queue.Queue[str | None], process: subprocess.Popen[str], log: Path, start: float) -> str:
    """The URL of the `edi console on URL (Ctrl-C stops it)` line."""
    while True:
        left = start + SERVE_TIMEOUT_S - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            raise AssertionError(f"edi serve printed no URL within {SERVE_TIMEOUT_S:.0f} s") from None
        if line is None:
            process.wait(timeout=10)
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise AssertionError(f"edi serve ended ({process.returncode}) before listening: {tail}")
        if line.startswith("edi console on "):
            url = line.removeprefix("edi console on ").split()[0]
            assert url.startswith("http://127.0.0.1:") and url.endswith("/"), line
            return url


# -- the browser -------------------------------------------------------------------------------------------------


def launch(playwright: Any) -> tuple[Browser, float]:
    """Debian's chromium, headless, and the seconds it took to start."""
    start = time.monotonic()
    browser = playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_TIMEOUT_MS
    )
    return browser, time.monotonic() - start


class Watch:
    """Everything a page does that a clean console never does: console errors, uncaught exceptions, failed
    requests, answers >= 400 (except those the scenario expects: :meth:`expect`), dialogs (dismissed), requests to
    anything but the console's host."""

    def __init__(self, page: Page, url: str) -> None:
        self.host = urlsplit(url).netloc
        self.problems: list[str] = []
        self.expected: set[tuple[str, int]] = set()
        self.dialogs: list[str] = []
        self.visited: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("request", self._request)
        page.on("dialog", self._dialog)

    def expect(self, path: str, status: int) -> None:
        """The scenario expects ``path`` to answer ``status`` (>= 400)."""
        self.expected.add((path, status))

    def _expected(self, url: str, status: int | None = None) -> bool:
        path = unquote(urlsplit(url).path)
        return any(p == path and (status is None or s == status) for p, s in self.expected)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        refused = message.text.startswith("Failed to load resource: the server responded with a status of")
        if refused and self._expected(where):
            return  # an answer the scenario expects (checked in _response)
        self.problems.append(f"console error at {where}: {message.text}")

    def _failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED" and urlsplit(request.url).path == FAVICON:
            return  # the browser fetches the icon after the page's load event: the next click may cancel it
        self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.request.method == "GET" and response.status < 400:
            self.visited.append(urlsplit(response.url).path)
        if response.status >= 400 and not self._expected(response.url, response.status):
            self.problems.append(f"answer {response.status} to {response.request.method} {response.url}")

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme == "data":
            return
        if parts.scheme != "http" or parts.netloc != self.host:
            self.problems.append(f"request leaving the console: {request.method} {request.url}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()
