"""Measured latency of a module on this machine, with PyTorch eager or onnxruntime.

Protocol (both runtimes): a fixed thread count, ``warmup`` untimed calls, then ``repeats`` timed
repeats of ``calls_per_repeat`` calls each (enough calls that one repeat lasts ``min_repeat_ms``);
the result is the median and interquartile range of the per-call times over the repeats, timed
with ``torch.utils.benchmark.Timer``. Eager runs under ``torch.inference_mode`` in eval mode,
in ``channels_last`` when that measured faster (``memory_format="auto"``: both layouts are timed
briefly and the faster one is kept). onnxruntime runs the module exported by
:mod:`supernet.export.onnx`.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 (measured latency
lookup tables per device); ``torch.utils.benchmark`` (PyTorch benchmark recipe).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
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
    if warmup < 0 or repeats < 1 or threads < 1:
        raise ConfigError(
            f"need warmup >= 0, repeats >= 1, threads >= 1; got warmup = {warmup}, "
            f"repeats = {repeats}, threads = {threads}"
        )
    for _ in range(warmup):
        fn()
    probe = 3
    start = time.perf_counter()
    for _ in range(probe):
        fn()
    per_call_s = max((time.perf_counter() - start) / probe, 1e-7)
    number = max(1, min(10_000, math.ceil(min_repeat_ms / 1e3 / per_call_s)))
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
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
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime = {runtime!r} is not allowed; choose from {RUNTIMES}")
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(
            f"memory_format = {memory_format!r} is not allowed; choose from {MEMORY_FORMATS}"
        )
    if len(input_shape) != 4 or any(int(s) < 1 for s in input_shape):
        raise ConfigError(f"input_shape = {tuple(input_shape)} must be (B, C, H, W), all >= 1")
    previous_threads = torch.get_num_threads()
    threads = previous_threads if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r} must be an integer >= 1")
    shape = tuple(int(s) for s in input_shape)
    batch = shape[0]
    was_training = module.training
    module.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(threads)
    try:
        if runtime == "onnxruntime":
            session = make_session(export_onnx(module, shape), threads=threads)
            feed = {"input": x.numpy()}
            times, number = time_callable(
                lambda: session.run(None, feed),
                threads=threads,
                warmup=warmup,
                repeats=repeats,
                min_repeat_ms=min_repeat_ms,
            )
            return _summarize(times, number, threads=threads, runtime=runtime, batch=batch,
                              fmt="onnx")  # fmt: skip
        with torch.inference_mode():
            fmt = memory_format
            if fmt == "auto":
                fmt = _faster_format(module, x, threads=threads, warmup=warmup)
            times, number = time_callable(
                _torch_call(module, x, fmt),
                threads=threads,
                warmup=warmup,
                repeats=repeats,
                min_repeat_ms=min_repeat_ms,
            )
        return _summarize(times, number, threads=threads, runtime=runtime, batch=batch, fmt=fmt)
    finally:
        torch.set_num_threads(previous_threads)
        module.train(was_training)


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
