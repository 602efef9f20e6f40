"""The workspace's processor lock: one processing process at a time, unless ``workspace.exclusive = false``.

Reads and writes ``<workspace>/processor.lock``: an ``flock`` on it says a processor is at work, the text in it
says who (pid, command, since when). The kernel drops the flock when its holder dies, so a lock left by a crash is
stale by construction: the next processor takes it and logs whose it was. Raises :class:`WorkspaceBusy` with a
one-line message naming the holder when another live processor has it, WorkspaceError when the lock file
cannot be opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import structlog

from edi.clock import iso
from edi.config import Settings
from edi.errors import WorkspaceBusy, WorkspaceError

log = structlog.get_logger()
LOCK_NAME = "processor.lock"


@contextlib.contextmanager
def processor_lock(settings: Settings, command: str) -> Iterator[None]:
    """Hold the processor lock of the workspace for the duration of the block (a no-op when not exclusive)."""
    if not settings.workspace.exclusive:
        yield
        return
    layout = settings.workspace.layout()
    path = layout.root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except FileNotFoundError:  # no workspace: let the run say so
        yield
        return
    except OSError as exc:  # a link (never followed), a folder, no permission
        raise WorkspaceError(f"cannot open the processor lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusy(
                f"{layout.root} is being processed by {_holder(fd)}; try again when it is done"
            ) from None
        previous = _read(fd)
        if previous:
            log.warning("stale processor lock taken over", previous=previous)
        try:
            _write(fd, {"pid": os.getpid(), "command": command, "since": iso(datetime.now(UTC))})
        except OSError as exc:  # a full disk, an I/O error: nothing can be processed here now
            raise WorkspaceError(f"cannot write the processor lock {path}: {exc.strerror or exc}") from None
        try:
            yield
        finally:
            _write(fd, None)
    finally:
        os.close(fd)


def _read(fd: int) -> dict[str, object] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}
    return data if isinstance(data, dict) else None


def _write(fd: int, holder: dict[str, object] | None) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    if holder:
        os.write(fd, json.dumps(holder).encode("utf-8"))


def _holder(fd: int) -> str:
    holder = _read(fd) or {}
    who = str(holder.get("command", "another edi process"))
    pid = holder.get("pid")
    since = holder.get("since")
    return f"{who} (pid {pid}, since {since})" if pid else who
