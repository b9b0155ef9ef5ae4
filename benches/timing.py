"""Wall-clock timing shared by the benches."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

try:  # Unix only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = ["interleaved_median_seconds", "median_seconds", "minor_page_faults"]


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed
    calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_median_seconds(
    fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 1
) -> list[float]:
    """Median wall time in seconds of each of ``fns`` over ``repeats`` rounds, after ``warmup``
    untimed rounds; each round calls every function once, in an order that alternates between
    rounds, so that slow drifts of a shared machine (other jobs, clock changes) reach every
    function alike instead of whichever ran in a slower minute."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeats):
        order = range(len(fns)) if round_ % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def minor_page_faults(fn: Callable[[], object]) -> int | None:
    """Minor page faults of this process during one ``fn()`` call (``getrusage``'s ``ru_minflt``:
    mostly fresh pages the kernel zero-fills on first touch), or ``None`` where the ``resource``
    module does not exist (Windows)."""
    if resource is None:
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
