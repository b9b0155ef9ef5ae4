"""Dense depthwise weight gradient: same gradients as ``F.conv2d``, used only where chosen."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supernet.nn import ElasticDepthwiseConv2d
from supernet.nn.depthwise import (
    dense_weight_grad,
    depthwise_conv2d,
    set_dense_weight_grad,
    uses_dense_weight_grad,
)

# (N, C, H, W, kernel, stride): square and not, odd and even sizes, stride 1 and 2, 1x1 maps.
SHAPES = [
    (8, 16, 4, 4, 7, 1),
    (8, 16, 8, 8, 7, 2),
    (4, 8, 5, 3, 5, 1),
    (4, 8, 2, 2, 3, 1),
    (3, 6, 7, 5, 7, 2),
    (2, 4, 1, 1, 7, 1),
    (5, 3, 6, 6, 5, 2),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_weight_grad_equals_conv2d_weight(shape, channels_last):
    n, c, h, w, k, s = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=gen)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    weight = torch.randn(c, 1, k, k, dtype=torch.float64, generator=gen)
    g = torch.randn_like(F.conv2d(x, weight, None, s, k // 2, 1, c))
    expected = torch.nn.grad.conv2d_weight(x, weight.shape, g, stride=s, padding=k // 2, groups=c)
    got = dense_weight_grad(x, g, k, s, k // 2)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(16, 32, 4, 4, 7, 1), (16, 24, 8, 8, 7, 2), (8, 32, 4, 4, 5, 1)])
def test_depthwise_conv2d_matches_f_conv2d_values_and_gradients(shape):
    n, c, h, w, k, s = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen).to(memory_format=torch.channels_last)
    weight = torch.randn(c, 1, k, k, generator=gen)
    grads = {}
    for name, fn in (("dense", depthwise_conv2d), ("native", None)):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        if fn is None:
            y = F.conv2d(xi, wi, None, s, k // 2, 1, c)
        else:
            assert uses_dense_weight_grad(xi, wi)
            y = fn(xi, wi, s, k // 2)
        y.backward(torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view_as(y))
        grads[name] = (y.detach(), xi.grad, wi.grad)
    for got, expected in zip(grads["dense"], grads["native"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_native_path_where_dense_is_not_chosen():
    x = torch.randn(2, 8, 16, 16)
    w7 = torch.randn(8, 1, 7, 7, requires_grad=True)
    w3 = torch.randn(8, 1, 3, 3, requires_grad=True)
    small = torch.randn(2, 8, 4, 4)
    assert not uses_dense_weight_grad(x, w7)  # 16x16 map: oneDNN is faster
    assert not uses_dense_weight_grad(small, w3)  # 3x3: oneDNN's fast path
    assert uses_dense_weight_grad(small, w7)
    assert not uses_dense_weight_grad(small, w7.detach())  # no weight gradient
    assert not uses_dense_weight_grad(small.double(), w7.double())
    with torch.no_grad():
        assert not uses_dense_weight_grad(small, w7)
    previous = set_dense_weight_grad(False)
    try:
        assert previous is True
        assert not uses_dense_weight_grad(small, w7)
        y = depthwise_conv2d(small, w7, 1, 3)
        assert y.grad_fn is not None and "Dense" not in type(y.grad_fn).__name__
    finally:
        set_dense_weight_grad(previous)
    y = depthwise_conv2d(small, w7, 1, 3)
    assert "Dense" in type(y.grad_fn).__name__


def test_elastic_depthwise_gradients_reach_weight_and_kernel_transforms():
    """Through the kernel transformation matrices (kernel 5 and 3 are transforms of the 7x7
    weight), the dense path gives the same gradients as the native one."""
    torch.manual_seed(0)
    conv = ElasticDepthwiseConv2d(24, (3, 5, 7), stride=1)
    with torch.no_grad():
        for t in conv.transforms.values():
            t.add_(0.05 * torch.randn_like(t))
    x = torch.randn(8, 16, 4, 4).to(memory_format=torch.channels_last)
    for kernel in (7, 5):
        grads = []
        for enabled in (True, False):
            previous = set_dense_weight_grad(enabled)
            try:
                conv.zero_grad(set_to_none=True)
                conv(x, kernel).square().sum().backward()
            finally:
                set_dense_weight_grad(previous)
            grads.append([p.grad.clone() for p in conv.parameters() if p.grad is not None])
        assert len(grads[0]) == len(grads[1]) >= 1
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert grads[0][0].abs().sum() > 0
