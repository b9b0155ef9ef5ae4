"""Pareto front masks against a brute-force definition."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.errors import ConfigError
from supernet.search import pareto_front_mask


def brute_force(f: np.ndarray, maximize: list[bool]) -> np.ndarray:
    g = np.where(np.array(maximize)[None, :], -f, f)
    out = []
    for i in range(len(g)):
        if np.isnan(g[i]).any():
            out.append(False)
            continue
        dominated = any(
            (g[j] <= g[i]).all() and (g[j] < g[i]).any() for j in range(len(g)) if j != i
        )
        out.append(not dominated)
    return np.array(out)


def test_hand_example():
    # (accuracy, latency): maximize accuracy, minimize latency.
    f = np.array([[70, 1.0], [75, 2.0], [72, 2.5], [75, 2.0], [60, 0.5], [69, 1.0]])
    assert pareto_front_mask(f, [True, False]).tolist() == [True, True, False, True, True, False]
    assert pareto_front_mask(f[:, 1]).tolist() == [False, False, False, False, True, False]


@pytest.mark.parametrize("m", [1, 2, 3])
def test_matches_brute_force(m):
    rng = np.random.default_rng(m)
    f = rng.integers(0, 6, size=(150, m)).astype(float)  # many ties and duplicates
    f[3, 0] = np.nan
    maximize = [bool(i % 2 == 0) for i in range(m)]
    np.testing.assert_array_equal(pareto_front_mask(f, maximize), brute_force(f, maximize))


def test_large_inputs_are_chunked():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3000, 2))
    mask = pareto_front_mask(f)
    assert 0 < mask.sum() < 100
    front = f[mask]
    assert not any(((front <= p).all(1) & (front < p).any(1)).any() for p in front)


def test_flag_count_must_match():
    with pytest.raises(ConfigError, match="maximize has 3 flags for 2 objectives"):
        pareto_front_mask(np.zeros((4, 2)), [True, False, True])
