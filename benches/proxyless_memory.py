"""Peak memory of one ProxylessNAS search step against training one candidate path alone.

Path binarization (ProxylessNAS, arXiv 1812.00332, Sec. 3.2) keeps one path of every mixed op
in memory. For a few random path samples of the ``mbv3-tiny`` over-parameterized network this
measures the peak bytes allocated by

- an α step (``"two"`` mode: the active path with its activations, the inactive path's output
  only, the latency loss, the α update),
- a weight step through the α step's active paths (forward + backward + SGD step),
- the baseline: the same paths as a static subnet (the arch config they make), trained alone
  for one SGD step,

each after one untimed warm-up step (so optimizer state exists before), and prints the ratios
step / baseline. Peaks are the running sum of the allocation events ``torch.profiler`` records
with ``profile_memory=True`` (as :mod:`supernet.transfer.measure` does on the CPU): the step's
own allocations, not the model or the batch that exist before it.

    OMP_NUM_THREADS=1 python -m benches.proxyless_memory [--batch-size 64] [--samples 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from supernet.cost.device import DeviceSpec
from supernet.cost.lut import LatencyTable
from supernet.cost.lut_build import block_modules
from supernet.nas import LatencyModel, ProxylessSupernet, ops_to_config
from supernet.nas.config import ProxylessConfig
from supernet.nas.search import arch_step
from supernet.nn import OFAMobileNetV3
from supernet.space import get_space


def peak_bytes(fn: Callable[[], None]) -> int:
    """The peak of the bytes ``fn`` allocates above what exists when it starts (CPU)."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts, profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def _sgd_step(model, opt, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _uniform_table(space) -> LatencyTable:
    """Latencies only weigh the α loss here; their values do not change what is allocated."""
    keys = sorted(block_modules(OFAMobileNetV3(space), 1))
    entries = {k: (0.01 * (i + 1), 0.0) for i, k in enumerate(keys)}
    return LatencyTable(space=space, device=DeviceSpec("synthetic", "torch", 1), entries=entries)


def measure(batch_size: int, samples: int, resolution: int) -> list[dict[str, float]]:
    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    net = ProxylessSupernet(space)
    net.train()
    latency = LatencyModel.from_table(_uniform_table(space), space, resolution)
    lo, hi = latency.bounds_ms()
    config = ProxylessConfig(target_latency_ms=(lo + hi) / 2, arch_lr=1e-3)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.01, momentum=0.9)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.0, 0.999))
    x = torch.randn(batch_size, 1, resolution, resolution)
    y = torch.randint(0, 10, (batch_size,))
    rows = []
    for s in range(samples):
        alpha_step = partial(arch_step, net, x, y, latency, config, a_opt)
        alpha_step(torch.Generator().manual_seed(s))  # Adam state exists before the measured step
        alpha = peak_bytes(lambda: alpha_step(torch.Generator().manual_seed(s)))  # noqa: B023
        active = [m.ops[m.active] for m in net.blocks]  # the measured step's active paths
        for m, op in zip(net.blocks, active, strict=True):  # the same paths, one each
            m.active, m.inactive = m.ops.index(op), None
        weight_step = partial(_sgd_step, net, w_opt, x, y)
        weight_step()  # momentum buffers of these paths exist before the measured step
        weight = peak_bytes(weight_step)
        arch = ops_to_config(space, active, resolution)
        torch.manual_seed(s)
        alone = OFAMobileNetV3(space).get_subnet(arch).train()
        alone_step = partial(_sgd_step, alone, torch.optim.SGD(alone.parameters(), lr=0.01,
                                                               momentum=0.9), x, y)  # fmt: skip
        alone_step()
        base = peak_bytes(alone_step)
        rows.append({"sample": s, "depth": sum(arch.depth), "alone_MiB": base / 2**20,
                     "weight_step_MiB": weight / 2**20, "alpha_step_MiB": alpha / 2**20,
                     "weight/alone": weight / base, "alpha/alone": alpha / base})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=28)
    args = parser.parse_args()
    rows = measure(args.batch_size, args.samples, args.resolution)
    print(f"mbv3-tiny at {args.resolution}x{args.resolution}, batch {args.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")  # fmt: skip
    print("| sample | blocks | alone (MiB) | weight step (MiB) | α step (MiB) | weight / alone "
          "| α / alone |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sample']} | {r['depth']} | {r['alone_MiB']:.1f} | "
              f"{r['weight_step_MiB']:.1f} | {r['alpha_step_MiB']:.1f} | "
              f"{r['weight/alone']:.2f}x | {r['alpha/alone']:.2f}x |")  # fmt: skip
    worst = max(max(r["weight/alone"], r["alpha/alone"]) for r in rows)
    print(f"largest ratio: {worst:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
