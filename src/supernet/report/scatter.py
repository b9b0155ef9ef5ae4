"""Measured-vs-predicted scatter plots with the y = x line (latency tables, accuracy predictors)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["plot_measured_vs_predicted"]


def plot_measured_vs_predicted(
    measured: np.ndarray,
    predicted: np.ndarray,
    path: str | os.PathLike[str],
    *,
    quantity: str,
    label: str,
    title: str,
) -> Path:
    """Scatter ``predicted`` (y) against ``measured`` (x), both ``[N]`` in the unit named in
    ``quantity`` (e.g. ``"latency (ms)"``), with the y = x line; write a PNG to ``path``.

    Returns the path written (its directory is created).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lo = float(min(measured.min(), predicted.min()))
    hi = float(max(measured.max(), predicted.max()))
    pad = 0.05 * max(hi - lo, abs(hi) * 0.05, 1e-6)
    lo, hi = lo - pad, hi + pad
    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.subplots()
    ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=1, label="y = x")
    ax.scatter(measured, predicted, s=14, label=label)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured {quantity}")
    ax.set_ylabel(f"predicted {quantity}")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return path
