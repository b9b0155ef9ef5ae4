"""A rich progress bar for training (the library reports through TrainReporter hooks)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from supernet.train import TrainReporter


class RichReporter(TrainReporter):
    """One bar per epoch with loss and LR; a line per finished epoch."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} lr {task.fields[lr]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_removed(self, run_dir: Any, names: list[str]) -> None:
        self.console.print(
            f"--force: removed the old run's {', '.join(names)} from {run_dir}",
            markup=False,
            soft_wrap=True,
        )

    def on_resume(self, phases: list[Any], phase: int, epoch: int, step: int) -> None:
        if phase >= len(phases):
            self.console.print("the run had finished: all phases are trained, nothing to resume")
            return
        p = phases[phase]
        where = f", step {step + 1}" if step else ""
        self.console.print(
            f"resuming at phase {p.name!r} ({phase + 1}/{len(phases)}), epoch {epoch + 1}/"
            f"{p.epochs}{where}",
            markup=False,
        )

    def on_epoch_start(self, phase: str, epoch: int, epochs: int, steps: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            f"{phase} {epoch + 1}/{epochs}", total=steps, loss=float("nan"), lr=0.0
        )

    def on_step(self, loss: float, lr: float) -> None:
        self.progress.update(self.task, advance=1, loss=loss, lr=lr)

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.console.print(
            f"{row['phase']:>9} epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
            f"val acc largest {row['val_acc_largest']:.2f}% smallest {row['val_acc_smallest']:.2f}%"
            f" ({row['train_seconds']:.0f} s)"
        )
