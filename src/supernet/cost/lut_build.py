"""Building latency lookup tables by measurement on this machine.

Building measures every distinct stem, block and head of a space once (as standalone static
modules made by the same code paths as :meth:`OFAMobileNetV3.get_subnet`), then measures a few
whole subnets (the largest, the smallest and random ones) and fits ``measured ≈ scale * summed +
overhead_ms`` by least squares. Validation is in :mod:`supernet.cost.lut_validate`.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App. (latency
lookup tables); ProxylessNAS (arXiv 1812.00332), Sec. 3.3.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from supernet.cost.device import DeviceSpec, describe_machine
from supernet.cost.latency import (
    LatencyResult,
    measure_call_overhead,
    measure_latencies,
    measure_latency,
)
from supernet.cost.lut import (
    LatencyTable,
    block_key,
    feature_sizes,
    head_key,
    slot_specs,
    stem_key,
)
from supernet.errors import ConfigError
from supernet.nn import MobileNetV3, OFAMobileNetV3
from supernet.space import ArchConfig, SearchSpace

__all__ = [
    "ProgressFn",
    "build_latency_table",
    "check_settings",
    "fit_overhead",
    "measure_subnets",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, what)``: called after each measurement."""

# Table entries and fit subnets are timed round-robin (see measure_latencies) in groups of this
# many, each held prepared (an onnxruntime session or an eager copy) while its group is timed:
# mbv3-tiny's 276 entries and up to 44 fit subnets in one group (the demo uses 42); ofa-mbv3's
# 1,226 entries in four, to bound memory.
ROUND_ROBIN_CHUNK = 320


def _make_supernet(space: SearchSpace) -> OFAMobileNetV3:
    with torch.random.fork_rng(devices=[]):  # weights do not matter; keep the caller's RNG
        torch.manual_seed(0)
        return OFAMobileNetV3(space).eval()


def block_modules(
    net: OFAMobileNetV3, batch_size: int
) -> dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int, int]]]:
    """Every distinct table entry of ``net.space``: key → (module factory, input shape).

    The stem is ``stem → first_block``; a block is ``net.blocks[i].to_static(k, e)``; the head is a
    :class:`MobileNetV3` with no stem and no blocks (final expand, pool, feature mix, classifier).

    Shapes: input shapes are ``(batch_size, C, hw, hw)``.
    """
    space, specs = net.space, slot_specs(net.space)
    out: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int, int]]] = {}

    def stem() -> nn.Module:
        return nn.Sequential(copy.deepcopy(net.stem), copy.deepcopy(net.first_block))

    def head() -> nn.Module:
        parts = (net.final_expand, net.feature_mix, net.classifier)
        return MobileNetV3(nn.Identity(), [], *(copy.deepcopy(m) for m in parts))

    def block(i: int, k: int, e: int) -> Callable[[], nn.Module]:
        return lambda: net.blocks[i].to_static(k, e)

    for r in space.resolutions:
        _, slot_hw, head_hw = feature_sizes(space, r)
        out.setdefault(stem_key(space, r), (stem, (batch_size, space.input_channels, r, r)))
        for i, (spec, hw) in enumerate(zip(specs, slot_hw, strict=True)):
            for k in space.kernel_sizes:
                for e in space.expand_ratios:
                    shape = (batch_size, spec.in_channels, hw, hw)
                    out.setdefault(block_key(spec, hw, k, e), (block(i, k, e), shape))
        last = space.stages[-1].width
        out.setdefault(head_key(space, head_hw), (head, (batch_size, last, head_hw, head_hw)))
    return out


def measure_subnets(
    space: SearchSpace,
    configs: Sequence[ArchConfig],
    device: DeviceSpec,
    *,
    repeats: int = 20,
    warmup: int = 10,
    memory_format: str = "auto",
    net: OFAMobileNetV3 | None = None,
    progress: ProgressFn | None = None,
) -> list[LatencyResult]:
    """Measure whole extracted subnets on ``device`` (its runtime, threads and batch size),
    round-robin (:func:`~supernet.cost.latency.measure_latencies`: every subnet is held prepared
    and each round times one repeat of each).

    Shapes: one :class:`LatencyResult` (ms) per config.

    Raises:
        ConfigError: a config is not valid in ``space`` or a measurement setting is bad.
    """
    net = net or _make_supernet(space)
    subnets = [net.get_subnet(config.validate(space)).eval() for config in configs]
    shapes = [_input_shape(space, device, c) for c in configs]

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total, "preparing" if done <= len(subnets) else "timing round-robin")

    return measure_latencies(
        subnets, shapes, runtime=device.runtime, threads=device.threads, warmup=warmup,
        repeats=repeats, memory_format=memory_format, progress=report,
    )  # fmt: skip


def _input_shape(
    space: SearchSpace, device: DeviceSpec, config: ArchConfig
) -> tuple[int, int, int, int]:
    """A whole subnet's input on ``device``: ``(batch, channels, resolution, resolution)``."""
    return (device.batch_size, space.input_channels, config.resolution, config.resolution)


def fit_overhead(
    summed_ms: np.ndarray, measured_ms: np.ndarray, *, fit_scale: bool = True
) -> tuple[float, float]:
    """Least-squares ``measured ≈ scale * summed + overhead``; returns ``(scale, overhead_ms)``.

    Falls back to ``scale = 1`` and the mean difference when the summed latencies do not vary,
    ``fit_scale`` is off, or the fitted scale is not positive.

    Shapes: ``[N]`` and ``[N]`` (ms) → two floats.
    """
    summed, measured = np.asarray(summed_ms, float), np.asarray(measured_ms, float)
    if fit_scale and len(summed) >= 2 and np.ptp(summed) > 0:
        design = np.stack([summed, np.ones_like(summed)], 1)
        (scale, overhead), *_ = np.linalg.lstsq(design, measured, rcond=None)
        if np.isfinite(scale) and scale > 0:
            return float(scale), float(overhead)
    return 1.0, float(np.mean(measured - summed))


def build_latency_table(
    space: SearchSpace,
    device: DeviceSpec,
    *,
    repeats: int = 15,
    warmup: int = 5,
    fit_subnets: int = 8,
    fit_scale: bool = True,
    seed: int = 0,
    memory_format: str = "auto",
    progress: ProgressFn | None = None,
) -> LatencyTable:
    """Measure every distinct block of ``space`` on ``device`` and fit the whole-subnet overhead.

    Blocks and fit subnets are timed round-robin in groups of :data:`ROUND_ROBIN_CHUNK`
    (:func:`~supernet.cost.latency.measure_latencies`), the fit subnets in the last group, so a
    machine whose speed drifts skews the table's entries and its fit alike.

    Args:
        space: the search space.
        device: runtime, threads and batch size (recorded in the table).
        repeats, warmup: per measurement (see :func:`measure_latency`).
        fit_subnets: random whole subnets measured for the fit (plus the largest and smallest).
        fit_scale: fit a scale as well as a constant overhead.
        seed: draws the fit subnets.
        memory_format: torch only; ``"auto"`` decides once, on the largest subnet.
        progress: ``progress(done, total, key)`` after each measurement.

    Returns:
        A :class:`LatencyTable` (entries in ms).

    Raises:
        ConfigError: bad measurement settings (``repeats`` < 1, ``warmup`` < 0,
            ``fit_subnets`` < 0, ``seed`` < 0 or not integers), checked before anything is built.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.4.
    """
    check_settings(repeats=repeats, warmup=warmup, fit_subnets=fit_subnets, seed=seed)
    start = time.perf_counter()
    net = _make_supernet(space)
    rng = np.random.default_rng(seed)
    fit_configs = [space.largest(), space.smallest()]
    fit_configs += [space.sample(rng) for _ in range(fit_subnets)]
    modules = block_modules(net, device.batch_size)
    total = len(modules) + len(fit_configs)
    settings = {"runtime": device.runtime, "threads": device.threads, "warmup": warmup}
    fmt = _table_memory_format(net, device, memory_format, warmup=warmup)
    # One pool, timed round-robin in groups: every block entry, then the fit subnets (the last
    # group holds them with the last blocks, so the fit sees the blocks' conditions).
    pool: list[tuple[str | None, Callable[[], nn.Module], tuple[int, ...]]] = [
        (key, factory, shape) for key, (factory, shape) in modules.items()
    ]
    for config in fit_configs:
        pool.append((None, lambda c=config: net.get_subnet(c), _input_shape(space, device, config)))
    timed: list[LatencyResult] = []
    for first in range(0, len(pool), ROUND_ROBIN_CHUNK):
        chunk = pool[first : first + ROUND_ROBIN_CHUNK]

        def chunk_progress(done: int, steps: int, first: int = first, size: int = len(chunk)):
            if progress is not None:
                what = f"modules {first + 1}-{first + size} of {total}, round-robin"
                progress(first + (done * size) // steps, total, what)

        timed += measure_latencies(
            [factory() for _, factory, _ in chunk], [shape for _, _, shape in chunk],
            repeats=repeats, memory_format=torch_memory_format(fmt), progress=chunk_progress,
            **settings,
        )  # fmt: skip
    entries = {
        key: (r.median_ms, r.iqr_ms)
        for (key, _, _), r in zip(pool, timed, strict=True)
        if key is not None
    }
    fit_results = timed[len(modules) :]
    measured = np.array([r.median_ms for r in fit_results])
    stem_shape = modules[stem_key(space, space.resolutions[0])][1]
    call_overhead = measure_call_overhead(stem_shape, repeats=repeats, **settings)
    summed = LatencyTable(
        space=space, device=device, entries=entries, call_overhead_ms=call_overhead
    ).summed_ms(fit_configs)
    scale, overhead = fit_overhead(summed, measured, fit_scale=fit_scale)
    seconds = time.perf_counter() - start
    logger.info("latency table for %s: %d entries in %.0f s; scale %.3f, overhead %.3f ms",
                space.name, len(entries), seconds, scale, overhead)  # fmt: skip
    fit = {"configs": [c.to_dict() for c in fit_configs], "summed_ms": summed.tolist(),
           "measured_ms": measured.tolist()}  # fmt: skip
    return LatencyTable(
        space=space,
        device=device,
        entries=entries,
        scale=scale,
        overhead_ms=overhead,
        call_overhead_ms=call_overhead,
        memory_format=fmt,
        machine=describe_machine(),
        build={
            "repeats": repeats,
            "warmup": warmup,
            "seed": seed,
            "seconds": round(seconds, 1),
            "fit": fit,
        },
    )


_LOWEST = {"repeats": 1, "warmup": 0, "fit_subnets": 0, "seed": 0}


def check_settings(**settings: int | None) -> None:
    """Check measurement settings before any work: ``repeats`` >= 1, ``warmup``, ``fit_subnets``
    and ``seed`` >= 0, all integers (``None``: the default, not checked).

    Raises:
        ConfigError: naming the first bad setting, its value and the lowest allowed.
    """
    for name, value in settings.items():
        low = _LOWEST[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):  # fmt: skip
            raise ConfigError(f"{name} = {value!r} must be an integer >= {low}")


def _table_memory_format(
    net: OFAMobileNetV3, device: DeviceSpec, memory_format: str, *, warmup: int
) -> str:
    """The layout of every measurement of one table: ``"onnx"`` for onnxruntime; for torch,
    ``"auto"`` is decided once, on the largest subnet at the largest resolution."""
    if device.runtime == "onnxruntime":
        return "onnx"
    if memory_format != "auto":
        return memory_format
    space = net.space
    r = space.resolutions[-1]
    result = measure_latency(
        net.get_subnet(space.largest()), (device.batch_size, space.input_channels, r, r),
        runtime="torch", threads=device.threads, warmup=warmup, repeats=3,
    )  # fmt: skip
    logger.info("memory format for %s: %s", space.name, result.memory_format)
    return result.memory_format


def torch_memory_format(table_format: str) -> str:
    """The ``memory_format`` argument of :func:`measure_latency` for a table's layout."""
    return "contiguous" if table_format == "onnx" else table_format
