"""8-bit frozen weights: k-means weight sharing (Deep Compression Sec. 3) that the layers really
store at one byte per weight, decode in forward and again in backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from tests.transfer.helpers import NUM_CLASSES, RESOLUTION
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import WSConv2d, standardize_weight
from supernet.transfer import (
    QuantizedConv2d,
    QuantizedLinear,
    build_transfer_model,
    kmeans_1d,
    quantization_errors,
    quantize_frozen_weights,
    trainable_parameter_names,
)


def test_kmeans_matches_scikit_learn_with_linear_init():
    values = torch.rand(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codebook, labels = kmeans_1d(values, 16)
    init = np.linspace(values.min().item(), values.max().item(), 16).reshape(-1, 1)
    ref = KMeans(16, init=init, n_init=1, tol=0, algorithm="lloyd").fit(values.numpy()[:, None])
    np.testing.assert_allclose(codebook.numpy(), ref.cluster_centers_.ravel(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(labels.numpy(), ref.labels_)


def test_a_value_on_a_midpoint_joins_the_lower_centroid():
    values = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)  # 1 is as far from 0 as from 2
    codebook, labels = kmeans_1d(values, 2)
    ref = KMeans(2, init=np.array([[0.0], [2.0]]), n_init=1, tol=0).fit(values.numpy()[:, None])
    assert codebook.tolist() == [0.5, 2.0] == sorted(ref.cluster_centers_.ravel().tolist())
    assert labels.tolist() == [0, 0, 1] == ref.labels_.tolist()


def test_centroids_start_linearly_between_min_and_max():
    values = torch.randn(500, generator=torch.Generator().manual_seed(1))
    codebook, labels = kmeans_1d(values, 8, max_iter=0)
    expected = torch.linspace(values.min().item(), values.max().item(), 8, dtype=torch.float64)
    torch.testing.assert_close(codebook, expected, rtol=0, atol=1e-12)
    nearest = (values.double()[:, None] - codebook).abs().argmin(1)
    assert torch.equal(labels, nearest)


def test_few_distinct_values_are_coded_exactly():
    values = torch.tensor([[0.5, -1.0], [0.5, 2.0]])
    codebook, labels = kmeans_1d(values, 256)
    assert codebook.tolist() == [-1.0, 0.5, 2.0]
    assert torch.equal(codebook[labels].float(), values)


@pytest.mark.parametrize("k", [0, 257])
def test_centroid_count_is_checked(k):
    with pytest.raises(ConfigError, match=f"num_centroids = {k}"):
        kmeans_1d(torch.randn(10), k)


def test_quantized_conv_holds_one_byte_per_weight():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=True)
    quantized = QuantizedConv2d(conv)
    assert isinstance(quantized, nn.Conv2d)
    assert {n for n, _ in quantized.named_parameters()} == {"bias"}
    assert quantized.weight_indices.dtype == torch.uint8
    assert quantized.weight_indices.shape == conv.weight.shape
    assert quantized.weight_codebook.dtype == torch.float32
    assert quantized.weight_codebook.numel() == 256
    assert set(quantized.state_dict()) == {"bias", "weight_indices", "weight_codebook"}
    error = (quantized.weight - conv.weight).abs().max().item()
    assert quantized.max_abs_error == pytest.approx(error)
    span = (conv.weight.max() - conv.weight.min()).item()
    assert 0 < error < span / 100
    assert not quantized.weight.requires_grad


def test_quantized_conv_decodes_in_forward_and_backward():
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, bias=True).double()
    quantized = QuantizedConv2d(conv)
    decoded = nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2, bias=True).double()
    with torch.no_grad():
        decoded.weight.copy_(quantized.weight)
        decoded.bias.copy_(conv.bias)
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        out = quantized(x)
    g = torch.randn(out.shape, dtype=torch.float64)
    out.backward(g)
    decoded(x_ref).backward(g)
    assert kept == []  # neither the input nor the decoded weight is kept
    torch.testing.assert_close(out, decoded(x_ref), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(quantized.bias.grad, decoded.bias.grad, rtol=1e-12, atol=1e-12)


def test_ws_conv_is_coded_after_standardization():
    conv = WSConv2d(8, 16, 3, padding=1, bias=False)
    quantized = QuantizedConv2d(conv)
    assert quantized.standardized
    torch.testing.assert_close(
        quantized.weight, standardize_weight(conv.weight), rtol=0, atol=quantized.max_abs_error
    )
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(quantized(x), F.conv2d(x, quantized.weight, padding=1))
    bound = quantized.max_abs_error * F.conv2d(x.abs(), torch.ones(1, 8, 3, 3), padding=1).max()
    torch.testing.assert_close(quantized(x), conv(x), rtol=0, atol=bound.item())


def test_quantized_linear():
    linear = nn.Linear(300, 4)
    quantized = QuantizedLinear(linear)
    x = torch.randn(3, 300)
    torch.testing.assert_close(quantized(x), F.linear(x, quantized.weight, linear.bias))
    assert quantized.max_abs_error < 1e-3


def test_only_frozen_layers_are_quantized(subnet, images, labels):
    g = torch.Generator().manual_seed(0)
    kw = {"resolution": RESOLUTION, "dropout": 0.0}
    plain = build_transfer_model(subnet, NUM_CLASSES, "tinytl-l+b", generator=g, **kw)
    g.manual_seed(0)
    model = build_transfer_model(
        subnet, NUM_CLASSES, "tinytl-l+b", quantize_frozen=True, generator=g, **kw
    )
    assert trainable_parameter_names(model) == trainable_parameter_names(plain)
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            frozen = ".lite_residual." not in name and name != "classifier"
            assert isinstance(m, (QuantizedConv2d, QuantizedLinear)) == frozen, name
    errors = quantization_errors(model)
    assert len(errors) == 16 and max(errors.values()) < 0.05  # every backbone conv
    torch.testing.assert_close(model.eval()(images), plain.eval()(images), rtol=0.05, atol=0.05)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = F.cross_entropy(model(images), labels).item()
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        opt.step()
    assert F.cross_entropy(model(images), labels).item() < before - 0.05


def test_quantize_frozen_weights_reports_errors_per_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1))
    model[0].weight.requires_grad_(False)
    errors = quantize_frozen_weights(model)
    assert list(errors) == ["0"]  # the trainable conv stays float
    assert isinstance(model[0], QuantizedConv2d) and type(model[2]) is nn.Conv2d
    assert errors == quantization_errors(model)
