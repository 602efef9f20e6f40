"""Measure one call's peak Python-allocated memory and wall time in a fresh interpreter, alone.

Measured in the test process, a call's peak depends on what the suite did before: tracemalloc counts every thread's
allocations (earlier tests leave threads behind: rules processes' writers, servers winding down), and in the full
suite a tar.gz read peaked at 4.5 MiB where it holds 0.85 MiB alone (in CI, and in a fork of the suite's process
too). A new interpreter has none of that: the call is measured as it runs alone. The function must be importable
(a module-level function of an importable module); it and its arguments go to the child pickled, and what it returns
(or the ``catch`` exception it raises) comes back pickled.
"""

from __future__ import annotations

import gc
import json
import pickle
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHILD = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); from tests.peak import child; child(sys.argv[2])"


def alone(
    function: Callable[..., object], *args: object, catch: type[BaseException] = Exception
) -> tuple[Any, int, float]:
    """What ``function(*args)`` returned (or the ``catch`` exception it raised), its peak traced bytes and the
    seconds it took, measured in a new interpreter."""
    with tempfile.TemporaryDirectory(prefix="edi-peak-") as folder:
        exchange = Path(folder, "exchange")
        exchange.write_bytes(pickle.dumps((function, args, catch)))
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(sys.path), str(exchange)], capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"the measuring interpreter failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        result, peak, elapsed = pickle.loads(exchange.read_bytes())
    return result, peak, elapsed


def child(exchange: str) -> None:
    """In the new interpreter: run the call ``exchange`` holds and write back its result, peak and time."""
    path = Path(exchange)
    function, args, catch = pickle.loads(path.read_bytes())
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result: object = function(*args)
    except catch as exc:
        result = exc
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    path.write_bytes(pickle.dumps((result, peak, elapsed)))
