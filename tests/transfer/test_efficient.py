"""Memory-efficient autograd: the same outputs and gradients as plain autograd, with fewer saved
tensors (checked with ``saved_tensors_hooks``), bit-packed ReLU masks, cached standardization."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.transfer.helpers import NUM_CLASSES, RESOLUTION, make_subnet
from torch import nn

from supernet.nn import WSConv2d, standardize_weight
from supernet.transfer import (
    METHODS,
    EfficientAdaptiveAvgPool2d,
    EfficientAvgPool2d,
    EfficientBatchNorm2d,
    EfficientConv2d,
    EfficientGroupNorm,
    EfficientLinear,
    EfficientReLU,
    EfficientReLU6,
    EfficientWSConv2d,
    FrozenBatchNorm2d,
    LiteResidual,
    build_transfer_model,
    make_memory_efficient,
    pack_bits,
    packed_relu,
    recomputing_group_norm,
    unpack_bits,
)

TIGHT = {"rtol": 1e-10, "atol": 1e-12}


class Saved:
    """Tensors autograd keeps while the block runs (their storages, parameters excluded)."""

    def __init__(self, *exclude: torch.Tensor) -> None:
        self.tensors: list[torch.Tensor] = []
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in self._exclude:
            self.tensors.append(t)
        return t

    def __enter__(self) -> Saved:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    @property
    def nbytes(self) -> int:
        storages = {
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in self.tensors
        }
        return sum(storages.values())


def swapped(module: nn.Module) -> nn.Module:
    return make_memory_efficient(copy.deepcopy(module))


def grads(*tensors: torch.Tensor) -> list[torch.Tensor | None]:
    return [t.grad for t in tensors]


# --- bit packing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 8, 13, 1000])
def test_pack_bits_is_numpy_packbits_little_endian(n):
    mask = torch.rand(n, generator=torch.Generator().manual_seed(n)) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == (n + 7) // 8
    np.testing.assert_array_equal(packed.numpy(), np.packbits(mask.numpy(), bitorder="little"))
    assert torch.equal(unpack_bits(packed, (n,)), mask)


def test_unpack_bits_restores_the_shape():
    mask = torch.randn(2, 3, 5, 5) > 0
    assert torch.equal(unpack_bits(pack_bits(mask), mask.shape), mask)


@pytest.mark.parametrize("upper", [None, 6.0])
def test_packed_relu_saves_one_bit_per_element(upper):
    x = torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0, 3.0, -0.0, 6.5, 1.0] * 5, dtype=torch.float64)
    x = (x * torch.linspace(0.9, 1.1, x.numel(), dtype=torch.float64)).requires_grad_()
    x.data[::9] = 0.0  # exact zeros (and a few exact sixes below): the boundaries of the mask
    x.data[3::9] = 6.0
    ref = x.detach().clone().requires_grad_()
    g = torch.randn(x.shape, dtype=torch.float64)
    with Saved() as saved:
        out = packed_relu(x, upper)
    (F.relu(ref) if upper is None else F.relu6(ref)).backward(g)
    out.backward(g)
    assert [(t.dtype, t.numel()) for t in saved.tensors] == [(torch.uint8, 6)]  # 45 bits
    assert torch.equal(out, F.relu(ref) if upper is None else F.relu6(ref))
    assert torch.equal(x.grad, ref.grad)


# --- frozen conv / linear -------------------------------------------------------------------------
@pytest.mark.parametrize("bias_trains", [False, True])
@pytest.mark.parametrize("input_grad", [False, True])
def test_frozen_conv_saves_nothing(bias_trains, input_grad):
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, bias=True).double()
    conv.weight.requires_grad_(False)
    conv.bias.requires_grad_(bias_trains)
    eff = swapped(conv)
    assert type(eff) is EfficientConv2d
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64, requires_grad=input_grad)
    x_ref = x.detach().clone().requires_grad_(input_grad)
    g = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with Saved(*eff.parameters()) as saved:
        out = eff(x)
    torch.testing.assert_close(out, conv(x_ref), **TIGHT)
    if out.requires_grad:
        out.backward(g)
        conv(x_ref).backward(g)
    assert saved.tensors == []
    for a, b in zip(grads(x, eff.bias), grads(x_ref, conv.bias), strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **TIGHT)


def test_trainable_conv_runs_natively():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    with Saved(*conv.parameters()) as plain:
        conv(x)
    eff_conv = swapped(conv)
    with Saved(*eff_conv.parameters()) as eff:
        eff_conv(x)
    assert eff.nbytes == plain.nbytes == x.numel() * 4


def test_frozen_linear_saves_nothing():
    linear = nn.Linear(6, 3).double()
    linear.weight.requires_grad_(False)
    eff = swapped(linear)
    assert type(eff) is EfficientLinear
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    with Saved(*eff.parameters()) as saved:
        out = eff(x)
    out.sum().backward()
    linear(x_ref).sum().backward()
    assert saved.tensors == []
    torch.testing.assert_close(x.grad, x_ref.grad, **TIGHT)
    torch.testing.assert_close(eff.bias.grad, linear.bias.grad, **TIGHT)


# --- norms and pools ------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma_trains", [False, True])
def test_frozen_batch_norm_saves_its_input_only_when_gamma_trains(gamma_trains):
    bn = nn.BatchNorm2d(5).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(), bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    bn.__class__ = FrozenBatchNorm2d
    bn.weight.requires_grad_(gamma_trains)
    eff = swapped(bn).train()
    assert type(eff) is EfficientBatchNorm2d and not eff.training
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(x.shape, dtype=torch.float64)
    with Saved(*eff.parameters()) as saved:
        out = eff(x)
    out.backward(g)
    bn.train()(x_ref).backward(g)
    assert [t is x for t in saved.tensors] == ([True] if gamma_trains else [])
    torch.testing.assert_close(out, bn(x_ref), **TIGHT)
    for a, b in zip(grads(x, eff.weight, eff.bias), grads(x_ref, bn.weight, bn.bias), strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **TIGHT)


def test_group_norm_with_only_beta_training_saves_nothing():
    gn = nn.GroupNorm(2, 8).double()
    gn.weight.requires_grad_(False)
    eff = swapped(gn)
    assert type(eff) is EfficientGroupNorm
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    g = torch.randn(x.shape, dtype=torch.float64)
    with Saved(*gn.parameters()) as native:
        gn(x).backward(g)
    with Saved(*eff.parameters()) as saved:
        eff(x).backward(g)
    assert native.nbytes >= x.numel() * 8 and saved.tensors == []
    torch.testing.assert_close(eff.bias.grad, gn.bias.grad, **TIGHT)


def test_recomputing_group_norm_matches_native_gradients():
    gn = nn.GroupNorm(3, 12).double()
    with torch.no_grad():
        gn.weight.uniform_(0.5, 1.5), gn.bias.normal_()
    x = torch.randn(2, 12, 4, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(x.shape, dtype=torch.float64)
    with Saved(*gn.parameters()) as saved:
        out = recomputing_group_norm(x, gn)
    got = torch.autograd.grad(out, (x, gn.weight, gn.bias), g)
    want = torch.autograd.grad(gn(x_ref), (x_ref, gn.weight, gn.bias), g)
    assert [t is x for t in saved.tensors] == [True]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize(
    ("pool", "cls"),
    [(nn.AvgPool2d(2), EfficientAvgPool2d), (nn.AdaptiveAvgPool2d(1), EfficientAdaptiveAvgPool2d)],
)
@pytest.mark.parametrize("size", [7, 8])
def test_average_pools_save_nothing(pool, cls, size):
    eff = swapped(pool)
    assert type(eff) is cls
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    with Saved() as saved:
        out = eff(x)
    g = torch.randn(out.shape, dtype=torch.float64)
    out.backward(g)
    pool(x_ref).backward(g)
    assert saved.tensors == []
    torch.testing.assert_close(out, pool(x_ref), **TIGHT)
    torch.testing.assert_close(x.grad, x_ref.grad, **TIGHT)


def test_frozen_ws_conv_standardizes_once():
    conv = WSConv2d(4, 6, 3, padding=1, bias=False)
    conv.weight.requires_grad_(False)
    eff = swapped(conv)
    assert type(eff) is EfficientWSConv2d
    first = eff.frozen_weight()
    assert eff.frozen_weight() is first
    torch.testing.assert_close(first, standardize_weight(conv.weight), rtol=0, atol=0)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(eff(x), conv(x), rtol=0, atol=0)
    with torch.no_grad():
        eff.weight.mul_(2.0).add_(0.1)  # a new weight (e.g. load_state_dict) invalidates the cache
    assert eff.frozen_weight() is not first
    torch.testing.assert_close(eff.frozen_weight(), standardize_weight(eff.weight), rtol=0, atol=0)
    assert set(eff.state_dict()) == {"weight"}


# --- whole models ---------------------------------------------------------------------------------
def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict, int]:
    with Saved(*model.parameters(), *model.buffers()) as saved:
        out = model(x)
    F.cross_entropy(out, y).backward()
    named = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return out.detach(), named, saved.nbytes


@pytest.mark.parametrize("method", METHODS)
def test_same_outputs_and_gradients_as_plain_autograd(norm, method, images, labels):
    g = torch.Generator().manual_seed(0)
    subnet = make_subnet(norm).double()
    plain = build_transfer_model(
        subnet,
        NUM_CLASSES,
        method,
        resolution=RESOLUTION,
        efficient=False,
        dropout=0.0,
        generator=g,
    )
    with torch.no_grad():  # open the lite residual branches so their gradients are non-trivial
        for m in plain.modules():
            if isinstance(m, LiteResidual):
                m.final_norm.weight.normal_(0.0, 0.5, generator=g)
    eff = swapped(plain)
    assert list(eff.state_dict()) == list(plain.state_dict())
    x = images.double()
    out_plain, grads_plain, bytes_plain = _step(plain, x, labels)
    out_eff, grads_eff, bytes_eff = _step(eff, x, labels)
    torch.testing.assert_close(out_eff, out_plain, **TIGHT)
    assert grads_eff.keys() == grads_plain.keys()
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_eff[name], grad, **TIGHT, msg=name)
    if method not in ("full", "last"):
        assert bytes_eff < 0.75 * bytes_plain


def test_swap_keeps_types_names_and_parameters(subnet):
    model = build_transfer_model(subnet, NUM_CLASSES, "tinytl-l+b", resolution=RESOLUTION,
                                 efficient=False)  # fmt: skip
    params = dict(model.named_parameters())
    kinds = [(n, type(m)) for n, m in model.named_modules()]
    make_memory_efficient(model)
    assert dict(model.named_parameters()) == params  # the same Parameter objects
    for (name, before), (name_after, m) in zip(kinds, model.named_modules(), strict=True):
        assert name == name_after and isinstance(m, before)
    counts = {
        cls: sum(type(m) is cls for m in model.modules()) for cls in (EfficientReLU, EfficientReLU6)
    }
    assert counts[EfficientReLU] > 0 and counts[EfficientReLU6] == 0


def test_relu6_modules_are_swapped():
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU6())
    assert type(make_memory_efficient(model)[1]) is EfficientReLU6


def test_last_keeps_only_the_classifier_input(subnet, images, labels):
    model = build_transfer_model(subnet, NUM_CLASSES, "last", resolution=RESOLUTION, dropout=0.0)
    _, grads, nbytes = _step(model, images, labels)
    assert set(grads) == {"classifier.weight", "classifier.bias"}
    assert nbytes == images.shape[0] * model.classifier.in_features * 4  # nothing in the backbone


def test_bias_only_keeps_far_less_than_plain_on_a_bn_subnet(images, labels):
    subnet = make_subnet("bn")

    def saved_bytes(method: str, efficient: bool) -> int:
        model = build_transfer_model(subnet, NUM_CLASSES, method, resolution=RESOLUTION,
                                     efficient=efficient, dropout=0.0)  # fmt: skip
        return _step(model, images, labels)[2]

    sizes = {efficient: saved_bytes("bias+last", efficient) for efficient in (False, True)}
    full = saved_bytes("full", False)
    assert sizes[False] > 0.9 * full  # plain autograd keeps about as much as full fine-tuning
    assert sizes[True] < 0.4 * sizes[False]
