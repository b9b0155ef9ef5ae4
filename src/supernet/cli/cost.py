"""``supernet cost``: MACs, params, peak activation memory and model size of one subnet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


def _int8_table(net: Any, planner: str) -> None:
    """Print the per-layer int8 table of a block list and its totals under every planner."""
    from supernet.cost import PLANNERS, mcu_cost

    result = mcu_cost(net, planner)
    table = Table(title=f"int8 on an MCU: {net.name} ({planner} planner)")
    for col, justify in (("layer", "left"), ("op", "left"), (f"SRAM {planner} (B)", "right"),
                         ("Flash (B)", "right")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for layer in result.layers:
        sram = "-" if layer.sram_bytes is None else f"{layer.sram_bytes:,}"
        table.add_row(layer.name, layer.kind, sram, f"{layer.flash_bytes:,}")
    console.print(table)
    for p in PLANNERS:
        console.print(f"peak SRAM int8 ({p}): {_bytes(mcu_cost(net, p).sram_bytes)}")
    console.print(f"Flash int8: {_bytes(result.flash_bytes)} (incl. estimated file overhead)")


@friendly
def cost(
    space: Annotated[str, typer.Option(help="Search space name (see `supernet spaces`).")] = (
        "mbv3-tiny"
    ),
    config: Annotated[
        str,
        typer.Option(help="largest, middle, smallest, a JSON file or JSON text of an ArchConfig."),
    ] = "largest",
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Per-layer int8 SRAM and Flash table of an MCU deployment."),
    ] = False,
    memory_planner: Annotated[
        str,
        typer.Option(
            help="With --int8: how SRAM is counted: naive (MCUNet's count), tflm "
            "(TFLite Micro's greedy planner: activations), tflm-arena (TFLite Micro's whole "
            "arena: + its persistent part) or tinyengine (in-place depthwise)."
        ),
    ] = "tflm",
    block_list: Annotated[
        Path | None,
        typer.Option(
            help="With --int8: cost this JSON instead of --space/--config: a "
            "subnet.json, an MCUNet ProxylessNASNets config or a supernet block list."
        ),
    ] = None,
) -> None:
    """Print what a subnet costs: MACs, params, peak activation memory and model size.

    MACs count multiply-accumulates of one image (Once-for-All, arXiv 1908.09791); peak memory is
    the largest set of activations alive at once during inference at batch 1, and model size the
    weights' bytes, each for fp32 and int8 (MCUNet, arXiv 2007.10319). With --int8: every
    layer's int8 SRAM (bytes in use while it runs) under --memory-planner and its Flash bytes;
    all sizes in bytes (KiB = 1024 bytes).

    Example: `supernet cost --space mbv3-tiny --config largest`
    """
    from supernet.cost import block_list_from_config, cost_table, load_block_list
    from supernet.cost.mcu import check_planner

    if int8:
        check_planner(memory_planner)
    elif block_list is not None or memory_planner != "tflm":
        raise ConfigError("--block-list and --memory-planner need --int8")
    if block_list is not None:
        _int8_table(load_block_list(block_list), memory_planner)
        return
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
    if int8:
        _int8_table(block_list_from_config(arch, search_space), memory_planner)
