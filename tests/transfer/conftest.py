"""Fixtures of the transfer tests: the small BN / GN subnets of :mod:`tests.transfer.helpers`,
a batch of 28×28 images and labels, one intra-op thread."""

from __future__ import annotations

import pytest
import torch
from tests.transfer.helpers import RESOLUTION, make_subnet

from supernet.nn.blocks import MobileNetV3


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tensors are tiny, and 2 threads collapse on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["bn", "gn"])
def norm(request) -> str:
    return request.param


@pytest.fixture
def subnet(norm) -> MobileNetV3:
    return make_subnet(norm)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 1, RESOLUTION, RESOLUTION, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 3])
