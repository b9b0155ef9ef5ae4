"""Plot of a latency table's predictions against measured latency."""

from __future__ import annotations

import os
from pathlib import Path

from supernet.cost.lut_validate import LatencyValidation
from supernet.report.scatter import plot_measured_vs_predicted

__all__ = ["plot_latency_validation"]


def plot_latency_validation(
    validation: LatencyValidation, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predicted vs measured latency (ms) with the y = x line; write a PNG to ``path``.

    The title gives MAPE and Kendall's τ, and with a drift check the machine's speed ratio since
    the table was built and the MAPE without it.

    Returns the path written (its directory is created).
    """
    drift = ""
    if validation.speed_ratio is not None:
        drift = (
            f"\nmachine drift {validation.speed_ratio:.2f}x since build; "
            f"MAPE {validation.drift_corrected_mape_percent:.1f}% without it"
        )
    return plot_measured_vs_predicted(
        validation.measured_ms,
        validation.predicted_ms,
        path,
        quantity="latency (ms)",
        label=f"{len(validation.measured_ms)} subnets",
        title=f"{title}\nMAPE {validation.mape_percent:.1f}%, "
        f"Kendall τ {validation.kendall_tau:.3f}{drift}",
    )
