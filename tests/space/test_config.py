import numpy as np
import pytest

from supernet.errors import ConfigError
from supernet.space import ArchConfig, encode, encoding_size, get_space, list_spaces

SPACES = list_spaces()


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)


def test_json_round_trip(space):
    rng = np.random.default_rng(0)
    for _ in range(10):
        config = space.sample(rng)
        assert ArchConfig.from_json(config.to_json()) == config
        assert config.validate(space) is config


def test_lists_become_tuples_and_configs_hash():
    c = ArchConfig(resolution=28, kernel_size=[3, 5], expand_ratio=[3, 4], depth=[2])
    assert c.kernel_size == (3, 5)
    assert hash(c) == hash(ArchConfig(28, (3, 5), (3, 4), (2,)))


def test_unknown_kernel_size_names_field_value_and_choices():
    space = get_space("mbv3-tiny")
    bad = space.largest()
    ks = list(bad.kernel_size)
    ks[3] = 4
    bad = ArchConfig(bad.resolution, tuple(ks), bad.expand_ratio, bad.depth)
    with pytest.raises(ConfigError, match=r"kernel_size\[3\] = 4 .* choose from \(3, 5, 7\)"):
        bad.validate(space)


def test_depth_out_of_range():
    space = get_space("ofa-mbv3")
    c = space.largest()
    bad = ArchConfig(c.resolution, c.kernel_size, c.expand_ratio, (4, 4, 5, 4, 4))
    with pytest.raises(ConfigError, match=r"depth\[2\] = 5 is out of range .* \(2, 3, 4\)"):
        bad.validate(space)


def test_wrong_tuple_length():
    space = get_space("mbv3-tiny")
    c = space.largest()
    bad = ArchConfig(c.resolution, c.kernel_size[:-1], c.expand_ratio, c.depth)
    with pytest.raises(ConfigError, match=r"kernel_size has 19 entries; .* 20 block slots"):
        bad.validate(space)
    bad = ArchConfig(c.resolution, c.kernel_size, c.expand_ratio, (*c.depth, 2))
    with pytest.raises(ConfigError, match="depth has 6 entries"):
        bad.validate(space)


def test_resolution_not_in_space():
    space = get_space("mbv3-tiny")
    c = space.largest()
    with pytest.raises(ConfigError, match=r"resolution = 30 .* \(20, 24, 28, 32\)"):
        ArchConfig(30, c.kernel_size, c.expand_ratio, c.depth).validate(space)


def test_non_integer_values_rejected():
    with pytest.raises(ConfigError, match="resolution must be an integer"):
        ArchConfig("28", (3,), (3,), (2,))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"kernel_size\[1\] = 'x'"):
        ArchConfig(28, (3, "x"), (3, 3), (2,))  # type: ignore[arg-type]


def test_from_dict_unknown_and_missing_keys():
    with pytest.raises(ConfigError, match=r"unknown \['ks'\], missing \['kernel_size'\]"):
        ArchConfig.from_dict({"resolution": 28, "ks": [3], "expand_ratio": [3], "depth": [2]})
    with pytest.raises(ConfigError, match="not valid JSON"):
        ArchConfig.from_json("{")


def test_active_blocks_follow_depth():
    space = get_space("mbv3-tiny")
    c = ArchConfig(28, space.largest().kernel_size, space.largest().expand_ratio, (2, 3, 4, 2, 3))
    assert c.active_blocks(space.stage_max_depths) == [
        0,
        1,
        4,
        5,
        6,
        8,
        9,
        10,
        11,
        12,
        13,
        16,
        17,
        18,
    ]


def test_encoding_masks_inactive_blocks(space):
    rng = np.random.default_rng(1)
    configs = [space.sample(rng) for _ in range(8)]
    x = encode(configs, space)
    assert x.shape == (8, encoding_size(space))
    per_block = len(space.kernel_sizes) + len(space.expand_ratios)
    for row, c in zip(x, configs, strict=True):
        n_active = sum(c.depth)
        # two ones (kernel, expand) per active block plus one for the resolution
        assert row.sum() == 2 * n_active + 1
        blocks = row[: space.num_blocks * per_block].reshape(space.num_blocks, per_block)
        active = set(c.active_blocks(space.stage_max_depths))
        for slot in range(space.num_blocks):
            assert blocks[slot].sum() == (2 if slot in active else 0)


def test_space_encode_method_matches_function(space):
    configs = [space.largest(), space.smallest()]
    assert np.array_equal(space.encode(configs), encode(configs, space))
