"""The TinyTL reference accounting on a toy network whose bytes are computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.transfer.memory_reference import reference_training_memory


class _Block(nn.Module):
    def __init__(self, identity_shortcut: bool) -> None:
        super().__init__()
        self.identity_shortcut = identity_shortcut
        self.body = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.ReLU6())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.identity_shortcut else self.body(x)


def _toy(identity_shortcut: bool = True) -> nn.Sequential:
    # input [1, 2, 4, 4]: 32 elements; every feature map after the stem: 4·4·4 = 64 elements
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),  # 72 params
        nn.GroupNorm(2, 4),  # 8 params
        nn.ReLU(),
        _Block(identity_shortcut),  # 16 params
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),  # 15 params: the classifier
    )
    for p in net.parameters():
        p.requires_grad_(False)
    for p in net[-1].parameters():
        p.requires_grad_(True)
    return net


def test_last_only_keeps_the_classifier_input_and_no_masks():
    r = reference_training_memory(_toy(), resolution=4, in_channels=2)
    assert not r.require_backward
    # peak at the block's conv: its input 256 B + output 256 B + the block input kept 256 B
    assert r.activation_bytes == 768
    assert r.saved_bytes == 16  # the linear layer's input, 4 floats
    assert r.param_bytes == (72 + 8 + 16) * 1 + 15 * 4
    assert r.total_bytes(8) == 8 * 768 + 156


def test_norm_training_turns_on_masks_everywhere_and_saves_the_norm_input():
    net = _toy()
    for p in net[1].parameters():
        p.requires_grad_(True)
    r = reference_training_memory(net, resolution=4, in_channels=2)
    assert r.require_backward
    # saved before the block conv: GN input 256 + ReLU mask 64/8 = 264;
    # block conv: working 256 + 256, + 264 saved, + 256 kept block input = 1032
    assert r.activation_bytes == 1032
    assert r.saved_bytes == 256 + 8 + 8 + 16  # GN input, two 1-bit masks, linear input
    assert r.param_bytes == 8 * 4 + (72 + 16) + 15 * 4
    assert r.total_bytes(8) == 8 * 1032 + 180


def test_only_identity_shortcut_blocks_keep_their_input():
    net = _toy(identity_shortcut=False)
    for p in net[1].parameters():
        p.requires_grad_(True)
    r = reference_training_memory(net, resolution=4, in_channels=2)
    assert r.activation_bytes == 1032 - 256


def test_bad_resolution_is_refused():
    with pytest.raises(ConfigError, match="resolution = 0 must be an int >= 1"):
        reference_training_memory(_toy(), resolution=0)
