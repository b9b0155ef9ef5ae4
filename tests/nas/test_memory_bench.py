"""The ProxylessNAS memory bench on a tiny setting (so it cannot rot): one search step through
the same paths allocates about what training them alone does."""

from __future__ import annotations

import pytest
from benches.proxyless_memory import measure


@pytest.mark.slow
def test_a_search_step_allocates_about_what_one_path_alone_does():
    [row] = measure(batch_size=2, samples=1, resolution=20)
    assert row["alone_MiB"] > 0
    assert 0.8 < row["weight/alone"] < 1.5  # the same paths' gradients and momentum
    assert 0.8 < row["alpha/alone"] < 1.5  # + the inactive paths' outputs, α's gradient
