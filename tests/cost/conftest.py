"""Fixtures for supernet.cost tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread for these single-image forwards (as in tests/nn/conftest.py: on 2
    shared cores, 2 spinning OpenMP threads wait on each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
