"""Measured training memory: autograd's saved tensors counted by hand, parameters excluded,
gradient / optimizer bytes, the model left untouched, the engine reaching the paper's count."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from tests.transfer.helpers import NUM_CLASSES, RESOLUTION
from torch import nn

from supernet.errors import ConfigError
from supernet.transfer import build_transfer_model, freeze_batch_norm, make_memory_efficient
from supernet.transfer.measure import compare_saved_bytes, measure_training_memory
from supernet.transfer.memory import training_memory

BATCH = 4


def conv_bn_relu_linear() -> nn.Sequential:
    """conv 1→8 (3×3) → BN → ReLU → flatten → linear 512→3 on 1×8×8 images, all trainable."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(512, 3),
    ).eval()


def batch(channels: int = 1, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(BATCH, channels, size, size, generator=g), torch.tensor([0, 1, 2, 0])


def test_saved_bytes_counted_by_hand():
    # per image: the conv keeps the image (64 floats), BN its input (512), ReLU its output
    # (512), which is also the linear layer's input (a view): one storage, counted once
    measured = measure_training_memory(conv_bn_relu_linear(), *batch())
    assert measured.saved_activation_bytes == BATCH * 4 * (64 + 512 + 512)
    assert measured.saved_activation_bytes_per_image == 4 * (64 + 512 + 512)


def test_parameters_and_buffers_are_not_activations():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.Flatten(),
                        nn.Linear(512, 3)).eval()  # fmt: skip
    net[1].weight.requires_grad_(False)
    measured = measure_training_memory(net, *batch())
    # BN keeps the image (+ its γ, running mean and variance: excluded); the frozen conv keeps its
    # input (+ its weight: excluded); the linear layer its input
    assert measured.saved_activation_bytes == BATCH * 4 * (64 + 64 + 512)
    assert measured.saved_tensor_count > 3


@pytest.mark.parametrize(
    ("optimizer", "state_bytes_per_param", "step_bytes"),
    [("adam", 8, 4), ("adamw", 8, 4), ("sgd", 4, 0)],
)
def test_gradient_and_optimizer_bytes(optimizer, state_bytes_per_param, step_bytes):
    net = conv_bn_relu_linear()
    net[0].weight.requires_grad_(False)
    trainable = [p for p in net.parameters() if p.requires_grad]
    n = sum(p.numel() for p in trainable)
    measured = measure_training_memory(net, *batch(), optimizer=optimizer)
    assert measured.grad_bytes == 4 * n
    assert measured.optimizer_bytes == state_bytes_per_param * n + step_bytes * len(trainable)
    buffers = 4 * 8 * 2 + 8  # running mean / var, num_batches_tracked (int64)
    assert measured.param_storage_bytes == 4 * (72 + 8 + 8 + 512 * 3 + 3) + buffers
    assert measured.total_bytes == (measured.saved_activation_bytes + measured.param_storage_bytes
                                    + measured.grad_bytes + measured.optimizer_bytes)  # fmt: skip
    report = training_memory(net, batch_size=BATCH, resolution=8, optimizer=optimizer)
    assert (report.grad_bytes, report.optimizer_bytes, report.param_storage_bytes) == (
        measured.grad_bytes, measured.optimizer_bytes, measured.param_storage_bytes)  # fmt: skip


def test_model_is_not_changed():
    net = conv_bn_relu_linear().train()
    before = copy.deepcopy(net.state_dict())
    measured = measure_training_memory(net, *batch(), lr=0.5)
    assert measured.loss > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert net.training and net[1].training


def test_efficient_engine_keeps_what_the_paper_counts():
    """Frozen conv, β-only BN, ReLU, trainable linear: plain autograd keeps the BN input and the
    32-bit ReLU output; the memory-efficient engine keeps the paper's 1-bit mask and the linear
    layer's input only."""
    net = conv_bn_relu_linear()
    net[0].weight.requires_grad_(False)
    net[1].weight.requires_grad_(False)
    plain = measure_training_memory(net, *batch()).saved_activation_bytes
    assert plain == BATCH * 4 * (512 + 512)
    freeze_batch_norm(net)
    efficient = measure_training_memory(make_memory_efficient(net), *batch())
    assert efficient.saved_activation_bytes == BATCH * (512 // 8 + 4 * 512)
    report = training_memory(net, batch_size=BATCH, resolution=8)
    assert efficient.saved_activation_bytes == report.saved_total_bytes(accounting="paper")


def test_compare_saved_bytes(subnet, images, labels):
    model = build_transfer_model(subnet, NUM_CLASSES, "bias+last", resolution=RESOLUTION)
    report = training_memory(model, batch_size=len(images), resolution=RESOLUTION)
    measured = measure_training_memory(model, images, labels)
    c = compare_saved_bytes(report, measured)
    got, full = c["measured_saved_bytes"], c["full_saved_bytes"]
    assert got == measured.saved_activation_bytes
    assert full == report.saved_total_bytes(len(images))
    assert c["paper_saved_bytes"] == report.saved_total_bytes(len(images), accounting="paper")
    assert c["measured_over_full"] == pytest.approx(got / full)
    assert c["measured_over_paper"] == pytest.approx(got / c["paper_saved_bytes"])
    nothing = replace(report, saved_bytes=0, saved_bytes_full=0, saved_fixed_bytes_full=0)
    assert compare_saved_bytes(nothing, measured)["measured_over_full"] == float("inf")
    none_measured = replace(measured, saved_activation_bytes=0)
    assert compare_saved_bytes(nothing, none_measured)["measured_over_paper"] == 1.0


def test_bad_input():
    net = conv_bn_relu_linear()
    images, labels = batch()
    with pytest.raises(ConfigError, match="must be"):
        measure_training_memory(net, images, labels[:2])
    with pytest.raises(ConfigError, match="must be"):
        measure_training_memory(net, images[0], labels)
    with pytest.raises(ConfigError, match="optimizer = 'lbfgs'"):
        measure_training_memory(net, images, labels, optimizer="lbfgs")
    net.requires_grad_(False)
    with pytest.raises(ConfigError, match="no parameter of the model trains"):
        measure_training_memory(net, images, labels)
