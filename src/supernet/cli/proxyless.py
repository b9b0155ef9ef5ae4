"""``supernet proxyless``: ProxylessNAS search on the target task and device, then retraining."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from supernet.cli.console import TORCH_DEVICE, console, friendly
from supernet.cli.progress import log_every_seconds
from supernet.errors import ConfigError

__all__ = ["proxyless"]


class _Reporter:
    """One bar per epoch (loss, E[LAT]); a line per finished epoch; lines instead of a bar when
    the output is not a terminal."""

    def __init__(self, out: Console) -> None:
        self.console, self.terminal = out, out.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} E[lat] {task.fields[lat]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=out, transient=True,
        )  # fmt: skip
        self.task: Any = None
        self.every, self.last, self.what, self.lat = log_every_seconds(), 0.0, "", "-"

    def __enter__(self) -> _Reporter:
        if self.terminal:
            self.progress.start()
        self.last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.terminal:
            self.progress.stop()

    def on_epoch_start(self, phase: str, epoch: int, epochs: int, steps: int, start: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.what = f"{phase} {epoch + 1}/{epochs}"
        if phase == "retrain":  # E[LAT] belongs to the search
            self.lat = "-"
        self.task = self.progress.add_task(self.what, total=steps, completed=start,
                                           loss=float("nan"), lat=self.lat)  # fmt: skip
        if start:
            self.console.print(f"resuming {phase} epoch {epoch + 1} at step {start + 1}")

    def on_step(self, loss: float, expected_ms: float | None) -> None:
        if expected_ms is not None:
            self.lat = f"{expected_ms:.3f} ms"
        self.progress.update(self.task, advance=1, loss=loss, lat=self.lat)
        if not self.terminal and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.console.print(f"{self.what}: loss {loss:.3f}, E[lat] {self.lat}", markup=False)

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        if "val_acc_argmax" in row:
            self.console.print(
                f"{row['phase']:>8} epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
                f"E[lat] {row['expected_latency_ms']:.3f} ms, argmax path "
                f"{row['argmax_latency_ms']:.3f} ms, val acc {row['val_acc_argmax']:.2f}%",
                markup=False,
            )
        else:
            self.console.print(f" retrain epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
                               f"val acc {row['val_acc']:.2f}%", markup=False)  # fmt: skip


@friendly(on_interrupt="interrupted; continue with --resume")
def proxyless(
    run_dir: Annotated[Path, typer.Option(help="Directory of this run (created).")],
    target_latency_ms: Annotated[
        float, typer.Option(help="Target latency (ms) of the latency loss, on the table's device.")
    ],
    device: Annotated[
        str | None,
        typer.Option(
            help="Target device (cpu-ort, cpu-torch or a device file) whose `lut` prices the ops."
        ),
    ] = None,
    lut: Annotated[
        Path | None, typer.Option(help="Latency table (`supernet latency build`); over --device's.")
    ] = None,
    space: Annotated[str, typer.Option(help="Search space (the table's).")] = "mbv3-tiny",
    dataset: Annotated[str, typer.Option(help="Dataset name.")] = "fashion-mnist",
    resolution: Annotated[
        int | None, typer.Option(help="Input resolution (default: the space's largest).")
    ] = None,
    warmup_epochs: Annotated[int, typer.Option(min=0, help="Weights-only epochs.")] = 1,
    search_epochs: Annotated[int, typer.Option(min=1, help="Weight + α epochs.")] = 2,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="From-scratch epochs.")] = 3,
    image_limit: Annotated[
        int | None, typer.Option(min=1, help="Training images per epoch; cap on val/test.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    arch_lr: Annotated[float, typer.Option(help="Adam LR of α (reference: 1e-3).")] = 1e-3,
    arch_update_every: Annotated[int, typer.Option(min=1, help="Weight steps per α step.")] = 5,
    latency_loss: Annotated[str, typer.Option(help="add#linear or mul#log.")] = "add#linear",
    latency_lambda: Annotated[float, typer.Option(help="λ of add#linear.")] = 0.1,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    torch_device: Annotated[str, typer.Option(help=f"{TORCH_DEVICE}.")] = "auto",
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="Steps.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir.")] = False,
    export: Annotated[bool, typer.Option(help="Export ONNX/TorchScript.")] = True,
    measure_repeats: Annotated[
        int, typer.Option(min=0, help="Time the derived subnet here (0: do not).")
    ] = 20,
) -> None:
    """ProxylessNAS: search by gradient on the target task with a latency loss, then retrain.

    Per block slot a mixed op over every MBConv (kernel size x expand ratio) plus skip beyond the
    smallest depth; one path active per step (path binarization), α updated on validation
    batches from two sampled paths, latency E[LAT] from the device's table (ProxylessNAS, Cai,
    Zhu, Han, ICLR'19, arXiv 1812.00332, Sec. 3). The argmax architecture is trained from
    scratch and exported. Writes search.csv, arch.json, alpha_history.png, retrain.csv,
    export/ and result.json.

    Example: `supernet proxyless --run-dir runs/pnas-0.7 --lut luts/mbv3-tiny-cpu-ort-1t.json
    --target-latency-ms 0.7 --resolution 28 --image-limit 6400 --batch-size 64 --warmup-epochs 1
    --search-epochs 1 --retrain-epochs 2 --arch-update-every 1 --arch-lr 0.05`
    """
    from supernet.cost import get_device
    from supernet.cost.lut import load_latency_table
    from supernet.nas.config import ProxylessConfig
    from supernet.nas.run import run_proxyless
    from supernet.space import get_space

    if lut is None:
        if device is None:
            raise ConfigError("give --device (whose `lut` is used) or --lut")
        spec = get_device(device)
        if spec.lut is None:
            raise ConfigError(f"device {device!r} names no latency table (`lut`); build one with "
                              f"`supernet latency build --space {space} --runtime {spec.runtime} "
                              "--out PATH` and pass --lut PATH")  # fmt: skip
        lut = Path(spec.lut)
    config = ProxylessConfig(
        target_latency_ms=target_latency_ms, space=space, dataset=dataset, resolution=resolution,
        seed=seed, batch_size=batch_size, warmup_epochs=warmup_epochs,
        search_epochs=search_epochs, retrain_epochs=retrain_epochs, image_limit=image_limit,
        arch_lr=arch_lr, arch_update_every=arch_update_every, latency_loss=latency_loss,
        latency_lambda=latency_lambda, checkpoint_every=checkpoint_every, device=torch_device,
    )  # fmt: skip
    table = load_latency_table(lut, space=get_space(space))
    console.print(f"ProxylessNAS on [bold]{escape(dataset)}[/bold], space {escape(space)}, "
                  f"target {target_latency_ms:g} ms on {escape(table.device.name)} "
                  f"({escape(str(lut))})")  # fmt: skip
    with _Reporter(console) as reporter:
        result = run_proxyless(config, run_dir, table, resume=resume, reporter=reporter,
                               export=export, measure_repeats=measure_repeats)  # fmt: skip
    s = result.summary
    measured = s["measured_latency_ms"]
    console.print(
        f"derived: {s['describe']}; predicted {s['predicted_latency_ms']:.3f} ms"
        + (f", measured {measured:.3f} ms" if measured is not None else "")
        + f" (target {target_latency_ms:g} ms); test accuracy {s['test_accuracy']:.2f}% "
        f"on {s['test_images']} images; search {s['search_seconds']:.0f} s, retrain "
        f"{s['retrain_seconds']:.0f} s",
        markup=False,
    )
    console.print(f"wrote {run_dir}/arch.json, alpha_history.png, result.json"
                  + (", export/" if export else ""), markup=False)  # fmt: skip
