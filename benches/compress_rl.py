"""AMC and HAQ against their baselines on a trained run, over several seeds.

    nice -n 10 python -m benches.compress_rl --run-dir /tmp/rl-runs/fm-quick \\
        --method amc --budget macs:0.5 --seeds 0 1 2 --episodes 16 --finetune-steps 100 \\
        --out /tmp/rl-runs/bench-amc

For each seed it builds the compression context from the run (the same attributes as
``supernet.compress.CompressContext``: the run's largest subnet extracted and BN re-calibrated,
validation / test subsets, a fine-tuning recipe shared by every model) and calls
:func:`supernet.compress.amc.run_amc` or :func:`supernet.compress.haq.run_haq`; it prints and
writes ``summary.md`` (every row, then the mean and spread of test top-1 after fine-tuning per
model over the seeds) and ``rows.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def build_context(
    run_dir: Path,
    out_dir: Path,
    *,
    config: str = "largest",
    seed: int = 0,
    val_images: int = 1000,
    test_images: int = 2000,
    calib_images: int = 500,
    batch_size: int = 64,
    lr: float = 0.01,
) -> SimpleNamespace:
    """The compression context of ``run_dir``'s ``config`` subnet (``largest``/``smallest``).

    Fine-tuning recipe (the same for every model): SGD, momentum 0.9, weight decay 4e-5,
    constant ``lr``, batch ``batch_size``, un-augmented training images in a seeded order.
    """
    from supernet.data import BatchLoader, resize
    from supernet.train import load_run
    from supernet.train.bn import recalibrate_bn
    from supernet.train.evaluate import calibration_loader

    run = load_run(run_dir, device="cpu")
    arch = run.space.largest() if config == "largest" else run.space.smallest()
    res = arch.resolution
    loader = calibration_loader(run.splits.train, calib_images, 250, seed)
    calib = torch.cat([resize(x, res) for x, _ in loader])
    subnet = run.supernet.get_subnet(arch)
    recalibrate_bn(subnet, iter(calib.split(250)))
    subnet.eval()

    def fixed(split: Any, limit: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(split, 500, shuffle=False, augment=False, limit=limit)
        return [(resize(x, res), y) for x, y in loader]

    val, test = fixed(run.splits.val, val_images), fixed(run.splits.test, test_images)

    @torch.no_grad()
    def top1(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        model.eval()
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
        return 100.0 * hits / sum(len(y) for _, y in data)

    def train_batches(n: int):
        generator = torch.Generator().manual_seed(seed)
        loader = BatchLoader(run.splits.train, batch_size, shuffle=True, augment=False,
                             generator=generator, drop_last=True)  # fmt: skip
        done = 0
        while done < n:
            for x, y in loader:
                yield resize(x, res), y
                done += 1
                if done == n:
                    return

    def finetune(model: nn.Module, steps: int) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5)
        model.train()
        for x, y in train_batches(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()

    return SimpleNamespace(
        model=subnet, arch=arch.to_dict(), resolution=res,
        in_channels=run.space.input_channels, num_classes=run.space.num_classes,
        train_batches=train_batches, calib_images=calib,
        evaluate=lambda m: top1(m, val), test=lambda m: top1(m, test), finetune=finetune,
        out_dir=out_dir, seed=seed, lut_path=None, progress=None,
    )  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> str:
    """Markdown: every row, then test top-1 after fine-tuning, mean ± stdev per model."""
    keys = ["seed", "method", "macs", "size_bytes", "weight_bits", "activation_bits",
            "val_acc_before", "test_acc_before", "test_acc_after", "finetune_steps"]  # fmt: skip
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    lines += ["", "| model | seeds | test top-1 before FT | test top-1 after FT (mean ± sd) |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for method in dict.fromkeys(r["method"] for r in rows):
        after = [r["test_acc_after"] for r in rows if r["method"] == method]
        before = [r["test_acc_before"] for r in rows if r["method"] == method]
        sd = statistics.stdev(after) if len(after) > 1 else 0.0
        lines.append(f"| {method} | {len(after)} | {statistics.mean(before):.2f} | "
                     f"{statistics.mean(after):.2f} ± {sd:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--method", choices=("amc", "haq"), required=True)
    parser.add_argument("--budget", default=None, help="default: macs:0.5 / size:uniform4")
    parser.add_argument("--config", choices=("largest", "smallest"), default="largest")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--val-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from supernet.compress.amc import run_amc
    from supernet.compress.haq import run_haq

    run = run_amc if args.method == "amc" else run_haq
    budget = args.budget or ("macs:0.5" if args.method == "amc" else "size:uniform4")
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        start = time.perf_counter()
        ctx = build_context(args.run_dir, args.out / f"seed{seed}", config=args.config,
                            seed=seed, val_images=args.val_images,
                            test_images=args.test_images, lr=args.lr)  # fmt: skip
        result = run(ctx, budget=budget, episodes=args.episodes,
                     finetune_steps=args.finetune_steps)  # fmt: skip
        rows += [{"seed": seed, **r} for r in result["rows"]]
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
        print(summarize(rows), flush=True)
    header = (f"`python -m benches.compress_rl --run-dir {args.run_dir} --method {args.method} "
              f"--budget {budget} --config {args.config} --seeds {' '.join(map(str, args.seeds))} "
              f"--episodes {args.episodes} --finetune-steps {args.finetune_steps} "
              f"--val-images {args.val_images} --test-images {args.test_images} "
              f"--lr {args.lr}`\n\n")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(header + summarize(rows) + "\n")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
