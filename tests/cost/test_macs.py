"""Analytic, batched MACs and params equal PyTorch's FLOP counter and parameter count on extracted
subnets, and the Once-for-All model zoo's published MACs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from supernet.cost import SubnetShapes, count_params, macs, measure_macs, params
from supernet.errors import ConfigError
from supernet.nn import create_supernet
from supernet.space import ArchConfig, SearchSpace, StageSpec, get_space

# Random subnets per space, plus largest and smallest. ofa-mbv3 random subnets are measured at
# 128-160 px to keep the CPU forward passes short (the largest subnet runs at 224).
N_RANDOM = 10
MEASURE_RESOLUTIONS = {"ofa-mbv3": (128, 160)}


def configs_for(space: SearchSpace, seed: int = 0) -> list[ArchConfig]:
    rng = np.random.default_rng(seed)
    low, high = MEASURE_RESOLUTIONS.get(space.name, (0, 10**9))
    allowed = [r for r in space.resolutions if low <= r <= high]
    configs = []
    for _ in range(N_RANDOM):
        config = space.sample(rng)
        configs.append(replace(config, resolution=int(rng.choice(allowed))))
    return [*configs, space.largest(), space.smallest()]


def measured(space: SearchSpace, configs: list[ArchConfig]) -> tuple[list[int], list[int]]:
    """FlopCounterMode MACs and module parameter counts of the extracted subnets."""
    supernet = create_supernet(space)
    out_macs, out_params = [], []
    for config in configs:
        subnet = supernet.get_subnet(config)
        r = config.resolution
        out_macs.append(measure_macs(subnet, (1, space.input_channels, r, r)))
        out_params.append(count_params(subnet))
    return out_macs, out_params


@pytest.mark.parametrize("space_name", ["mbv3-tiny", "ofa-mbv3"])
def test_analytic_macs_and_params_equal_flop_counter(space_name):
    space = get_space(space_name)
    configs = configs_for(space)
    want_macs, want_params = measured(space, configs)
    got_macs, got_params = macs(configs, space), params(configs, space)
    assert got_macs.dtype == np.int64 and got_macs.shape == (len(configs),)
    assert got_params.dtype == np.int64 and got_params.shape == (len(configs),)
    assert got_macs.tolist() == want_macs
    assert got_params.tolist() == want_params


def odd_space(**changes) -> SearchSpace:
    """A small space unlike the presets: first block without skip (stem 8 → 16 channels), odd
    resolutions, stride 2 after a stride-1 stage, SE in a stride-2 stage, 7 classes."""
    base = SearchSpace(
        name="odd",
        input_channels=3,
        num_classes=7,
        resolutions=(15, 17),
        kernel_sizes=(3, 5),
        expand_ratios=(2, 3),
        depths=(1, 2),
        stages=(
            StageSpec(24, 2, 1, "relu", False),
            StageSpec(40, 3, 2, "h_swish", True),
        ),
        stem_width=8,
        stem_stride=2,
        first_block_width=16,
        final_expand_width=48,
        feature_mix_width=64,
    )
    return replace(base, **changes)


def test_analytic_counts_equal_flop_counter_on_a_space_unlike_the_presets():
    space = odd_space()
    rng = np.random.default_rng(3)
    configs = [space.sample(rng) for _ in range(8)] + [space.largest(), space.smallest()]
    want_macs, want_params = measured(space, configs)
    assert macs(configs, space).tolist() == want_macs
    assert params(configs, space).tolist() == want_params


def test_num_classes_of_the_space_sets_the_classifier():
    space = get_space("mbv3-tiny", num_classes=3)
    config = space.smallest()
    base = get_space("mbv3-tiny")
    feature_mix = space.feature_mix_width
    assert macs([config], base)[0] - macs([config], space)[0] == feature_mix * (10 - 3)
    assert params([config], base)[0] - params([config], space)[0] == (feature_mix + 1) * (10 - 3)


def test_batch_equals_one_at_a_time_in_order():
    space = get_space("mbv3-tiny")
    rng = np.random.default_rng(1)
    configs = [space.sample(rng) for _ in range(20)]
    batch = macs(configs, space)
    assert batch.tolist() == [int(macs([c], space)[0]) for c in configs]
    assert params(configs, space).tolist() == [int(params([c], space)[0]) for c in configs]


def test_empty_batch_gives_empty_arrays():
    space = get_space("mbv3-tiny")
    for fn in (macs, params):
        out = fn([], space)
        assert out.shape == (0,) and out.dtype == np.int64


def test_inactive_slots_do_not_count():
    space = get_space("mbv3-tiny")
    config = space.smallest()  # depth 2 of 4 in every stage
    changed = replace(config, kernel_size=(3, 3, 7, 7) * 5, expand_ratio=(3, 3, 6, 6) * 5)
    assert macs([changed], space)[0] == macs([config], space)[0]
    shapes = SubnetShapes.from_configs([config], space)
    assert shapes.active[0].tolist() == [True, True, False, False] * 5


def test_invalid_config_raises_naming_the_first_bad_field():
    space = get_space("mbv3-tiny")
    good = space.smallest()
    bad_kernel = replace(good, kernel_size=(4, *good.kernel_size[1:]))
    bad_resolution = replace(good, resolution=30)
    with pytest.raises(ConfigError, match=r"kernel_size\[0\] = 4 is not allowed"):
        macs([good, bad_kernel, bad_resolution], space)
    with pytest.raises(ConfigError, match=r"resolution = 30 is not allowed"):
        params([good, bad_resolution, bad_kernel], space)
    too_short = replace(good, expand_ratio=good.expand_ratio[:-1])
    with pytest.raises(ConfigError, match="expand_ratio has 19 entries"):
        macs([good, too_short], space)


# --- Once-for-All published numbers -----------------------------------------------------------
# The Once-for-All model zoo (github.com/mit-han-lab/once-for-all, README "Network List" and
# ofa/model_zoo.py) publishes the specialized subnet "flops@595M_top1@80.0_finetune@75": the
# paper's 80.0% ImageNet top-1 under 600M MACs (arXiv 1908.09791, abstract). Its net.config (a
# copy is in Alibaba-MIIL/ImageNet21K, src_files/models/ofa/specialized_models_configs/) is a
# subnet of the w1.2 MobileNetV3 space (stem 24, widths 32-48-96-136-192, final 1152, feature mix
# 1536) with image_size 236 (run.config); its blocks per stage, as (kernel size, expand ratio):
OFA_595M_BLOCKS = (
    ((3, 3), (5, 4), (3, 3)),
    ((5, 4), (5, 4), (3, 6), (5, 3)),
    ((7, 6), (5, 6), (3, 3), (5, 4)),
    ((3, 6), (5, 6), (7, 6), (3, 4)),
    ((3, 6), (3, 6), (5, 6), (3, 3)),
)
OFA_595M_RESOLUTION = 236
OFA_595M_MID_CHANNELS = (  # "mid_channels" of the net.config's blocks, in order
    (72, 128, 96),
    (128, 192, 288, 144),
    (288, 576, 288, 384),
    (576, 816, 816, 544),
    (816, 1152, 1152, 576),
)


def ofa_595m() -> tuple[ArchConfig, SearchSpace]:
    # 236 px is outside the search resolutions (the net was fine-tuned at 236): add it.
    base = get_space("ofa-mbv3-w1.2")
    space = replace(base, resolutions=(*base.resolutions, OFA_595M_RESOLUTION))
    kernel, expand = [], []
    for stage, blocks in zip(space.stages, OFA_595M_BLOCKS, strict=True):
        padded = blocks + ((3, 3),) * (stage.max_depth - len(blocks))  # inactive slots
        kernel += [k for k, _ in padded]
        expand += [e for _, e in padded]
    depth = tuple(len(b) for b in OFA_595M_BLOCKS)
    return ArchConfig(OFA_595M_RESOLUTION, tuple(kernel), tuple(expand), depth), space


def test_ofa_595m_specialized_subnet_has_595m_macs():
    """OFA counts MACs as we do (ofa/utils/flops_counter.py: conv weights × output elements, no
    bias; linear in × out) and names the net by MACs / 1e6 to the nearest M, so the tolerance is
    1 M MACs (0.2%): the name's rounding, nothing else."""
    config, space = ofa_595m()
    assert [s.width for s in space.stages] == [32, 48, 96, 136, 192]
    assert (space.stem_width, space.final_expand_width, space.feature_mix_width) == (24, 1152, 1536)
    shapes = SubnetShapes.from_configs([config], space)
    published_mid = [m for stage in OFA_595M_MID_CHANNELS for m in stage]
    assert shapes.mid_channels[0][shapes.active[0]].tolist() == published_mid
    analytic = int(macs([config], space)[0])
    assert abs(analytic / 1e6 - 595) < 1.0
    assert analytic == measured(space, [config])[0][0]
