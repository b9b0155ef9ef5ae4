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
