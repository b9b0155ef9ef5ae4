"""Batched analytic cost models vs the per-config baseline (extract the subnet, run PyTorch's
FlopCounterMode, count its parameters) — measured in the same run, printed as a ratio.

    python -m benches.cost_models [--space mbv3-tiny] [--configs 10000] [--baseline-configs 5]
                                  [--repeats 5] [--threads 1]

The analytic time covers ``cost_table`` (MACs, params, peak memory fp32/int8, model size
fp32/int8) on configs already sampled; the baseline gives MACs and params only, so the ratio
understates the gap. One thread by default: single-image forwards are fastest with one, and two
OpenMP threads on 2 shared cores can stall each other (see tests/nn/conftest.py), which would
inflate the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from benches.timing import median_seconds
from supernet.cost import cost_table, count_params, measure_macs
from supernet.nn import create_supernet
from supernet.space import get_space


def cost_model_speed(
    space_name: str, n_configs: int, baseline_configs: int, repeats: int
) -> dict[str, float]:
    """Seconds for ``cost_table`` on ``n_configs`` random configs and seconds per config of the
    FlopCounterMode baseline (median over ``baseline_configs`` configs, warm supernet)."""
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(n_configs)]
    start = time.perf_counter()
    cost_table(configs, space)
    first_call_s = time.perf_counter() - start
    analytic_s = median_seconds(lambda: cost_table(configs, space), repeats)

    supernet = create_supernet(space).eval()
    baseline_times = []
    for i, config in enumerate(configs[: baseline_configs + 1]):
        start = time.perf_counter()
        subnet = supernet.get_subnet(config)
        r = config.resolution
        measure_macs(subnet, (1, space.input_channels, r, r))
        count_params(subnet)
        if i > 0:  # the first one warms up
            baseline_times.append(time.perf_counter() - start)
    baseline_per_config_s = statistics.median(baseline_times)
    return {
        "configs": n_configs,
        "first_call_s": first_call_s,
        "analytic_s": analytic_s,
        "analytic_per_config_s": analytic_s / n_configs,
        "baseline_per_config_s": baseline_per_config_s,
        "speedup": baseline_per_config_s * n_configs / analytic_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mbv3-tiny")
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--baseline-configs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = cost_model_speed(args.space, args.configs, args.baseline_configs, args.repeats)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} threads, "
          f"space {args.space}")  # fmt: skip
    print(f"cost_table, {r['configs']} configs (median of {args.repeats}): "
          f"{r['analytic_s']:.3f} s ({r['analytic_per_config_s'] * 1e6:.1f} us/config); "
          f"first call {r['first_call_s']:.3f} s")  # fmt: skip
    print(f"baseline get_subnet + FlopCounterMode + count_params (median of "
          f"{args.baseline_configs}): {r['baseline_per_config_s'] * 1e3:.1f} ms/config, "
          f"{r['baseline_per_config_s'] * r['configs']:.0f} s for {r['configs']}")  # fmt: skip
    print(f"analytic vs baseline: {r['speedup']:.0f}x")


if __name__ == "__main__":
    main()
