"""tests/peak.py measures a call alone: another thread's allocations meanwhile never count against it."""

from __future__ import annotations

import threading
import time
import tracemalloc

from tests.peak import alone


def busy(stop: threading.Event) -> None:
    kept: list[bytes] = []
    while not stop.is_set():
        kept = [*kept[-7:], bytes(1 << 20)]


def test_another_threads_allocations_are_not_counted() -> None:
    """A thread allocating 8 MiB over and over while a sleep is measured: traced in process, not in the child."""
    stop = threading.Event()
    thread = threading.Thread(target=busy, args=(stop,), daemon=True)
    thread.start()
    try:
        tracemalloc.start()
        time.sleep(0.2)
        in_process = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        _, peak, elapsed = alone(time.sleep, 0.2)
    finally:
        stop.set()
        thread.join()
    assert in_process > 4 << 20  # what the suite's measures used to count
    assert peak < 64 << 10
    assert elapsed >= 0.2


def test_the_actions_result_or_exception_comes_back() -> None:
    assert alone(sorted, [3, 1, 2])[0] == [1, 2, 3]
    error, _, _ = alone(int, "x", catch=ValueError)
    assert isinstance(error, ValueError)
