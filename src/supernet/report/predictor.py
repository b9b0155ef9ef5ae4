"""Plot and markdown table of an accuracy predictor's held-out scores, beside the noise ceiling
of its labels (:mod:`supernet.predict.noise`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from supernet.errors import ConfigError
from supernet.predict import PredictorReport
from supernet.predict.noise import NoiseCeiling
from supernet.report.scatter import plot_measured_vs_predicted

__all__ = ["plot_predictor_holdout", "predictor_markdown"]


def plot_predictor_holdout(
    report: PredictorReport,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    label_noise: np.ndarray | None = None,
    ceiling: NoiseCeiling | None = None,
) -> Path:
    """Scatter predicted vs measured top-1 accuracy (%) of the held-out subnets, with y = x.

    ``label_noise`` float [n_holdout] (points; NaN: unknown): each held-out subnet's own noise
    estimate (:func:`supernet.predict.noise.label_noise` of its two halves), drawn as an error
    bar on its measured accuracy. ``ceiling``: the labels' noise ceiling, named in the title.

    Returns the path written (a PNG; its directory is created).

    Raises:
        ConfigError: ``label_noise`` has another length than the held-out subnets.
    """
    if label_noise is not None and np.shape(label_noise) != (report.n_holdout,):
        raise ConfigError(
            f"label_noise of shape {np.shape(label_noise)}; the report holds "
            f"{report.n_holdout} held-out subnets"
        )
    title = (
        f"{title}\nRMSE {report.rmse:.3f} pts, Kendall τ {report.kendall_tau:.3f}, "
        f"Spearman ρ {report.spearman_rho:.3f}"
    )
    if ceiling is not None:
        title += f"\nnoise ceiling: RMSE {ceiling.rmse:.3f}, τ {ceiling.kendall_tau:.3f}"
    return plot_measured_vs_predicted(
        report.measured,
        report.predicted,
        path,
        quantity="top-1 accuracy (%)",
        label=f"{report.n_holdout} held-out subnets",
        title=title,
        measured_err=label_noise,
        err_label="label noise (split halves)",
    )


def predictor_markdown(
    report: PredictorReport, *, subnets: int, ceiling: NoiseCeiling | None = None
) -> str:
    """The held-out metrics as a markdown table (accuracy in percent points), with the
    split-half noise ceiling of the labels (what a perfect predictor would score) when given."""
    text = (
        f"Accuracy predictor (MLP on the Once-for-All encoding) fit on {report.n_train} of "
        f"{subnets} measured subnets, scored on the {report.n_holdout} held out.\n\n"
        "| | RMSE (pts) | mean-only RMSE (pts) | Kendall τ | Spearman ρ |\n"
        "|---|---:|---:|---:|---:|\n"
        f"| held out | {report.rmse:.3f} | {report.baseline_rmse:.3f} | "
        f"{report.kendall_tau:.3f} | {report.spearman_rho:.3f} |\n"
    )
    if ceiling is None:
        return text + (
            "\nNo noise ceiling: the dataset has no half accuracies (acc_halves.csv); "
            "recollect with `supernet predict collect --force`.\n"
        )
    return text + (
        f"| noise ceiling (perfect predictor) | {ceiling.rmse:.3f} | — | "
        f"{ceiling.kendall_tau:.3f} | — |\n\n"
        f"Noise ceiling: split-half over {ceiling.subnets} subnets (each label's noise "
        f"{ceiling.noise_std:.3f} pts, labels spread {ceiling.label_std:.3f} pts, halves agree at "
        f"τ {ceiling.split_half_tau:.3f}). Held out: RMSE "
        f"{report.rmse / max(ceiling.rmse, 1e-12):.2f}× the labels' noise, τ "
        f"{report.kendall_tau / max(ceiling.kendall_tau, 1e-12):.2f} of the ceiling.\n"
    )
