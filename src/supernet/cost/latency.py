"""Measured latency of a module on this machine, with PyTorch eager or onnxruntime.

Protocol (both runtimes): a fixed thread count, ``warmup`` untimed calls, then ``repeats`` timed
repeats of ``calls_per_repeat`` calls each (enough calls that one repeat lasts ``min_repeat_ms``);
the result is the median and interquartile range of the per-call times over the repeats, timed
with ``torch.utils.benchmark.Timer``. Several modules (:func:`measure_latencies`) are timed
round-robin: each round times one repeat of every module. Eager runs under
``torch.inference_mode`` in eval mode, in ``channels_last`` when that measured faster
(``memory_format="auto"``: both layouts are timed briefly and the faster one is kept).
onnxruntime runs the module exported by :mod:`supernet.export.onnx`.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 (measured latency
lookup tables per device); ``torch.utils.benchmark`` (PyTorch benchmark recipe).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.benchmark import Timer

from supernet.cost.device import RUNTIMES
from supernet.errors import ConfigError
from supernet.export.onnx import export_onnx, make_session

__all__ = [
    "MEMORY_FORMATS",
    "LatencyResult",
    "measure_call_overhead",
    "measure_latencies",
    "measure_latency",
    "time_callable",
]

logger = logging.getLogger(__name__)

MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


@dataclass(frozen=True)
class LatencyResult:
    """One latency measurement (times per forward pass of the whole batch).

    Attributes:
        median_ms: median over repeats of the per-call time, in ms.
        iqr_ms: interquartile range (75th - 25th percentile) of the same, in ms.
        repeats: number of timed repeats.
        threads: intra-op threads used.
        runtime: ``"torch"`` or ``"onnxruntime"``.
        batch_size: images per call.
        memory_format: ``"contiguous"`` or ``"channels_last"`` for torch; ``"onnx"`` for
            onnxruntime (its own layout choice).
        calls_per_repeat: calls averaged inside one repeat.
    """

    median_ms: float
    iqr_ms: float
    repeats: int
    threads: int
    runtime: str
    batch_size: int
    memory_format: str
    calls_per_repeat: int


def time_callable(
    fn: Callable[[], object],
    *,
    threads: int,
    warmup: int,
    repeats: int,
    min_repeat_ms: float = 2.0,
) -> tuple[np.ndarray, int]:
    """Per-call times of ``fn`` in ms, one per repeat, and the calls per repeat.

    Shapes: returns ``[repeats]`` float64 (ms) and an int.

    Raises:
        ConfigError: ``warmup`` < 0, ``repeats`` < 1 or ``threads`` < 1.
    """
    _check_counts(warmup=warmup, repeats=repeats, threads=threads)
    timer, number = _calibrated_timer(fn, threads=threads, warmup=warmup,
                                      min_repeat_ms=min_repeat_ms)  # fmt: skip
    times = [timer.timeit(number).median * 1e3 for _ in range(repeats)]
    return np.asarray(times, dtype=np.float64), number


def _summarize(
    times_ms: np.ndarray, number: int, *, threads: int, runtime: str, batch: int, fmt: str
) -> LatencyResult:
    q25, q50, q75 = np.percentile(times_ms, [25, 50, 75])
    return LatencyResult(
        median_ms=float(q50),
        iqr_ms=float(q75 - q25),
        repeats=len(times_ms),
        threads=threads,
        runtime=runtime,
        batch_size=batch,
        memory_format=fmt,
        calls_per_repeat=number,
    )


def _torch_call(module: nn.Module, x: torch.Tensor, fmt: str) -> Callable[[], object]:
    if fmt == "channels_last":
        module = copy.deepcopy(module).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: module(x)


def measure_latency(
    module: nn.Module,
    input_shape: tuple[int, ...],
    *,
    runtime: str = "torch",
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 20,
    memory_format: str = "auto",
    min_repeat_ms: float = 2.0,
) -> LatencyResult:
    """Latency of one forward pass of ``module`` on a random input of ``input_shape``.

    The module is run in eval mode (its mode is restored) and is not modified; torch's thread
    count is restored afterwards.

    Shapes: ``input_shape`` is ``(B, C, H, W)``; ``B`` is recorded as ``batch_size``.

    Args:
        module: a plain (static) module on the CPU, e.g. an extracted subnet or one block.
        runtime: ``"torch"`` (eager) or ``"onnxruntime"`` (exported with :func:`export_onnx`).
        threads: intra-op threads (default: torch's current count).
        warmup: untimed calls before timing.
        repeats: timed repeats; the median and IQR are over these.
        memory_format: torch only: ``"auto"`` (the faster of the two, measured),
            ``"contiguous"`` or ``"channels_last"``.
        min_repeat_ms: a repeat runs enough calls to last about this long (ms).

    Returns:
        :class:`LatencyResult` with times in ms.

    Raises:
        ConfigError: unknown runtime or memory format (names the allowed ones), a bad shape, or
            bad warmup/repeats/threads.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4.
    """
    return measure_latencies(
        [module], [input_shape], runtime=runtime, threads=threads, warmup=warmup,
        repeats=repeats, memory_format=memory_format, min_repeat_ms=min_repeat_ms,
    )[0]  # fmt: skip


def measure_latencies(
    modules: Sequence[nn.Module],
    input_shapes: Sequence[tuple[int, ...]],
    *,
    runtime: str = "torch",
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 20,
    memory_format: str = "auto",
    min_repeat_ms: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[LatencyResult]:
    """Latency of each module on its input shape, measured round-robin.

    Every module is prepared first (exported and loaded for onnxruntime, laid out for eager),
    warmed up and given its calls per repeat; then each of ``repeats`` rounds times one repeat of
    every module in turn. A machine whose speed drifts over seconds (other jobs, frequency
    changes, a shared VM) thus reaches every module alike, which keeps their *relative*
    latencies — what a lookup table sums and a search ranks — stable: on the 2-core VM, two
    measurements of the same 50 ``mbv3-tiny`` subnets (onnxruntime, 1 thread, 40 repeats)
    differed by MAPE 10-13% and Kendall τ 0.52-0.53 module by module, 1.5-1.8% and τ 0.94-0.95
    round-robin. Each module is held prepared for the whole measurement.

    Shapes: ``input_shapes[i]`` is ``(B, C, H, W)`` for ``modules[i]``; one result per module.

    Args:
        modules, input_shapes: as in :func:`measure_latency`, one shape per module.
        progress: ``progress(done, total)`` after each module is prepared and after each round
            (``total = len(modules) + repeats``).
        runtime, threads, warmup, repeats, memory_format, min_repeat_ms: see
            :func:`measure_latency`.

    Raises:
        ConfigError: as :func:`measure_latency`, or a different number of modules and shapes.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4 (measured latency lookup tables);
    interleaving runs to cancel machine drift is common benchmarking practice.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime = {runtime!r} is not allowed; choose from {RUNTIMES}")
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(
            f"memory_format = {memory_format!r} is not allowed; choose from {MEMORY_FORMATS}"
        )
    if len(modules) != len(input_shapes):
        raise ConfigError(
            f"{len(modules)} modules but {len(input_shapes)} input shapes: give one per module"
        )
    for input_shape in input_shapes:
        if len(input_shape) != 4 or any(int(s) < 1 for s in input_shape):
            raise ConfigError(f"input_shape = {tuple(input_shape)} must be (B, C, H, W), all >= 1")
    previous_threads = torch.get_num_threads()
    threads = previous_threads if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r} must be an integer >= 1")
    _check_counts(warmup=warmup, repeats=repeats, threads=threads)
    total = len(modules) + repeats
    modes = [m.training for m in modules]
    timed: list[tuple[Timer, int, str]] = []
    times: list[list[float]] = []
    torch.set_num_threads(threads)
    try:
        # onnxruntime: export outside inference mode (the exporter traces with autograd on)
        eager = runtime != "onnxruntime"
        with torch.inference_mode() if eager else contextlib.nullcontext():
            for done, (module, shape) in enumerate(zip(modules, input_shapes, strict=True), 1):
                timed.append(_prepare(module, tuple(int(s) for s in shape), runtime, threads,
                                      warmup, memory_format, min_repeat_ms))  # fmt: skip
                if progress is not None:
                    progress(done, total)
            times = [[] for _ in timed]
            for round_ in range(repeats):
                for i, (timer, number, _) in enumerate(timed):
                    times[i].append(timer.timeit(number).median * 1e3)
                if progress is not None:
                    progress(len(modules) + round_ + 1, total)
    finally:
        torch.set_num_threads(previous_threads)
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
    results = []
    for t, (_, number, fmt), shape in zip(times, timed, input_shapes, strict=True):
        ms = np.asarray(t, dtype=np.float64)
        batch = int(shape[0])
        results.append(_summarize(ms, number, threads=threads, runtime=runtime, batch=batch,
                                  fmt=fmt))  # fmt: skip
    return results


def _prepare(
    module: nn.Module,
    shape: tuple[int, ...],
    runtime: str,
    threads: int,
    warmup: int,
    memory_format: str,
    min_repeat_ms: float,
) -> tuple[Timer, int, str]:
    """A warmed-up timer for one module: (timer, calls per repeat, layout)."""
    module.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if runtime == "onnxruntime":
        session = make_session(export_onnx(module, shape), threads=threads)
        feed = {"input": x.numpy()}

        def fn() -> object:
            return session.run(None, feed)

        fmt = "onnx"
    else:
        fmt = memory_format
        if fmt == "auto":
            fmt = _faster_format(module, x, threads=threads, warmup=warmup)
        fn = _torch_call(module, x, fmt)
    timer, number = _calibrated_timer(fn, threads=threads, warmup=warmup,
                                      min_repeat_ms=min_repeat_ms)  # fmt: skip
    return timer, number, fmt


def _check_counts(*, warmup: int, repeats: int, threads: int) -> None:
    if warmup < 0 or repeats < 1 or threads < 1:
        raise ConfigError(
            f"need warmup >= 0, repeats >= 1, threads >= 1; got warmup = {warmup}, "
            f"repeats = {repeats}, threads = {threads}"
        )


def _calibrated_timer(
    fn: Callable[[], object], *, threads: int, warmup: int, min_repeat_ms: float
) -> tuple[Timer, int]:
    """Run ``warmup`` untimed calls, then return a timer for ``fn`` and the number of calls one
    repeat needs to last about ``min_repeat_ms``."""
    for _ in range(warmup):
        fn()
    probe = 3
    start = time.perf_counter()
    for _ in range(probe):
        fn()
    per_call_s = max((time.perf_counter() - start) / probe, 1e-7)
    number = max(1, min(10_000, math.ceil(min_repeat_ms / 1e3 / per_call_s)))
    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads), number


def _faster_format(module: nn.Module, x: torch.Tensor, *, threads: int, warmup: int) -> str:
    """``"channels_last"`` when it times faster than ``"contiguous"`` (5 short repeats each)."""
    medians = {}
    for fmt in ("contiguous", "channels_last"):
        times, _ = time_callable(
            _torch_call(module, x, fmt), threads=threads, warmup=max(2, warmup), repeats=5
        )
        medians[fmt] = float(np.median(times))
    best = min(medians, key=medians.__getitem__)
    logger.debug("memory format: %s (median ms %s)", best, medians)
    return best


class _Passthrough(nn.Module):
    """``x * 1``: the least work a runtime call can do on an input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def measure_call_overhead(
    input_shape: tuple[int, ...], *, runtime: str, threads: int, warmup: int = 10, repeats: int = 20
) -> float:
    """Latency, in ms, of one runtime call that does (almost) nothing.

    Timing a block alone adds one call's overhead that the block does not pay inside a whole
    network. For onnxruntime this is ``session.run`` on a one-op graph (a few µs); for torch eager
    the overhead of a standalone call is a Python function call, and 0 is returned (a module's
    own ``__call__`` is paid inside the network too).

    Raises:
        ConfigError: unknown runtime or bad settings.
    """
    if runtime == "torch":
        return 0.0
    result = measure_latency(
        _Passthrough(), input_shape, runtime=runtime, threads=threads, warmup=warmup,
        repeats=repeats,
    )  # fmt: skip
    return result.median_ms
