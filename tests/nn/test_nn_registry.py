"""Supernet registry, the elastic state set by ``set_active``, and a training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from supernet.errors import ConfigError
from supernet.nn import OFAMobileNetV3, create_supernet, list_supernets, register_supernet
from supernet.nn import registry as registry_module
from supernet.space import ArchConfig, get_space, list_spaces


def with_depth(config: ArchConfig, depth: int) -> ArchConfig:
    return ArchConfig(
        config.resolution, config.kernel_size, config.expand_ratio, (depth,) * len(config.depth)
    )


# --- registry ------------------------------------------------------------------------------------


def test_create_by_space_name():
    model = create_supernet("mbv3-tiny")
    assert isinstance(model, OFAMobileNetV3)
    assert model.space == get_space("mbv3-tiny")
    assert len(model.blocks) == model.space.num_blocks == 20
    assert model.classifier.out_features == 10
    assert model.active_config == model.space.largest()
    x = torch.randn(2, 1, 28, 28)
    assert model.eval()(x).shape == (2, 10)


def test_create_by_search_space_object():
    space = get_space("mbv3-tiny", num_classes=7)
    model = create_supernet(space, dropout=0.0)
    assert model.space is space
    assert model.classifier.out_features == 7
    assert model.dropout.p == 0.0
    assert model.eval()(torch.randn(2, 1, 20, 20)).shape == (2, 7)
    assert create_supernet("mbv3-tiny", num_classes=3).classifier.out_features == 3


def test_known_families():
    assert "ofa-mbv3" in list_supernets()
    assert list_supernets() == sorted(list_supernets())


def test_unknown_family_raises_config_error_listing_families():
    with pytest.raises(ConfigError, match="ofa-mbv3") as info:
        create_supernet("mbv3-tiny", family="no-such-family")
    assert "no-such-family" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_space_raises_config_error_listing_spaces():
    with pytest.raises(ConfigError) as info:
        create_supernet("no-such-space")
    message = str(info.value)
    assert "no-such-space" in message
    for name in list_spaces():
        assert name in message


def test_bad_dropout_raises_config_error():
    with pytest.raises(ConfigError, match="dropout"):
        create_supernet("mbv3-tiny", dropout=1.0)


def test_register_supernet(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    calls = []

    def builder(space, **kwargs):
        calls.append((space.name, kwargs))
        return torch.nn.Identity()

    register_supernet("test-family", builder)
    assert "test-family" in list_supernets()
    assert isinstance(create_supernet("mbv3-tiny", family="test-family", x=1), torch.nn.Identity)
    assert calls == [("mbv3-tiny", {"x": 1})]
    with pytest.raises(ConfigError, match="test-family"):
        register_supernet("test-family", builder)
    with pytest.raises(ConfigError, match="ofa-mbv3"):
        register_supernet("ofa-mbv3", builder)


# --- set_active --------------------------------------------------------------------------------


def test_set_active_sets_every_block():
    model = create_supernet("mbv3-tiny")
    config = model.space.sample(np.random.default_rng(40))
    model.set_active(config)
    assert model.active_config == config
    assert [b.active_kernel_size for b in model.blocks] == list(config.kernel_size)
    assert [b.active_expand_ratio for b in model.blocks] == list(config.expand_ratio)


def test_depth_changes_which_blocks_run(randomize, calibrate):
    model = randomize(create_supernet("mbv3-tiny"), seed=41)
    base = model.space.sample(np.random.default_rng(42))
    shallow, deep = with_depth(base, 2), with_depth(base, 4)
    x = torch.randn(
        2, 1, base.resolution, base.resolution, generator=torch.Generator().manual_seed(44)
    )
    calibrate(model, deep, x)
    with torch.no_grad():
        model.set_active(shallow)
        out_shallow = model(x)
        model.set_active(deep)
        out_deep = model(x)
    assert (out_shallow - out_deep).abs().max() > 1e-3

    # Only the first two blocks of each stage run: the others' parameters get no gradient.
    model.train()
    model.set_active(shallow)
    model(x).sum().backward()
    active = set(shallow.active_blocks(model.space.stage_max_depths))
    assert len(active) == 2 * model.space.num_stages
    for i, block in enumerate(model.blocks):
        grads = [p.grad for p in block.parameters()]
        if i in active:
            assert block.project_conv.weight.grad is not None, i
        else:
            assert all(g is None for g in grads), f"inactive block {i} got a gradient"


def test_forward_hooks_see_only_active_blocks():
    model = create_supernet("mbv3-tiny").eval()
    config = model.space.sample(np.random.default_rng(43))
    ran = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda m, inp, out, i=i: ran.append(i))
    model.set_active(config)
    with torch.no_grad():
        model(torch.randn(1, 1, 20, 20))
    assert ran == config.active_blocks(model.space.stage_max_depths)


# --- training step -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_step_reaches_every_active_parameter(seed, randomize):
    model = randomize(create_supernet("mbv3-tiny", dropout=0.0), seed=50 + seed)
    space = model.space
    config = space.sample(np.random.default_rng(seed))
    model.set_active(config)
    model.train()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, config.resolution, config.resolution, generator=g)
    y = torch.tensor([1, 7])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)

    for name in ("stem", "first_block", "final_expand", "feature_mix", "classifier"):
        for pname, p in getattr(model, name).named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"

    active = set(config.active_blocks(space.stage_max_depths))
    for i, block in enumerate(model.blocks):
        if i not in active:
            assert all(p.grad is None for p in block.parameters()), i
            continue
        k, mid = config.kernel_size[i], block.mid_channels(config.expand_ratio[i])
        used_transforms = {"7to5", "5to3"} if k == 3 else {"7to5"} if k == 5 else set()
        for pname, p in block.named_parameters():
            if pname.startswith("depthwise_conv.transforms."):
                if pname.rsplit(".", 1)[1] in used_transforms:
                    assert p.grad is not None and p.grad.abs().sum() > 0, (i, pname)
                else:
                    assert p.grad is None, (i, pname)
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, (i, pname)
        # Channels beyond the active width get exactly zero gradient.
        assert block.expand_conv.weight.grad[mid:].abs().sum() == 0
        assert block.expand_conv.weight.grad[:mid].abs().sum(dim=(1, 2, 3)).min() > 0
        assert block.depthwise_bn.weight.grad[mid:].abs().sum() == 0
        assert block.project_conv.weight.grad[:, mid:].abs().sum() == 0

    opt.step()
    with torch.no_grad():
        new_loss = F.cross_entropy(model(x), y)
    assert new_loss < loss.detach()
