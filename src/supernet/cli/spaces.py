"""``supernet spaces NAME``: one search space in detail — its elastic dimensions, its stages and
fixed layers, how many subnets it holds and what its largest and smallest subnets cost."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from supernet.space import SearchSpace, describe
from supernet.units import format_bytes

__all__ = ["print_space"]


def _choices(values: tuple) -> str:
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def print_space(console: Console, space: SearchSpace) -> None:
    """Print ``space``: choices per elastic dimension (and how many slots each applies to), the
    stages (width, block slots, stride, activation, SE), the fixed layers, ``size()``, and MACs,
    params and peak activation memory (fp32, batch 1) of the largest and smallest subnet.

    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.1 (elastic dimensions), Sec. 4 (space).
    """
    from supernet.cost import cost_table  # torch is loaded only for a detailed view

    console.print(f"[bold]{escape(space.name)}[/bold]: {escape(space.reference)}", soft_wrap=True)
    dims = Table(title="elastic dimensions")
    for col in ("dimension", "choices", "applies to"):
        dims.add_column(col)
    blocks, stages = space.num_blocks, space.num_stages
    dims.add_row("resolution", _choices(space.resolutions), "input image (pixels, square)")
    dims.add_row("kernel size", _choices(space.kernel_sizes), f"each of {blocks} block slots")
    dims.add_row("expand ratio", _choices(space.expand_ratios), f"each of {blocks} block slots")
    dims.add_row("depth", _choices(space.depths), f"each of {stages} stages (blocks in use)")
    console.print(dims)
    table = Table(title=f"stages (width multiplier {space.width_mult:g})")
    for col in ("stage", "width", "block slots", "stride", "activation", "SE"):
        table.add_column(col, justify="left" if col in ("activation", "SE") else "right")
    for i, stage in enumerate(space.stages, start=1):
        table.add_row(str(i), str(stage.width), str(stage.max_depth), str(stage.stride),
                      stage.act, "yes" if stage.use_se else "no")  # fmt: skip
    console.print(table)
    console.print(
        f"input {space.input_channels} channel{'s' if space.input_channels != 1 else ''}, "
        f"{space.num_classes} classes; fixed layers: stem {space.stem_width} "
        f"(stride {space.stem_stride}), first block {space.first_block_width}, final expand "
        f"{space.final_expand_width}, feature mix {space.feature_mix_width}",
        soft_wrap=True,
    )
    console.print(
        f"subnets: {space.size(with_resolution=False):,} architectures × "
        f"{len(space.resolutions)} resolutions = {space.size():.2e} (size())",
        soft_wrap=True,
    )
    configs = {"largest": space.largest(), "smallest": space.smallest()}
    costs = cost_table(list(configs.values()), space)
    subnets = Table(title="largest and smallest subnet (batch 1)")
    for col in ("subnet", "config", "MACs (M)", "params (M)", "peak memory fp32"):
        subnets.add_column(col, justify="left" if col in ("subnet", "config") else "right")
    for i, (name, config) in enumerate(configs.items()):
        subnets.add_row(name, describe(config), f"{costs['macs'][i] / 1e6:,.2f}",
                        f"{costs['params'][i] / 1e6:,.3f}",
                        format_bytes(int(costs["peak_memory_bytes"][i])))  # fmt: skip
    console.print(subnets)
