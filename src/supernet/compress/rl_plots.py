"""Plots of the policies AMC and HAQ found (matplotlib, no pyplot: no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_bits", "plot_channels"]


def plot_channels(
    path: Path,
    names: Sequence[str],
    original: Sequence[int],
    policies: dict[str, Sequence[int]],
    rewards: Sequence[float],
) -> Path:
    """Middle channels per prunable block (original and each policy, bars) and the search's
    validation accuracy per episode. Like AMC's Fig. 4 (arXiv 1802.03494)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=(2.2, 1))
    x = np.arange(len(names))
    series = {"original": original, **policies}
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("middle (expanded) channels kept")
    ax.set_title("channels per MBConv block")
    ax.legend(fontsize=8)
    ax2.plot(np.arange(1, len(rewards) + 1), rewards, "o-", ms=3)
    if rewards:
        ax2.plot(np.arange(1, len(rewards) + 1), np.maximum.accumulate(rewards), "--",
                 label="best so far")  # fmt: skip
        ax2.legend(fontsize=8)
    ax2.set_xlabel("episode")
    ax2.set_ylabel("validation top-1 % (no fine-tuning)")
    ax2.set_title("AMC search (reward)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_bits(
    path: Path,
    names: Sequence[str],
    weight_bits: Sequence[int],
    act_bits: Sequence[int],
    weights: Sequence[int],
    *,
    uniform_bits: int | None = None,
) -> Path:
    """Weight bits (up) and activation bits (down), one bar per layer, with each layer's
    weight count on a log axis beside them. Like HAQ's Fig. 5/6 (arXiv 1811.08886)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(8, 0.28 * len(names)), 4.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, weight_bits, color="tab:blue", label="weight bits")
    ax.bar(x, [-b for b in act_bits], color="tab:orange", label="activation bits")
    if uniform_bits is not None:
        for y in (uniform_bits, -uniform_bits):
            ax.axhline(y, color="gray", ls="--", lw=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_yticks(range(-8, 9, 2), [str(abs(t)) for t in range(-8, 9, 2)])
    ax.set_ylabel("bits (weights up, activations down)")
    ax.set_xticks(x, names, rotation=75, ha="right", fontsize=6)
    ax.set_title("HAQ policy per layer (dashed: uniform baseline)")
    ax2 = ax.twinx()
    ax2.plot(x, weights, "k.", ms=4, label="weights (right axis)")
    ax2.set_yscale("log")
    ax2.set_ylabel("weights per layer")
    handles = ax.get_legend_handles_labels()
    extra = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
