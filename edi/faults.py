"""Injected faults, for tests that prove a failure or a crash at a given point loses nothing.

Reads the ``EDI_FAULTS`` environment variable once per process: a comma-separated list of ``point=action``, where
``action`` is ``raise`` (raise InjectedFault), ``bug`` (raise RuntimeError, which no code expects, as a bug would),
``crash`` (kill the process on the spot with SIGKILL, as a power cut would), or an errno the disk could answer with,
raised as that OSError: ``enospc`` (disk full), ``eacces`` (permission denied), ``eio`` (I/O error), ``erofs`` (read-
only filesystem), ``edquot`` (quota exceeded), or ``corrupt`` (at a point that hands bytes to :func:`corrupted`: those
bytes are damaged, as a bug in edi would; elsewhere it does nothing). Points are named where the code calls
:func:`fault_point`; among them ``write.delivery`` and ``write.ack`` (a queue file or an acknowledgement being
written), ``deliver.before_rename``, ``ack.json.before_rename``, ``barrier``, ``tracking.record_claims``,
``write.cdar`` and ``cdar.before_rename`` (a CDAR lifecycle message being written, then renamed into place),
``cdar.built`` (the message's bytes, before they are checked: ``corrupt``), for a recipient's status relayed to an
invoice's sender ``write.relay``, ``relay.before_rename`` and ``relay.built``, ``notify.after_send`` (an SMTP
server took a notification, its outcome is not recorded yet), ``webhooks.after_send`` (a callback took a webhook
event, likewise), and for a flow deposited through the API
``write.deposit`` (its bytes being written), ``deposit.before_record`` (its bytes durable in ``tmp/deposits``),
``deposit.after_record`` (its row committed), ``place.before_rename`` (about to enter the inbox) and
``deposit.after_rename`` (in the inbox, not answered).
``point=action@N`` fails only from the Nth time the process reaches the point (the first N - 1 pass): a disk that
fills up in the middle of a run. Unset, it costs one dict lookup per point.
"""

from __future__ import annotations

import errno
import os
import signal
from functools import cache

from edi.errors import InjectedFault

ERRNOS = {
    "enospc": errno.ENOSPC,
    "eacces": errno.EACCES,
    "eio": errno.EIO,
    "erofs": errno.EROFS,
    "edquot": errno.EDQUOT,
}
ACTIONS = ("raise", "bug", "crash", "corrupt", *ERRNOS)


_reached: dict[str, int] = {}  # times each point with an ``@N`` fault was reached in this process


@cache
def _faults() -> dict[str, tuple[str, int]]:
    spec = os.environ.get("EDI_FAULTS", "")
    faults: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, wanted = item.partition("=")
        action, at, nth = wanted.partition("@")
        if action not in ACTIONS or (at and not (nth.isdigit() and int(nth) >= 1)):
            raise InjectedFault(
                f"EDI_FAULTS: {item!r}: action must be one of {', '.join(ACTIONS)}, optionally followed by @N (N >= 1)"
            )
        faults[point] = (action, int(nth) if at else 1)
    return faults


def corrupted(point: str, data: bytes) -> bytes:
    """``data``, or, if EDI_FAULTS asks for ``point=corrupt``, ``data`` damaged: a CDAR message's phase (MDT-77:
    the first element whose text is ``305``, or a relay's ``ram:TypeCode`` ``23``) made ``999``, which a fatal rule
    (BR-FR-CDV-09) refuses; still well-formed XML, so only the checks can tell."""
    fault = _faults().get(point)
    if fault is None:
        return data
    if fault[0] != "corrupt":
        fault_point(point)
        return data
    if not _due(point, fault[1]):
        return data
    phase = b"<ram:TypeCode>23<" if b"<ram:TypeCode>23<" in data else b">305<"  # a relay's phase is 23
    return data.replace(phase, phase.replace(b"23", b"999").replace(b"305", b"999"), 1)


def _due(point: str, nth: int) -> bool:
    if nth > 1:
        _reached[point] = reached = _reached.get(point, 0) + 1
        if reached < nth:
            return False
    return True


def fault_point(point: str) -> None:
    """Fail here if EDI_FAULTS asks for it."""
    fault = _faults().get(point)
    if fault is None:
        return
    action, nth = fault
    if action == "corrupt" or not _due(point, nth):
        return
    if action == "raise":
        raise InjectedFault(f"injected fault at {point}")
    if action == "bug":
        raise RuntimeError(f"injected bug at {point}")
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    number = ERRNOS[action]
    raise OSError(number, f"{os.strerror(number)} (injected at {point})")
