"""int8 MCU cost model speed: 10k configs batched vs the per-config block-list path, and vs the
fp32 peak-memory model in the same run — printed as times and ratios.

    python -m benches.mcu_cost [--space mbv3-tiny] [--configs 10000] [--tflm-configs 500]
                               [--baseline-configs 200] [--repeats 5]

Rows: ``sram_bytes`` for the ``naive`` and ``tinyengine`` planners and ``flash_bytes`` (numpy over
the whole ConfigBatch, shapes built inside each call, as the search calls them); the ``tflm``
planner on the same batch (TFLM's greedy plan in the compiled kernel of
:mod:`supernet.cost.tflm_native`, timed interleaved with ``naive``: issue 23 wants 10k configs in
<= 0.1 s) and its numpy fallback (one step per buffer rank, :mod:`supernet.cost.tflm_batch`;
slower, so timed on --tflm-configs configs and reported per config); the baseline: per config,
``mcu_cost(block_list_from_config(config))``; the reference: ``peak_memory_bytes`` (fp32 model of
:mod:`supernet.cost.memory`) on the same batch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benches.timing import interleaved_median_seconds, median_seconds
from supernet.cost import (
    block_list_from_config,
    flash_bytes,
    mcu_cost,
    peak_memory_bytes,
    tflm_native,
)
from supernet.cost.mcu_batch import sram_bytes
from supernet.space import get_space, sample_batch


def mcu_cost_speed(
    space_name: str, n_configs: int, tflm_configs: int, baseline_configs: int, repeats: int
) -> dict[str, float]:
    """Seconds for each batched cost on ``n_configs`` random configs (``tflm`` interleaved with
    a second ``naive`` timing, ``naive_vs_tflm_s``), seconds per config of the numpy ``tflm``
    planner and of the per-config baseline, and the fp32 peak-memory model's seconds."""
    space = get_space(space_name)
    batch = sample_batch(space, n_configs, np.random.default_rng(0))
    out: dict[str, float] = {"configs": n_configs}
    out["fp32_peak_s"] = median_seconds(lambda: peak_memory_bytes(batch, space), repeats)
    for planner in ("naive", "tinyengine"):
        out[f"{planner}_s"] = median_seconds(
            lambda p=planner: sram_bytes(batch, space, planner=p), repeats
        )
    out["flash_s"] = median_seconds(lambda: flash_bytes(batch, space), repeats)
    out["kernel"] = float(tflm_native.load() is not None)
    out["naive_vs_tflm_s"], out["tflm_s"] = interleaved_median_seconds(
        [lambda: sram_bytes(batch, space, planner="naive"),
         lambda: sram_bytes(batch, space, planner="tflm")], repeats)  # fmt: skip
    fresh = sample_batch(space, tflm_configs, np.random.default_rng(1))
    real_load = tflm_native.load
    tflm_native.load = lambda: None  # the numpy planner (the fallback without a C compiler)
    try:
        start = time.perf_counter()
        sram_bytes(fresh, space, planner="tflm")
        out["tflm_numpy_per_config_s"] = (time.perf_counter() - start) / tflm_configs
    finally:
        tflm_native.load = real_load
    configs = batch[:baseline_configs].to_configs()
    start = time.perf_counter()
    for config in configs:
        mcu_cost(block_list_from_config(config, space), "tinyengine")
    out["baseline_per_config_s"] = (time.perf_counter() - start) / baseline_configs
    out["speedup_tinyengine"] = out["baseline_per_config_s"] * n_configs / out["tinyengine_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv3-tiny")
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--tflm-configs", type=int, default=500)
    parser.add_argument("--baseline-configs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = mcu_cost_speed(args.space, args.configs, args.tflm_configs, args.baseline_configs,
                       args.repeats)  # fmt: skip
    n = int(r["configs"])
    print(f"space {args.space}, {n} configs, median of {args.repeats}")
    print(f"fp32 peak_memory_bytes (reference): {r['fp32_peak_s']:.3f} s")
    for key in ("naive", "tinyengine"):
        print(f"int8 sram_bytes {key}: {r[f'{key}_s']:.3f} s "
              f"({r[f'{key}_s'] / r['fp32_peak_s']:.2f}x the fp32 model)")  # fmt: skip
    print(f"int8 flash_bytes: {r['flash_s']:.3f} s")
    kernel = "compiled kernel" if r["kernel"] else "NO kernel: numpy planner"
    print(f"int8 sram_bytes tflm ({kernel}): {r['tflm_s']:.3f} s = "
          f"{r['tflm_s'] / r['naive_vs_tflm_s']:.2f}x naive ({r['naive_vs_tflm_s']:.3f} s, "
          f"interleaved)")  # fmt: skip
    print(f"int8 sram_bytes tflm, numpy planner: {r['tflm_numpy_per_config_s'] * 1e3:.2f} "
          f"ms/config (~{r['tflm_numpy_per_config_s'] * n:.1f} s for {n}; "
          f"{r['tflm_numpy_per_config_s'] * n / r['tflm_s']:.0f}x the kernel)")  # fmt: skip
    print(f"baseline per-config block list (tinyengine): {r['baseline_per_config_s'] * 1e3:.2f} "
          f"ms/config; batched is {r['speedup_tinyengine']:.0f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
