"""``supernet latency build|validate|measure``: measured latency and latency lookup tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supernet.cli.console import (
    SingleValueCommand,
    SupernetGroup,
    check_writable,
    console,
    count,
    friendly,
)
from supernet.cli.cost import resolve_config
from supernet.errors import ConfigError
from supernet.space import describe, get_space

if TYPE_CHECKING:
    from supernet.cost.device import DeviceSpec

__all__ = ["latency_app"]

latency_app = typer.Typer(
    cls=SupernetGroup,
    help="Measure subnet latency on this machine; build and check latency lookup tables.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="Target device: cpu-torch, cpu-ort or a device YAML/JSON file (default: the "
        "built-in for --runtime).",
    ),
]
RuntimeOpt = Annotated[
    str | None, typer.Option(help="torch or onnxruntime (default: the device's runtime).")
]
ThreadsOpt = Annotated[
    int | None, typer.Option(help="Intra-op threads (default: the device's; all cores).")
]
BatchOpt = Annotated[int | None, typer.Option(help="Batch size (default: the device's, 1).")]


def _device(
    device: str | None, runtime: str | None, threads: int | None, batch: int | None
) -> DeviceSpec:
    """The device description with command-line overrides (validated by DeviceSpec)."""
    from supernet.cost.device import get_device

    spec = get_device(device or ("cpu-torch" if runtime == "torch" else "cpu-ort"))
    changes = {"runtime": runtime, "threads": threads, "batch_size": batch}
    return spec.replace(**{k: v for k, v in changes.items() if v is not None})


def _describe_device(spec: DeviceSpec) -> str:
    return f"{spec.name}: {spec.runtime}, {count(spec.threads, 'thread')}, batch {spec.batch_size}"


@latency_app.command(cls=SingleValueCommand)
@friendly
def build(
    out: Annotated[Path, typer.Option(help="JSON file to write, e.g. luts/mbv3-tiny-ort.json.")],
    space: Annotated[str, typer.Option(help="Search space name.")] = "mbv3-tiny",
    runtime: RuntimeOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per measurement.")] = 15,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls before timing.")] = 5,
    fit_subnets: Annotated[
        int, typer.Option(min=0, help="Random whole subnets measured to fit the overhead.")
    ] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the fit subnets.")] = 0,
) -> None:
    """Build a latency lookup table: time every distinct block of a space on this machine.

    Every distinct stem, MBConv block (input size, channels, kernel, expand ratio, stride, SE,
    activation) and head is timed once as a standalone module; a few whole subnets fit a scale
    and a constant overhead. The table stores the device description, CPU model, thread count and
    runtime versions (Once-for-All, arXiv 1908.09791, Sec. 3.4).

    Example: `supernet latency build --space mbv3-tiny --runtime onnxruntime --threads 1 --out
    luts/mbv3-tiny-cpu-ort-1t.json`
    """
    from supernet.cost.lut_build import build_latency_table

    check_writable(out, "--out")
    search_space = get_space(space)
    spec = _device(device, runtime, threads, batch_size)
    console.print(
        f"building a latency table for [bold]{space}[/bold] on {escape(_describe_device(spec))}"
    )
    from supernet.cli.progress import StepProgress

    with StepProgress(console, "measuring") as bar:
        report = bar.update

        table = build_latency_table(
            search_space,
            spec,
            repeats=repeats,
            warmup=warmup,
            fit_subnets=fit_subnets,
            seed=seed,
            progress=report,
        )
    path = table.save(out)
    console.print(
        f"{len(table.entries)} entries in {table.build['seconds']:.0f} s; "
        f"fit: scale {table.scale:.3f}, overhead {table.overhead_ms:.4f} ms, "
        f"call overhead {table.call_overhead_ms:.4f} ms; saved {path}"
    )


DRIFT_WARNING = 0.05
"""Speed drift (fraction) above which `validate` warns that the machine has changed speed."""


@latency_app.command(cls=SingleValueCommand)
@friendly
def validate(
    lut: Annotated[Path, typer.Option(help="Latency table written by `supernet latency build`.")],
    n: Annotated[
        int, typer.Option(min=2, help="Random subnets to measure (>= 50 for the report).")
    ] = 50,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the subnets (build used 0).")] = 1,
    repeats: Annotated[
        int | None, typer.Option(min=1, help="Timed repeats (default: the table's).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a predicted-vs-measured scatter plot (PNG).")
    ] = None,
    drift_check: Annotated[
        bool,
        typer.Option(
            help="Also re-measure the table's fit subnets to report how much faster or slower "
            "the machine runs than when the table was built, and the MAPE without that drift."
        ),
    ] = True,
) -> None:
    """Measure random subnets and compare them with the table's predictions.

    Prints the mean absolute percentage error (MAPE) and Kendall's τ between predicted and
    measured latency, measured with the table's runtime, threads and batch size. With the drift
    check (default) it also prints the machine's speed now against build time (the table's fit
    subnets measured again) and the MAPE with that ratio taken out.

    Example: `supernet latency validate --lut luts/mbv3-tiny-cpu-ort-1t.json --n 50 --plot
    luts/validate.png`
    """
    from supernet.cost.lut import load_latency_table
    from supernet.cost.lut_validate import validate_latency_table

    if plot is not None:
        check_writable(plot, "--plot")
    table = load_latency_table(lut)
    console.print(
        f"validating {escape(str(lut))} ({table.space.name}) on "
        f"{escape(_describe_device(table.device))}"
    )
    from supernet.cli.progress import StepProgress

    with StepProgress(console, "measuring", total=n) as bar:
        report = bar.update

        result = validate_latency_table(
            table, n=n, seed=seed, repeats=repeats, drift_check=drift_check, progress=report
        )
    out = Table(title=f"{escape(str(lut))}: predicted vs measured latency")
    for col in ("subnets", "MAPE (%)", "Kendall τ", "measured (ms)", "predicted (ms)"):
        out.add_column(col, justify="right")
    out.add_row(
        str(n),
        f"{result.mape_percent:.2f}",
        f"{result.kendall_tau:.3f}",
        f"{result.measured_ms.min():.3f}..{result.measured_ms.max():.3f}",
        f"{result.predicted_ms.min():.3f}..{result.predicted_ms.max():.3f}",
    )
    console.print(out)
    if result.speed_ratio is not None:
        ratio, drift = result.speed_ratio, abs(result.speed_ratio - 1)
        console.print(
            f"machine speed drift: the table's fit subnets take {ratio:.3f}x their build-time "
            f"latency now; MAPE with that taken out: {result.drift_corrected_mape_percent:.2f}%"
        )
        if drift > DRIFT_WARNING:
            console.print(
                f"[yellow]warning:[/] this machine runs {100 * drift:.0f}% "
                f"{'slower' if ratio > 1 else 'faster'} than when the table was built; "
                "absolute predictions are off by that much (the ranking is not): rebuild the "
                "table on a steady machine"
            )
    if plot is not None:
        from supernet.report import plot_latency_validation

        written = plot_latency_validation(result, plot, title=f"{table.space.name} {table.runtime}")
        console.print(f"saved {escape(str(written))}")


@latency_app.command(cls=SingleValueCommand)
@friendly
def measure(
    space: Annotated[str, typer.Option(help="Search space name.")] = "mbv3-tiny",
    config: Annotated[
        str,
        typer.Option(help="largest, middle, smallest, a JSON file or JSON text of an ArchConfig."),
    ] = "largest",
    runtime: Annotated[str, typer.Option(help="torch, onnxruntime or both.")] = "both",
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats.")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls before timing.")] = 10,
) -> None:
    """Measure one extracted subnet with PyTorch eager and/or onnxruntime (median and IQR).

    Eager runs under `torch.inference_mode`, in channels_last when that is faster; onnxruntime
    runs the `torch.onnx` export. With both, prints the onnxruntime / eager latency ratio.

    Example: `supernet latency measure --space mbv3-tiny --config smallest --threads 1`
    """
    from supernet.cost.lut_build import measure_subnets

    runtimes = ("torch", "onnxruntime") if runtime == "both" else (runtime,)
    if runtime != "both" and runtime not in ("torch", "onnxruntime"):
        raise ConfigError(
            f"runtime = {runtime!r} is not allowed; choose from ('torch', 'onnxruntime', 'both')"
        )
    search_space = get_space(space)
    arch = resolve_config(search_space, config)
    out = Table(title=f"{space}: {describe(arch)}")
    for col in ("runtime", "median (ms)", "IQR (ms)", "threads", "batch", "layout"):
        out.add_column(col, justify="left" if col in ("runtime", "layout") else "right")
    medians = {}
    for rt in runtimes:
        spec = _device(None, rt, threads, batch_size)
        [result] = measure_subnets(search_space, [arch], spec, repeats=repeats, warmup=warmup)
        medians[rt] = result.median_ms
        out.add_row(
            rt,
            f"{result.median_ms:.4f}",
            f"{result.iqr_ms:.4f}",
            str(result.threads),
            str(result.batch_size),
            result.memory_format,
        )
    console.print(out)
    if len(medians) == 2:
        ratio = medians["onnxruntime"] / medians["torch"]
        console.print(f"onnxruntime / eager latency ratio: {ratio:.3f}")
