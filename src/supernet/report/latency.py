"""Plot of a latency table's predictions against measured latency."""

from __future__ import annotations

import os
from pathlib import Path

from supernet.cost.lut_build import LatencyValidation
from supernet.report.scatter import plot_measured_vs_predicted

__all__ = ["plot_latency_validation"]


def plot_latency_validation(
    validation: LatencyValidation, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predicted vs measured latency (ms) with the y = x line; write a PNG to ``path``.

    Returns the path written (its directory is created).
    """
    return plot_measured_vs_predicted(
        validation.measured_ms,
        validation.predicted_ms,
        path,
        quantity="latency (ms)",
        label=f"{len(validation.measured_ms)} subnets",
        title=f"{title}\nMAPE {validation.mape_percent:.1f}%, "
        f"Kendall τ {validation.kendall_tau:.3f}",
    )
