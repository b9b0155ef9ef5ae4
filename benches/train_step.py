"""Training-step throughput of mbv3-tiny subnets: NCHW (baseline) vs channels_last, the dense
depthwise weight gradient (baseline: oneDNN's, ``set_dense_weight_grad(False)``), and the no-grad
kernel-transform cache (baseline: recomputed every call), and an extracted (static) subnet's step
against the same config inside the supernet (baseline) — ratios measured in the same run.

    python -m benches.train_step [--batch-size 128] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benches.timing import interleaved_median_seconds, median_seconds
from supernet.nn import ElasticDepthwiseConv2d, create_supernet
from supernet.nn.depthwise import set_dense_weight_grad
from supernet.space import get_space

SUBNETS = ("largest", "middle", "smallest")


def _training_step(
    config_name: str, batch_size: int, fmt: torch.memory_format
) -> Callable[[], None]:
    """One SGD step of a fresh seeded mbv3-tiny supernet with ``config_name``'s subnet active,
    its input in ``fmt``."""
    space = get_space("mbv3-tiny")
    config = getattr(space, config_name)()
    torch.manual_seed(0)
    model = create_supernet(space).to(memory_format=fmt)
    model.set_active(config)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    r = config.resolution
    x = torch.randn(batch_size, 1, r, r).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def train_step_throughput(batch_size: int, repeats: int) -> list[tuple[str, float, float]]:
    """(subnet, NCHW img/s, channels_last img/s) for the largest, middle and smallest subnet."""
    rows = []
    for name in SUBNETS:
        nchw, cl = (
            batch_size / median_seconds(_training_step(name, batch_size, fmt), repeats)
            for fmt in (torch.contiguous_format, torch.channels_last)
        )
        rows.append((name, nchw, cl))
    return rows


def dense_depthwise_speedup(batch_size: int, repeats: int) -> list[tuple[str, float, float]]:
    """(subnet, oneDNN-gradient img/s, dense-gradient img/s) of a channels_last training step for
    the largest, middle and smallest subnet; the two alternate round by round in one process."""
    rows = []
    for name in SUBNETS:
        step = _training_step(name, batch_size, torch.channels_last)

        def step_with(dense: bool, step=step) -> None:
            previous = set_dense_weight_grad(dense)
            try:
                step()
            finally:
                set_dense_weight_grad(previous)

        t_native, t_dense = interleaved_median_seconds(
            [lambda: step_with(False), lambda: step_with(True)], repeats
        )
        rows.append((name, batch_size / t_native, batch_size / t_dense))
    return rows


def static_vs_supernet(batch_size: int, repeats: int) -> list[tuple[str, float, float]]:
    """(subnet, supernet img/s, extracted-subnet img/s) of a channels_last training step (SGD,
    momentum) for the largest and smallest subnet: the config active inside the supernet vs the
    plain module ``get_subnet`` returns (its depthwise convs are
    :class:`~supernet.nn.blocks.DepthwiseConv2d`, the supernet's fast weight gradient); the two
    alternate round by round in one process. Issue 26 part 6: ratio >= 0.95."""
    rows = []
    fmt = torch.channels_last
    for name in ("largest", "smallest"):
        supernet_step = _training_step(name, batch_size, fmt)
        space = get_space("mbv3-tiny")
        config = getattr(space, name)()
        torch.manual_seed(0)
        subnet = create_supernet(space).get_subnet(config).train().to(memory_format=fmt)
        opt = torch.optim.SGD(subnet.parameters(), lr=0.01, momentum=0.9)
        r = config.resolution
        x = torch.randn(batch_size, 1, r, r).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (batch_size,))

        def static_step(subnet=subnet, opt=opt, x=x, y=y) -> None:
            loss = F.cross_entropy(subnet(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_super, t_static = interleaved_median_seconds([supernet_step, static_step], repeats)
        rows.append((name, batch_size / t_super, batch_size / t_static))
    return rows


def kernel_cache_speedup(repeats: int) -> float:
    """Ratio of no-grad subnet extraction time without / with the transformed-kernel cache."""
    space = get_space("ofa-mbv3")
    model = create_supernet(space).eval()
    config = space.smallest()  # kernel 3 everywhere: two transforms per block

    def extract():
        with torch.no_grad():
            model.get_subnet(config)

    def extract_uncached():
        for m in model.modules():
            if isinstance(m, ElasticDepthwiseConv2d):
                m.clear_cache()
        extract()

    return median_seconds(extract_uncached, repeats) / median_seconds(extract, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only-static", action="store_true",
                        help="only the extracted-subnet vs supernet rows")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only_static:
        print(f"{'subnet':<10}{'supernet img/s':>16}{'extracted img/s':>17}{'ratio':>8}")
        for name, sup, static in static_vs_supernet(args.batch_size, args.repeats):
            print(f"{name:<10}{sup:>16.0f}{static:>17.0f}{static / sup:>8.2f}")
        return
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'subnet':<10}{'NCHW img/s':>12}{'channels_last img/s':>22}{'ratio':>8}")
    for name, nchw, cl in train_step_throughput(args.batch_size, args.repeats):
        print(f"{name:<10}{nchw:>12.0f}{cl:>22.0f}{cl / nchw:>8.2f}")
    print(f"{'subnet':<10}{'oneDNN dw-grad img/s':>22}{'dense dw-grad img/s':>21}{'ratio':>8}")
    for name, native, dense in dense_depthwise_speedup(args.batch_size, args.repeats):
        print(f"{name:<10}{native:>22.0f}{dense:>21.0f}{dense / native:>8.2f}")
    print(f"{'subnet':<10}{'supernet img/s':>16}{'extracted img/s':>17}{'ratio':>8}")
    for name, sup, static in static_vs_supernet(args.batch_size, args.repeats):
        print(f"{name:<10}{sup:>16.0f}{static:>17.0f}{static / sup:>8.2f}")
    print(f"get_subnet (ofa-mbv3, kernel 3), cache vs recompute: "
          f"{kernel_cache_speedup(args.repeats):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
