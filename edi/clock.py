"""Time and flow ids: the one place edi asks what time it is, so tests can set the clock.

Reads the system clock (or a clock a test supplies); writes nothing; raises nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time, timezone-aware in UTC, and lets time pass."""

    def now(self) -> datetime:
        """The current time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time, in UTC."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds``."""
        time.sleep(seconds)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FlowIds:
    """Makes flow ids that are unique and sort by arrival: UTC time to the microsecond, then randomness.

    Within one process ids strictly increase even when the clock stalls or steps back; across processes the random
    suffix keeps them unique (two processes claiming in the same microsecond sort arbitrarily between themselves).
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()
        self._second = -1  # the second self._stamp writes (formatting a date costs more than the rest of an id)
        self._stamp = ""

    def new(self) -> str:
        """A new flow id, e.g. ``20261126T204626483912-9f3ab2``."""
        micros = (self._clock.now() - EPOCH) // timedelta(microseconds=1)  # exact: no float rounding
        with self._lock:
            micros = max(micros, self._last + 1)
            self._last = micros
            second, micro = divmod(micros, 1_000_000)
            if second != self._second:
                self._second, self._stamp = second, datetime.fromtimestamp(second, UTC).strftime("%Y%m%dT%H%M%S")
            stamp = self._stamp
        return f"{stamp}{micro:06d}-{secrets.token_hex(3)}"


def iso(moment: datetime) -> str:
    """A timestamp as acknowledgements and the store write it: ISO 8601, UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
