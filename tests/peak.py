"""Measure one action's peak Python-allocated memory and wall time in a forked child, alone.

tracemalloc counts every thread's allocations, and in the full suite earlier tests may leave threads running (a
server winding down, a watcher, a deliverer) or garbage whose finalizers run during the measure: any of them would
count against the action. A forked child has only the calling thread and a collected heap, so what it measures is
the action's own. The child sends back what the action returned (or the exception it raised), pickled.
"""

from __future__ import annotations

import gc
import os
import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def alone(action: Callable[[], object], catch: type[BaseException] = Exception) -> tuple[Any, int, float]:
    """What ``action`` returned (or the ``catch`` exception it raised), its peak traced bytes and seconds taken."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which never returns to pytest
        os.close(reader)
        try:
            answer: tuple[str, object] = ("measured", _measure(action, catch))
        except BaseException as exc:  # anything else, reported to the parent as a failure
            answer = ("failed", repr(exc))
        try:
            with os.fdopen(writer, "wb") as out:
                out.write(pickle.dumps(answer))
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as received:
        payload = received.read()
    _, status = os.waitpid(child, 0)
    if not payload:
        raise RuntimeError(f"the measuring child died (wait status {status})")
    kind, value = pickle.loads(payload)
    if kind == "failed":
        raise RuntimeError(f"the measuring child failed: {value}")
    return value  # type: ignore[no-any-return]


def _measure(action: Callable[[], object], catch: type[BaseException]) -> tuple[object, int, float]:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: object = action()
    except catch as exc:
        result = exc
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak, elapsed
