"""The predictor's markdown (and so report.md) and plot carry the labels' noise ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from supernet.errors import ConfigError
from supernet.predict import PredictorReport
from supernet.predict.noise import noise_ceiling
from supernet.report.predictor import plot_predictor_holdout, predictor_markdown
from supernet.report.run_report import write_run_report


def _report(n=12, seed=0):
    rng = np.random.default_rng(seed)
    measured = 85 + rng.normal(0, 1, n)
    predicted = measured + rng.normal(0, 0.3, n)
    return PredictorReport(0.3, 0.7, 0.85, 1.0, 40, n, measured, predicted, np.arange(n))


def _ceiling(seed=1):
    rng = np.random.default_rng(seed)
    truth = 85 + rng.normal(0, 1, 60)
    return noise_ceiling(truth + rng.normal(0, 0.3, 60), truth + rng.normal(0, 0.3, 60))


def test_report_md_holds_the_noise_ceiling_beside_rmse_and_tau(tmp_path):
    report, ceiling = _report(), _ceiling()
    (tmp_path / "predictor.md").write_text(predictor_markdown(report, subnets=52, ceiling=ceiling))
    text = write_run_report(tmp_path).read_text()
    assert "| held out | 0.300 | 1.000 | 0.700 | 0.850 |" in text
    row = (
        f"| noise ceiling (perfect predictor) | {ceiling.rmse:.3f} | — | {ceiling.kendall_tau:.3f}"
    )
    assert row in text
    ratio_rmse, ratio_tau = 0.3 / ceiling.rmse, 0.7 / ceiling.kendall_tau
    assert f"RMSE {ratio_rmse:.2f}× the labels' noise, τ {ratio_tau:.2f} of the ceiling" in text
    assert f"split-half over {ceiling.subnets} subnets" in text
    bare = predictor_markdown(report, subnets=52)
    assert "No noise ceiling" in bare and "noise ceiling (perfect" not in bare


def test_plot_draws_each_held_out_subnets_label_noise_as_an_error_bar(tmp_path, monkeypatch):
    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self),
                                                                  save(self, *a, **k)))  # fmt: skip
    report = _report()
    noise = np.linspace(0.05, 0.6, report.n_holdout)
    noise[2] = np.nan  # a subnet without halves: no bar
    path = plot_predictor_holdout(report, tmp_path / "p.png", label_noise=noise, ceiling=_ceiling())
    assert path.read_bytes()[:4] == b"\x89PNG"
    (ax,) = figures[0].axes
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars.has_xerr and not bars.has_yerr
    (segments,) = bars.lines[2]
    for k, seg in enumerate(segments.get_segments()):  # one horizontal segment per subnet
        (x0, y0), (x1, y1) = seg
        assert y0 == y1 == pytest.approx(report.predicted[k])
        expected = 0.0 if k == 2 else noise[k]
        assert (x1 - x0) / 2 == pytest.approx(expected)
        assert (x0 + x1) / 2 == pytest.approx(report.measured[k])
    assert "noise ceiling: RMSE" in ax.get_title()
    with pytest.raises(ConfigError, match="label_noise of shape \\(3,\\); the report holds 12"):
        plot_predictor_holdout(report, tmp_path / "q.png", label_noise=np.ones(3))
