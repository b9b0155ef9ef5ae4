"""The ``supernet`` command line: thin commands that validate, call one library function, and turn
library errors into messages and exit codes."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supernet import __version__
from supernet.cli.ablate import ablate_app
from supernet.cli.compress import compress
from supernet.cli.console import (
    OLD_DEVICE,
    TORCH_DEVICE,
    SingleValueCommand,
    SupernetGroup,
    console,
    hidden_aliases,
)
from supernet.cli.console import friendly as _friendly
from supernet.cli.cost import cost
from supernet.cli.import_ofa import import_ofa
from supernet.cli.latency import latency_app
from supernet.cli.latency_transformer import build_transformer, fit_transformer
from supernet.cli.predict import predict_app
from supernet.cli.privacy import defense_cost, dlg, privacy_app
from supernet.cli.proxyless import proxyless
from supernet.cli.quantize import quantize
from supernet.cli.search_transformer import search_transformer
from supernet.cli.specialize import search, specialize
from supernet.cli.tinynas import tinynas
from supernet.cli.train_transformer import train_transformer_if_hat
from supernet.cli.transfer import transfer
from supernet.errors import ConfigError
from supernet.space import describe, get_space, list_spaces

app = typer.Typer(
    cls=SupernetGroup,
    name="supernet",
    help=(
        "Train one Once-for-All supernet by progressive shrinking, evaluate its subnets, and "
        "measure what they cost on a device."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"supernet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@app.command(cls=SingleValueCommand)
@hidden_aliases(OLD_DEVICE)
@_friendly(on_interrupt="interrupted; resume with --resume")
def train(
    preset: Annotated[
        str | None,
        typer.Option(help="Preset name from configs/ (fashion-mnist-quick, fashion-mnist, ...)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A YAML training config instead of a preset.")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/PRESET).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set batch_size=64 (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --run-dir from its last checkpoint.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Overwrite a run already in --run-dir.")] = False,
    torch_device: Annotated[
        str | None, typer.Option(help=f"{TORCH_DEVICE} (default: the config's `device`).")
    ] = None,
    norm: Annotated[
        str | None,
        typer.Option(help="bn (batch norm) or gn (group norm + weight standardization, TinyTL)."),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Launch N data-parallel processes with torchrun (DDP; gloo on CPU, nccl on CUDA).",
        ),
    ] = None,
) -> None:
    """Train a supernet by progressive shrinking (Once-for-All, arXiv 1908.09791).

    Phases: full network, elastic kernel, elastic depth, elastic expand ratio; elastic resolution
    throughout; knowledge distillation from the full network. A checkpoint is written after every
    epoch (and every checkpoint_every steps); --resume continues exactly where the run stopped.
    Ctrl-C stops after the current step with a checkpoint written. Several processes:
    `torchrun --nproc_per_node N -m supernet train ...` or `--nproc N`.

    Example: `supernet train --preset fashion-mnist-quick --run-dir runs/fmnist-quick`
    """
    from supernet.cli.progress import RichReporter
    from supernet.train import list_presets, load_config, parse_overrides, read_run_config
    from supernet.train import train as run_training
    from supernet.train.distributed import launch_torchrun

    main_rank = os.environ.get("RANK", "0") == "0"
    overrides = parse_overrides(set_ or [])
    if norm is not None:
        overrides["norm"] = norm
    if torch_device is not None:
        overrides["device"] = torch_device
    if resume and force:
        raise ConfigError(
            "--resume and --force contradict each other: --resume continues the run in "
            "--run-dir, --force deletes it and starts again; give one of them"
        )
    if train_transformer_if_hat(preset, config, run_dir, overrides, resume=resume, force=force,
                                nproc=nproc):  # fmt: skip
        return
    if preset is None and config is None:
        if not (resume and run_dir is not None):
            raise ConfigError(
                "give --preset NAME or --config FILE to start a run (presets: "
                f"{', '.join(list_presets())}), or --resume --run-dir DIR to continue one"
            )
        read_run_config(run_dir)  # a clear error for a missing or truncated config.yaml
        cfg = load_config(path=run_dir / "config.yaml", overrides=overrides)
    else:
        cfg = load_config(preset, path=config, overrides=overrides)
    if nproc is not None:  # validated above; torchrun starts this command N times
        if cfg.batch_size % nproc:
            raise ConfigError(
                f"batch_size = {cfg.batch_size} is not divisible by --nproc {nproc}; the global "
                "batch is split evenly across processes"
            )
        argv = ["train", *_opt("--preset", preset), *_opt("--config", config),
                *_opt("--run-dir", run_dir), *_opt("--torch-device", torch_device),
                *_opt("--norm", norm),
                *[a for item in set_ or [] for a in ("--set", item)],
                *(["--resume"] if resume else []), *(["--force"] if force else [])]  # fmt: skip
        code = launch_torchrun(nproc, argv)
        if code:
            raise typer.Exit(code)
        return
    run_dir = run_dir or Path("runs") / cfg.preset
    if not main_rank:  # torchrun: rank 0 alone prints and shows progress
        run_training(cfg, run_dir, resume=resume, force=force)
        return
    verb, where = ("resuming", "in") if resume else ("training", "into")
    console.print(f"{verb} preset [bold]{escape(cfg.preset)}[/bold] ({cfg.space} on "
                  f"{cfg.dataset}) {where} {escape(str(run_dir))}")  # fmt: skip
    start = time.perf_counter()
    with RichReporter(console) as reporter:
        result = run_training(cfg, run_dir, resume=resume, force=force, reporter=reporter)
    console.print(
        f"done in {time.perf_counter() - start:.0f} s; checkpoint and metrics.csv in "
        f"{result.run_dir}"
    )


def _opt(name: str, value: object) -> list[str]:
    return [] if value is None else [name, str(value)]


@app.command("eval", cls=SingleValueCommand)
@hidden_aliases(OLD_DEVICE)
@_friendly
def eval_(
    run_dir: Annotated[Path, typer.Option(help="Run directory written by `supernet train`.")],
    split: Annotated[str, typer.Option(help="test or val.")] = "test",
    torch_device: Annotated[str, typer.Option(help=f"{TORCH_DEVICE}.")] = "auto",
) -> None:
    """Evaluate the largest, a middle and the smallest subnet of a run.

    Each subnet is extracted, BN re-calibrated on training images and tested; the table (config,
    MACs, params, top-1 accuracy) is printed and saved as eval.csv and eval.md in the run directory.

    Example: `supernet eval --run-dir runs/fmnist-quick`
    """
    from supernet.cli.progress import StepProgress
    from supernet.report import evaluate_run

    console.print(f"evaluating 3 subnets of {escape(str(run_dir))} on the {split} split",
                  soft_wrap=True)  # fmt: skip
    with StepProgress(console, "subnets", total=3) as bar:
        result = evaluate_run(run_dir, split=split, device=torch_device, progress=bar.update)
    table = Table(title=f"{escape(str(run_dir))} — {split} split ({result.progress})")
    for col in ("subnet", "config", "MACs (M)", "params (M)", "top-1 (%)"):
        table.add_column(col, justify="left" if col in ("subnet", "config") else "right")
    for r in result.rows:
        table.add_row(r.name, describe(r.config), f"{r.macs / 1e6:.2f}", f"{r.params / 1e6:.3f}",
                      f"{r.accuracy:.2f}")  # fmt: skip
    console.print(table)
    console.print(f"saved {run_dir / 'eval.csv'} and {run_dir / 'eval.md'}", markup=False)


@app.command(cls=SingleValueCommand)
@_friendly
def spaces(
    name: Annotated[str | None, typer.Argument(help="Show one space in detail.")] = None,
) -> None:
    """List the search spaces, or describe one: elastic dimensions, stages, size() and the
    costs of its largest and smallest subnet.

    Example: `supernet spaces`
    """
    if name is not None:
        from supernet.cli.spaces import print_space

        print_space(console, get_space(name))
        return
    names = list_spaces()
    table = Table()
    for col in ("space", "input", "resolutions", "kernel", "expand", "depth", "stages", "size()"):
        table.add_column(col, no_wrap=col in ("space", "size()"))
    for n in names:
        s = get_space(n)
        res = s.resolutions
        res_text = f"{res[0]}..{res[-1]} ({len(res)})" if len(res) > 4 else str(res)
        table.add_row(
            s.name, f"{s.input_channels}ch", res_text, str(s.kernel_sizes), str(s.expand_ratios),
            str(s.depths), str(s.num_stages), f"{s.size():.2e}",
        )  # fmt: skip
    console.print(table)


app.command(cls=SingleValueCommand)(cost)
latency_app.command("build-transformer", cls=SingleValueCommand)(build_transformer)
latency_app.command("fit-transformer", cls=SingleValueCommand)(fit_transformer)
app.add_typer(latency_app, name="latency")
app.add_typer(predict_app, name="predict")
app.add_typer(ablate_app, name="ablate")
app.command(cls=SingleValueCommand)(search)
app.command(cls=SingleValueCommand)(specialize)
app.command("search-transformer", cls=SingleValueCommand)(search_transformer)
app.command(cls=SingleValueCommand)(tinynas)
app.command(cls=SingleValueCommand)(transfer)
app.command("import-ofa", cls=SingleValueCommand)(import_ofa)
privacy_app.command("dlg", cls=SingleValueCommand)(dlg)
privacy_app.command("cost", cls=SingleValueCommand)(defense_cost)
app.add_typer(privacy_app, name="privacy")
app.command(cls=SingleValueCommand)(quantize)
app.command(cls=SingleValueCommand)(compress)
app.command(cls=SingleValueCommand)(proxyless)


def main() -> None:
    """Console-script entry point."""
    app()
