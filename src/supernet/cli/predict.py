"""``supernet predict collect|fit``: the accuracy dataset of a run and its accuracy predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supernet.cli.console import (
    OLD_DEVICE,
    TORCH_DEVICE,
    SingleValueCommand,
    SupernetGroup,
    check_writable,
    console,
    count,
    friendly,
    hidden_aliases,
)

__all__ = ["PREDICTOR_FILE", "predict_app"]

PREDICTOR_FILE = "predictor.pt"
MAX_THREADS = 1024  # as supernet.cost.device.MAX_THREADS (not imported here: it loads torch)

predict_app = typer.Typer(
    cls=SupernetGroup,
    help="Measure subnets of a trained run (accuracy dataset) and fit an accuracy predictor.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

RunDirOpt = Annotated[Path, typer.Option(help="Run directory written by `supernet train`.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(help="Intra-op CPU threads (default: torch's; 1 is faster beside another job)."),
]


def _check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise typer.BadParameter(f"--threads {threads} must be in [1, {MAX_THREADS}]")


@predict_app.command(cls=SingleValueCommand)
@hidden_aliases(OLD_DEVICE)
@friendly(on_interrupt="interrupted; the subnets measured so far are saved, rerun to continue")
def collect(
    run_dir: RunDirOpt,
    n: Annotated[
        int, typer.Option(help="Random subnets to measure, besides the largest and smallest.")
    ] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the random subnets.")] = 0,
    val_images: Annotated[
        int | None, typer.Option(help="Validation images per subnet (default: the whole split).")
    ] = None,
    torch_device: Annotated[str, typer.Option(help=f"{TORCH_DEVICE}.")] = "auto",
    threads: ThreadsOpt = None,
    force: Annotated[
        bool, typer.Option(help="Discard an existing acc_dataset.csv and start over.")
    ] = False,
    active: Annotated[
        bool,
        typer.Option(
            help="Active learning: after N/2 random subnets, measure those an ensemble of "
            "predictors disagrees on most, in rounds."
        ),
    ] = False,
    active_round: Annotated[
        int, typer.Option(min=1, help="Subnets picked per active round (with --active).")
    ] = 20,
) -> None:
    """Measure the validation accuracy of the largest, the smallest and N random subnets.

    Each subnet is extracted, BN re-calibrated on the run's fixed training images and evaluated
    on the validation split; rows go to `RUN_DIR/acc_dataset.csv` every 10 subnets. Rerunning
    continues an interrupted collection with the same subnets (a larger N extends it). The
    default N = 200 took 8-9 minutes for `mbv3-tiny` on Fashion-MNIST with 2 CPU cores
    (Once-for-All, arXiv 1908.09791, Sec. 3.4).

    Example: `supernet predict collect --run-dir runs/fmnist-quick`
    """
    from supernet.cli.progress import StepProgress
    from supernet.predict import collect_accuracy_dataset
    from supernet.runtime import set_threads

    if n < 0:
        raise typer.BadParameter(f"--n {n} must be >= 0")
    _check_threads(threads)
    set_threads(threads)
    from supernet.predict import ACC_DATASET
    from supernet.train.derived import checkpoint_digest, is_stale

    if not force and is_stale(run_dir, ACC_DATASET, checkpoint_digest(run_dir)):
        console.print(
            f"{run_dir / ACC_DATASET} was measured on an earlier checkpoint of this run; "
            "discarding it and measuring again",
            markup=False,
            soft_wrap=True,
        )
    console.print(f"measuring {count(n + 2, 'subnet')} of {escape(str(run_dir))}", soft_wrap=True)
    with StepProgress(console, "subnets", total=n + 2) as bar:
        bar.update(0, what="loading the run")
        data = collect_accuracy_dataset(
            run_dir, n=n, seed=seed, val_images=val_images, device=torch_device, force=force,
            progress=bar.update, active_round=active_round if active else None,
        )  # fmt: skip
    acc = data.val_accuracy
    per = f" ({data.seconds / data.measured:.2f} s per subnet)" if data.measured else ""
    console.print(
        f"{count(len(data), 'subnet')} ({data.measured} measured now in "
        f"{data.seconds:.0f} s{per}); "
        f"validation accuracy {acc.min():.2f}..{acc.max():.2f}% on {count(data.images, 'image')} "
        f"(largest {acc[0]:.2f}%, smallest {acc[1]:.2f}%); saved {data.path}",
        soft_wrap=True,
    )


@predict_app.command(cls=SingleValueCommand)
@friendly
def fit(
    run_dir: RunDirOpt,
    epochs: Annotated[int, typer.Option(help="Full-batch Adam steps.")] = 500,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine decay to 0).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay on the weights.")] = 1e-1,
    holdout: Annotated[float, typer.Option(help="Fraction of subnets held out to score.")] = 0.2,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split and the initialisation.")] = 0,
    threads: ThreadsOpt = None,
    out: Annotated[
        Path | None, typer.Option(help=f"Predictor file (default: RUN_DIR/{PREDICTOR_FILE}).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a predicted-vs-measured scatter plot (PNG).")
    ] = None,
) -> None:
    """Fit the accuracy predictor on `RUN_DIR/acc_dataset.csv` and score it on held-out subnets.

    An MLP (3 hidden layers of 400 units) on the Once-for-All encoding (one-hot kernel size and
    expand ratio per block slot, masked by depth, plus one-hot resolution), with each stage's
    depth and the resolution as numbers besides, predicts top-1 accuracy. Held-out subnets are
    random ones (the largest and smallest stay in training). Prints the held-out RMSE (accuracy
    points), Kendall τ and Spearman ρ and saves the predictor with its space and encoding version
    (Once-for-All, arXiv 1908.09791, Sec. 3.4).

    Example: `supernet predict fit --run-dir runs/fmnist-quick --plot
    runs/fmnist-quick/predictor.png`
    """
    from supernet.predict import ACC_DATASET, read_accuracy_dataset, save_predictor, train_predictor
    from supernet.runtime import set_threads
    from supernet.space import get_space
    from supernet.train import read_run_config
    from supernet.train.derived import (
        check_fresh,
        checkpoint_digest,
        derived_digest,
        record_derived,
    )

    if not 0.0 < holdout < 1.0:
        raise typer.BadParameter(f"--holdout {holdout} must be a fraction in (0, 1)")
    _check_threads(threads)
    for path, option in ((out, "--out"), (plot, "--plot")):
        if path is not None:
            check_writable(path, option)
    set_threads(threads)
    space = get_space(read_run_config(run_dir).space)
    digest = checkpoint_digest(run_dir)
    again = f"measure it again with `supernet predict collect --run-dir {run_dir}`"
    check_fresh(run_dir, ACC_DATASET, digest, again)
    data = read_accuracy_dataset(run_dir / ACC_DATASET, space)
    console.print(
        f"fitting on {count(len(data), 'subnet')} of {escape(str(run_dir / ACC_DATASET))}",
        soft_wrap=True,
    )
    predictor, report = train_predictor(
        data, space, holdout=holdout, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed
    )
    path = save_predictor(out or run_dir / PREDICTOR_FILE, predictor, space, report)
    if out is None:
        record_derived(run_dir, PREDICTOR_FILE, derived_digest(run_dir, ACC_DATASET))
    table = Table(title=f"accuracy predictor on {report.n_holdout} held-out subnets")
    for col in ("train", "held out", "RMSE (pts)", "mean-only RMSE", "Kendall τ", "Spearman ρ"):
        table.add_column(col, justify="right")
    table.add_row(str(report.n_train), str(report.n_holdout), f"{report.rmse:.3f}",
                  f"{report.baseline_rmse:.3f}", f"{report.kendall_tau:.3f}",
                  f"{report.spearman_rho:.3f}")  # fmt: skip
    console.print(table)
    from supernet.predict.noise import halves_noise_ceiling

    ceiling = None if data.half_accuracy is None else halves_noise_ceiling(data.half_accuracy)
    if ceiling is not None:
        console.print(
            f"noise ceiling (split-half, {ceiling.subnets} subnets): a perfect predictor would "
            f"score RMSE {ceiling.rmse:.3f} and Kendall τ {ceiling.kendall_tau:.3f} against these "
            f"labels (halves agree at τ {ceiling.split_half_tau:.3f}); held out: RMSE "
            f"{report.rmse / max(ceiling.rmse, 1e-12):.2f}× the noise, τ "
            f"{report.kendall_tau / max(ceiling.kendall_tau, 1e-12):.2f} of the ceiling",
            soft_wrap=True,
        )
    else:
        console.print(
            "no noise ceiling: this dataset has no half accuracies (acc_halves.csv); "
            "recollect with `supernet predict collect --force`",
            soft_wrap=True,
        )
    from supernet.checkpoint import write_text_atomic
    from supernet.report.predictor import predictor_markdown

    write_text_atomic(
        run_dir / "predictor.md", predictor_markdown(report, subnets=len(data), ceiling=ceiling)
    )
    record_derived(run_dir, "predictor.md", derived_digest(run_dir, ACC_DATASET))
    console.print(
        f"saved {escape(str(path))} and {escape(str(run_dir / 'predictor.md'))}", soft_wrap=True
    )
    if plot is not None:
        from supernet.predict.noise import label_noise
        from supernet.report.predictor import plot_predictor_holdout

        noise = None
        if data.half_accuracy is not None and ceiling is not None:
            noise = label_noise(data.half_accuracy[:, 0], data.half_accuracy[:, 1])
            noise = noise[report.holdout_index]
        written = plot_predictor_holdout(report, plot, title=space.name, label_noise=noise,
                                         ceiling=ceiling)  # fmt: skip
        console.print(f"saved {escape(str(written))}", soft_wrap=True)
