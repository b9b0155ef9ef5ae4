"""Channel sorting (Once-for-All Sec. 3.2, Fig. 4): reorders hidden channels by importance without
changing what the full-width network computes.

The models run in float64: permuting channels changes the summation order of the 1x1 convs, and
in float32 that rounding (amplified over 20 blocks with random BN statistics) reaches ~1e-3 on
logits of ~50, while in float64 a correct permutation agrees to ~1e-12. Models are converted to
float64 before their first forward (a kernel cached earlier would not follow ``.double()``; see
test_nn_elastic.py::test_cache_follows_dtype_conversion).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from supernet.nn import ElasticMBConv, create_supernet, sort_channels
from supernet.space import ArchConfig


def full_width(config: ArchConfig, e_max: int) -> ArchConfig:
    n = len(config.expand_ratio)
    return ArchConfig(config.resolution, config.kernel_size, (e_max,) * n, config.depth)


@pytest.fixture(scope="module")
def models(randomize, calibrate):
    """(unsorted, sorted) copies of one randomized mbv3-tiny supernet in eval mode."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: set up before the autouse _one_thread fixture
    try:
        model = randomize(create_supernet("mbv3-tiny"), seed=31).double()
        config = model.space.largest()
        g = torch.Generator().manual_seed(32)
        x = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
        calibrate(model, config, x, seed=33)
        sorted_model = copy.deepcopy(model)
        sort_channels(sorted_model)
    finally:
        torch.set_num_threads(threads)
    return model.eval(), sorted_model.eval()


def outputs(model, config: ArchConfig, seed: int) -> torch.Tensor:
    r = config.resolution
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, model.space.input_channels, r, r, generator=g, dtype=torch.float64)
    model.set_active(config)
    with torch.no_grad():
        return model(x)


def test_full_width_function_is_unchanged(models):
    before, after = models
    space = before.space
    rng = np.random.default_rng(34)
    configs = [space.largest()] + [
        full_width(space.sample(rng), max(space.expand_ratios)) for _ in range(6)
    ]
    for i, config in enumerate(configs):
        out_before, out_after = outputs(before, config, i), outputs(after, config, i)
        assert out_before.std() > 1e-2
        torch.testing.assert_close(out_after, out_before, atol=1e-5, rtol=1e-5)


def test_narrower_subnets_keep_different_channels(models):
    """Sorting really reorders: a subnet of the first (most important) channels computes
    something else than the subnet of the first channels before sorting."""
    before, after = models
    space = before.space
    rng = np.random.default_rng(35)
    configs = [space.smallest()] + [space.sample(rng) for _ in range(2)]
    for i, config in enumerate(configs):
        assert min(config.expand_ratio) < max(space.expand_ratios)
        diff = (outputs(before, config, i) - outputs(after, config, i)).abs().max()
        assert diff > 1e-3, config


def test_hidden_channels_are_ordered_by_importance(models):
    before, after = models
    blocks_before = [m for m in before.modules() if isinstance(m, ElasticMBConv)]
    blocks_after = [m for m in after.modules() if isinstance(m, ElasticMBConv)]
    assert len(blocks_after) == before.space.num_blocks
    some_reordered = False
    for b0, b1 in zip(blocks_before, blocks_after, strict=True):
        importance = b1.project_conv.weight.abs().sum(dim=(0, 2, 3))
        assert (importance[:-1] >= importance[1:]).all()
        # The same multiset of importances: a permutation, not a change of weights.
        imp0 = b0.project_conv.weight.abs().sum(dim=(0, 2, 3))
        torch.testing.assert_close(importance.sort().values, imp0.sort().values)
        some_reordered |= not torch.equal(importance, imp0)
        if b1.se is not None:
            se_importance = b1.se.expand.weight.abs().sum(dim=(0, 2, 3))
            assert (se_importance[:-1] >= se_importance[1:]).all()
    assert some_reordered


def test_channels_move_together(models):
    """Expand rows, BN entries, depthwise filters and project columns follow one permutation."""
    before, after = models
    b0, b1 = before.blocks[0], after.blocks[0]
    imp0 = b0.project_conv.weight.abs().sum(dim=(0, 2, 3))
    order = torch.argsort(imp0, descending=True, stable=True)
    pairs = [
        (b0.expand_conv.weight[order], b1.expand_conv.weight),
        (b0.expand_bn.running_mean[order], b1.expand_bn.running_mean),
        (b0.expand_bn.weight[order], b1.expand_bn.weight),
        (b0.depthwise_conv.weight[order], b1.depthwise_conv.weight),
        (b0.depthwise_bn.running_var[order], b1.depthwise_bn.running_var),
        (b0.project_conv.weight[:, order], b1.project_conv.weight),
    ]
    for expected, actual in pairs:
        torch.testing.assert_close(actual, expected, atol=0, rtol=0)
    # Shared tensors are not permuted.
    for name, m in b0.depthwise_conv.transforms.items():
        torch.testing.assert_close(b1.depthwise_conv.transforms[name], m, atol=0, rtol=0)
    torch.testing.assert_close(b1.project_bn.running_mean, b0.project_bn.running_mean)


def test_sorting_is_idempotent(models):
    _, after = models
    again = copy.deepcopy(after)
    sort_channels(again)
    for (name, p), q in zip(after.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, atol=0, rtol=0, msg=name)


def test_ofa_mbv3_largest_unchanged(randomize, calibrate):
    model = randomize(create_supernet("ofa-mbv3"), seed=36).double()
    config = model.space.largest()
    config = ArchConfig(128, config.kernel_size, config.expand_ratio, config.depth)
    g = torch.Generator().manual_seed(37)
    x = torch.randn(1, 3, 128, 128, generator=g, dtype=torch.float64)
    calibrate(model, config, x)
    with torch.no_grad():
        before = model(x)
        sort_channels(model)
        after = model(x)
    assert before.std() > 1e-2
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
