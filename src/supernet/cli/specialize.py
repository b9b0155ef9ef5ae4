"""``supernet search`` (one device, budgets on the command line) and ``supernet specialize`` (many
devices from a file): search → extract → BN re-calibrate → test → time → export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from supernet.cli.console import console, friendly, hidden_aliases
from supernet.errors import ConfigError
from supernet.units import SIZE_HELP, parse_size

if TYPE_CHECKING:
    from supernet.cost import DeviceSpec

__all__ = ["search", "specialize"]

RunDir = Annotated[Path, typer.Option(help="Run directory with a trained supernet and predictor.")]
OutDir = Annotated[
    Path | None, typer.Option(help="Where exports go (default: RUN_DIR/specialized).")
]
Generations = Annotated[int, typer.Option(min=1, help="Evolution generations (Once-for-All: 500).")]
Population = Annotated[int, typer.Option(min=4, help="Evolution population (Once-for-All: 100).")]
Seed = Annotated[int, typer.Option(help="Search seed (same seed, same subnet).")]
Recalibrate = Annotated[
    bool,
    typer.Option(
        help="Before searching, re-time the latency table's fit subnets and scale its "
        "predictions to this machine's speed now (the factor goes into specialize.md)."
    ),
]


def _run(
    run_dir: Path,
    devices: list[DeviceSpec],
    out_dir: Path | None,
    generations: int,
    population: int,
    seed: int,
    recalibrate: bool = True,
    qat_steps: int = 300,
    tflm_images: int | None = None,
) -> None:
    from supernet.report.run_report import (
        specialize_markdown,
        write_run_report,
        write_specialize_outputs,
    )
    from supernet.report.specialize import specialize as specialize_run
    from supernet.search import EvolutionConfig

    evolution = EvolutionConfig(population=population, generations=generations, seed=seed)
    from supernet.cli.progress import StepProgress

    with StepProgress(console, "specializing") as bar:
        result = specialize_run(run_dir, devices, out_dir=out_dir, evolution=evolution,
                                recalibrate=recalibrate, qat_steps=qat_steps,
                                tflm_images=tflm_images, progress=bar.note)  # fmt: skip
    written = write_specialize_outputs(result)
    report = write_run_report(run_dir, specialized_dir=result.out_dir)
    console.print(specialize_markdown(result), markup=False)
    for name, factor in result.latency_scales.items():
        if factor is not None:
            console.print(f"{name}: latency predictions scaled by {factor:.3f} (this machine's "
                          "speed now against the table's)", markup=False)  # fmt: skip
    for d in result.devices:
        missed = [k for k, ok in d.meets.items() if not ok]
        if missed:
            console.print(
                f"[yellow]warning:[/yellow] {escape(d.device)}: measured cost misses {missed}"
            )
        console.print(f"{d.device}: exported to {d.export_dir}", markup=False)
    for d in result.infeasible:
        console.print(
            f"[yellow]warning:[/yellow] {escape(d.device)}: no subnet meets its budgets, nothing "
            f"exported; cheapest found: {escape(d.cheapest_text())}"
        )
        if d.advice:
            console.print(f"{d.device}: {d.advice}", markup=False)
    console.print("saved " + ", ".join(str(p) for p in [*written, report]), markup=False)


@hidden_aliases(
    {"--max-peak-memory-kb": ("--max-peak-memory", "KiB"),
     "--max-model-size-kb": ("--max-model-size", "KiB")}
)  # fmt: skip
@friendly
def search(
    run_dir: RunDir,
    device: Annotated[
        str,
        typer.Option(
            help="Target device: cpu-ort, cpu-torch or a device YAML/JSON file (a device "
            "profile with its runtime, threads and budgets; not the PyTorch device)."
        ),
    ] = "cpu-ort",
    lut: Annotated[
        Path | None,
        typer.Option(help="Latency table from `supernet latency build` (default: device's)."),
    ] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="Latency budget (ms).")] = None,
    max_macs: Annotated[float | None, typer.Option(help="MACs budget, e.g. 5e6.")] = None,
    max_peak_memory: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE",
            help=f"Peak activation memory budget (fp32, batch 1): {SIZE_HELP}; e.g. 256KiB.",
        ),
    ] = None,
    max_model_size: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE", help=f"Model size budget (fp32 weights): {SIZE_HELP}; e.g. 2MiB."
        ),
    ] = None,
    out_dir: OutDir = None,
    generations: Generations = 500,
    population: Population = 100,
    seed: Seed = 0,
    recalibrate: Recalibrate = True,
) -> None:
    """Find the most accurate subnet (predicted) for one device within the given budgets.

    Constrained evolution (Once-for-All, arXiv 1908.09791, Sec. 3.4) on the run's accuracy
    predictor, with latency from the device's lookup table; then the subnet is extracted, BN
    re-calibrated, tested, timed and exported as ONNX + TorchScript + `subnet.json`.

    Example: `supernet search --run-dir runs/fmnist-quick --device cpu-ort --lut
    luts/mbv3-tiny-cpu-ort-1t.json --max-latency-ms 0.3 --max-peak-memory 256KiB`
    """
    from supernet.cost import get_device

    sizes = {"max_peak_memory_bytes": ("--max-peak-memory", max_peak_memory),
             "max_model_size_bytes": ("--max-model-size", max_model_size)}  # fmt: skip
    limits: dict[str, float | None] = {"max_latency_ms": max_latency_ms, "max_macs": max_macs}
    for key, (option, text) in sizes.items():
        limits[key] = None if text is None else parse_size(text, name=option)
    spec = get_device(device)
    constraints = {**spec.constraints, **{k: v for k, v in limits.items() if v is not None}}
    spec = spec.replace(constraints=constraints, lut=str(lut) if lut else spec.lut)
    _run(run_dir, [spec], out_dir, generations, population, seed, recalibrate)


@friendly
def specialize(
    run_dir: RunDir,
    devices: Annotated[
        Path, typer.Option(help="YAML/JSON file: `devices: [{name, runtime, constraints, lut}]`.")
    ],
    out_dir: OutDir = None,
    lut: Annotated[
        Path | None,
        typer.Option(help="Latency table for every device (default: each device's `lut`)."),
    ] = None,
    generations: Generations = 500,
    population: Population = 100,
    seed: Seed = 0,
    recalibrate: Recalibrate = True,
    qat_steps: Annotated[
        int, typer.Option(min=0, help="int8 devices: QAT steps when PTQ loses > 0.5 points.")
    ] = 300,
    tflm_images: Annotated[
        int | None,
        typer.Option(min=1, help="int8 devices: test images run in TFLM (default: all)."),
    ] = None,
) -> None:
    """Specialize one subnet per device of a devices file; write a table, a Pareto plot and
    `report.md`.

    For each device: constrained evolution on predicted accuracy under its budgets
    (`max_latency_ms` from its latency table, `max_macs`, `max_peak_memory_bytes`,
    `max_model_size_bytes`), then extraction, BN re-calibration, test accuracy, measured latency,
    random subnets of no higher cost as a baseline, and export. Measured costs that miss a
    budget are reported, never hidden. A device whose budgets no subnet meets is reported with
    the cheapest costs found (an int8 device also with the space TinyNAS picks and the preset to
    train it) and the others go on; if no device's budgets can be met, the command fails.

    An `int8: true` device (a microcontroller, `max_sram_bytes` / `max_flash_bytes`) also gets
    its subnet quantized to int8 (PTQ, QAT fallback), `subnet.tflite` run in TensorFlow Lite
    Micro on the test images and `subnet.int8.onnx`; its budgets are checked on the measured
    arena and file size. Needs the MCU extra: `pip install -e ".[mcu]"`.

    Example: `supernet specialize --run-dir runs/fmnist-quick --devices
    configs/devices/demo.yaml`
    """
    from supernet.cost import load_devices

    specs = load_devices(devices)
    if not specs:
        raise ConfigError(f"{devices} lists no devices")
    if lut is not None:
        specs = [s.replace(lut=str(lut)) for s in specs]
    _run(run_dir, specs, out_dir, generations, population, seed, recalibrate, qat_steps,
         tflm_images)  # fmt: skip
