"""``supernet latency build-transformer|fit-transformer``: the ``hat`` family's measured latency
dataset and HAT's MLP latency predictor (HAT, arXiv 2005.14187, Sec. 3.3)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from supernet.cli.console import check_writable, console, friendly
from supernet.errors import ConfigError

__all__ = ["build_transformer", "fit_transformer"]


@friendly
def build_transformer(
    out: Annotated[Path, typer.Option(help="JSON file to write, e.g. luts/hat-tiny-cpu-1t.json.")],
    space: Annotated[str, typer.Option(help="Transformer space (hat-tiny, hat-wmt).")] = "hat-tiny",
    vocab_size: Annotated[
        int, typer.Option(min=5, help="Vocabulary size of the measured models.")
    ] = 3000,
    configs: Annotated[
        int, typer.Option(min=2, help="SubTransformers to measure (largest, smallest, random).")
    ] = 250,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds (median kept).")] = 7,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed rounds first.")] = 2,
    source_tokens: Annotated[int, typer.Option(min=1, help="Source length (HAT: 30).")] = 30,
    target_tokens: Annotated[int, typer.Option(min=1, help="Decoded tokens (HAT: 30).")] = 30,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the random SubTransformers.")] = 0,
) -> None:
    """Measure SubTransformer latency on this machine: batch 1, the encoder once, then greedy
    decoding of a fixed number of tokens; round-robin rounds, medians (HAT Sec. 3.3).

    Example: `supernet latency build-transformer --space hat-tiny --configs 200 --threads 1
    --out luts/hat-tiny-cpu-1t.json`
    """
    from supernet.cli.progress import StepProgress
    from supernet.cost.transformer_latency import build_transformer_latency_dataset
    from supernet.space.transformer import get_transformer_space

    check_writable(out, "--out")
    search_space = get_transformer_space(space)
    console.print(
        f"measuring {configs} SubTransformers of [bold]{space}[/bold]: torch, {threads} "
        f"thread(s), batch 1, {source_tokens} source tokens, {target_tokens} decoded tokens"
    )
    with StepProgress(console, "measuring") as bar:
        dataset = build_transformer_latency_dataset(
            search_space, vocab_size=vocab_size, num_configs=configs, seed=seed,
            source_tokens=source_tokens, target_tokens=target_tokens, threads=threads,
            warmup=warmup, repeats=repeats, progress=bar.update,
        )  # fmt: skip
    path = dataset.save(out)
    lat = dataset.latency_ms
    cpu = dataset.cpu_ms
    console.print(
        f"{len(dataset.configs)} SubTransformers in {dataset.seconds:.0f} s: "
        f"{lat.min():.1f}..{lat.max():.1f} ms (median IQR "
        f"{100 * float((dataset.iqr_ms / lat).mean()):.1f}% of the median); CPU time "
        f"{cpu.min():.1f}..{cpu.max():.1f} ms; saved "
        f"{escape(str(path))}"
    )


@friendly
def fit_transformer(
    dataset: Annotated[Path, typer.Option(help="Dataset from `latency build-transformer`.")],
    out: Annotated[Path, typer.Option(help="Predictor file to write (.pt).")],
    holdout: Annotated[
        int, typer.Option(min=1, help="Random configs held out to report MAPE and Kendall τ.")
    ] = 60,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps (HAT: 5000).")] = 5000,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (HAT: 1e-5).")] = 1e-3,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split and the fit.")] = 0,
    statistic: Annotated[
        str,
        typer.Option(
            help="Measured figure to fit: median (wall clock), min (wall clock) or cpu (CPU "
            "time of the one measuring thread; steadier on a shared machine)."
        ),
    ] = "median",
) -> None:
    """Fit HAT's latency predictor (MLP, 3 hidden layers of 400, on 10 architecture features)
    on a measured dataset; report MAPE and Kendall τ on held-out configs, then refit on all
    configs and save.

    Example: `supernet latency fit-transformer --dataset luts/hat-tiny-cpu-1t.json --out
    runs/hat-tiny/latency_predictor.pt --statistic cpu`
    """
    from supernet.cost.transformer_latency import STATISTICS, TransformerLatencyDataset
    from supernet.cost.transformer_predictor import (
        LatencyPredictorTraining,
        fit_latency_predictor,
        holdout_split,
        latency_metrics,
    )

    check_writable(out, "--out")
    data = TransformerLatencyDataset.load(dataset)
    if statistic not in STATISTICS:
        raise ConfigError(
            f"--statistic {statistic!r} is not allowed; choose from {list(STATISTICS)}"
        )
    training = LatencyPredictorTraining(steps=steps, lr=lr, seed=seed)
    train, test = holdout_split(len(data.configs), holdout, seed=seed)
    space, y = data.space, data.latencies(statistic)
    held = fit_latency_predictor(space, [data.configs[i] for i in train], y[train], training)
    fit = latency_metrics(held.predict_ms([data.configs[i] for i in test]), y[test])
    console.print(
        f"held out {fit.n} of {len(y)} configs (trained on {len(train)}): MAPE "
        f"{fit.mape_percent:.2f}%, Kendall τ {fit.kendall_tau:.3f}, RMSE {fit.rmse_ms:.2f} ms"
    )
    info = {
        "dataset": str(dataset),
        "settings": data.settings,
        "machine": data.machine,
        "vocab_size": data.vocab_size,
        "holdout": dataclasses.asdict(fit),
        "training": {"steps": steps, "lr": lr, "seed": seed, "statistic": statistic},
        "latency_range_ms": [float(y.min()), float(y.max())],
    }
    final = fit_latency_predictor(space, data.configs, y, training, info=info)
    final.save(out)
    console.print(f"refit on all {len(y)} configs; saved {escape(str(out))}")
