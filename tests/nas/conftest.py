"""Shared helpers of the ProxylessNAS tests: a synthetic latency table of ``mbv3-tiny``."""

from __future__ import annotations

import pytest

from supernet.cost.device import DeviceSpec
from supernet.cost.lut import LatencyTable
from supernet.cost.lut_build import block_modules
from supernet.nn import OFAMobileNetV3
from supernet.space import get_space


def synthetic_table(space_name: str = "mbv3-tiny", **fit) -> LatencyTable:
    """Made-up, distinct latencies (ms) for every entry of the space: a measured table would
    depend on this machine, and a fresh clone has none."""
    space = get_space(space_name)
    keys = sorted(block_modules(OFAMobileNetV3(space), 1))
    entries = {k: (0.01 * (i + 1), 0.0) for i, k in enumerate(keys)}
    return LatencyTable(space=space, device=DeviceSpec("synthetic", "torch", 1), entries=entries,
                        **fit)  # fmt: skip


@pytest.fixture(scope="session")
def table() -> LatencyTable:
    return synthetic_table(scale=1.1, overhead_ms=0.05, call_overhead_ms=0.002)


@pytest.fixture(scope="session")
def make_table():
    return synthetic_table
