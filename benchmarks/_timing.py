"""Same-run timing helper shared by the benchmark files (not collected by pytest).

Ratios in ``extra_info`` are minimum wall times of the technique and its baseline taken
in the same process, so machine noise moves both.
"""

from __future__ import annotations

import time
from typing import Callable


def min_time(fn: Callable, repeats: int = 3, *, setup: Callable | None = None, warmup: bool = False) -> float:
    """Minimum wall seconds of ``fn()`` (or ``fn(setup())``, setup untimed) over ``repeats`` calls."""
    if warmup:
        fn(setup()) if setup else fn()
    best = float("inf")
    for _ in range(repeats):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        best = min(best, time.perf_counter() - t0)
    return best
