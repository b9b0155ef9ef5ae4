"""``supernet tinynas``: which (width, resolution) search space suits an MCU's SRAM and Flash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from supernet.cli.console import console, friendly, hidden_aliases
from supernet.errors import ConfigError
from supernet.units import SIZE_HELP, format_bytes, parse_size

__all__ = ["tinynas"]

DEFAULT_DEVICES = Path("configs/devices/mcu.yaml")


def _budget(device: str | None, devices: Path) -> tuple[str, float | None, float | None, str]:
    """(name, max SRAM bytes, max Flash bytes, planner) of ``device``: a device file, or a name
    in the ``devices`` file."""
    from supernet.cost import load_devices

    if device is None:
        return "custom", None, None, "tflm"
    if Path(device).is_file():
        specs = load_devices(device)
        if len(specs) != 1:
            names = [s.name for s in specs]
            raise ConfigError(f"{device} holds {len(specs)} devices {names}; name one of them "
                              f"with --device NAME --devices {device}")  # fmt: skip
        spec = specs[0]
    else:
        specs = {s.name: s for s in load_devices(devices)}
        if device not in specs:
            raise ConfigError(f"device {device!r} is not in {devices}; choose from {sorted(specs)}")
        spec = specs[device]
    c = spec.constraints
    return spec.name, c.get("max_sram_bytes"), c.get("max_flash_bytes"), spec.planner


@hidden_aliases({"--max-sram-bytes": "--max-sram", "--max-flash-bytes": "--max-flash"})
@friendly
def tinynas(
    device: Annotated[
        str | None,
        typer.Option(
            help="Target device: a device name in --devices, or a device YAML/JSON file with "
            "int8 budgets max_sram_bytes / max_flash_bytes (bytes)."
        ),
    ] = None,
    devices: Annotated[
        Path, typer.Option(help="Devices file the --device name is looked up in.")
    ] = DEFAULT_DEVICES,
    max_sram: Annotated[
        str | None,
        typer.Option(metavar="SIZE", help=f"SRAM budget (overrides the device's): {SIZE_HELP}."),
    ] = None,
    max_flash: Annotated[
        str | None,
        typer.Option(metavar="SIZE", help=f"Flash budget (overrides the device's): {SIZE_HELP}."),
    ] = None,
    memory_planner: Annotated[
        str | None,
        typer.Option(
            help="naive, tflm, tflm-arena or tinyengine (default: the device's, else tflm)."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(min=2, help="Random subnets per space.")] = 1000,
    seed: Annotated[int, typer.Option(help="Sampling seed (same seed, same ranking).")] = 0,
    plot: Annotated[
        Path | None,
        typer.Option(help="Where the CDF plot goes (default: runs/tinynas/DEVICE.png)."),
    ] = None,
) -> None:
    """Rank the TinyNAS spaces mbv3-tiny-w{W}-r{R} for an MCU budget and plot their MACs CDFs.

    Samples --samples subnets of every space (width multiplier 0.25-1.0 x resolution 16-32),
    keeps those whose int8 SRAM (under the memory planner) and Flash fit the budget, and ranks
    the spaces by the mean MACs of their fitting subnets; the first is chosen (MCUNet, arXiv
    2007.10319, Sec. 3.1, Fig. 3). Device files give budgets in bytes; --max-sram and
    --max-flash also take KiB/MiB (1024-based) or kB/MB (1000-based). A budget no space meets:
    exit 2 with the smallest SRAM and Flash found.

    Example: `supernet tinynas --device stm32f746 --devices configs/devices/mcu.yaml --plot
    tinynas.png`
    """
    from supernet.cost.mcu import check_planner
    from supernet.cost.tinynas import rank_spaces
    from supernet.report.tinynas import plot_tinynas_cdf, tinynas_rows

    name, sram, flash, planner = _budget(device, devices)
    sram = parse_size(max_sram, name="--max-sram") if max_sram is not None else sram
    flash = parse_size(max_flash, name="--max-flash") if max_flash is not None else flash
    planner = check_planner(memory_planner) if memory_planner is not None else planner
    if sram is None or flash is None:
        raise ConfigError(f"device {name!r} needs an SRAM and a Flash budget: set "
                          f"max_sram_bytes and max_flash_bytes in its constraints, or give "
                          f"--max-sram and --max-flash")  # fmt: skip
    with console.status(f"sampling {samples} subnets per space"):
        result = rank_spaces(sram, flash, planner=planner, samples=samples, seed=seed)
    table = Table(title=f"TinyNAS for {name}: SRAM <= {format_bytes(sram)}, Flash <= "
                        f"{format_bytes(flash)} (int8, {planner})")  # fmt: skip
    rows = tinynas_rows(result)
    headers = {"rank": "#", "space": "space", "width_mult": "W", "resolution": "R",
               "fitting": "fit", "mean_macs_m": "mean MACs (M)", "min_sram_bytes": "min SRAM (B)",
               "min_flash_bytes": "min Flash (B)"}  # fmt: skip
    for key in rows[0]:
        table.add_column(headers[key], justify="left" if key == "space" else "right")
    for row in rows:
        table.add_row(*("-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)
                        for v in row.values()))  # fmt: skip
    console.print(table)
    best = result.scores[0]
    console.print(f"chosen: {best.space} (mean MACs of fitting subnets {best.mean_macs / 1e6:.3f} "
                  f"M, {best.fitting}/{best.samples} fit)", markup=False)  # fmt: skip
    path = plot if plot is not None else Path("runs/tinynas") / f"{name}.png"
    written = plot_tinynas_cdf(result, path, title=table.title or name)
    console.print(f"saved {written}", markup=False)
