"""The transfer comparison as a markdown table and a plot of accuracy vs training memory.

Memory is in MiB (2^20 bytes, see supernet.units) at each row's batch size; "× less" is the
``full`` row's memory over the row's (same batch size), by TinyTL's accounting (``B·A + P``, Cai
et al., NeurIPS'20, arXiv 2007.11622, Fig. 1 / Sec. 4.1) and by measured bytes (autograd's saved
activations + parameters + gradients + Adam state of one real step).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from supernet.space import describe
from supernet.transfer.run import TransferOutcome, TransferRow
from supernet.units import MIB, format_bytes

__all__ = ["plot_transfer", "transfer_markdown", "write_transfer_report"]

MARKDOWN = "transfer.md"
PLOT = "transfer.png"


def _full(rows: tuple[TransferRow, ...] | list[TransferRow], batch_size: int) -> TransferRow | None:
    return next((r for r in rows if r.key == "full" and r.batch_size == batch_size), None)


def _ratio(num: float, den: float) -> str:
    return f"{num / den:.2f}×" if den else "–"


def _mib(value: float) -> str:
    return f"{value / MIB:.2f}"


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def transfer_markdown(outcome: TransferOutcome) -> str:
    """The comparison table (and the adaptation's candidates, if any) as markdown."""
    s = outcome.settings
    recipe = s["recipe"]
    lines = [
        f"# Transfer to `{outcome.target.name}` from `{s['run_dir']}`",
        "",
        f"Subnet `{describe(outcome.config)}` ({s['subnet']}); {outcome.target.num_classes} "
        f"classes, {len(outcome.target.splits.train)} / {len(outcome.target.splits.val)} / "
        f"{len(outcome.target.splits.test)} train / val / test images at "
        f"{outcome.config.resolution} px. Recipe: Adam, cosine decay per step, label smoothing "
        f"{recipe['label_smoothing']}, dropout {recipe['dropout']}, {recipe['epochs']} epochs, "
        f"seed {recipe['seed']}; frozen weights "
        f"{'8-bit' if s['quantize_frozen'] else 'fp32'} unless the row says otherwise; "
        f"{'memory-efficient' if recipe['efficient'] else 'plain'} autograd.",
        "",
        "Memory in MiB (1 MiB = 2^20 = 1,048,576 bytes) at the row's batch size B. Paper: "
        "B·A + P (TinyTL accounting). "
        "Full: peak activations + parameters + gradients + Adam state. Measured: one real step's "
        "saved activations + parameters + gradients + Adam state; measured/modelled compares it "
        "with the same parts modelled. Peak step: the most bytes one real step's own allocations "
        "held at once (a tracking allocator). × less: the `full` row's memory over this row's.",
        "",
        "| method | B | trainable params | test acc (%) | Δ vs full (pts) | paper B·A+P | "
        "× less (paper) | full accounting | measured | × less (measured) | measured/modelled | "
        "peak step | train (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in outcome.rows:
        full = _full(outcome.rows, r.batch_size) or _full(outcome.rows, s["batch_size"])
        same_b = full is not None and full.batch_size == r.batch_size
        delta = "–" if full is None else f"{r.test_accuracy - full.test_accuracy:+.2f}"
        paper = _ratio(full.paper_total_bytes, r.paper_total_bytes) if same_b else "–"
        measured = _ratio(full.measured_total_bytes, r.measured_total_bytes) if same_b else "–"
        peak = "–" if r.measured_peak_step_bytes is None else _mib(r.measured_peak_step_bytes)
        lines.append(
            f"| {r.key} | {r.batch_size} | {r.trainable_params:,} | {_pct(r.test_accuracy)} | "
            f"{delta} | {_mib(r.paper_total_bytes)} | {paper} | {_mib(r.full_total_bytes)} | "
            f"{_mib(r.measured_total_bytes)} | {measured} | {r.measured_over_modelled:.3f} | "
            f"{peak} | {r.train_seconds:.0f} |"
        )
    if outcome.adaptation is not None:
        a = outcome.adaptation
        budget = "none" if a.budget_bytes is None else format_bytes(a.budget_bytes)
        lines += [
            "",
            f"## Feature-extractor adaptation ({a.method}, batch {a.batch_size}, budget {budget})",
            "",
            "Proxy: BN re-calibrated on the target's train images, ridge classifier on pooled "
            "features fit on train, accuracy on val (no backward pass).",
            "",
            "| candidate | config | paper memory (MiB) | fits | proxy val acc (%) | chosen |",
            "|---|---|---:|:-:|---:|:-:|",
        ]
        for c in a.candidates:
            score = "–" if c.score is None else f"{c.score:.2f}"
            lines.append(
                f"| {c.name} | `{describe(c.config)}` | {_mib(c.memory_bytes)} | "
                f"{'yes' if c.fits else 'no'} | {score} | {'✔' if c is a.chosen else ''} |"
            )
    return "\n".join(lines) + "\n"


def plot_transfer(
    rows: tuple[TransferRow, ...] | list[TransferRow], path: str | os.PathLike[str], *,
    title: str = "",
) -> Path:  # fmt: skip
    """Test accuracy (%) against training memory (MiB, log scale): per row one point for the
    paper's modelled ``B·A + P`` (circle) and one for the measured bytes (square), joined by a
    line. Returns the PNG path written (its directory is created)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8.5, 4.8), dpi=120)
    ax = fig.subplots()
    colors = [f"C{i}" for i in range(10)]
    for i, r in enumerate(rows):
        xs = [r.paper_total_bytes / MIB, r.measured_total_bytes / MIB]
        color = colors[i % len(colors)]
        ax.plot(xs, [r.test_accuracy] * 2, color=color, linewidth=0.8, alpha=0.6)
        ax.scatter(xs[0], r.test_accuracy, marker="o", color=color, s=36, label=r.key)
        ax.scatter(xs[1], r.test_accuracy, marker="s", color=color, s=36, facecolors="none")
    ax.set_xscale("log")
    ax.set_xlabel("training memory (MiB): ● paper B·A+P, □ measured")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    ax.margins(x=0.15, y=0.1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_transfer_report(outcome: TransferOutcome) -> tuple[Path, Path]:
    """Write ``transfer.md`` and ``transfer.png`` into ``outcome.out_dir``; return their paths."""
    from supernet.checkpoint import write_text_atomic

    md = outcome.out_dir / MARKDOWN
    write_text_atomic(md, transfer_markdown(outcome))
    title = f"{outcome.target.name}: {describe(outcome.config)}"
    return md, plot_transfer(outcome.rows, outcome.out_dir / PLOT, title=title)
