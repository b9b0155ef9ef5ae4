"""Stage-wise channel re-sort before the second expand phase (Once-for-All reference code,
``re_organize_middle_weights(expand_ratio_stage=1)``): subnets of the expand ratios trained
already keep their channels, so their outputs do not change; the full sort would move them."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from supernet.nn import NORMS, ElasticMBConv, banded_channel_order, create_supernet, sort_channels


def _inputs(space, config, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = config.resolution
    return torch.randn(2, space.input_channels, r, r, generator=g, dtype=torch.float64)


def _out(model, config, seed: int) -> torch.Tensor:
    model.set_active(config)
    with torch.no_grad():
        return model(_inputs(model.space, config, seed))


def test_banded_order_keeps_channels_in_their_band():
    importance = torch.tensor([1.0, 5.0, 2.0, 0.0, 9.0, 3.0, 3.0, 4.0])
    order = banded_channel_order(importance, (3,))
    assert order.tolist() == [1, 2, 0, 4, 7, 5, 6, 3]
    assert torch.equal(banded_channel_order(importance), torch.argsort(importance, descending=True,
                                                                       stable=True))  # fmt: skip
    assert banded_channel_order(importance, (2,), group_size=2).tolist() == [0, 1, 4, 5, 6, 7, 2, 3]
    with pytest.raises(ValueError, match="between 0 and 8"):
        banded_channel_order(importance, (8,))
    with pytest.raises(ValueError, match="groups of 2"):
        banded_channel_order(importance, (3,), group_size=2)


@pytest.fixture(scope="module")
def stage_models(randomize, calibrate):
    """norm → (before, stage-wise sorted, fully sorted) float64 eval copies of one supernet."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for norm in NORMS:
            model = randomize(create_supernet("mbv3-tiny", norm=norm), seed=11).double()
            config = model.space.largest()
            g = torch.Generator().manual_seed(12)
            r = config.resolution
            calibrate(model, config, torch.randn(4, model.space.input_channels, r, r, generator=g,
                                                 dtype=torch.float64))  # fmt: skip
            staged, full = copy.deepcopy(model), copy.deepcopy(model)
            ratios = sorted(model.space.expand_ratios)
            sort_channels(staged, tuple(ratios[-2:]))  # trained: the two largest (e=4 and e=6)
            sort_channels(full)
            out[norm] = (model.eval(), staged.eval(), full.eval())
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("norm", NORMS)
def test_stage_sort_keeps_trained_subnets_outputs(norm, stage_models):
    before, staged, full = stage_models[norm]
    space = before.space
    ratios = sorted(space.expand_ratios)
    assert len(ratios) >= 3
    rng = np.random.default_rng(3)
    full_moved = 0.0
    for i in range(4):
        c = space.sample(rng)
        pick = rng.choice(ratios[-2:], size=len(c.expand_ratio))
        config = replace(c, expand_ratio=tuple(int(e) for e in pick))
        expected = _out(before, config, i)
        assert expected.std() > 1e-2
        torch.testing.assert_close(_out(staged, config, i), expected, atol=1e-9, rtol=1e-9)
        full_moved = max(full_moved, (_out(full, config, i) - expected).abs().max().item())
    assert full_moved > 1e-3  # the one-shot sort changes the e=4 subnets: the bug this fixes


def test_stage_sort_still_reorders_inside_the_bands(stage_models):
    before, staged, _ = stage_models["bn"]
    moved = 0
    for b0, b1 in zip(
        [m for m in before.modules() if isinstance(m, ElasticMBConv)],
        [m for m in staged.modules() if isinstance(m, ElasticMBConv)],
        strict=True,
    ):
        moved += int((b0.expand_conv.weight != b1.expand_conv.weight).any())
        # importance descends inside the first band (the e=4 channels)
        w4 = b1.mid_channels(sorted(b1.expand_ratios)[-2])
        imp = b1.project_conv.weight[:, :w4].abs().sum((0, 2, 3))
        assert (imp[:-1] >= imp[1:]).all()
    assert moved > 0
    smallest = before.space.smallest()
    assert (_out(before, smallest, 0) - _out(staged, smallest, 0)).abs().max() > 1e-3
