"""Fixtures for supernet.export tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (as in tests/cost/conftest.py: on 2 shared cores, 2 spinning OpenMP
    threads wait on each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained_subnet():
    """``(space, config, subnet)``: an eval-mode mbv3-tiny subnet whose BatchNorm matters.

    Fresh BN layers are identity-like (weight 1, bias 0, running stats 0 / 1) and the classifier
    is tiny, so logits would be ~1e-3 and a 1e-4 check would prove little: here BN affine weights
    and the classifier are randomized and the running statistics are the exact averages over
    train-mode forwards of shifted, scaled random images (as BN re-calibration sets them).
    Tests must not modify it.
    """
    import numpy as np
    from torch import nn

    from supernet.nn import create_supernet
    from supernet.space import get_space

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # session scope: set up before the autouse fixture above
    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    config = space.sample(np.random.default_rng(3))
    subnet = create_supernet(space).get_subnet(config)
    gen = torch.Generator().manual_seed(1)
    shape = (16, space.input_channels, config.resolution, config.resolution)
    with torch.no_grad():
        for m in subnet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)
                m.reset_running_stats()
                m.momentum = None  # cumulative average
        subnet.classifier.weight.normal_(0.0, 0.3, generator=gen)
        subnet.train()
        for _ in range(3):
            subnet(torch.randn(shape, generator=gen) * 2 + 1)
    torch.set_num_threads(before)
    return space, config, subnet.eval()
