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
    run_dir: Annotated[Path, typer.Option(help="Directory for the ablation's runs and table.")],
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
