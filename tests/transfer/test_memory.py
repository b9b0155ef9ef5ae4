"""Training-memory model: the paper's accounting by hand, the full accounting against autograd's
saved tensors, residual / branch inputs, data-flow rules, parameter parts and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.transfer.helpers import NUM_CLASSES, RESOLUTION, make_subnet
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import ConvBNAct, MBConv, MobileNetV3
from supernet.transfer import (
    METHODS,
    build_transfer_model,
    freeze_batch_norm,
    make_memory_efficient,
    quantize_frozen_weights,
)
from supernet.transfer.measure import measure_training_memory
from supernet.transfer.memory import training_memory


def tiny_net() -> nn.Sequential:
    """conv 1→8 (3×3, frozen) → BN (only β trains) → ReLU → flatten → linear 512→3 (trains), on
    1×8×8 images: 64 input, 512 hidden elements per image."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(512, 3),
    ).eval()
    net[0].weight.requires_grad_(False)
    net[1].weight.requires_grad_(False)
    return net


def test_paper_accounting_by_hand():
    report = training_memory(tiny_net(), batch_size=8, resolution=8)
    rows = {r.name: r for r in report.layers}
    assert list(rows) == ["0", "1", "2", "4"]  # flatten is a view: no row
    # frozen conv and β-only BN save nothing; ReLU 512 bits = 64 bytes; linear its 32-bit input
    assert [r.saved_bytes for r in rows.values()] == [0, 0, 64, 2048]
    assert [r.backward_through for r in rows.values()] == [False, False, True, True]
    # working: conv in + out, BN and ReLU in place, linear in + out
    assert [r.working_bytes for r in rows.values()] == [256 + 2048, 2048, 2048, 2048 + 12]
    assert report.saved_bytes == 2112
    assert report.activation_bytes == 2304  # the conv's working bytes; linear: 2060 + 64 < 2304
    # P: 72 frozen conv weights + 8 frozen γ at 1 byte; β and the linear layer at 4 bytes
    assert report.param_bytes == 72 + 8 + 4 * 8 + 4 * (512 * 3 + 3)
    assert report.paper_total_bytes() == 8 * 2304 + report.param_bytes


def test_full_accounting_by_hand_plain_and_efficient():
    plain = training_memory(tiny_net(), batch_size=8, resolution=8)
    # native BN keeps its input for β alone; native ReLU keeps its 32-bit output, which is also
    # the linear layer's input (one tensor, counted once)
    assert plain.saved_bytes_full == 2048 + 2048
    net = tiny_net()
    freeze_batch_norm(net)
    efficient = training_memory(make_memory_efficient(net), batch_size=8, resolution=8)
    assert efficient.saved_bytes_full == efficient.saved_bytes == 2112
    assert efficient.saved_fixed_bytes_full == 0


def test_packed_masks_are_counted_per_batch():
    """75 ReLU elements per image: 10 bytes of mask per image alone, 38 (not 40) for 4 images."""
    torch.manual_seed(0)
    net = make_memory_efficient(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(),
                                              nn.Flatten(), nn.Linear(75, 2)))  # fmt: skip
    report = training_memory(net, batch_size=4, resolution=5)
    assert report.saved_mask_elements_full == (75,)
    conv_in, linear_in = 4 * 25, 4 * 75
    assert report.saved_bytes_full == conv_in + 10 + linear_in
    assert report.saved_total_bytes() == 4 * (conv_in + linear_in) + 38
    images = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    measured = measure_training_memory(net, images, torch.tensor([0, 1, 0, 1]))
    assert measured.saved_activation_bytes == report.saved_total_bytes()


def test_memory_is_linear_in_batch_size():
    report = training_memory(make_subnet("bn"), batch_size=1, resolution=RESOLUTION)
    a, p = report.activation_bytes, report.param_bytes
    totals = [report.paper_total_bytes(b) for b in (1, 2, 8, 9)]
    assert totals == [a + p, 2 * a + p, 8 * a + p, 9 * a + p]
    assert report.saved_total_bytes(8, accounting="paper") == 8 * report.saved_bytes
    full = [report.full_total_bytes(b) for b in (1, 2, 3)]
    assert full[2] - full[1] == full[1] - full[0] == report.activation_bytes_full


def residual_net(act: str) -> MobileNetV3:
    """Stem, a residual MBConv, a stride-2 MBConv, final expand, feature mix, linear: every
    activation ``act``; BN in eval mode, no dropout."""
    torch.manual_seed(0)

    def mb(cin: int, cout: int, stride: int) -> MBConv:
        return MBConv(cin, cout, kernel_size=3, stride=stride, mid_channels=16, act=act)

    final_act = nn.Hardswish() if act == "h_swish" else nn.ReLU()
    return MobileNetV3(
        ConvBNAct(1, 8, 3, stride=2, act=act),
        [mb(8, 8, 1), mb(8, 12, 2)],
        ConvBNAct(12, 24, 1, act=act),
        nn.Sequential(nn.Conv2d(24, 32, 1, bias=False), final_act),
        nn.Linear(32, 4),
    ).eval()


def measured_saved(model: nn.Module, batch: int = 2) -> int:
    images = torch.randn(batch, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    return measure_training_memory(model, images, torch.arange(batch) % 4).saved_activation_bytes


def test_paper_equals_plain_autograd_for_full_training_without_relu():
    """With every parameter training and no ReLU, plain autograd keeps exactly what the paper
    counts: each conv / BN / h-swish input (in-place h-swish keeps a copy), the linear input."""
    net = residual_net("h_swish")
    report = training_memory(net, batch_size=2, resolution=16)
    assert report.saved_bytes == report.saved_bytes_full
    assert measured_saved(net) == 2 * report.saved_bytes


TRAINABLE_SETS = {
    "everything": lambda name: True,
    "classifier": lambda name: name.startswith("classifier"),
    "biases": lambda name: name.endswith("bias"),
    "one middle conv": lambda name: name == "blocks.1.expand.0.weight",
    "norms": lambda name: ".1." in name or name.startswith("stem.1"),
}


@pytest.mark.parametrize("act", ["relu", "h_swish"])
@pytest.mark.parametrize("trainable", list(TRAINABLE_SETS))
@pytest.mark.parametrize("efficient", [False, True])
def test_full_accounting_equals_measured(act, trainable, efficient):
    net = residual_net(act)
    for name, p in net.named_parameters():
        p.requires_grad_(TRAINABLE_SETS[trainable](name))
    if efficient:
        freeze_batch_norm(net)
        make_memory_efficient(net)
    report = training_memory(net, batch_size=2, resolution=16)
    assert measured_saved(net) == report.saved_total_bytes(2)


def test_last_saves_only_the_classifier_input(subnet, images, labels):
    model = build_transfer_model(subnet, NUM_CLASSES, "last", resolution=RESOLUTION)
    report = training_memory(model, batch_size=4, resolution=RESOLUTION)
    features = model.classifier.in_features
    saving = {r.name: r.saved_bytes for r in report.layers if r.saved_bytes}
    assert saving == {"classifier": 4 * features}
    assert report.saved_bytes == report.saved_bytes_full == 4 * features
    assert not any(r.backward_through for r in report.layers)
    measured = measure_training_memory(model, images, labels).saved_activation_bytes
    assert measured == 4 * 4 * features


def test_backward_passes_only_downstream_of_trainable_parameters():
    model = build_transfer_model(make_subnet("bn"), NUM_CLASSES, "tinytl-l", resolution=RESOLUTION)
    rows = {r.name: r for r in training_memory(model, batch_size=1, resolution=RESOLUTION).layers}
    # block 1 holds the first lite residual: nothing upstream of its main branch trains ...
    main_relu = next(n for n in rows if n.startswith("blocks.1.expand.2"))
    assert not rows[main_relu].backward_through and rows[main_relu].saved_bytes == 0
    # ... its branch conv trains (saves its input) but its input needs no gradient
    branch_conv = rows["blocks.1.lite_residual.conv"]
    assert branch_conv.saved_bytes == 4 * prod(branch_conv.input_shape)
    assert not branch_conv.backward_through
    # from the branch on, backward passes through every ReLU: 1 bit per element
    relu = next(r for n, r in rows.items() if n.startswith("blocks.2.") and r.kind.endswith("ReLU"))
    assert relu.backward_through and relu.saved_bytes == -(-prod(relu.input_shape) // 8)


def prod(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def test_residual_and_branch_inputs_are_held():
    subnet = make_subnet("bn")
    block2_in = 4 * prod(subnet_block_input(subnet, 2))
    rows = {r.name: r for r in training_memory(subnet, batch_size=1, resolution=RESOLUTION).layers}
    assert subnet.blocks[2].use_residual and not subnet.blocks[1].use_residual
    assert rows["blocks.2.expand.0"].held_bytes == block2_in
    assert rows["blocks.1.expand.0"].held_bytes == 0
    # inside squeeze-and-excitation its input waits for the gate, on top of the block input
    se_x = 4 * prod(rows["blocks.2.se.pool"].input_shape)
    assert rows["blocks.2.se.expand"].held_bytes == block2_in + se_x
    assert rows["blocks.2.se.scale"].held_bytes == block2_in  # x is the product's working input

    model = build_transfer_model(subnet, NUM_CLASSES, "tinytl-l", resolution=RESOLUTION)
    rows = {r.name: r for r in training_memory(model, batch_size=1, resolution=RESOLUTION).layers}
    block1_in = 4 * prod(subnet_block_input(subnet, 1))
    block1_out = 4 * prod(rows["blocks.1.project.1"].output_shape)
    assert rows["blocks.1.expand.0"].held_bytes == block1_in  # kept for the branch
    assert rows["blocks.1.lite_residual.conv"].held_bytes == block1_in + block1_out
    assert rows["blocks.2.lite_residual.conv"].held_bytes == 2 * block2_in  # input + main output


def subnet_block_input(subnet: MobileNetV3, index: int) -> tuple[int, ...]:
    shapes = []
    hook = subnet.blocks[index].register_forward_pre_hook(lambda m, a: shapes.append(a[0].shape))
    with torch.no_grad():
        subnet(torch.zeros(1, 1, RESOLUTION, RESOLUTION))
    hook.remove()
    return tuple(shapes[0][1:])


def test_se_product_keeps_x_when_only_se_biases_train():
    model = build_transfer_model(make_subnet("bn"), NUM_CLASSES, "bias+last", resolution=RESOLUTION)
    rows = {r.name: r for r in training_memory(model, batch_size=1, resolution=RESOLUTION).layers}
    x, c = prod(rows["blocks.2.se.scale"].input_shape), rows["blocks.2.se.pool"].input_shape[0]
    mid = prod(rows["blocks.2.se.relu"].input_shape)
    assert rows["blocks.2.se.reduce"].saved_bytes == 0  # bias only
    assert rows["blocks.2.se.relu"].saved_bytes == -(-mid // 8)
    assert rows["blocks.2.se.gate"].saved_bytes == 4 * c
    assert rows["blocks.2.se.scale"].saved_bytes == 4 * x + 4 * c  # both factors need gradients


def test_group_norm_keeps_its_input_for_the_input_gradient():
    model = build_transfer_model(make_subnet("gn"), NUM_CLASSES, "tinytl-l", resolution=RESOLUTION)
    rows = {r.name: r for r in training_memory(model, batch_size=1, resolution=RESOLUTION).layers}
    norm = rows["blocks.3.expand.1"]  # frozen γ and β, backward passes through
    groups = model.blocks[3].expand[1].num_groups
    assert norm.backward_through and norm.saved_bytes == 0
    assert norm.saved_bytes_full == 4 * prod(norm.input_shape) + 2 * 4 * groups


def test_parameter_parts():
    net = tiny_net()
    report = training_memory(net, batch_size=1, resolution=8, optimizer="adam")
    trainable = 8 + 512 * 3 + 3
    assert (report.trainable_params, report.frozen_params) == (trainable, 72 + 8)
    assert report.grad_bytes == 4 * trainable
    assert report.optimizer_bytes == 8 * trainable + 4 * 3  # 2 moments + a step per tensor
    assert training_memory(net, batch_size=1, resolution=8, optimizer="sgd").optimizer_bytes == (
        4 * trainable
    )
    buffers = 4 * 8 * 2 + 8  # BN running mean / var (float32), num_batches_tracked (int64)
    assert report.param_storage_bytes == 4 * (72 + 8 + trainable) + buffers
    quantize_frozen_weights(net)  # the conv: 72 uint8 indices + a codebook of ≤ 72 floats
    codebook = net[0].weight_codebook.numel()
    q = training_memory(net, batch_size=1, resolution=8)
    assert q.param_bytes == report.param_bytes  # the paper counts frozen weights at 8 bits anyway
    assert q.param_storage_bytes == report.param_storage_bytes - 4 * 72 + 72 + 4 * codebook


def test_model_is_left_as_it_was():
    model = build_transfer_model(make_subnet("bn"), NUM_CLASSES, "full", resolution=RESOLUTION)
    model.train()
    before = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    training_memory(model, batch_size=8, resolution=RESOLUTION)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)  # the traced dropout drew from a forked RNG
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_bad_input():
    net = tiny_net()
    with pytest.raises(ConfigError, match="batch_size = 0"):
        training_memory(net, batch_size=0, resolution=8)
    with pytest.raises(ConfigError, match=r"optimizer = 'rmsprop'.*adam"):
        training_memory(net, batch_size=1, resolution=8, optimizer="rmsprop")
    with pytest.raises(ConfigError, match="accounting = 'peak'"):
        training_memory(net, batch_size=1, resolution=8).saved_total_bytes(accounting="peak")
    with pytest.raises(ConfigError, match="no memory rule for module type MaxPool2d"):
        training_memory(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)), batch_size=1,
                        resolution=8)  # fmt: skip
    with pytest.raises(ConfigError, match="in_channels is needed"):
        training_memory(nn.Sequential(nn.Linear(4, 2)), batch_size=1, resolution=8)


@pytest.mark.parametrize("method", METHODS)
def test_modelled_matches_measured_for_every_method(subnet, norm, method, images, labels):
    """The issue's target: modelled vs measured within 10% for every method, memory-efficient
    engine. The full accounting models this engine (it agrees to the byte here); with batch norm
    the engine also reaches the paper's accounting, with group norm it keeps more (the input
    gradient of a group norm needs its input)."""
    model = build_transfer_model(subnet, NUM_CLASSES, method, resolution=RESOLUTION,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    report = training_memory(model, batch_size=len(images), resolution=RESOLUTION)
    measured = measure_training_memory(model, images, labels)
    full = report.saved_total_bytes()
    assert abs(measured.saved_activation_bytes - full) <= 0.10 * full
    assert measured.saved_activation_bytes == full  # the full accounting models this engine
    if norm == "bn":
        paper = report.saved_total_bytes(accounting="paper")
        assert abs(measured.saved_activation_bytes - paper) <= 0.10 * paper
    assert measured.param_storage_bytes == report.param_storage_bytes
    assert measured.grad_bytes == report.grad_bytes
    assert measured.optimizer_bytes == report.optimizer_bytes
