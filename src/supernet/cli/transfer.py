"""``supernet transfer``: TinyTL transfer learning from a subnet of a trained supernet, one method
or all of them compared (table, CSV, plot of accuracy vs training memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from supernet.cli.console import OLD_DEVICE, TORCH_DEVICE, console, friendly, hidden_aliases
from supernet.units import SIZE_HELP

__all__ = ["transfer"]

MAX_THREADS = 1024


def _reporter(progress: Progress) -> Any:
    """A :class:`~supernet.transfer.recipe.TransferReporter` drawing one bar per epoch."""
    from supernet.transfer.recipe import TransferReporter

    class RichTransferReporter(TransferReporter):
        task: Any = None

        def on_epoch_start(self, label: str, epoch: int, epochs: int, steps: int) -> None:
            if self.task is not None:
                progress.remove_task(self.task)
            self.task = progress.add_task(f"{label} {epoch + 1}/{epochs}", total=steps,
                                          loss=float("nan"), lr=0.0)  # fmt: skip

        def on_step(self, loss: float, lr: float) -> None:
            progress.update(self.task, advance=1, loss=loss, lr=lr)

        def on_epoch_end(self, label: str, row: dict[str, Any]) -> None:
            console.print(f"{label:>20} epoch {row['epoch']}: loss {row['train_loss']:.3f}, val "
                          f"acc {row['val_accuracy']:.2f}% ({row['seconds']:.0f} s)")  # fmt: skip

    return RichTransferReporter()


@hidden_aliases({"--run": "--run-dir", "--out": "--out-dir", **OLD_DEVICE})
@friendly(on_interrupt="interrupted; rerun the same command to continue (finished rows are kept)")
def transfer(
    run_dir: Annotated[Path, typer.Option(help="Run directory written by `supernet train`.")],
    target: Annotated[
        str,
        typer.Option(
            help="Target dataset: `digits` (scikit-learn 8×8 digits, upsampled) or "
            "`folder:PATH` (PATH/CLASS/*.png|jpg)."
        ),
    ] = "digits",
    method: Annotated[
        str,
        typer.Option(
            help="full, last, norm+last, bias+last, tinytl-l or tinytl-l+b (also the "
            "method whose memory --subnet adapt models)."
        ),
    ] = "tinytl-l+b",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per training step.")] = 8,
    subnet: Annotated[
        str,
        typer.Option(
            help="largest, smallest, middle, adapt (feature-extractor adaptation: best "
            "backprop-free proxy score within --memory-budget), or an ArchConfig as "
            "JSON text or a JSON file."
        ),
    ] = "largest",
    memory_budget: Annotated[
        str | None,
        typer.Option(
            help="Training-memory budget for --subnet adapt, paper accounting B·A+P at "
            f"--batch-size: {SIZE_HELP}; e.g. 4MiB."
        ),
    ] = None,
    adapt_samples: Annotated[
        int,
        typer.Option(
            min=0,
            help="Random candidate subnets for --subnet adapt, besides the "
            "largest, smallest and middle.",
        ),
    ] = 8,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the target's train split [default: 10].")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Adam's initial learning rate, decayed by a per-step cosine to 0 "
            "[default: 1e-3 for full, 1e-2 for the other methods]."
        ),
    ] = None,
    shift: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Augmentation: random translation of training images by up to "
            "this many pixels per axis (0: none) [default: 0].",
        ),
    ] = None,
    train_limit: Annotated[
        int | None,
        typer.Option(min=1, help="Training images per epoch, for quick runs [default: all]."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of new weights, order and dropout.")] = 0,
    quantize_frozen: Annotated[
        bool,
        typer.Option(
            help="Frozen conv/linear weights at 8 bits (k-means, 256 centroids), "
            "as the paper counts them."
        ),
    ] = True,
    efficient: Annotated[
        bool,
        typer.Option(
            "--efficient/--plain-autograd",
            help="Memory-efficient autograd functions "
            "(frozen layers save no input, ReLU a 1-bit mask) or plain PyTorch autograd.",
        ),
    ] = True,
    compare: Annotated[
        bool,
        typer.Option(
            help="Run all six methods on the same subnet, plus tinytl-l+b with "
            "the other frozen-weight precision."
        ),
    ] = False,
    batch_one: Annotated[bool, typer.Option(help="Also train tinytl-l+b at batch size 1.")] = False,
    lite_residual_everywhere: Annotated[
        bool,
        typer.Option(
            help="Give every method's network the lite residual modules, as the TinyTL "
            "reference's baselines have them (frozen or trained by the method's rule); default: "
            "only tinytl-l and tinytl-l+b."
        ),
    ] = False,
    convert_channels: Annotated[
        bool, typer.Option(help="Convert a folder's images to the supernet's channel count.")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option(help="Output folder [default: RUN_DIR/transfer/TARGET].")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Discard results already in the output folder.")
    ] = False,
    torch_device: Annotated[str, typer.Option(help=f"{TORCH_DEVICE}.")] = "auto",
    threads: Annotated[
        int | None, typer.Option(help="Intra-op CPU threads (default: torch's).")
    ] = None,
) -> None:
    """Transfer a subnet of a trained supernet to a new dataset with TinyTL (arXiv 2007.11622).

    Methods: `full` (every weight), `last` (new classifier), `norm+last`, `bias+last` (TinyTL-B),
    `tinytl-l` (lite residual modules), `tinytl-l+b`. Recipe: Adam, cosine decay per step, label
    smoothing 0.1, dropout 0.2. Each method's row records test accuracy, trainable parameters,
    modelled training memory (paper B·A+P and a full accounting) and measured bytes of one real
    step (what it holds, and the real peak of its own allocations); rows go to
    OUT_DIR/transfer.csv and transfer.json as they finish (a rerun continues), the table to
    transfer.md and accuracy vs memory to transfer.png. Memory is printed in MiB
    (1 MiB = 1,048,576 bytes).

    Example: `supernet transfer --run-dir runs/fashion-mnist-proxyless-quick --target digits
    --method tinytl-l+b --batch-size 8`
    """
    from supernet.errors import ConfigError
    from supernet.report.transfer import write_transfer_report
    from supernet.runtime import set_threads
    from supernet.space import describe
    from supernet.transfer import METHODS, check_method
    from supernet.transfer.adapt import parse_memory
    from supernet.transfer.recipe import TransferConfig
    from supernet.transfer.run import run_transfer
    from supernet.units import MIB, format_bytes

    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise typer.BadParameter(f"--threads {threads} must be in [1, {MAX_THREADS}]")
    check_method(method)
    if memory_budget is not None and subnet != "adapt":
        raise ConfigError(f"--memory-budget needs --subnet adapt (got --subnet {subnet})")
    budget = parse_memory(memory_budget) if memory_budget is not None else None
    optional = {"epochs": epochs, "shift": shift}  # None: the library's default
    recipe = TransferConfig(method=method, lr=lr, batch_size=batch_size,
                            quantize_frozen=quantize_frozen, efficient=efficient,
                            train_limit=train_limit, seed=seed,
                            lite_residual_everywhere=lite_residual_everywhere,
                            **{k: v for k, v in optional.items() if v is not None})  # fmt: skip
    set_threads(threads)
    methods = METHODS if compare else (method,)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f} lr {task.fields[lr]:.4f}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
    )  # fmt: skip
    with progress:
        adapt_task = None

        def on_candidate(done: int, total: int, what: str) -> None:
            nonlocal adapt_task
            if adapt_task is None:
                adapt_task = progress.add_task("adapt", total=total, loss=float("nan"), lr=0.0)
            progress.update(adapt_task, completed=done, description=f"adapt {what}")

        outcome = run_transfer(
            run_dir, target=target, methods=methods, subnet=subnet, recipe=recipe,
            memory_budget=budget, adapt_samples=adapt_samples, frozen_precision=compare,
            batch_one=batch_one, convert_channels=convert_channels, out_dir=out_dir, force=force,
            device=torch_device, reporter=_reporter(progress), progress=on_candidate,
        )  # fmt: skip
    if outcome.adaptation is not None:
        chosen = outcome.adaptation.chosen
        candidates = Table(title="feature-extractor adaptation (proxy: ridge on pooled features)")
        for col in ("candidate", "config", "paper MiB", "fits", "proxy val acc (%)"):
            candidates.add_column(col, justify="right" if col == "paper MiB" else "left")
        for c in outcome.adaptation.candidates:
            score = "–" if c.score is None else f"{c.score:.2f}"
            candidates.add_row(("→ " if c is chosen else "") + c.name, describe(c.config),
                               f"{c.memory_bytes / MIB:.2f}", "yes" if c.fits else "no",
                               score)  # fmt: skip
        console.print(candidates)
        console.print(f"adaptation chose {chosen.name} ({describe(chosen.config)}): proxy val acc "
                      f"{chosen.score:.2f}%, {format_bytes(chosen.memory_bytes)}")  # fmt: skip
    if outcome.skipped:
        console.print(f"kept from an earlier run: {', '.join(outcome.skipped)} (--force reruns)")
    table = Table(title=f"{escape(outcome.target.name)} ← {describe(outcome.config)}")
    for col in ("method", "B", "trainable", "test acc (%)", "paper MiB", "measured MiB",
                "measured/modelled", "peak step MiB", "train s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in outcome.rows:
        table.add_row(r.key, str(r.batch_size), f"{r.trainable_params:,}",
                      f"{r.test_accuracy:.2f}", f"{r.paper_total_bytes / MIB:.2f}",
                      f"{r.measured_total_bytes / MIB:.2f}", f"{r.measured_over_modelled:.3f}",
                      "–" if r.measured_peak_step_bytes is None
                      else f"{r.measured_peak_step_bytes / MIB:.2f}",
                      f"{r.train_seconds:.0f}")  # fmt: skip
    console.print(table)
    md, png = write_transfer_report(outcome)
    console.print(f"saved {escape(str(outcome.out_dir))}/transfer.csv, transfer.json, "
                  f"{md.name} and {png.name}", soft_wrap=True)  # fmt: skip
