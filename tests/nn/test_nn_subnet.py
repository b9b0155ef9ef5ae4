"""Subnet extraction: ``get_subnet(config)`` computes exactly what the supernet computes for
``config``, holds only plain (non-elastic) modules of the right size, and owns its weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv2d,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    ElasticSqueezeExcite,
    MBConv,
    MobileNetV3,
    create_supernet,
    fold_batchnorm,
)
from supernet.space import ArchConfig, SearchSpace, get_space, list_spaces, make_divisible

ELASTIC_TYPES = (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv2d,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    ElasticSqueezeExcite,
)
# Random configs per space (plus largest and smallest); presets not named here get a few.
N_RANDOM_CONFIGS = {"mbv3-tiny": 20, "ofa-mbv3": 20}
DEFAULT_N_RANDOM_CONFIGS = 2


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_subnet_params(space: SearchSpace, config: ArchConfig, num_classes: int) -> int:
    """Parameter count of ``config``'s subnet, from the space's widths alone."""
    c_in, stem, first = space.input_channels, space.stem_width, space.first_block_width
    total = c_in * stem * 9 + 2 * stem  # stem conv + BN
    total += stem * 9 + 2 * stem + stem * first + 2 * first  # first block: dw + BN, project + BN
    slot, in_ch = 0, first
    for stage, depth in zip(space.stages, config.depth, strict=True):
        for i in range(stage.max_depth):
            if i < depth:
                k, e, out = config.kernel_size[slot], config.expand_ratio[slot], stage.width
                mid = make_divisible(round(in_ch * e), 8)
                total += in_ch * mid + 2 * mid  # expand conv + BN
                total += mid * k * k + 2 * mid  # depthwise conv + BN
                if stage.use_se:
                    se_mid = make_divisible(mid // 4, 8)
                    total += 2 * mid * se_mid + se_mid + mid  # reduce, expand (with biases)
                total += mid * out + 2 * out  # project conv + BN
            in_ch = stage.width
            slot += 1
    total += in_ch * space.final_expand_width + 2 * space.final_expand_width
    total += space.final_expand_width * space.feature_mix_width
    total += space.feature_mix_width * num_classes + num_classes
    return total


@pytest.mark.parametrize("space_name", list_spaces())
def test_subnet_outputs_equal_supernet_outputs(space_name, randomize, calibrate):
    model = randomize(create_supernet(space_name), seed=1)
    space = model.space
    rng = np.random.default_rng(12345)
    n_random = N_RANDOM_CONFIGS.get(space_name, DEFAULT_N_RANDOM_CONFIGS)
    configs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n_random)]
    batch = 2 if space_name == "mbv3-tiny" else 1
    g = torch.Generator().manual_seed(7)
    param_counts = []
    for i, config in enumerate(configs):
        r = config.resolution
        x = torch.randn(batch, space.input_channels, r, r, generator=g)
        calibrate(model, config, x, seed=i)
        with torch.no_grad():
            model.set_active(config)
            out_super = model(x)
            sub = model.get_subnet(config).eval()
            out_sub = sub(x)

        assert out_super.shape == (batch, space.num_classes)
        assert out_sub.shape == out_super.shape
        assert out_super.std().item() > 1e-2, f"{config}: logits too small to compare"
        diff = (out_super - out_sub).abs().max().item()
        assert diff <= 1e-5, f"{space_name} {config}: subnet differs from supernet by {diff}"

        assert isinstance(sub, MobileNetV3)
        assert sub.config == config
        elastic = [type(m).__name__ for m in sub.modules() if isinstance(m, ELASTIC_TYPES)]
        assert not elastic, f"subnet still holds elastic modules {elastic}"
        assert not any(type(m).__name__.startswith("Elastic") for m in sub.modules())
        assert len(sub.blocks) == 1 + sum(config.depth)
        assert all(isinstance(b, MBConv) for b in sub.blocks)
        active = config.active_blocks(space.stage_max_depths)
        for b, slot in zip(sub.blocks[1:], active, strict=True):
            assert b.depthwise[0].kernel_size == (config.kernel_size[slot],) * 2

        count = n_params(sub)
        assert count == expected_subnet_params(space, config, model.num_classes), config
        param_counts.append(count)

    largest, smallest = param_counts[0], param_counts[1]
    assert smallest < min(param_counts[2:]) <= max(param_counts[2:]) < largest
    # The largest subnet holds every supernet weight except the kernel transformation matrices.
    n_transforms = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, ElasticDepthwiseConv2d)
        for p in m.transforms.values()
    )
    assert largest == n_params(model) - n_transforms


def test_input_changes_the_output(randomize, calibrate):
    """Guards the equivalence test against a network whose output ignores its input."""
    model = randomize(create_supernet("mbv3-tiny"), seed=1)
    config = model.space.smallest()
    x = torch.randn(
        2, 1, config.resolution, config.resolution, generator=torch.Generator().manual_seed(4)
    )
    calibrate(model, config, x)
    with torch.no_grad():
        out = model(x)
    assert (out[0] - out[1]).abs().max().item() > 1e-2


def test_subnet_matches_supernet_in_train_mode(randomize):
    """With batch statistics (train mode, no dropout), outputs and BN running-stat updates match."""
    model = randomize(create_supernet("mbv3-tiny", dropout=0.0), seed=2)
    space = model.space
    config = space.sample(np.random.default_rng(3))
    config = ArchConfig(28, config.kernel_size, config.expand_ratio, config.depth)
    model.set_active(config)
    model.train()
    sub = model.get_subnet(config)
    assert sub.training
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out_super, out_sub = model(x), sub(x)
    torch.testing.assert_close(out_sub, out_super, atol=1e-5, rtol=1e-5)
    slot = config.active_blocks(space.stage_max_depths)[0]
    mid = model.blocks[slot].mid_channels(config.expand_ratio[slot])
    torch.testing.assert_close(
        sub.blocks[1].expand[1].running_mean, model.blocks[slot].expand_bn.running_mean[:mid]
    )


def test_get_subnet_defaults_to_the_active_config():
    model = create_supernet("mbv3-tiny")
    config = model.space.sample(np.random.default_rng(0))
    model.set_active(config)
    assert model.get_subnet().config == config
    assert len(model.get_subnet().blocks) == 1 + sum(config.depth)


def test_subnet_owns_its_weights(randomize, calibrate):
    model = randomize(create_supernet("mbv3-tiny"), seed=3)
    space = model.space
    # Kernel 7 everywhere: the untransformed kernel is the supernet's weight tensor itself.
    for kernel in (7, 5):
        config = ArchConfig(
            28, (kernel,) * space.num_blocks, (6,) * space.num_blocks, (4,) * space.num_stages
        )
        x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(kernel))
        calibrate(model, config, x)
        with torch.no_grad():
            before = model(x)
            sub = model.get_subnet(config).eval()
            sub_before = sub(x)

            # Writes first: the stem, first block and head are copy-on-write copies, and reading
            # a mutable pointer (data_ptr) would make them real copies before any write.
            for p in sub.parameters():
                p.mul_(-1.5).add_(0.3)
            for name, b in sub.named_buffers():
                if name.endswith("running_mean"):
                    b.add_(1.0)
            after = model(x)
            sub_after = sub(x)

            super_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
            super_storages |= {b.untyped_storage().data_ptr() for b in model.buffers()}
            for t in [*sub.parameters(), *sub.buffers()]:
                assert t.untyped_storage().data_ptr() not in super_storages
        torch.testing.assert_close(after, before, atol=0, rtol=0)
        assert (sub_after - sub_before).abs().max().item() > 1e-3

        # ... and changing the supernet afterwards leaves an extracted subnet alone.
        sub2 = model.get_subnet(config).eval()
        with torch.no_grad():
            ref = sub2(x)
            for p in model.parameters():
                p.mul_(0.5)
            torch.testing.assert_close(sub2(x), ref, atol=0, rtol=0)


def _bad_configs(space: SearchSpace) -> list[ArchConfig]:
    good = space.largest()
    n, s = space.num_blocks, space.num_stages
    return [
        ArchConfig(good.resolution, (4, *good.kernel_size[1:]), good.expand_ratio, good.depth),
        ArchConfig(good.resolution, good.kernel_size, (*good.expand_ratio[:-1], 5), good.depth),
        ArchConfig(good.resolution, good.kernel_size, good.expand_ratio, (5,) * s),
        ArchConfig(good.resolution + 1, good.kernel_size, good.expand_ratio, good.depth),
        ArchConfig(good.resolution, (7,) * (n - 1), good.expand_ratio, good.depth),
    ]


@pytest.mark.parametrize("index", range(5))
def test_invalid_config_raises_config_error(index):
    model = create_supernet("mbv3-tiny")
    bad = _bad_configs(model.space)[index]
    active = model.active_config
    with pytest.raises(ConfigError):
        model.get_subnet(bad)
    with pytest.raises(ValueError, match="mbv3-tiny"):
        model.set_active(bad)
    assert model.active_config == active  # a rejected config leaves the supernet as it was
    assert [b.active_kernel_size for b in model.blocks] == list(active.kernel_size)


def test_static_block_param_count_by_hand():
    """Anchor for :func:`expected_subnet_params`: one block counted by hand."""
    model = create_supernet("mbv3-tiny")
    # stage 1, slot 0: in 16, e 6 -> mid 96, k 7, out 16, no SE
    assert n_params(model.blocks[0].to_static(7, 6)) == 16 * 96 + 96 * 49 + 96 * 16 + 2 * (
        96 + 96 + 16
    )
    # stage 2, slot 4: in 16, e 3 -> mid 48, k 3, out 24, SE hidden make_divisible(12, 8) = 16
    se = 48 * 16 + 16 + 16 * 48 + 48
    assert n_params(model.blocks[4].to_static(3, 3)) == 16 * 48 + 48 * 9 + se + 48 * 24 + 2 * (
        48 + 48 + 24
    )


@pytest.mark.parametrize("training", [True, False])
def test_repeated_extraction_tracks_the_supernet_and_shares_nothing(training):
    """Block skeletons are reused across extractions: every extraction must still hold real
    (not meta) copies of the supernet's current weights, in the supernet's mode."""
    model = create_supernet("mbv3-tiny").train(training)
    config = model.space.sample(np.random.default_rng(5))
    first = model.get_subnet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    second = model.get_subnet(config)
    for sub in (first, second):
        tensors = [*sub.parameters(), *sub.buffers()]
        assert not any(t.is_meta for t in tensors)
        assert all(m.training == training for m in sub.modules())
    fresh = create_supernet("mbv3-tiny").train(training)  # no cached skeletons or kernels
    fresh.load_state_dict(model.state_dict())
    expected = fresh.get_subnet(config).state_dict()
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        assert a.data_ptr() != b.data_ptr(), name
        assert not torch.equal(a, b), name  # the second extraction saw the update
    for name, value in second.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    # No module, and none of a module's containers (hooks, parameters, children), is shared.
    for a, b in zip(first.modules(), second.modules(), strict=True):
        assert a is not b and type(a) is type(b)
        for key, value in vars(a).items():
            if isinstance(value, (dict, set, list)):
                assert value is not vars(b)[key], (type(a).__name__, key)
    # A hook on one extraction's module is not seen by another's.
    calls = []
    first.blocks[1].depthwise[0].register_forward_hook(lambda *a: calls.append(1))
    second.eval()(torch.randn(1, 1, 28, 28))
    assert calls == []


def test_clone_module_copies_tensors_and_containers():
    from supernet.nn.elastic import clone_module

    src = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    src.register_buffer("scale", torch.ones(2))
    copy = clone_module(src, training=True)
    assert type(copy) is nn.Sequential and [type(m) for m in copy] == [type(m) for m in src]
    assert copy.training and all(m.training for m in copy) and not src.training
    for (name, a), (_, b) in zip(src.state_dict().items(), copy.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, msg=name)
        assert a.data_ptr() != b.data_ptr() or a.numel() == 0, name
    assert isinstance(copy[0].weight, nn.Parameter) and copy[0].weight.requires_grad
    copy[0].register_forward_hook(lambda *a: None)
    assert not src[0]._forward_hooks
    copy.add_module("extra", nn.Identity())
    assert "extra" not in src._modules


@pytest.mark.skipif(not hasattr(torch, "_lazy_clone"), reason="this torch has no _lazy_clone")
def test_fixed_parts_share_memory_until_either_side_writes():
    """Stem, first block and head are copy-on-write: no bytes copied at extraction, and a write
    on either side (optimizer step, BN statistics update, in-place edit) copies first."""
    model = create_supernet("mbv3-tiny").train()
    sub = model.get_subnet(model.space.smallest())
    fixed = ("stem", "first_block", "final_expand", "feature_mix", "classifier")
    sub_fixed = {name: getattr(sub, name) for name in fixed if name != "first_block"}
    sub_fixed["first_block"] = sub.blocks[0]
    for name in fixed:
        for a, b in zip(
            getattr(model, name).state_dict().values(),
            sub_fixed[name].state_dict().values(),
            strict=True,
        ):
            assert a.const_data_ptr() == b.const_data_ptr(), name  # shared until written
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}

    # A training step on the subnet: SGD writes its parameters, the forward its BN statistics.
    opt = torch.optim.SGD(sub.parameters(), lr=0.5)
    sub(
        torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    ).square().sum().backward()
    opt.step()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshot[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(sub.classifier.weight, model.classifier.weight)
    assert not torch.equal(sub.stem[1].running_mean, model.stem[1].running_mean)
    assert sub.classifier.weight.const_data_ptr() != model.classifier.weight.const_data_ptr()

    # A write to the supernet leaves an extracted subnet alone.
    second = model.get_subnet(model.space.smallest())
    kept = {k: v.clone() for k, v in second.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-2.0)
    for name, value in second.state_dict().items():
        torch.testing.assert_close(value, kept[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("enabled", [True, False])
def test_get_subnet_restores_the_garbage_collector_state(enabled):
    import gc

    model = create_supernet("mbv3-tiny").eval()
    space = model.space
    bad = dataclasses.replace(
        space.smallest(), kernel_size=(9,) * len(space.smallest().kernel_size)
    )
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        model.get_subnet(space.smallest())
        assert gc.isenabled() is enabled
        with pytest.raises(ConfigError):
            model.get_subnet(bad)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_cyclic_gc_paused_reenables_after_an_error():
    import gc

    from supernet.nn.elastic import cyclic_gc_paused

    seen = []

    def build() -> None:
        with cyclic_gc_paused():
            seen.append(gc.isenabled())
            raise RuntimeError("boom")

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"):
        build()
    assert seen == [False] and gc.isenabled()


def test_no_collection_walks_a_subnet_that_get_subnet_is_building():
    # Every tracked allocation may start a collection (threshold 1): none may happen inside the
    # pause, and none after it while get_subnet still runs (a generator-based pause or a
    # no_grad decorator allocates after re-enabling the collector). Once get_subnet has
    # returned, the next allocation does start one, and it sees the subnet's blocks.
    import gc

    from supernet.nn.blocks import MBConv

    model = create_supernet("mbv3-tiny").eval()
    config = model.space.sample(np.random.default_rng(0))
    extract = model.get_subnet
    saw_blocks: list[bool] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            saw_blocks.append(any(type(o) is MBConv for o in gc.get_objects(generation=0)))

    was_enabled, threshold = gc.isenabled(), gc.get_threshold()
    gc.collect()  # MBConvs of earlier tests leave generation 0
    gc.callbacks.append(watch)
    try:
        gc.enable()
        gc.set_threshold(1, 10, 10)
        subnet = extract(config)
        during = len(saw_blocks)
        later = [[] for _ in range(3)]  # tracked allocations: collections start
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(watch)
        gc.enable() if was_enabled else gc.disable()
    assert not any(saw_blocks[:during])
    assert any(saw_blocks[during:]) and later and isinstance(subnet.blocks[1], MBConv)


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_fold_batchnorm_keeps_the_outputs_and_removes_every_batchnorm(randomize, norm):
    space = get_space("mbv3-tiny", num_classes=10)
    model = randomize(create_supernet(space, norm=norm), seed=3)
    config = space.sample(np.random.default_rng(2))
    subnet = model.get_subnet(config).eval()
    x = torch.randn(8, 1, config.resolution, config.resolution)
    with torch.no_grad():
        before = subnet(x)
        n_convs_with_bias = sum(
            isinstance(m, nn.Conv2d) and m.bias is not None for m in subnet.modules()
        )
        assert fold_batchnorm(subnet) is subnet
        after = subnet(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in subnet.modules())
    biased = sum(isinstance(m, nn.Conv2d) and m.bias is not None for m in subnet.modules())
    if norm == "bn":
        assert batchnorms == 0 and biased > n_convs_with_bias
    else:  # group norm keeps no running statistics: nothing to fold
        assert biased == n_convs_with_bias
        assert any(isinstance(m, nn.GroupNorm) for m in subnet.modules())


def test_fold_batchnorm_refuses_a_module_in_training_mode():
    space = get_space("mbv3-tiny")
    subnet = create_supernet(space).get_subnet(space.smallest()).train()
    with pytest.raises(ValueError, match=r"eval mode"):
        fold_batchnorm(subnet)
    assert any(isinstance(m, nn.BatchNorm2d) for m in subnet.modules())
