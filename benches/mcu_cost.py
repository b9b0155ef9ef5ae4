"""int8 MCU cost model speed: 10k configs batched vs the per-config block-list path, and vs the
fp32 peak-memory model in the same run — printed as times and ratios.

    python -m benches.mcu_cost [--space mbv3-tiny] [--configs 10000] [--tflm-configs 500]
                               [--baseline-configs 200] [--repeats 5]

Rows: ``sram_bytes`` for the ``naive`` and ``tinyengine`` planners and ``flash_bytes`` (numpy over
the whole ConfigBatch, shapes built inside each call, as the search calls them); the ``tflm``
planner (vectorized greedy plan, :mod:`supernet.cost.tflm_batch`; slower, so timed on
--tflm-configs configs and reported per config); the baseline: per config,
``mcu_cost(block_list_from_config(config))``; the reference: ``peak_memory_bytes`` (fp32 model of
:mod:`supernet.cost.memory`) on the same batch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benches.timing import median_seconds
from supernet.cost import block_list_from_config, flash_bytes, mcu_cost, peak_memory_bytes
from supernet.cost.mcu_batch import sram_bytes
from supernet.space import get_space, sample_batch


def mcu_cost_speed(
    space_name: str, n_configs: int, tflm_configs: int, baseline_configs: int, repeats: int
) -> dict[str, float]:
    """Seconds for each batched cost on ``n_configs`` random configs, seconds per config of the
    ``tflm`` planner and of the per-config baseline, and the fp32 peak-memory model's seconds."""
    space = get_space(space_name)
    batch = sample_batch(space, n_configs, np.random.default_rng(0))
    out: dict[str, float] = {"configs": n_configs}
    out["fp32_peak_s"] = median_seconds(lambda: peak_memory_bytes(batch, space), repeats)
    for planner in ("naive", "tinyengine"):
        out[f"{planner}_s"] = median_seconds(
            lambda p=planner: sram_bytes(batch, space, planner=p), repeats
        )
    out["flash_s"] = median_seconds(lambda: flash_bytes(batch, space), repeats)
    fresh = sample_batch(space, tflm_configs, np.random.default_rng(1))
    start = time.perf_counter()
    sram_bytes(fresh, space, planner="tflm")
    out["tflm_per_config_s"] = (time.perf_counter() - start) / tflm_configs
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
    print(f"int8 sram_bytes tflm: {r['tflm_per_config_s'] * 1e3:.2f} ms/config "
          f"(~{r['tflm_per_config_s'] * n:.1f} s for {n})")  # fmt: skip
    print(f"baseline per-config block list (tinyengine): {r['baseline_per_config_s'] * 1e3:.2f} "
          f"ms/config; batched is {r['speedup_tinyengine']:.0f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
