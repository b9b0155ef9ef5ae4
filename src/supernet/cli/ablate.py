"""``supernet ablate ps``: progressive shrinking vs. no PS vs. from scratch (OFA Fig. 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supernet.cli.console import SingleValueCommand, SupernetGroup, console, friendly

__all__ = ["ablate_app"]

ablate_app = typer.Typer(
    cls=SupernetGroup,
    help="The papers' comparisons at small scale (each arm is a resumable training run).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@ablate_app.command(cls=SingleValueCommand)
@friendly(on_interrupt="interrupted; rerun the same command to continue from the checkpoints")
def ps(
    run_dir: Annotated[Path, typer.Option(help="Folder for the ablation's runs and table.")],
    preset: Annotated[str | None, typer.Option(help="Preset of the PS run.")] = None,
    config: Annotated[Path | None, typer.Option(help="A YAML training config instead.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key (repeatable).")
    ] = None,
    test_images: Annotated[
        int | None, typer.Option(min=1, help="Test images per subnet (default: all).")
    ] = None,
) -> None:
    """Train (or resume) a PS supernet, a supernet with every elastic dimension from the start,
    and four subnets alone, for the same total epochs; score the largest, two middle and the
    smallest subnet of each on the test split. Writes RUN_DIR/ablate_ps.{csv,md,png}.
    Rerunning continues every arm from its checkpoint (Once-for-All, arXiv 1908.09791, Fig. 4).

    Example: `supernet ablate ps --preset fashion-mnist-quick --run-dir runs/ablate`
    """
    from supernet.ablate import run_ps_ablation
    from supernet.train import load_config, parse_overrides

    if preset is None and config is None:
        raise typer.BadParameter("give --preset or --config")
    cfg = load_config(preset, path=config, overrides=parse_overrides(set_ or []))
    rows = run_ps_ablation(cfg, run_dir, test_limit=test_images)
    table = Table("arm", "subnet", "test acc (%)", "train images")
    for r in rows:
        table.add_row(r.arm, r.subnet, f"{r.test_accuracy:.2f}", str(r.train_images))
    console.print(table)
    console.print(f"table and plot in {escape(str(run_dir))}/ablate_ps.*", soft_wrap=True)


@ablate_app.command(cls=SingleValueCommand)
@friendly(on_interrupt="interrupted; rerun the same command to continue from the checkpoints")
def scaled(
    run_dir: Annotated[Path, typer.Option(help="Folder for the ablation's runs and table.")],
    lut: Annotated[
        Path, typer.Option(help="Latency table of the space (`supernet latency build`).")
    ],
    preset: Annotated[str | None, typer.Option(help="Preset of the PS run.")] = None,
    config: Annotated[Path | None, typer.Option(help="A YAML training config instead.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key (repeatable).")
    ] = None,
    random_subnets: Annotated[
        int, typer.Option(min=0, help="Random subnets of the PS supernet to score as well.")
    ] = 24,
    per_dim: Annotated[
        int | None,
        typer.Option(min=1, help="Only the N smallest choices per dimension (default: all)."),
    ] = None,
    test_images: Annotated[
        int | None, typer.Option(min=1, help="Test images per subnet (default: all).")
    ] = None,
) -> None:
    """Train (or resume) the PS supernet and the largest subnet scaled down by width (expand
    ratio), depth or resolution alone, each scaled baseline from scratch for the PS run's total
    epochs; compare each baseline with the best PS subnet within its latency (table prediction,
    ms). Writes RUN_DIR/ablate_scaled.{csv,md,png}; shares RUN_DIR/ps and
    RUN_DIR/scratch-largest with `ablate ps` (Once-for-All, arXiv 1908.09791, Fig. 9).

    Example: `supernet ablate scaled --preset fashion-mnist-quick --run-dir runs/ablate
    --lut luts/mbv3-tiny-cpu-ort-1t.json`
    """
    from supernet.ablate import best_within, run_scaled_ablation
    from supernet.cost import load_latency_table
    from supernet.train import load_config, parse_overrides

    if preset is None and config is None:
        raise typer.BadParameter("give --preset or --config")
    cfg = load_config(preset, path=config, overrides=parse_overrides(set_ or []))
    table = load_latency_table(lut)
    points = run_scaled_ablation(
        cfg, run_dir, table, n_random=random_subnets, per_dim=per_dim, test_limit=test_images
    )
    out = Table("scaled baseline", "latency (ms)", "from scratch (%)", "PS within latency (%)")
    for p in (p for p in points if p.source == "scratch"):
        best = best_within(points, p.latency_ms)
        ps_acc = "—" if best is None else f"{best.test_accuracy:.2f}"
        out.add_row(p.label, f"{p.latency_ms:.3f}", f"{p.test_accuracy:.2f}", ps_acc)
    console.print(out)
    console.print(f"table and plot in {escape(str(run_dir))}/ablate_scaled.*", soft_wrap=True)
