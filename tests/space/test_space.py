import numpy as np
import pytest

from supernet.errors import ConfigError
from supernet.space import ArchConfig, get_space, list_spaces


@pytest.fixture(params=list_spaces())
def space(request):
    return get_space(request.param)


def test_ofa_mbv3_is_the_once_for_all_space():
    s = get_space("ofa-mbv3")
    assert s.input_channels == 3 and s.num_classes == 1000
    assert s.resolutions == tuple(range(128, 225, 4))
    assert (s.kernel_sizes, s.expand_ratios, s.depths) == ((3, 5, 7), (3, 4, 6), (2, 3, 4))
    assert [st.width for st in s.stages] == [24, 40, 80, 112, 160]
    assert [st.stride for st in s.stages] == [2, 2, 2, 1, 2]
    assert [st.use_se for st in s.stages] == [False, True, False, True, True]
    assert [st.act for st in s.stages] == ["relu", "relu", "h_swish", "h_swish", "h_swish"]
    assert (s.stem_width, s.final_expand_width, s.feature_mix_width) == (16, 960, 1280)
    # The paper's "more than 10^19 subnets" (without resolution).
    assert s.size(with_resolution=False) == (9**2 + 9**3 + 9**4) ** 5 > 10**19


def test_width_multiplier_1_2():
    s = get_space("ofa-mbv3-w1.2")
    assert [st.width for st in s.stages] == [32, 48, 96, 136, 192]
    assert s.width_mult == 1.2


def test_mbv3_tiny_numbers():
    s = get_space("mbv3-tiny")
    assert s.input_channels == 1 and s.resolutions == (20, 24, 28, 32)
    assert s.stem_stride == 2
    assert s.size() == (9**2 + 9**3 + 9**4) ** 5 * 4


def test_largest_smallest_middle_are_valid_and_ordered(space):
    for c in (space.largest(), space.smallest(), space.middle()):
        c.validate(space)
    assert space.largest().depth == (max(space.depths),) * space.num_stages
    assert space.smallest().kernel_size == (min(space.kernel_sizes),) * space.num_blocks
    assert space.smallest().resolution < space.middle().resolution < space.largest().resolution


def test_sampling_is_seeded_and_covers_choices(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    seen = {k for _ in range(50) for k in space.sample(rng).kernel_size}
    assert seen == set(space.kernel_sizes)


def test_mutate_and_crossover_stay_in_space(space):
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    for _ in range(20):
        space.mutate(a, rng).validate(space)
        child = space.crossover(a, b, rng).validate(space)
        for i, k in enumerate(child.kernel_size):
            assert k in (a.kernel_size[i], b.kernel_size[i])
    assert space.mutate(a, rng, prob=0.0, resolution_prob=0.0) == a
    with pytest.raises(ConfigError, match=r"prob = 1.5 must be in \[0, 1\]"):
        space.mutate(a, rng, prob=1.5)


def test_restrict_gives_a_subspace():
    s = get_space("mbv3-tiny").restrict(kernel_sizes=(7,), depths=(3, 4))
    rng = np.random.default_rng(0)
    for _ in range(10):
        c = s.sample(rng)
        assert set(c.kernel_size) == {7} and set(c.depth) <= {3, 4}
    with pytest.raises(ConfigError, match=r"kernel_sizes = \(9,\) is not a subset"):
        get_space("mbv3-tiny").restrict(kernel_sizes=(9,))


def test_unknown_space_lists_known_names():
    with pytest.raises(ConfigError, match=r"unknown space 'nope'; choose from .*mbv3-tiny"):
        get_space("nope")


def test_configs_are_distinct_objects_equal_by_value():
    s = get_space("mbv3-tiny")
    assert s.largest() == ArchConfig.from_dict(s.largest().to_dict())
