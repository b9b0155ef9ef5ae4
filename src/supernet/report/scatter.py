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
    measured_err: np.ndarray | None = None,
    err_label: str = "measurement noise",
) -> Path:
    """Scatter ``predicted`` (y) against ``measured`` (x), both ``[N]`` in the unit named in
    ``quantity`` (e.g. ``"latency (ms)"``), with the y = x line; write a PNG to ``path``.
    ``measured_err`` ``[N]`` (same unit; NaN: none): each measurement's noise, drawn as a
    horizontal error bar (the noise is in the measured value, on x) labelled ``err_label``.

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
    if measured_err is not None:
        err = np.nan_to_num(np.asarray(measured_err, dtype=np.float64), nan=0.0)
        ax.errorbar(measured, predicted, xerr=err, fmt="none", ecolor="C0", alpha=0.45,
                    elinewidth=0.8, capsize=0, label=err_label)  # fmt: skip
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured {quantity}")
    ax.set_ylabel(f"predicted {quantity}")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return path
