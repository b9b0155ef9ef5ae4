"""Group norm + weight standardization (``norm="gn"``, TinyTL's batch-1 setting) in the supernet:
which layers get which norm, group counts on the active widths, standardized active weights,
subnet extraction in eval and train mode, function-preserving channel sorting for both norms, and
a short training run."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernet.data import BatchLoader, load_digits, resize
from supernet.errors import ConfigError
from supernet.nn import (
    NORMS,
    ConvBNAct,
    ElasticDepthwiseConv2d,
    ElasticGroupNorm,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    MBConv,
    SqueezeExcite,
    WSConv2d,
    channel_order,
    create_supernet,
    group_norm_groups,
    make_elastic_norm,
    mbconv_mid_channels,
    sort_channels,
    standardize_weight,
)
from supernet.nn.blocks import DepthwiseConv2d, WSDepthwiseConv2d
from supernet.space import ArchConfig, get_space, list_spaces
from supernet.train import calibration_loader, evaluate_subnet, load_run, recalibrate_bn, train
from supernet.train.trainer import build_supernet

WS_EPS = 1e-5  # standardize_weight's default


def elastic_blocks(model: nn.Module) -> list[ElasticMBConv]:
    return [m for m in model.modules() if isinstance(m, ElasticMBConv)]


def inputs(space, config: ArchConfig, batch: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = config.resolution
    return torch.randn(batch, space.input_channels, r, r, generator=g, dtype=dtype)


# --- construction -------------------------------------------------------------------------------
BAD_BLOCK = dict(in_channels=16, out_channels=16, kernel_sizes=(3,), expand_ratios=(3,), stride=1,
                 act="relu", use_se=False, norm="ln")  # fmt: skip


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_supernet("mbv3-tiny", norm="ln"),
        lambda: ElasticMBConv(**BAD_BLOCK),
        lambda: make_elastic_norm("ln", 16),
    ],
)
def test_unknown_norm_is_a_config_error_naming_the_choices(build):
    with pytest.raises(ConfigError) as info:
        build()
    assert "'ln'" in str(info.value) and str(NORMS) in str(info.value)


@pytest.mark.parametrize("norm", NORMS)
def test_convs_followed_by_a_norm_are_standardized_only_with_group_norm(norm):
    gn = norm == "gn"
    model = create_supernet("mbv3-tiny", norm=norm)
    conv_type = WSConv2d if gn else nn.Conv2d
    for conv in (model.stem[0], model.first_block.project[0], model.final_expand[0]):
        assert type(conv) is conv_type
    # depthwise convs get the fast weight gradient: the same standardization, a subclass
    depthwise = WSDepthwiseConv2d if gn else DepthwiseConv2d
    assert type(model.first_block.depthwise[0]) is depthwise
    assert type(model.feature_mix[0]) is nn.Conv2d  # no norm after it
    for block in elastic_blocks(model):
        for conv in (block.expand_conv, block.depthwise_conv, block.project_conv):
            assert conv.standardize is gn
        if block.se is not None:
            assert not block.se.reduce.standardize and not block.se.expand.standardize
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    has_gn = any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert (has_bn, has_gn) == (not gn, gn)

    subnet = model.get_subnet(model.space.smallest())
    for m in subnet.modules():
        if isinstance(m, ConvBNAct):
            c = m[0]
            assert type(c) is (depthwise if c.groups == c.in_channels > 1 else conv_type)
            assert isinstance(m[1], nn.GroupNorm if gn else nn.BatchNorm2d)
        if isinstance(m, SqueezeExcite):
            assert type(m.reduce) is nn.Conv2d and type(m.expand) is nn.Conv2d
    assert any(isinstance(m, nn.BatchNorm2d) for m in subnet.modules()) is not gn


@pytest.mark.parametrize("norm", NORMS)
def test_gn_residual_blocks_start_as_the_identity(norm):
    """Zero-γ for group norm only: batch-norm supernets keep Once-for-All's initialization."""
    model = create_supernet("mbv3-tiny", norm=norm)
    blocks = [model.first_block, *model.blocks]
    lasts = [model.first_block.project[1]] + [b.project_bn for b in model.blocks]
    assert sum(b.use_residual for b in blocks) > 10
    for block, last in zip(blocks, lasts, strict=True):
        zero = block.use_residual and norm == "gn"
        assert torch.all(last.weight == (0.0 if zero else 1.0))
    x = torch.randn(2, 16, 7, 7)  # the first block and stage 1 take 16 channels
    sixteen = [model.first_block] + [b for b in model.blocks if b.in_channels == 16]
    for block in (b for b in sixteen if b.use_residual):
        with torch.no_grad():
            assert torch.equal(block(x), x) is (norm == "gn")


# --- group counts -------------------------------------------------------------------------------
def test_group_count_rule():
    """8 channels per group where the width allows, else the largest divisor <= 8."""
    expected = {8: 1, 16: 2, 24: 3, 960: 120, 12: 2, 20: 4, 9: 3, 7: 1, 1: 1}
    assert {c: group_norm_groups(c) for c in expected} == expected


@pytest.mark.parametrize("space_name", list_spaces())
def test_every_active_hidden_width_is_whole_groups_of_8(space_name):
    """The claim channel sorting and elastic group norm rely on: every hidden width a block can
    take is a multiple of 8, so its groups are the first groups of the block's full width."""
    space = get_space(space_name)
    model = create_supernet(space, norm="gn")
    widths = {space.stem_width, space.first_block_width, space.final_expand_width}
    for block in elastic_blocks(model):
        widths.add(block.out_channels)
        for e in space.expand_ratios:
            mid = mbconv_mid_channels(block.in_channels, e)
            assert mid % 8 == 0 and group_norm_groups(mid) == mid // 8
            widths.add(mid)
        assert block.expand_bn.num_groups == block.expand_bn.num_channels // 8
    assert all(c % 8 == 0 and group_norm_groups(c) == c // 8 for c in widths), widths
    subnet = model.get_subnet(space.smallest())
    for m in subnet.modules():
        if isinstance(m, nn.GroupNorm):
            assert m.num_groups == m.num_channels // 8


def test_elastic_group_norm_on_a_prefix_keeps_the_full_widths_groups():
    g = torch.Generator().manual_seed(0)
    norm = ElasticGroupNorm(48)
    with torch.no_grad():
        norm.weight.copy_(0.5 + torch.rand(48, generator=g))
        norm.bias.copy_(0.2 * torch.randn(48, generator=g))
    assert norm.num_groups == 6
    x = 1.0 + 2.0 * torch.randn(2, 48, 5, 5, generator=g)
    full = norm(x)
    for c in (8, 16, 24, 32, 40, 48):
        static = nn.GroupNorm(c // 8, c)
        with torch.no_grad():
            static.weight.copy_(norm.weight[:c])
            static.bias.copy_(norm.bias[:c])
        out = norm(x[:, :c])
        torch.testing.assert_close(out, static(x[:, :c]), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(out, full[:, :c], atol=1e-6, rtol=1e-6)
    # A width that is not whole groups of 8 gets its own groups (12 → 2 groups of 6), which are
    # not the full width's: the reason every hidden width is kept a multiple of 8.
    out = norm(x[:, :12])
    torch.testing.assert_close(out, F.group_norm(x[:, :12], 2, norm.weight[:12], norm.bias[:12]))
    assert (out - full[:, :12]).abs().max() > 1e-2


# --- weight standardization ---------------------------------------------------------------------
def assert_standardized(w: torch.Tensor, raw: torch.Tensor) -> None:
    """Per output channel: mean 0, variance var_raw / (var_raw + eps) (1 up to the eps)."""
    flat, raw_flat = w.flatten(1), raw.flatten(1)
    raw_var = raw_flat.var(1, unbiased=False)
    torch.testing.assert_close(flat.mean(1), torch.zeros(len(flat)), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), raw_var / (raw_var + WS_EPS))
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(len(flat)), atol=1e-3,
                               rtol=0)  # fmt: skip
    assert raw_flat.mean(1).abs().max() > 0.1  # the raw weight was not standardized already


def test_pointwise_conv_standardizes_its_active_slice():
    g = torch.Generator().manual_seed(1)
    conv = ElasticPointwiseConv2d(24, 32, standardize=True)
    with torch.no_grad():
        conv.weight.copy_(0.3 + 0.5 * torch.randn(conv.weight.shape, generator=g))
    x = torch.randn(2, 24, 4, 4, generator=g)
    for c_in, c_out in ((24, 32), (16, 8)):
        raw = conv.weight[:c_out, :c_in]
        w = conv.applied_weight(c_in, c_out)
        assert_standardized(w, raw)
        # Standardized over the active inputs only: not a slice of the full standardized weight.
        if c_in < 24:
            assert (w - standardize_weight(conv.weight)[:c_out, :c_in]).abs().max() > 1e-2
        out = conv(x[:, :c_in], c_out)
        torch.testing.assert_close(out, F.conv2d(x[:, :c_in], standardize_weight(raw)))
    plain = ElasticPointwiseConv2d(24, 32)
    torch.testing.assert_close(plain.applied_weight(16, 8), plain.weight[:8, :16], atol=0, rtol=0)


def test_depthwise_conv_standardizes_its_transformed_kernel():
    g = torch.Generator().manual_seed(2)
    conv = ElasticDepthwiseConv2d(16, (3, 5, 7), stride=1, standardize=True)
    with torch.no_grad():
        conv.weight.copy_(0.3 + 0.5 * torch.randn(conv.weight.shape, generator=g))
        for mat in conv.transforms.values():
            mat.add_(0.1 * torch.randn(mat.shape, generator=g))
    x = torch.randn(2, 16, 6, 6, generator=g)
    for k in (3, 5, 7):
        for c in (8, 16):
            raw = conv.kernel(k)[:c]
            assert_standardized(conv.applied_weight(k, c), raw)
            expected = F.conv2d(x[:, :c], standardize_weight(raw), None, 1, k // 2, 1, c)
            torch.testing.assert_close(conv(x[:, :c], k), expected)
            with torch.no_grad():  # the cached-kernel path
                torch.testing.assert_close(conv(x[:, :c], k), expected)


# --- subnet extraction --------------------------------------------------------------------------
SUBNET_CONFIGS = {"mbv3-tiny": 6}


@pytest.mark.parametrize("space_name", list_spaces())
def test_gn_subnet_equals_supernet_in_eval_and_train_mode(space_name, randomize):
    """Group norm keeps no running statistics: train mode must match as well as eval mode."""
    model = randomize(create_supernet(space_name, norm="gn", dropout=0.0), seed=3)
    space = model.space
    rng = np.random.default_rng(4)
    configs = [space.largest(), space.smallest()]
    configs += [space.sample(rng) for _ in range(SUBNET_CONFIGS.get(space_name, 0))]
    for i, config in enumerate(configs):
        if space_name != "mbv3-tiny":  # keep the large space's forward cheap
            config = replace(config, resolution=min(space.resolutions))
        x = inputs(space, config, 2, seed=i)
        model.set_active(config)
        subnet = model.get_subnet(config)
        for mode in (False, True):
            model.train(mode)
            subnet.train(mode)
            with torch.no_grad():
                expected, actual = model(x), subnet(x)
            assert expected.std() > 1e-2
            assert (actual - expected).abs().max() <= 1e-5, (config, mode)


def test_gn_subnet_blocks_hold_the_supernets_standardized_weights(randomize):
    model = randomize(create_supernet("mbv3-tiny", norm="gn"), seed=5)
    config = model.space.sample(np.random.default_rng(6))
    subnet = model.get_subnet(config)
    active = config.active_blocks(model.space.stage_max_depths)
    static_blocks = [b for b in subnet.blocks if isinstance(b, MBConv)][1:]  # after first_block
    assert len(static_blocks) == len(active)
    for i, static in zip(active, static_blocks, strict=True):
        block, k = model.blocks[i], config.kernel_size[i]
        mid = mbconv_mid_channels(block.in_channels, config.expand_ratio[i])
        pairs = [
            (static.expand[0], block.expand_conv.applied_weight(block.in_channels, mid)),
            (static.depthwise[0], block.depthwise_conv.applied_weight(k, mid)),
            (static.project[0], block.project_conv.applied_weight(mid, block.out_channels)),
        ]
        for conv, applied in pairs:
            torch.testing.assert_close(standardize_weight(conv.weight), applied)


# --- channel sorting ----------------------------------------------------------------------------
def test_channel_order_moves_whole_groups():
    importance = torch.tensor([1.0, 5.0, 2.0, 0.0, 0.0, 9.0, 3.0, 3.0, 4.0])
    assert channel_order(importance, 3).tolist() == [6, 7, 8, 3, 4, 5, 0, 1, 2]
    assert torch.equal(channel_order(importance), torch.argsort(importance, descending=True,
                                                                stable=True))  # fmt: skip
    with pytest.raises(ValueError, match="groups of 4"):
        channel_order(importance, 4)


@pytest.fixture(scope="module")
def sorted_models(randomize, calibrate):
    """norm → (unsorted, sorted) float64 copies of one randomized mbv3-tiny supernet, eval mode."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pairs = {}
    try:
        for norm in NORMS:
            model = randomize(create_supernet("mbv3-tiny", norm=norm), seed=7).double()
            config = model.space.largest()
            calibrate(model, config, inputs(model.space, config, 4, seed=8, dtype=torch.float64))
            after = copy.deepcopy(model)
            sort_channels(after)
            pairs[norm] = (model.eval(), after.eval())
    finally:
        torch.set_num_threads(threads)
    return pairs


def outputs(model, config: ArchConfig, seed: int) -> torch.Tensor:
    model.set_active(config)
    with torch.no_grad():
        return model(inputs(model.space, config, 2, seed, dtype=torch.float64))


@pytest.mark.parametrize("norm", NORMS)
def test_sorting_preserves_the_full_width_function(norm, sorted_models):
    before, after = sorted_models[norm]
    space = before.space
    rng = np.random.default_rng(9)
    e_max = max(space.expand_ratios)
    configs = [space.largest()]
    for _ in range(3):
        c = space.sample(rng)
        configs.append(replace(c, expand_ratio=(e_max,) * len(c.expand_ratio)))
    for i, config in enumerate(configs):
        expected, actual = outputs(before, config, i), outputs(after, config, i)
        assert expected.std() > 1e-2
        torch.testing.assert_close(actual, expected, atol=1e-9, rtol=1e-9)
    # ... and really reorders: the narrowest subnet keeps other channels than before.
    smallest = space.smallest()
    assert (outputs(before, smallest, 0) - outputs(after, smallest, 0)).abs().max() > 1e-3


def test_group_norm_sorting_moves_groups_of_8_by_importance(sorted_models):
    before, after = sorted_models["gn"]
    some_moved = False
    for b0, b1 in zip(elastic_blocks(before), elastic_blocks(after), strict=True):
        max_mid = b0.project_conv.weight.shape[1]
        imp0 = b0.project_conv.applied_weight(max_mid, b0.out_channels).abs().sum((0, 2, 3))
        order = channel_order(imp0, 8)
        blocks_of_8 = order.view(-1, 8)
        assert torch.equal(blocks_of_8 - blocks_of_8[:, :1], torch.arange(8).expand_as(blocks_of_8))
        assert (blocks_of_8[:, 0] % 8 == 0).all()
        imp1 = b1.project_conv.applied_weight(max_mid, b1.out_channels).abs().sum((0, 2, 3))
        group_imp = imp1.view(-1, 8).sum(1)
        assert (group_imp[:-1] >= group_imp[1:]).all()
        for t0, t1 in ((b0.expand_bn.weight, b1.expand_bn.weight),
                       (b0.depthwise_bn.bias, b1.depthwise_bn.bias),
                       (b0.expand_conv.weight, b1.expand_conv.weight)):  # fmt: skip
            torch.testing.assert_close(t1, t0[order], atol=0, rtol=0)
        some_moved |= not torch.equal(order, torch.arange(max_mid))
    assert some_moved


def test_a_per_channel_sort_would_change_a_group_norm_network(randomize, monkeypatch):
    """Why groups move whole: the Once-for-All per-channel sort breaks group norm."""
    import supernet.nn.sorting as sorting

    model = randomize(create_supernet("mbv3-tiny", norm="gn"), seed=10).double().eval()
    config = model.space.largest()
    expected = outputs(model, config, 0)
    monkeypatch.setattr(sorting, "_group_size", lambda norm: 1)
    sort_channels(model)
    assert (outputs(model, config, 0) - expected).abs().max() > 1e-3


# --- BN re-calibration and evaluation of a GN supernet ----------------------------------------
def test_recalibration_is_a_no_op_without_batch_norm(randomize):
    model = randomize(create_supernet("mbv3-tiny", norm="gn"), seed=11)
    subnet = model.get_subnet(model.space.smallest()).train()
    state = copy.deepcopy(subnet.state_dict())
    batches = iter([torch.randn(2, 1, 20, 20)])
    assert recalibrate_bn(subnet, batches) == 0
    assert not subnet.training
    assert next(batches, None) is not None  # not read
    for k, v in subnet.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_evaluating_a_gn_subnet_scores_what_the_supernet_computes(randomize):
    splits = load_digits()
    space = get_space("mbv3-tiny", num_classes=10)
    model = randomize(create_supernet(space, norm="gn"), seed=12).eval()
    config = space.sample(np.random.default_rng(13))
    calib = calibration_loader(splits.train, 64, 64, seed=0)
    val = BatchLoader(splits.val, 100, shuffle=False, augment=False, limit=100)
    score, _ = evaluate_subnet(model, config, calib=calib, data=val, device=torch.device("cpu"))
    x, y = next(iter(val))
    model.set_active(config)
    with torch.no_grad():
        logits = model(resize(x, config.resolution))
    assert score.images == 100
    assert score.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert score.accuracy == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item())


# --- training -----------------------------------------------------------------------------------
SMALLEST = {"kernel_sizes": "min", "expand_ratios": "min", "depths": "min", "resolutions": "min"}


@pytest.mark.slow
def test_a_gn_supernet_trains_and_its_run_loads_back(tmp_path, tiny_config):
    """32 steps on the smallest subnet (fast); the loss on fixed training images drops."""
    cfg = tiny_config(
        norm="gn", batch_size=16, train_limit=128, label_smoothing=0.0, threads=1,
        phases=[{"name": "small", "epochs": 4, "lr": 0.05, "distill": False, **SMALLEST}],
    )  # fmt: skip
    splits = load_digits()
    x, y = next(iter(BatchLoader(splits.train, 300, shuffle=False, augment=False)))
    config = replace(get_space("mbv3-tiny").smallest(), resolution=20)
    x = resize(x, 20)

    def loss(model: nn.Module) -> float:
        model.eval().set_active(config)
        with torch.no_grad():
            return F.cross_entropy(model(x), y).item()

    torch.manual_seed(cfg.seed)  # train() builds its supernet right after seeding the same way
    _, initial = build_supernet(cfg, splits)
    result = train(cfg, tmp_path / "run")
    assert loss(result.supernet) < loss(initial) - 0.3
    assert all("val_acc_smallest" in row for row in result.metrics)

    run = load_run(tmp_path / "run", device="cpu")
    assert run.config.norm == "gn"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in run.supernet.modules())
    assert loss(run.supernet) == pytest.approx(loss(result.supernet), abs=1e-6)
