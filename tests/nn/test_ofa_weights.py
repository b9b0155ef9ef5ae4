"""Published Once-for-All weights: parity with the reference package's OFAMobileNetV3, round trip,
and the messages for a state dict of another layout."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from benches.reference import load_reference, reference_arch

from supernet.errors import CheckpointError
from supernet.nn import create_supernet
from supernet.nn.ofa_weights import (
    REFERENCE_WIDTHS,
    from_reference_state_dict,
    reference_key,
    to_reference_state_dict,
    unwrap_reference_checkpoint,
)
from supernet.space import get_space

REF = load_reference()  # stubs torchvision's import when it is missing; never runs it
needs_reference = pytest.mark.skipif(
    REF is None, reason="the reference package is not installed (pip install ofa tqdm)"
)


def reference_net(width: float):
    torch.manual_seed(0)
    return REF.networks.OFAMobileNetV3(
        n_classes=1000, dropout_rate=0.1, width_mult=width, ks_list=[3, 5, 7],
        expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4],
    )  # fmt: skip


@torch.no_grad()
def randomize_reference_(net, seed: int) -> None:
    """Random weights of a sane scale in the reference network's own tensors (its init leaves
    logits ~1e-3 and identity kernel transforms, which would hide a wrong mapping)."""
    g = torch.Generator().manual_seed(seed)
    for name, t in net.state_dict().items():
        if t.dtype != torch.float32:
            continue
        noise = torch.randn(t.shape, generator=g)
        if name.endswith("_matrix"):
            t.copy_(torch.eye(t.shape[0]) + 0.1 * noise)
        elif t.ndim == 4 or t.ndim == 2:  # conv / linear weights
            t.copy_(noise / math.sqrt(t[0].numel()))
        elif name.endswith("running_var"):
            t.copy_(0.5 + 1.5 * torch.rand(t.shape, generator=g))
        elif name.endswith("bn.weight"):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
        else:  # biases, BN shifts and running means
            t.copy_(0.1 * noise)


@torch.no_grad()
def calibrate_reference_(net, x: torch.Tensor) -> None:
    """BN running statistics of the active subnet from batch ``x`` (so 20 blocks neither vanish
    nor explode in eval mode), then eval mode."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    net.train()
    net(x)
    for bn in bns:
        bn.momentum = 0.1
    net.eval()


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("space_name", sorted(REFERENCE_WIDTHS))
def test_subnets_match_the_reference_on_random_reference_weights(space_name):
    net = reference_net(REFERENCE_WIDTHS[space_name])
    randomize_reference_(net, seed=1)
    space = get_space(space_name)
    largest = space.largest()
    gen = torch.Generator().manual_seed(0)
    ours = create_supernet(space).eval()
    rng = np.random.default_rng(0)
    # 10 configs; most at the smallest resolution to keep the test fast (weights do not depend
    # on it), the largest config at its own 224 px
    configs = [replace(space.sample(rng), resolution=128) for _ in range(8)]
    configs += [space.smallest(), largest]
    for config in configs:
        arch = reference_arch(config)
        net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
        r = config.resolution
        calibrate_reference_(net, torch.randn(4, 3, r, r, generator=gen))
        ours.load_state_dict(from_reference_state_dict(net.state_dict(), ours.state_dict()))
        x = torch.randn(2, 3, r, r, generator=gen)
        with torch.no_grad():
            expected = net(x)
            ours.set_active(config)
            got_supernet = ours(x)
            got_subnet = ours.get_subnet(config).eval()(x)
        # logits of a real scale (not ~0) that depend on the input
        assert expected.abs().max() > 0.1 and (expected[0] - expected[1]).abs().max() > 1e-4
        torch.testing.assert_close(got_supernet, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(got_subnet, expected, rtol=0, atol=1e-5)


@needs_reference
@pytest.mark.parametrize("space_name", sorted(REFERENCE_WIDTHS))
def test_round_trip_through_the_reference_layout_is_bit_exact(space_name):
    ours = create_supernet(get_space(space_name))
    state = ours.state_dict()
    for i, t in enumerate(state.values()):  # distinct values everywhere, BN counters included
        t.copy_(torch.randn(t.shape, generator=torch.Generator().manual_seed(i)).to(t.dtype))
    reference_layout = to_reference_state_dict(state)
    net = reference_net(REFERENCE_WIDTHS[space_name])
    assert set(reference_layout) == set(net.state_dict())
    net.load_state_dict(reference_layout)  # the reference takes it as its own
    back = from_reference_state_dict(net.state_dict(), state)
    assert list(back) == list(state)
    for key, value in state.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_older_spellings_and_the_published_wrapper_are_accepted():
    template = create_supernet(get_space("ofa-mbv3")).state_dict()
    reference_layout = to_reference_state_dict(template)
    old = {}
    for key, value in reference_layout.items():
        key = (
            key.replace(".conv.", ".mobile_inverted_conv.", 1) if key.startswith("blocks.") else key
        )
        old["module." + key.replace(".bn.bn.", ".bn.")] = value
    state = unwrap_reference_checkpoint({"state_dict": old, "epoch": 3}, "file.pth")
    back = from_reference_state_dict(state, template)
    assert all(torch.equal(back[k], v) for k, v in template.items())


def test_a_state_dict_of_another_layout_names_the_first_bad_key():
    template = create_supernet(get_space("ofa-mbv3")).state_dict()
    good = to_reference_state_dict(template)
    with pytest.raises(CheckpointError, match=r"f.pth: unexpected key 'features.0.weight'"):
        from_reference_state_dict({"features.0.weight": torch.zeros(1), **good}, template,
                                  where="f.pth")  # fmt: skip
    missing = dict(good)
    del missing["blocks.3.conv.depth_conv.conv.conv.weight"]
    message = r"missing key 'blocks.3.conv.depth_conv.conv.conv.weight' \(expected shape \(144, "
    with pytest.raises(CheckpointError, match=message):
        from_reference_state_dict(missing, template)
    wide = to_reference_state_dict(create_supernet(get_space("ofa-mbv3-w1.2")).state_dict())
    message = r"key 'first_conv.conv.weight' has shape \(24, 3, 3, 3\), expected \(16, 3, 3, 3\)"
    with pytest.raises(CheckpointError, match=message):
        from_reference_state_dict(wide, template)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        unwrap_reference_checkpoint([1, 2], "list.pth")
    with pytest.raises(CheckpointError, match="no counterpart"):
        reference_key("nonsense.weight")
