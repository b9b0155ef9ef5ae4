"""Lite residual modules (TinyTL Sec. 3.2): placement, shapes, kernel rule, unchanged function at
insertion (γ = 0) for BN and GN subnets, bad hyperparameters."""

from __future__ import annotations

import pytest
import torch
from tests.transfer.helpers import RESOLUTION, make_subnet
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import MBConv, WSConv2d
from supernet.transfer import (
    FrozenBatchNorm2d,
    LiteResidual,
    LiteResidualConfig,
    LiteResidualMBConv,
    block_input_resolutions,
    insert_lite_residuals,
    lite_residual_kernel_size,
)


@pytest.mark.parametrize(
    ("resolution", "kernel"),
    [(28, 5), (14, 5), (10, 5), (9, 3), (7, 3), (6, 3), (5, 1), (4, 1), (3, 1), (1, 1)],
)
def test_kernel_shrinks_by_two_below_the_pooled_resolution(resolution, kernel):
    assert lite_residual_kernel_size(resolution) == kernel


def test_kernel_rule_follows_its_arguments():
    assert lite_residual_kernel_size(14, kernel_size=7) == 7
    assert lite_residual_kernel_size(12, kernel_size=7) == 5  # pooled 6
    assert lite_residual_kernel_size(7, kernel_size=5, downsample=1) == 5


def test_block_input_resolutions_are_traced(subnet):
    assert block_input_resolutions(subnet, RESOLUTION) == [14, 14, 7, 7]
    assert block_input_resolutions(subnet, 20) == [10, 10, 5, 5]
    assert not subnet.training  # mode restored


def test_every_block_but_the_first_gets_a_branch(subnet, norm):
    assert insert_lite_residuals(subnet, resolution=RESOLUTION) == [1, 2, 3]
    assert type(subnet.blocks[0]) is MBConv
    expected = {  # block: (in, out, hidden, kernel, stride) — see tests/transfer/helpers.py
        1: (8, 12, 8, 5, 2),
        2: (12, 12, 16, 3, 1),
        3: (12, 16, 16, 3, 2),
    }
    for i, (cin, cout, mid, k, stride) in expected.items():
        block = subnet.blocks[i]
        assert isinstance(block, LiteResidualMBConv) and isinstance(block, MBConv)
        branch = block.lite_residual
        assert isinstance(branch.pool, nn.AvgPool2d) and branch.pool.kernel_size == 2
        conv = branch.conv
        assert (conv.in_channels, conv.out_channels, conv.groups) == (cin, mid, 2)
        assert (conv.kernel_size, conv.stride) == ((k, k), (stride, stride))
        assert (branch.project.in_channels, branch.project.out_channels) == (mid, cout)
        assert branch.project.kernel_size == (1, 1)
        assert isinstance(branch.act, nn.ReLU)
        assert torch.all(branch.final_norm.weight == 0)
        assert torch.all(branch.norm.weight == 1)
        norm_cls = nn.GroupNorm if norm == "gn" else FrozenBatchNorm2d
        conv_cls = WSConv2d if norm == "gn" else nn.Conv2d
        assert isinstance(branch.norm, norm_cls) and isinstance(branch.final_norm, norm_cls)
        assert type(conv) is conv_cls and type(branch.project) is conv_cls
    assert subnet.blocks[2].use_residual and not subnet.blocks[1].use_residual


def test_the_block_keeps_its_parameter_names(subnet):
    before = set(subnet.state_dict())
    insert_lite_residuals(subnet, resolution=RESOLUTION)
    after = set(subnet.state_dict())
    assert before < after
    assert all(".lite_residual." in k for k in after - before)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_insertion_leaves_the_function_unchanged(subnet, images, mode):
    subnet.dropout.p = 0.0
    subnet.train(mode == "train")
    reference = subnet(images)
    insert_lite_residuals(subnet, resolution=RESOLUTION, generator=torch.Generator().manual_seed(3))
    assert torch.equal(subnet(images), reference)
    with torch.no_grad():  # the branch is connected: a non-zero γ changes the output
        subnet.blocks[2].lite_residual.final_norm.weight.fill_(0.5)
    assert not torch.allclose(subnet(images), reference, atol=1e-4)


@pytest.mark.parametrize("norm_kind", ["bn", "gn"])
def test_tiny_maps_pool_globally(norm_kind):
    subnet = make_subnet(norm_kind)
    x = torch.randn(2, 1, 6, 6)  # block inputs 3, 3, 2, 2 pixels
    reference = subnet(x)
    insert_lite_residuals(subnet, resolution=6)
    for block in subnet.blocks[1:]:
        assert isinstance(block.lite_residual.pool, nn.AdaptiveAvgPool2d)
        assert block.lite_residual.conv.kernel_size == (1, 1)
    assert torch.equal(subnet(x), reference)


def test_branch_output_is_upsampled_to_the_main_branch():
    branch = LiteResidual(8, 12, input_resolution=7, stride=2, norm="bn")
    with torch.no_grad():
        branch.final_norm.weight.fill_(1.0)
    out = branch(torch.randn(2, 8, 7, 7), (4, 4))  # pooled 3 → stride 2 → 2 → upsampled 4
    assert out.shape == (2, 12, 4, 4)
    assert branch.conv(branch.pool(torch.randn(2, 8, 7, 7))).shape[-1] == 2


def test_hyperparameters_are_arguments(subnet):
    config = LiteResidualConfig(kernel_size=3, groups=4, channel_divisor=16)
    insert_lite_residuals(subnet, resolution=RESOLUTION, config=config)
    conv = subnet.blocks[1].lite_residual.conv
    assert (conv.kernel_size, conv.groups, conv.out_channels) == ((3, 3), 4, 16)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (LiteResidualConfig(kernel_size=4), "kernel_size = 4"),
        (LiteResidualConfig(groups=0), "groups = 0"),
        (LiteResidualConfig(downsample=0), "downsample = 0"),
        (LiteResidualConfig(upsample_mode="cubic"), "upsample_mode = 'cubic'"),
        (LiteResidualConfig(groups=3), r"groups = 3 must divide .* \(8\)"),
    ],
)
def test_bad_hyperparameters_are_named(subnet, config, message):
    with pytest.raises(ConfigError, match=message):
        insert_lite_residuals(subnet, resolution=RESOLUTION, config=config)


def test_inserting_twice_is_refused(subnet):
    insert_lite_residuals(subnet, resolution=RESOLUTION)
    with pytest.raises(ConfigError, match="block 1 already has a lite residual"):
        insert_lite_residuals(subnet, resolution=RESOLUTION)
