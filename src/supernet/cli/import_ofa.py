"""``supernet import-ofa``: a run directory from published Once-for-All weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from supernet.cli.console import console, friendly

__all__ = ["import_ofa"]


@friendly
def import_ofa(
    weights: Annotated[
        Path,
        typer.Option(help="State dict of the reference OFAMobileNetV3 (.pth; read weights-only)."),
    ],
    space: Annotated[str, typer.Option(help="ofa-mbv3 (width 1.0) or ofa-mbv3-w1.2.")],
    run_dir: Annotated[Path, typer.Option(help="Run directory to write.")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Config key, e.g. --set dataset=folder:PATH (3-channel images)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a run already in --run-dir.")] = False,
) -> None:
    """Import published Once-for-All weights (ofa_mbv3_d234_e346_k357_w1.0 / _w1.2) as a run.

    The run directory holds config.yaml, checkpoint.pt and dataset.json like a finished training
    run, so eval, predict, latency, search, specialize and transfer accept it. Images are
    normalized with the ImageNet statistics the weights were trained with; a dataset with another
    class count gets a freshly initialized classifier (a warning says so).

    Example: `supernet import-ofa --weights ofa_mbv3_d234_e346_k357_w1.2.pth --space
    ofa-mbv3-w1.2 --run-dir runs/ofa-w12 --set dataset=folder:PATH`
    """
    from supernet.train import parse_overrides
    from supernet.train.imported import import_ofa_run

    overrides = parse_overrides(set_ or [])
    out = import_ofa_run(weights, space=space, run_dir=run_dir, overrides=overrides, force=force)
    console.print(f"imported {weights} as {space} into {out}", markup=False)
