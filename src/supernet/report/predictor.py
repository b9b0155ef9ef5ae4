"""Plot of an accuracy predictor's held-out predictions against measured accuracy."""

from __future__ import annotations

import os
from pathlib import Path

from supernet.predict import PredictorReport
from supernet.report.scatter import plot_measured_vs_predicted

__all__ = ["plot_predictor_holdout"]


def plot_predictor_holdout(
    report: PredictorReport, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predicted vs measured top-1 accuracy (%) of the held-out subnets, with y = x.

    Returns the path written (a PNG; its directory is created).
    """
    return plot_measured_vs_predicted(
        report.measured,
        report.predicted,
        path,
        quantity="top-1 accuracy (%)",
        label=f"{report.n_holdout} held-out subnets",
        title=f"{title}\nRMSE {report.rmse:.3f} pts, Kendall τ {report.kendall_tau:.3f}, "
        f"Spearman ρ {report.spearman_rho:.3f}",
    )


def predictor_markdown(report: PredictorReport, *, subnets: int) -> str:
    """The held-out metrics as a markdown table (accuracy in percent points)."""
    return (
        f"Accuracy predictor (MLP on the Once-for-All encoding) fit on {report.n_train} of "
        f"{subnets} measured subnets, scored on the {report.n_holdout} held out.\n\n"
        "| held-out RMSE (pts) | mean-only RMSE (pts) | Kendall τ | Spearman ρ |\n"
        "|---:|---:|---:|---:|\n"
        f"| {report.rmse:.3f} | {report.baseline_rmse:.3f} | {report.kendall_tau:.3f} | "
        f"{report.spearman_rho:.3f} |\n"
    )
