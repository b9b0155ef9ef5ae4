"""Plot of a latency table's predictions against measured latency."""

from __future__ import annotations

import os
from pathlib import Path

from supernet.cost.lut_build import LatencyValidation

__all__ = ["plot_latency_validation"]


def plot_latency_validation(
    validation: LatencyValidation, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predicted vs measured latency (ms) with the y = x line; write a PNG to ``path``.

    Returns the path written (its directory is created).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    measured, predicted = validation.measured_ms, validation.predicted_ms
    lo = float(min(measured.min(), predicted.min())) * 0.95
    hi = float(max(measured.max(), predicted.max())) * 1.05
    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.subplots()
    ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=1, label="y = x")
    ax.scatter(measured, predicted, s=14, label=f"{len(measured)} subnets")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(
        f"{title}\nMAPE {validation.mape_percent:.1f}%, Kendall τ {validation.kendall_tau:.3f}"
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return path
