"""Elastic operators: kernel transformation, its no-grad cache, dynamic BN, slicing, MBConv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernet.nn import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv2d,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    ElasticSqueezeExcite,
)
from supernet.space import make_divisible

C = 8


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def centre(w: torch.Tensor, k: int) -> torch.Tensor:
    start = (w.shape[-1] - k) // 2
    return w[:, :, start : start + k, start : start + k]


def dw_conv(seed: int = 0, *, identity: bool = False, stride: int = 1) -> ElasticDepthwiseConv2d:
    conv = ElasticDepthwiseConv2d(C, (3, 5, 7), stride=stride)
    g = gen(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if not identity:
            for m in conv.transforms.values():
                m.add_(0.3 * torch.randn(m.shape, generator=g))
    return conv


def reference_kernel(conv: ElasticDepthwiseConv2d, k: int) -> torch.Tensor:
    """Once-for-All Fig. 3: 7x7 → centre 5x5 · M(7→5)ᵀ → centre 3x3 · M(5→3)ᵀ."""
    with torch.no_grad():
        w = conv.weight.clone()
        for big, small in ((7, 5), (5, 3)):
            if k >= big:
                break
            flat = centre(w, small).reshape(C, small * small)
            w = (flat @ conv.transforms[f"{big}to{small}"].T).reshape(C, 1, small, small)
        return w


# --- elastic kernel size -----------------------------------------------------------------------


def test_transform_matrices_are_identity_sized_per_step():
    conv = ElasticDepthwiseConv2d(C, (7, 3, 5), stride=1)
    assert conv.kernel_sizes == (3, 5, 7)
    assert conv.weight.shape == (C, 1, 7, 7)
    assert set(conv.transforms) == {"7to5", "5to3"}
    torch.testing.assert_close(conv.transforms["7to5"].detach(), torch.eye(25))
    torch.testing.assert_close(conv.transforms["5to3"].detach(), torch.eye(9))


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_kernel_shape(k, grad):
    conv = dw_conv()
    with torch.set_grad_enabled(grad):
        assert conv.kernel(k).shape == (C, 1, k, k)


@pytest.mark.parametrize("grad", [True, False])
def test_identity_transforms_give_centre_crops(grad):
    conv = dw_conv(identity=True)
    with torch.set_grad_enabled(grad):
        k7, k5, k3 = conv.kernel(7), conv.kernel(5), conv.kernel(3)
    w = conv.weight.detach()
    torch.testing.assert_close(k7.detach(), w, atol=0, rtol=0)
    torch.testing.assert_close(k5.detach(), w[:, :, 1:6, 1:6])
    torch.testing.assert_close(k3.detach(), w[:, :, 2:5, 2:5])


@pytest.mark.parametrize("grad", [True, False])
def test_non_identity_transforms_follow_ofa_fig3(grad):
    conv = dw_conv(seed=1)
    w = conv.weight.detach()
    m75, m53 = conv.transforms["7to5"].detach(), conv.transforms["5to3"].detach()
    expected5 = (w[:, :, 1:6, 1:6].reshape(C, 25) @ m75.T).reshape(C, 1, 5, 5)
    expected3 = (expected5[:, :, 1:4, 1:4].reshape(C, 9) @ m53.T).reshape(C, 1, 3, 3)
    with torch.set_grad_enabled(grad):
        k5, k3 = conv.kernel(5).detach(), conv.kernel(3).detach()
    torch.testing.assert_close(k5, expected5)
    torch.testing.assert_close(k3, expected3)
    # The transform really changes the kernel (the test would pass vacuously with identities).
    assert (k5 - w[:, :, 1:6, 1:6]).abs().max() > 1e-2
    assert (k3 - w[:, :, 2:5, 2:5]).abs().max() > 1e-2


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_forward_is_depthwise_conv_with_sliced_kernel(k, stride):
    conv = dw_conv(seed=2, stride=stride)
    x = torch.randn(2, 5, 9, 9, generator=gen(3))  # 5 of 8 channels active
    out = conv(x, k)
    expected = F.conv2d(x, reference_kernel(conv, k)[:5], None, stride, k // 2, 1, 5)
    assert out.shape == (2, 5, 9 // stride + 9 % stride, 9 // stride + 9 % stride)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("k", "with_grad"), [(3, {"7to5", "5to3"}), (5, {"7to5"}), (7, set())])
def test_transform_matrices_get_gradients_only_when_used(k, with_grad):
    conv = dw_conv(seed=4)
    x = torch.randn(2, C, 7, 7, generator=gen(5))
    conv(x, k).square().sum().backward()
    for name, m in conv.transforms.items():
        if name in with_grad:
            assert m.grad is not None and m.grad.abs().sum() > 0, name
        else:
            assert m.grad is None, name
    # Only the centre of the stored 7x7 weight is read: 5x5 for kernels 5 and 3 (3 is derived
    # from the transformed 5x5 kernel, which mixes all 25 entries), all of it for kernel 7.
    read = max(k, 5)
    grad = conv.weight.grad
    assert grad is not None
    assert centre(grad, read).abs().sum() > 0
    outer = grad.clone()
    centre(outer, read).zero_()
    assert outer.abs().max() == 0


def test_unknown_kernel_size_raises_value_error_naming_choices():
    conv = dw_conv()
    for bad in (4, 9, 1):
        with pytest.raises(ValueError, match=r"\(3, 5, 7\)"):
            conv.kernel(bad)
        with torch.no_grad(), pytest.raises(ValueError, match=str(bad)):
            conv(torch.randn(1, C, 5, 5), bad)


def test_single_kernel_size_has_no_transforms():
    conv = ElasticDepthwiseConv2d(4, (3,), stride=1)
    assert len(conv.transforms) == 0
    assert conv.kernel(3) is conv.weight


# --- the no-grad kernel cache ------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 5])
def test_no_grad_calls_return_the_cached_tensor(k):
    conv = dw_conv(seed=6)
    with torch.no_grad():
        a, b = conv.kernel(k), conv.kernel(k)
    assert a is b
    torch.testing.assert_close(a, reference_kernel(conv, k))
    # With gradients on, nothing is cached: every call builds a graph to the parameters.
    c, d = conv.kernel(k), conv.kernel(k)
    assert c is not d
    assert c.requires_grad and c.grad_fn is not None


@pytest.mark.parametrize("k", [3, 5, 7])
def test_cache_sees_optimizer_steps(k):
    conv = dw_conv(seed=7)
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    x = torch.randn(2, C, 7, 7, generator=gen(8))
    with torch.no_grad():
        stale = conv.kernel(k).clone()
    conv(x, 3).square().sum().backward()  # kernel 3 so every tensor gets a gradient
    opt.step()
    with torch.no_grad():
        fresh = conv.kernel(k)
        out = conv(x, k)
    assert (fresh - stale).abs().max() > 1e-3
    torch.testing.assert_close(fresh, reference_kernel(conv, k))
    torch.testing.assert_close(out, F.conv2d(x, reference_kernel(conv, k), None, 1, k // 2, 1, C))


def test_cache_sees_in_place_weight_and_matrix_updates():
    conv = dw_conv(seed=9)
    with torch.no_grad():
        first = conv.kernel(3).clone()
        conv.weight.add_(1.0)
        second = conv.kernel(3).clone()
        assert (second - first).abs().max() > 1e-3
        torch.testing.assert_close(second, reference_kernel(conv, 3))
        conv.transforms["5to3"].mul_(-2.0)
        third = conv.kernel(3)
        torch.testing.assert_close(third, -2.0 * second)
        conv.load_state_dict({k: v * 3 for k, v in conv.state_dict().items()})
        torch.testing.assert_close(conv.kernel(5), reference_kernel(conv, 5))


def test_cache_survives_inference_mode_then_training():
    conv = dw_conv(seed=10)
    x = torch.randn(1, C, 5, 5, generator=gen(11))
    with torch.inference_mode():
        a = conv(x, 5)
    with torch.no_grad():
        b = conv(x, 5)
    torch.testing.assert_close(a, b)
    conv(x, 5).sum().backward()
    assert conv.transforms["7to5"].grad is not None


def test_cache_follows_dtype_conversion():
    """``module.double()`` replaces ``weight.data`` without bumping ``weight._version``; a kernel
    cached before the conversion must not be served afterwards."""
    conv = dw_conv(seed=12)
    x = torch.randn(1, C, 5, 5, generator=gen(13))
    with torch.no_grad():
        conv(x, 5)
        conv.double()
        out = conv(x.double(), 5)
        kernel = conv.kernel(5)
    assert kernel.dtype == torch.float64
    assert out.dtype == torch.float64
    expected = F.conv2d(x.double(), reference_kernel(conv, 5), None, 1, 2, 1, C)
    torch.testing.assert_close(out, expected)


# --- dynamic batch norm ------------------------------------------------------------------------


def elastic_bn(n: int = 12, seed: int = 14, **kwargs) -> ElasticBatchNorm2d:
    bn = ElasticBatchNorm2d(n, **kwargs)
    g = gen(seed)
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(n, generator=g))
        bn.bias.copy_(torch.randn(n, generator=g))
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return bn


def test_bn_train_mode_updates_only_the_active_channels():
    bn = elastic_bn()
    mean0, var0 = bn.running_mean.clone(), bn.running_var.clone()
    x = 3.0 + 2.0 * torch.randn(4, 5, 6, 6, generator=gen(15))
    out = bn.train()(x)
    c, m = 5, bn.momentum
    batch_mean = x.mean((0, 2, 3))
    batch_var = x.var((0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_mean[:c], (1 - m) * mean0[:c] + m * batch_mean)
    torch.testing.assert_close(bn.running_var[:c], (1 - m) * var0[:c] + m * batch_var)
    torch.testing.assert_close(bn.running_mean[c:], mean0[c:], atol=0, rtol=0)
    torch.testing.assert_close(bn.running_var[c:], var0[c:], atol=0, rtol=0)
    assert bn.num_batches_tracked.item() == 1
    biased = x.var((0, 2, 3), unbiased=False)
    expected = (x - batch_mean[None, :, None, None]) / (biased[None, :, None, None] + bn.eps).sqrt()
    expected = expected * bn.weight[:c, None, None] + bn.bias[:c, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("c", [3, 12])
def test_bn_eval_mode_uses_sliced_running_stats(c):
    bn = elastic_bn().eval()
    x = torch.randn(2, c, 4, 4, generator=gen(16))
    mean0 = bn.running_mean.clone()
    expected = F.batch_norm(
        x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c], False, 0.1, bn.eps
    )
    torch.testing.assert_close(bn(x), expected.detach())
    torch.testing.assert_close(bn.running_mean, mean0, atol=0, rtol=0)
    assert bn.num_batches_tracked.item() == 0


def test_bn_cumulative_average_matches_batchnorm2d():
    """momentum=None: the active channels follow nn.BatchNorm2d's cumulative moving average."""
    bn = elastic_bn(momentum=None).train()
    ref = nn.BatchNorm2d(4, momentum=None).train()
    with torch.no_grad():
        ref.running_mean.copy_(bn.running_mean[:4])
        ref.running_var.copy_(bn.running_var[:4])
    g = gen(17)
    for _ in range(3):
        x = torch.randn(2, 4, 3, 3, generator=g) * 2 + 1
        bn(x)
        ref(x)
    torch.testing.assert_close(bn.running_mean[:4], ref.running_mean)
    torch.testing.assert_close(bn.running_var[:4], ref.running_var)
    assert bn.num_batches_tracked.item() == 3


def test_bn_gradients_reach_only_active_affine_entries():
    bn = elastic_bn().train()
    x = torch.randn(2, 5, 3, 3, generator=gen(18))
    (bn(x) * torch.randn(2, 5, 3, 3, generator=gen(19))).sum().backward()
    assert bn.weight.grad[:5].abs().min() > 0 and bn.bias.grad[:5].abs().min() > 0
    assert bn.weight.grad[5:].abs().max() == 0 and bn.bias.grad[5:].abs().max() == 0


# --- pointwise slicing and SE ------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_slicing(bias):
    conv = ElasticPointwiseConv2d(16, 24, bias=bias)
    with torch.no_grad():
        if bias:
            conv.bias.normal_(generator=gen(20))
    w, b = conv.sliced(10, 7)
    assert w.shape == (7, 10, 1, 1)
    assert w.data_ptr() == conv.weight.data_ptr()  # a view: gradients flow to the full tensor
    if bias:
        assert b is not None and b.shape == (7,)
        torch.testing.assert_close(b, conv.bias[:7])
    else:
        assert b is None
    x = torch.randn(2, 10, 3, 3, generator=gen(21))
    out = conv(x, 7)
    assert out.shape == (2, 7, 3, 3)
    torch.testing.assert_close(out, F.conv2d(x, conv.weight[:7, :10], b))
    assert conv(torch.randn(1, 16, 2, 2), 24).shape == (1, 24, 2, 2)


def test_squeeze_excite_follows_the_input_width():
    se = ElasticSqueezeExcite(64)
    assert ElasticSqueezeExcite.mid_channels(64) == make_divisible(16, 8) == 16
    assert ElasticSqueezeExcite.mid_channels(48) == 16  # 12 rounds up to 16
    assert se.reduce.weight.shape == (16, 64, 1, 1)
    with torch.no_grad():
        for p in se.parameters():
            p.normal_(generator=gen(22))
    x = torch.randn(2, 48, 3, 3, generator=gen(23))
    s = x.mean((2, 3), keepdim=True)
    s = torch.relu(F.conv2d(s, se.reduce.weight[:16, :48], se.reduce.bias[:16]))
    gate = F.hardsigmoid(F.conv2d(s, se.expand.weight[:48, :16], se.expand.bias[:48]))
    torch.testing.assert_close(se(x), x * gate)


# --- ElasticMBConv -----------------------------------------------------------------------------


def mbconv(cin: int, cout: int, stride: int = 1, use_se: bool = True) -> ElasticMBConv:
    return ElasticMBConv(
        cin,
        cout,
        kernel_sizes=(3, 5, 7),
        expand_ratios=(3, 4, 6),
        stride=stride,
        act="h_swish",
        use_se=use_se,
    )


@pytest.mark.parametrize(
    ("cin", "e", "mid"),
    [(16, 3, 48), (16, 6, 96), (24, 4, 96), (20, 3, 64), (12, 3, 40), (40, 6, 240), (10, 4, 40)],
)
def test_mid_channels_rounding(cin, e, mid):
    block = mbconv(cin, 16)
    assert block.mid_channels(e) == mid == make_divisible(round(cin * e), 8)
    assert mid % 8 == 0


def test_mbconv_allocates_the_largest_width():
    block = mbconv(20, 24)
    assert block.expand_conv.weight.shape == (120, 20, 1, 1)
    assert block.depthwise_conv.weight.shape == (120, 1, 7, 7)
    assert block.project_conv.weight.shape == (24, 120, 1, 1)
    assert block.se is not None and block.se.reduce.weight.shape == (32, 120, 1, 1)
    assert (block.active_kernel_size, block.active_expand_ratio) == (7, 6)
    assert mbconv(20, 24, use_se=False).se is None


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "residual"),
    [(16, 16, 1, True), (16, 16, 2, False), (16, 24, 1, False), (24, 16, 2, False)],
)
def test_residual_only_for_stride_1_and_same_width(cin, cout, stride, residual, randomize):
    block = randomize(mbconv(cin, cout, stride), seed=24).eval()
    assert block.use_residual is residual
    with torch.no_grad():  # zero the branch's last BN: output = shortcut only
        block.project_bn.weight.zero_()
        block.project_bn.bias.zero_()
    x = torch.randn(2, cin, 6, 6, generator=gen(25))
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, cout, 6 // stride, 6 // stride)
    if residual:
        torch.testing.assert_close(out, x, atol=0, rtol=0)
    else:
        assert out.abs().max() == 0


@pytest.mark.parametrize("use_se", [True, False])
@pytest.mark.parametrize(("k", "e"), [(3, 3), (5, 4), (7, 6), (3, 6), (7, 3)])
def test_mbconv_to_static_matches(k, e, use_se, randomize):
    block = randomize(mbconv(16, 16, 1, use_se=use_se), seed=26).eval()
    block.active_kernel_size, block.active_expand_ratio = k, e
    x = torch.randn(2, 16, 6, 6, generator=gen(27))
    with torch.no_grad():
        static = block.to_static(k, e).eval()
        out, ref = block(x), static(x)
    assert out.abs().max() > 1e-2
    torch.testing.assert_close(ref, out, atol=1e-5, rtol=1e-5)
    assert static.depthwise[0].weight.shape == (block.mid_channels(e), 1, k, k)


def test_mbconv_width_changes_output(randomize):
    """Different expand ratios really use different channel slices."""
    block = randomize(mbconv(16, 16), seed=28).eval()
    x = torch.randn(2, 16, 6, 6, generator=gen(29))
    outs = []
    with torch.no_grad():
        for e in (3, 4, 6):
            block.active_expand_ratio = e
            outs.append(block(x))
    assert (outs[0] - outs[1]).abs().max() > 1e-3
    assert (outs[1] - outs[2]).abs().max() > 1e-3
