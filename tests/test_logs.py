"""edi.logs: on a terminal every logged value is escaped; a logged exception is short and never carries locals."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from edi import logs
from tests.conftest import FLOWS, Workspace, assert_inert

COLOURS = re.compile("\x1b\\[[0-9;]*m")  # what ConsoleRenderer itself writes around levels and keys
SECRET = "SELLER-IBAN-FR7630006000011234567890189"


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as standard error does in an operator's shell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Each test configures logging for itself; the next one finds it as it was."""
    saved, level = structlog.get_config(), logs.current_level()
    yield
    structlog.configure(**saved)
    logs._level = level


def nested(depth: int) -> None:
    """Raise from ``depth`` frames down, with invoice data in every frame's locals."""
    invoice = {"iban": SECRET, "depth": depth}
    if depth:
        nested(depth - 1)
    raise OSError(28, f"No space left on device\nforged line {invoice['depth']}", "/ws/acks/a\x9b\u202e.json")


def test_console_logs_escape_every_value_and_show_a_short_traceback_without_locals() -> None:
    """On a terminal, a file name holding a line feed, the CSI or an RLO is shown escaped; the exception is its
    type, message and the last frames, every line escaped, and none of the frames' local variables."""
    terminal = Terminal()
    logs.configure_logging("info", terminal)
    try:
        nested(20)
    except OSError as exc:
        structlog.get_logger().error("flow failed", file="a\nb\x9b[2J\u202exml", exc_info=exc)
    text = COLOURS.sub("", terminal.getvalue())
    assert_inert(text)
    first, *trace = text.rstrip("\n").split("\n")
    assert "flow failed" in first and "file=a\\nb\\x9b[2J\\u202exml" in first
    assert SECRET not in text and "iban" not in text
    assert trace[0] == "  ... 16 frames above"  # this test, 21 frames of nested(), 6 shown
    assert len([line for line in trace if line.startswith('  File "')]) == logs.TRACEBACK_FRAMES
    assert trace[-1] == ("OSError: [Errno 28] No space left on device\\nforged line 0: '/ws/acks/a\\x9b\\u202e.json'")


def test_short_traceback_gives_the_chain_first_error_first() -> None:
    """An exception raised from another: both, the first one first, as Python prints them, each kept short."""
    try:
        try:
            nested(2)
        except OSError as exc:
            raise RuntimeError("cannot write the acknowledgement") from exc
    except RuntimeError as exc:
        text = logs.short_traceback(exc)
    lines = text.splitlines()
    cause = lines.index("The above exception was the direct cause of the following exception:")
    assert (
        lines[cause - 1].startswith("OSError: [Errno 28]")
        and lines[-1] == "RuntimeError: cannot write the acknowledgement"
    )
    assert SECRET not in text


def test_json_logs_of_flows_failing_on_a_full_disk_are_short_and_hold_no_invoice_data(workspace: Workspace) -> None:
    """JSON logs (standard error not a terminal) of flows failing on ENOSPC: each exception is its type, message
    and a few frames, without locals (they held the acknowledgement's bytes: invoice data)."""
    source = (FLOWS / "acme" / "01-ubl-invoice.xml").read_bytes()
    for n in range(20):
        workspace.drop("acme", f"inv-{n}.xml", re.sub(rb"<cbc:ID>[^<]*<", f"<cbc:ID>N{n}<".encode(), source, count=1))
    run = subprocess.run(
        [sys.executable, "-m", "edi", "--config", str(workspace.config), "batch", "--workers", "1"],
        env={**os.environ, "EDI_FAULTS": "write.ack=enospc"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    failed = [json.loads(line) for line in run.stderr.splitlines() if '"flow failed"' in line]
    assert len(failed) == 20
    for line in failed:
        (exception,) = line["exception"]
        assert exception["exc_type"] == "OSError" and "No space left on device" in exception["exc_value"]
        assert all("locals" not in frame for frame in exception["frames"])
        assert 1 <= len(exception["frames"]) <= logs.TRACEBACK_FRAMES + 1  # and a "Skipped frames" marker, if any
    assert "123456782" not in run.stderr and "schema_version" not in run.stderr  # seller id, the ack's bytes
    assert len(run.stderr.encode()) / len(failed) < 1500
