"""Peak activation memory (MCUNet-style layer walk) and model size, batched over configs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from supernet.cost import (
    COST_KEYS,
    SubnetShapes,
    activation_bytes_per_layer,
    cost_table,
    costs_of_shapes,
    count_params,
    macs,
    measure_macs,
    model_size_bytes,
    params,
    peak_memory_bytes,
)
from supernet.errors import ConfigError
from supernet.nn import create_supernet
from supernet.space import (
    ArchConfig,
    SearchSpace,
    StageSpec,
    get_space,
    list_spaces,
    sample_batch,
)

# A two-block network: 1x8x8 input → stem 3x3 s2 (8 ch, 4x4) → fixed first MBConv (8 → 8,
# residual) → block 0: 8 → 16, stride 2, expand 3 (mid 24), SE (hidden make_divisible(24 // 4)
# = 8), no residual (2x2) → block 1: 16 → 16, stride 1, expand 3 (mid 48), SE (hidden 16),
# residual → 1x1 to 32 → pool → 1x1 to 40 → linear to 10.
TWO_BLOCKS = SearchSpace(
    name="two-blocks",
    input_channels=1,
    num_classes=10,
    resolutions=(8,),
    kernel_sizes=(3,),
    expand_ratios=(3,),
    depths=(2,),
    stages=(StageSpec(16, 2, 2, "relu", True),),
    stem_width=8,
    stem_stride=2,
    first_block_width=8,
    final_expand_width=32,
    feature_mix_width=40,
)
# Alive elements while each layer runs, by hand (x: block input, t: hidden, y: block output):
TWO_BLOCKS_ALIVE = {
    "stem": 64 + 128,  # image 1*8*8, output 8*4*4
    "first_block.depthwise": 128 + 128,  # in place (max(128, 128)) + x kept for the skip
    "first_block.project": 128 + 128 + 128,  # t + y + skip
    "blocks.0.expand": 128 + 384,  # x 8*4*4, t 24*4*4
    "blocks.0.depthwise": 384,  # in place: max(24*4*4, 24*2*2); no skip
    "blocks.0.se": 96 + 24 + 8,  # t 24*2*2 + pooled 24 + hidden 8
    "blocks.0.project": 96 + 64,  # t + y 16*2*2
    "blocks.1.expand": 64 + 192,  # x 16*2*2, t 48*2*2
    "blocks.1.depthwise": 192 + 64,  # in place max(192, 192) + skip
    "blocks.1.se": 192 + 48 + 16 + 64,  # t + pooled 48 + hidden 16 + skip
    "blocks.1.project": 192 + 64 + 64,  # t + y + skip
    "final_expand": 64 + 128,  # 16*2*2 → 32*2*2
    "pool": 128 + 32,
    "feature_mix": 32 + 40,
    "classifier": 40 + 10,
}
TWO_BLOCKS_PEAK = 512  # blocks.0.expand: 2048 bytes in fp32, 512 in int8


def two_blocks_config() -> ArchConfig:
    return TWO_BLOCKS.largest()


def test_two_block_network_matches_the_hand_count_layer_by_layer():
    config = two_blocks_config()
    names, per_layer = activation_bytes_per_layer([config], TWO_BLOCKS, bytes_per_element=1)
    assert dict(zip(names, per_layer[0].tolist(), strict=True)) == TWO_BLOCKS_ALIVE
    assert peak_memory_bytes([config], TWO_BLOCKS).tolist() == [4 * TWO_BLOCKS_PEAK]
    assert peak_memory_bytes([config], TWO_BLOCKS, bytes_per_element=1).tolist() == [512]


def test_two_block_network_is_the_real_subnet():
    """The hand network is what the supernet builds: its shapes give the measured MACs/params."""
    config = two_blocks_config()
    subnet = create_supernet(TWO_BLOCKS).get_subnet(config)
    assert len(subnet.blocks) == 3  # first block + two elastic blocks
    assert [b.use_residual for b in subnet.blocks] == [True, False, True]
    assert macs([config], TWO_BLOCKS)[0] == measure_macs(subnet, (1, 1, 8, 8))
    assert params([config], TWO_BLOCKS)[0] == count_params(subnet)


@pytest.mark.parametrize("space_name", ["mbv3-tiny", "ofa-mbv3"])
def test_int8_is_a_quarter_of_fp32_and_fp16_a_half(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(50)]
    fp32 = peak_memory_bytes(configs, space)
    assert (fp32 > 0).all() and fp32.dtype == np.int64
    np.testing.assert_array_equal(peak_memory_bytes(configs, space, bytes_per_element=1) * 4, fp32)
    np.testing.assert_array_equal(peak_memory_bytes(configs, space, bytes_per_element=2) * 2, fp32)


@pytest.mark.parametrize("space_name", ["mbv3-tiny", "ofa-mbv3"])
def test_peak_memory_never_shrinks_with_resolution_expand_ratio_or_depth(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(1)
    for config in [space.sample(rng) for _ in range(20)]:
        by_resolution = [replace(config, resolution=r) for r in space.resolutions]
        peaks = peak_memory_bytes(by_resolution, space)
        assert (np.diff(peaks) >= 0).all()
        assert peaks[-1] > peaks[0]
        wider = replace(config, expand_ratio=(max(space.expand_ratios),) * space.num_blocks)
        deeper = replace(config, depth=(max(space.depths),) * space.num_stages)
        base, w, d = peak_memory_bytes([config, wider, deeper], space)
        assert w >= base and d >= base


@pytest.mark.parametrize("space_name", list_spaces())
def test_peak_is_the_largest_layer_of_the_per_layer_table(space_name):
    space = get_space(space_name)  # two code paths: the peak never builds the per-layer table
    batch = sample_batch(space, 200, np.random.default_rng(2))
    names, per_layer = activation_bytes_per_layer(batch, space)
    assert len(names) == per_layer.shape[1] and (per_layer >= 0).all()
    np.testing.assert_array_equal(per_layer.max(axis=1), peak_memory_bytes(batch, space))


def test_inactive_slots_are_zero_and_se_columns_follow_the_space():
    space = get_space("mbv3-tiny")
    smallest = space.smallest()  # depth 2 of 4: slots 2, 3 of every stage are inactive
    names, per_layer = activation_bytes_per_layer([smallest], space)
    row = dict(zip(names, per_layer[0].tolist(), strict=True))
    assert row["blocks.2.expand"] == 0 and row["blocks.3.project"] == 0
    assert row["blocks.1.expand"] > 0
    assert "blocks.4.se" in row and "blocks.0.se" not in row  # SE only in stages 2, 4, 5


def test_model_size_is_params_times_bytes_per_weight():
    space = get_space("mbv3-tiny")
    configs = [space.largest(), space.smallest()]
    n = params(configs, space)
    np.testing.assert_array_equal(model_size_bytes(configs, space), n * 4)
    np.testing.assert_array_equal(model_size_bytes(configs, space, bytes_per_weight=1), n)


def test_cost_table_agrees_with_the_single_cost_functions():
    space = get_space("ofa-mbv3")
    rng = np.random.default_rng(4)
    configs = [space.sample(rng) for _ in range(25)]
    table = cost_table(configs, space)
    assert tuple(table) == COST_KEYS
    assert all(v.shape == (25,) and v.dtype == np.int64 for v in table.values())
    np.testing.assert_array_equal(table["macs"], macs(configs, space))
    np.testing.assert_array_equal(table["params"], params(configs, space))
    np.testing.assert_array_equal(table["peak_memory_bytes"], peak_memory_bytes(configs, space))
    np.testing.assert_array_equal(
        table["peak_memory_bytes_int8"], peak_memory_bytes(configs, space, bytes_per_element=1)
    )
    np.testing.assert_array_equal(table["model_size_bytes"], model_size_bytes(configs, space))
    np.testing.assert_array_equal(table["model_size_bytes_int8"], table["params"])


@pytest.mark.parametrize(
    "keys", [("macs",), ("peak_memory_bytes",), ("model_size_bytes_int8", "peak_memory_bytes_int8")]
)
def test_costs_of_shapes_gives_only_the_asked_costs_equal_to_the_full_table(keys):
    space = get_space("mbv3-tiny")
    batch = sample_batch(space, 40, np.random.default_rng(5))
    out = costs_of_shapes(SubnetShapes.from_configs(batch, space), keys)
    full = cost_table(batch, space)
    assert tuple(out) == keys
    for key in keys:
        np.testing.assert_array_equal(out[key], full[key])


def test_costs_of_shapes_rejects_an_unknown_cost_naming_the_known_ones():
    space = get_space("mbv3-tiny")
    shapes = SubnetShapes.from_configs([space.largest()], space)
    with pytest.raises(ConfigError, match=r"unknown cost 'flops'.*macs, params"):
        costs_of_shapes(shapes, ("macs", "flops"))


def test_ofa_largest_subnet_peak_is_the_first_stage_expand():
    """ofa-mbv3 largest at 224: the first stage's first 1x1 expand holds x (16 x 112 x 112) and
    t (96 x 112 x 112) = 1,404,928 elements, larger than any later layer."""
    space = get_space("ofa-mbv3")
    names, per_layer = activation_bytes_per_layer([space.largest()], space, bytes_per_element=1)
    assert names[int(per_layer[0].argmax())] == "blocks.0.expand"
    assert peak_memory_bytes([space.largest()], space).tolist() == [4 * (16 + 96) * 112 * 112]


@pytest.mark.parametrize("value", [0, 3, 8, True, "4"])
def test_bytes_per_element_outside_1_2_4_is_rejected(value):
    space = get_space("mbv3-tiny")
    configs = [space.smallest()]
    with pytest.raises(ConfigError) as info:
        peak_memory_bytes(configs, space, bytes_per_element=value)
    assert str(info.value) == f"bytes_per_element = {value!r} is not allowed; choose from (1, 2, 4)"
    with pytest.raises(ConfigError, match=r"bytes_per_weight = .* choose from \(1, 2, 4\)"):
        model_size_bytes(configs, space, bytes_per_weight=value)


def test_invalid_config_raises_config_error():
    space = get_space("mbv3-tiny")
    bad = replace(space.smallest(), depth=(2, 2, 5, 2, 2))
    with pytest.raises(ConfigError, match=r"depth\[2\] = 5 is out of range"):
        peak_memory_bytes([space.largest(), bad], space)
    with pytest.raises(ConfigError, match=r"depth\[2\] = 5"):
        cost_table([bad], space)
