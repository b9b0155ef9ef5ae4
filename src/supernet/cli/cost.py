"""``supernet cost``: MACs, params, peak activation memory and model size of one subnet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from supernet.cli.console import console, friendly
from supernet.errors import ConfigError
from supernet.space import ArchConfig, SearchSpace, describe, get_space

__all__ = ["cost", "resolve_config"]

NAMED_CONFIGS = ("largest", "middle", "smallest")


def resolve_config(space: SearchSpace, text: str) -> ArchConfig:
    """``largest``/``middle``/``smallest``, a JSON file, or JSON text → a config valid in ``space``.

    Raises:
        ConfigError: none of these, invalid JSON (a file's must be UTF-8), or a config not valid
            in ``space``.
    """
    if text in NAMED_CONFIGS:
        return getattr(space, text)()
    if text.lstrip().startswith("{"):
        return ArchConfig.from_json(text).validate(space)
    if Path(text).is_file():
        try:
            return ArchConfig.from_json(Path(text).read_bytes()).validate(space)
        except ConfigError as exc:
            raise ConfigError(f"config file {text!r}: {exc}") from exc
    raise ConfigError(f"config = {text!r} is not one of {NAMED_CONFIGS}, a JSON file or JSON text")


def _bytes(value: int) -> str:
    return f"{value:,} B ({value / 2**10:,.1f} KiB)"


@friendly
def cost(
    space: Annotated[str, typer.Option(help="Search space name (see `supernet spaces`).")] = (
        "mbv3-tiny"
    ),
    config: Annotated[
        str,
        typer.Option(help="largest, middle, smallest, a JSON file or JSON text of an ArchConfig."),
    ] = "largest",
) -> None:
    """Print what a subnet costs: MACs, params, peak activation memory and model size.

    MACs count multiply-accumulates of one image (Once-for-All, arXiv 1908.09791); peak memory is
    the largest set of activations alive at once during inference at batch 1, and model size the
    weights' bytes, each for fp32 and int8 (MCUNet, arXiv 2007.10319).
    """
    from supernet.cost import cost_table

    search_space = get_space(space)
    arch = resolve_config(search_space, config)
    row = {k: int(v[0]) for k, v in cost_table([arch], search_space).items()}
    table = Table(title=f"{space}: {describe(arch)}")
    table.add_column("cost")
    table.add_column("value", justify="right")
    table.add_row("MACs", f"{row['macs'] / 1e6:,.3f} M")
    table.add_row("params", f"{row['params'] / 1e6:,.4f} M")
    table.add_row("peak memory fp32", _bytes(row["peak_memory_bytes"]))
    table.add_row("peak memory int8", _bytes(row["peak_memory_bytes_int8"]))
    table.add_row("model size fp32", _bytes(row["model_size_bytes"]))
    table.add_row("model size int8", _bytes(row["model_size_bytes_int8"]))
    console.print(table)
