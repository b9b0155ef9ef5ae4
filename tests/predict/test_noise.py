"""The noise ceiling on synthetic accuracy datasets whose measurement noise is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from supernet.errors import ConfigError
from supernet.predict.noise import ceiling_from_noise, noise_ceiling, paired_noise_variance


def _halves(n=2000, true_std=1.0, half_noise_std=0.4, seed=0):
    rng = np.random.default_rng(seed)
    truth = 85.0 + rng.normal(0.0, true_std, n)
    offset = 0.3  # the odd half is a little harder for every subnet
    a = truth + rng.normal(0.0, half_noise_std, n)
    b = truth - offset + rng.normal(0.0, half_noise_std, n)
    return truth, a, b


def test_split_half_recovers_the_known_noise_and_the_perfect_predictors_scores():
    truth, a, b = _halves()
    ceiling = noise_ceiling(a, b)
    label_noise = 0.4 / math.sqrt(2)  # the mean of two halves halves the variance
    assert ceiling.noise_std == pytest.approx(label_noise, rel=0.05)
    assert ceiling.rmse == ceiling.noise_std
    labels = 0.5 * (a + b)
    # what a perfect predictor (the truth itself) scores against these labels, measured
    measured_tau = stats.kendalltau(truth, labels).statistic
    measured_rmse = np.sqrt(np.mean((truth - (labels - np.mean(labels - truth))) ** 2))
    assert ceiling.kendall_tau == pytest.approx(measured_tau, abs=0.02)
    assert ceiling.rmse == pytest.approx(measured_rmse, rel=0.05)
    assert ceiling.split_half_tau < ceiling.kendall_tau < 1.0  # a half is noisier than the mean
    assert ceiling.subnets == 2000


def test_more_noise_lowers_the_ceiling_and_no_noise_reaches_one():
    _, a, b = _halves(half_noise_std=0.2)
    _, c, d = _halves(half_noise_std=0.8)
    assert noise_ceiling(a, b).kendall_tau > noise_ceiling(c, d).kendall_tau
    exact = np.linspace(80, 90, 50)
    perfect = noise_ceiling(exact, exact - 0.5)
    assert perfect.noise_std == pytest.approx(0.0, abs=1e-9) and perfect.kendall_tau == 1.0
    rmse, tau = ceiling_from_noise(np.array([1.0, 1.0, 1.0]), 0.25)  # all noise, no signal
    assert rmse == 0.5 and tau == 0.0


def test_paired_noise_variance_matches_independent_binomial_noise():
    # subnets that err independently on each image: the noise of p = 0.8 on 4,000 images is
    # p (1 - p) / n, in points² (x 1e4)
    rng = np.random.default_rng(0)
    correct = rng.random((40, 4000)) < 0.8
    assert paired_noise_variance(correct) == pytest.approx(0.8 * 0.2 / 4000 * 1e4, rel=0.05)
    # subnets that agree on every image carry no idiosyncratic noise
    same = np.tile(rng.random(4000) < 0.8, (5, 1))
    assert paired_noise_variance(same) == 0.0


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="half accuracies of 3 and 4 subnets"):
        noise_ceiling(np.zeros(3), np.zeros(4))
    with pytest.raises(ConfigError, match="needs >= 3 subnets, got 2"):
        noise_ceiling(np.zeros(2), np.zeros(2))
    with pytest.raises(ConfigError, match="must be finite"):
        noise_ceiling(np.array([1.0, np.nan, 2.0]), np.zeros(3))
    with pytest.raises(ConfigError, match="noise_var = -1"):
        ceiling_from_noise(np.zeros(5), -1.0)
    with pytest.raises(ConfigError, match=r"correct must be \[subnets >= 2"):
        paired_noise_variance(np.zeros((1, 5)))


def test_label_noise_per_subnet_has_the_ceilings_noise_as_its_rms():
    from supernet.predict.noise import label_noise

    _, a, b = _halves(half_noise_std=0.5)
    per_subnet = label_noise(a, b)
    assert per_subnet.shape == (2000,) and (per_subnet >= 0).all()
    ceiling = noise_ceiling(a, b)
    assert np.sqrt(np.mean(per_subnet**2)) == pytest.approx(ceiling.noise_std, rel=1e-3)
    # one draw per subnet: the mean of |N(0, s)| is sqrt(2 / pi) s
    assert per_subnet.mean() == pytest.approx(math.sqrt(2 / math.pi) * 0.5 / math.sqrt(2), rel=0.05)
    a[3] = np.nan
    assert np.isnan(label_noise(a, b)[3]) and np.isfinite(label_noise(a, b)[4])


def test_halves_noise_ceiling_uses_the_complete_rows_and_needs_enough_of_them():
    from supernet.predict.noise import halves_noise_ceiling

    _, a, b = _halves(n=40)
    halves = np.stack([a, b], axis=1)
    halves[:5] = np.nan
    ceiling = halves_noise_ceiling(halves)
    assert ceiling is not None and ceiling.subnets == 35
    assert ceiling == noise_ceiling(a[5:], b[5:])
    assert halves_noise_ceiling(halves, min_subnets=36) is None
    with pytest.raises(ConfigError, match=r"halves must be \[subnets, 2\]"):
        halves_noise_ceiling(halves[:, 0])
