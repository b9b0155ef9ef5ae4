"""Progress of long steps: a rich bar in a terminal, a line every few seconds elsewhere (CI logs,
``nohup``, a pipe), where a bar would print nothing. Training reports through TrainReporter hooks;
other steps through :class:`StepProgress`."""

from __future__ import annotations

import os
import time
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

__all__ = ["RichReporter", "StepProgress", "log_every_seconds"]


def log_every_seconds() -> float:
    """Seconds between progress lines when the output is not a terminal
    (``$SUPERNET_PROGRESS_SECONDS``, default 10)."""
    try:
        return max(0.0, float(os.environ.get("SUPERNET_PROGRESS_SECONDS", "10")))
    except ValueError:
        return 10.0


class StepProgress:
    """``with StepProgress(console, "subnets", total=N) as p: p.update(done, total, what)``.

    In a terminal: a transient bar (done/total, elapsed, remaining, ``what``). Elsewhere: a line
    ``label done/total (elapsed s) what`` at most every :func:`log_every_seconds`, and at the
    end. ``total=None`` shows a count without a bar until a total is known.
    """

    def __init__(self, console: Console, label: str, total: int | None = None) -> None:
        self.console, self.label, self.total = console, label, total
        self.every = log_every_seconds()
        self.start = self.last = time.perf_counter()
        self.done, self.what = 0, ""
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(
                TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[what]}"),
                console=console, transient=True,
            )  # fmt: skip
            self.task = self.bar.add_task(label, total=total, what="")

    def __enter__(self) -> StepProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif exc[0] is None and self.done and time.perf_counter() - self.last > 0:
            self._line()

    def update(self, done: int, total: int | None = None, what: str = "") -> None:
        """``done`` of ``total`` (None: unchanged) items finished; ``what`` just happened."""
        self.done, self.what = done, what
        self.total = total if total is not None else self.total
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=self.total, what=what)
        elif time.perf_counter() - self.last >= self.every:
            self._line()

    def note(self, what: str) -> None:
        """A step without a count (``searching``, ``exporting``): the bar's text, or a line."""
        if self.bar is not None:
            self.bar.update(self.task, what=what)
        else:
            self.console.print(f"{self.label}: {what}", markup=False, soft_wrap=True)
            self.last = time.perf_counter()

    def _line(self) -> None:
        self.last = time.perf_counter()
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        what = f" {self.what}" if self.what else ""
        self.console.print(f"{self.label} {count} ({self.last - self.start:.0f} s){what}",
                           markup=False, soft_wrap=True)  # fmt: skip


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
        self.terminal = console.is_terminal
        self.every, self.last, self.step, self.steps, self.what = log_every_seconds(), 0.0, 0, 0, ""

    def __enter__(self) -> RichReporter:
        if self.terminal:
            self.progress.start()
        self.last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.terminal:
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
        self.what, self.step, self.steps = f"{phase} epoch {epoch + 1}/{epochs}", 0, steps

    def on_step(self, loss: float, lr: float) -> None:
        self.progress.update(self.task, advance=1, loss=loss, lr=lr)
        self.step += 1
        if not self.terminal and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.console.print(f"{self.what}: step {self.step}/{self.steps}, loss {loss:.3f}, "
                               f"lr {lr:.4f}", markup=False)  # fmt: skip

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.console.print(
            f"{row['phase']:>9} epoch {row['epoch']}: loss {row['train_loss']:.3f}, "
            f"val acc largest {row['val_acc_largest']:.2f}% smallest {row['val_acc_smallest']:.2f}%"
            f" ({row['train_seconds']:.0f} s)"
        )
