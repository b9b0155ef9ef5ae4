"""Deep Compression: pruning, weight sharing, centroid fine-tuning and the subnet.dc file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from supernet.compress.context import _finetune, rebuild_subnet
from supernet.compress.dcfile import load_dc, save_dc
from supernet.compress.deep_compression import (
    choose_quality,
    compressible_layers,
    fp32_state_dict_bytes,
    magnitude_prune,
    parse_ratio,
    share_weights,
)
from supernet.errors import CheckpointError, ConfigError
from supernet.space import get_space

REBUILD = {"space": "mbv3-tiny", "num_classes": 10, "norm": "bn", "dropout": 0.0}


def _subnet():
    torch.manual_seed(0)
    arch = get_space("mbv3-tiny").smallest().to_dict()
    return rebuild_subnet(REBUILD, arch), arch


def _batches(res, n_classes=10, batch=8):
    def gen(n):
        g = torch.Generator().manual_seed(1)
        for _ in range(n):
            yield torch.randn(batch, 1, res, res, generator=g), torch.randint(
                0, n_classes, (batch,), generator=g)  # fmt: skip

    return gen


def test_kmeans_shares_exactly_k_values_per_layer_and_keeps_pruned_zeros():
    model, _ = _subnet()
    magnitude_prune(model, 0.8)
    masks = [layer.module.weight_mask.clone() for layer in compressible_layers(model)]
    share_weights(model, bits=3)
    for layer, mask in zip(compressible_layers(model), masks, strict=True):
        w = layer.module.weight.detach()
        assert torch.equal(w[mask == 0], torch.zeros_like(w[mask == 0]))
        kept = w[mask.bool()]
        assert len(torch.unique(kept)) == min(8, int(mask.sum()))


def test_a_coded_budget_prunes_less_and_the_real_file_meets_it(tmp_path):
    """Counting Huffman's gain keeps more weights for the same ratio, and the estimate holds:
    the subnet.dc written right after pruning and sharing is within 1% of the budget."""
    model, arch = _subnet()
    fp32 = fp32_state_dict_bytes(model)
    kept = {}
    for stage in ("quantized", "coded"):
        trial = rebuild_subnet(REBUILD, arch)
        trial.load_state_dict(model.state_dict())
        quality, est = choose_quality(trial, 6.0, 5, fp32, stage=stage)
        magnitude_prune(trial, quality)
        layers = compressible_layers(trial)
        kept[stage] = sum(int(layer.module.weight_mask.sum()) for layer in layers)
        share_weights(trial, bits=5)
        info = save_dc(tmp_path / f"{stage}.dc", trial, arch=arch, rebuild=REBUILD)
        if stage == "coded":
            assert info["file_bytes"] <= fp32 / 6.0 * 1.01
            assert est["coded"] == pytest.approx(info["file_bytes"], rel=0.03)
        else:
            assert est["quantized"] <= fp32 / 6.0 < info["file_bytes"] * 6.0
    assert kept["coded"] > 1.2 * kept["quantized"]
    with pytest.raises(ConfigError, match="stage = 'huffman'"):
        choose_quality(model, 6.0, 5, fp32, stage="huffman")


def test_linear_initialisation_spans_min_to_max():
    from supernet.compress.deep_compression import _kmeans_1d

    values = np.r_[np.full(50, -1.0), np.linspace(-0.2, 0.2, 20), np.full(50, 2.0)]
    centroids, labels = _kmeans_1d(values, 4, seed=0)
    assert centroids.min() == pytest.approx(-1.0) and centroids.max() == pytest.approx(2.0)
    assert len(np.unique(labels)) == 4


def test_pruning_masks_survive_fine_tuning():
    model, arch = _subnet()
    magnitude_prune(model, 1.0)
    layers = compressible_layers(model)
    before = [layer.module.weight.detach().clone() for layer in layers]
    _finetune(model, 3, _batches(arch["resolution"]), lr=0.05, progress=None)
    changed = False
    for layer, w0 in zip(layers, before, strict=True):
        mask = layer.module.weight_mask.bool()
        w = layer.module.weight.detach()
        assert torch.count_nonzero(w[~mask]) == 0
        changed |= not torch.equal(w[mask], w0[mask])
    assert changed  # the kept weights did train


def test_centroid_fine_tuning_moves_centroids_not_the_sharing():
    model, arch = _subnet()
    magnitude_prune(model, 0.8)
    share_weights(model, bits=2)
    layer = compressible_layers(model)[3].module
    shared = layer.parametrizations["weight"][0]
    index, codebook = shared.index.clone(), shared.codebook.detach().clone()
    # the codebook's gradient is the sum of its weights' gradients (arXiv 1510.00149, Sec. 3.3)
    model.train()
    x, y = next(_batches(arch["resolution"])(1))
    model.zero_grad()
    with parametrize.cached():  # one weight tensor for the forward, to read its gradient
        weight = layer.weight
        weight.retain_grad()
        nn.functional.cross_entropy(model(x), y).backward()
    expected = torch.zeros(len(codebook) + 1).index_add_(0, index.view(-1), weight.grad.view(-1))
    torch.testing.assert_close(shared.codebook.grad, expected[:-1])
    _finetune(model, 2, _batches(arch["resolution"]), lr=0.05, progress=None)
    assert torch.equal(shared.index, index)
    assert not torch.equal(shared.codebook.detach(), codebook)
    assert len(torch.unique(layer.weight.detach())) <= 5  # 4 centroids + the pruned zero


def test_subnet_dc_round_trip_gives_the_same_outputs(tmp_path):
    model, arch = _subnet()
    magnitude_prune(model, 1.2)
    share_weights(model, bits=4)
    model.eval()
    info = save_dc(tmp_path / "subnet.dc", model, arch=arch, rebuild=REBUILD)
    assert info["file_bytes"] == (tmp_path / "subnet.dc").stat().st_size
    decoded = load_dc(tmp_path / "subnet.dc")
    x = torch.randn(4, 1, arch["resolution"], arch["resolution"])
    with torch.no_grad():
        assert torch.equal(decoded(x), model(x))
    assert not any("parametrizations" in k for k in decoded.state_dict())


@pytest.mark.parametrize("where", ["flip", "truncate", "magic"])
def test_a_corrupt_subnet_dc_is_refused(tmp_path, where):
    model, arch = _subnet()
    magnitude_prune(model, 1.0)
    share_weights(model, bits=3)
    path = tmp_path / "subnet.dc"
    save_dc(path, model, arch=arch, rebuild=REBUILD)
    data = bytearray(path.read_bytes())
    if where == "flip":
        data[len(data) // 2] ^= 0x10
    elif where == "truncate":
        data = data[:-100]
    else:
        data[:4] = b"ZZZZ"
    path.write_bytes(bytes(data))
    message = {"flip": "checksum", "truncate": "checksum", "magic": "not a subnet.dc"}[where]
    with pytest.raises(CheckpointError, match=message):
        load_dc(path)


def test_an_unknown_layer_type_is_named_with_the_supported_ones():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.alpha = nn.Parameter(torch.ones(1))

    model = nn.Sequential(nn.Conv2d(1, 4, 3), Scale())
    with pytest.raises(ConfigError, match=r"layer '1' of type Scale .* Conv2d, Linear"):
        compressible_layers(model)


def test_budget_ratio_parsing():
    assert parse_ratio("10x") == 10.0
    assert parse_ratio(None) is None
    with pytest.raises(ConfigError, match="'50%' is not allowed for deep-compression"):
        parse_ratio("50%")
