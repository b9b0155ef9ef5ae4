"""Plot of an accuracy predictor's held-out predictions against measured accuracy."""

from __future__ import annotations

import os
from pathlib import Path

from supernet.predict import PredictorReport

__all__ = ["plot_predictor_holdout"]


def plot_predictor_holdout(
    report: PredictorReport, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predicted vs measured top-1 accuracy (%) of the held-out subnets, with y = x.

    Returns the path written (a PNG; its directory is created).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    measured, predicted = report.measured, report.predicted
    lo = float(min(measured.min(), predicted.min()))
    hi = float(max(measured.max(), predicted.max()))
    pad = 0.05 * max(hi - lo, 0.1)
    lo, hi = lo - pad, hi + pad
    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.subplots()
    ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=1, label="y = x")
    ax.scatter(measured, predicted, s=14, label=f"{report.n_holdout} held-out subnets")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured top-1 accuracy (%)")
    ax.set_ylabel("predicted top-1 accuracy (%)")
    ax.set_title(
        f"{title}\nRMSE {report.rmse:.3f} pts, Kendall τ {report.kendall_tau:.3f}, "
        f"Spearman ρ {report.spearman_rho:.3f}",
        fontsize=9,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    return path


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
