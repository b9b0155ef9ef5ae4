"""Static subnets' depthwise convs take the supernet's fast weight gradient (issue 26, part 6)
and stay plain ``nn.Conv2d`` for state_dict, TorchScript, BN folding and export."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from supernet.nn import create_supernet
from supernet.nn.blocks import DepthwiseConv2d, WSDepthwiseConv2d, fold_batchnorm
from supernet.space import get_space


@pytest.mark.parametrize(("k", "stride", "hw"), [(7, 1, 4), (7, 2, 8), (5, 1, 4), (3, 1, 2)])
@pytest.mark.parametrize("cls", [DepthwiseConv2d, WSDepthwiseConv2d])
def test_fast_depthwise_matches_plain_conv_outputs_and_gradients(k, stride, hw, cls):
    torch.manual_seed(k + stride)
    fast = cls(6, 6, k, stride=stride, padding=k // 2, groups=6, bias=False)
    plain = nn.Conv2d(6, 6, k, stride=stride, padding=k // 2, groups=6, bias=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(5, 6, hw, hw, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    w_plain = plain.weight
    if cls is WSDepthwiseConv2d:
        from supernet.nn.blocks import standardize_weight

        out_plain = plain._conv_forward(x2, standardize_weight(w_plain), None)
    else:
        out_plain = plain(x2)
    out_fast = fast(x)
    assert out_fast.grad_fn is not None
    if cls is DepthwiseConv2d and k in (5, 7):  # where the dense gradient is used
        assert "DenseGradDepthwise" in type(out_fast.grad_fn).__name__
    torch.testing.assert_close(out_fast, out_plain)
    g = torch.randn_like(out_plain)
    out_fast.backward(g)
    out_plain.backward(g)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x.grad, x2.grad)


def test_extracted_subnets_use_it_and_keep_conv2d_state_dict_keys():
    space = get_space("mbv3-tiny")
    subnet = create_supernet(space).get_subnet(space.largest()).eval()
    dw = [m for m in subnet.modules() if isinstance(m, DepthwiseConv2d)]
    convs = [m for m in subnet.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert dw and len(dw) == len(convs)
    plain = copy.deepcopy(subnet)
    for m in plain.modules():
        for name, child in m.named_children():
            if isinstance(child, DepthwiseConv2d):
                c = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size,
                              child.stride, child.padding, groups=child.groups,
                              bias=False)  # fmt: skip
                c.load_state_dict(child.state_dict())
                setattr(m, name, c)
    assert list(plain.state_dict()) == list(subnet.state_dict())
    x = torch.randn(2, 1, 32, 32)
    scripted = torch.jit.script(subnet)
    with torch.no_grad():
        torch.testing.assert_close(subnet(x), plain(x))
        torch.testing.assert_close(scripted(x), plain(x))
        folded = fold_batchnorm(copy.deepcopy(subnet))
        torch.testing.assert_close(folded(x), plain(x), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_traced_forward_is_a_plain_convolution():
    conv = DepthwiseConv2d(4, 4, 7, padding=3, groups=4, bias=False)
    traced = torch.jit.trace(conv, torch.randn(2, 4, 4, 4))
    kinds = {n.kind() for n in traced.graph.nodes()}
    assert "aten::_convolution" in kinds or "aten::conv2d" in kinds
    assert not any("PythonOp" in k for k in kinds)
