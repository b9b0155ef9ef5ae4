"""ConfigBatch: round trips, indexing, validation, and vectorized sampling / mutation / crossover /
encoding that match the per-config SearchSpace operators."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from supernet.errors import ConfigError
from supernet.space import (
    ArchConfig,
    ConfigBatch,
    crossover_batch,
    encode,
    encode_batch,
    get_space,
    list_spaces,
    mutate_batch,
    sample_batch,
)


@pytest.fixture(params=list_spaces())
def space(request):
    return get_space(request.param)


@pytest.fixture
def tiny():
    return get_space("mbv3-tiny")


def configs_of(space, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)] + [space.largest(), space.smallest()]


def test_round_trip_and_shapes(space):
    configs = configs_of(space)
    batch = ConfigBatch.from_configs(configs, space)
    n, b, s = len(configs), space.num_blocks, space.num_stages
    assert batch.resolution.shape == (n,) and batch.depth.shape == (n, s)
    assert batch.kernel_size.shape == batch.expand_ratio.shape == (n, b)
    assert batch.kernel_size.dtype == np.int64
    assert batch.to_configs() == configs
    assert list(batch) == configs and len(batch) == n
    assert batch[3] == configs[3] and batch[-1] == configs[-1]
    assert ConfigBatch.from_choice_indices(batch.to_choice_indices(space), space).equals(batch)
    empty = ConfigBatch.from_configs([], space)
    assert len(empty) == 0 and empty.kernel_size.shape == (0, b) and empty.to_configs() == []


def test_indexing_slices_arrays_and_masks(tiny):
    configs = configs_of(tiny, 10)
    batch = ConfigBatch.from_configs(configs, tiny)
    assert batch[2:5].to_configs() == configs[2:5]
    assert batch[np.array([4, 0, 4])].to_configs() == [configs[4], configs[0], configs[4]]
    mask = np.arange(len(configs)) % 3 == 0
    assert batch[mask].to_configs() == [c for c, m in zip(configs, mask, strict=True) if m]
    assert len(batch[np.array([], dtype=int)]) == 0 and len(batch[[]]) == 0
    with pytest.raises(IndexError, match="out of range"):
        batch[len(configs)]
    with pytest.raises(IndexError, match="boolean mask"):
        batch[np.ones(3, dtype=bool)]
    joined = ConfigBatch.concat([batch[:3], batch[3:]])
    assert joined.equals(batch)


def test_batches_are_read_only(tiny):
    batch = sample_batch(tiny, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="read-only"):
        batch.kernel_size[0, 0] = 7
    with pytest.raises(AttributeError):
        batch.resolution = np.zeros(4)  # type: ignore[misc]
    source = np.full((4, tiny.num_blocks), 3)
    copy = ConfigBatch(batch.resolution, source, batch.expand_ratio, batch.depth)
    source[0, 0] = 5  # the batch holds its own copy
    assert copy.kernel_size[0, 0] == 3


def test_construction_errors(tiny):
    b = sample_batch(tiny, 3, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"ConfigBatch\.kernel_size must hold integers"):
        ConfigBatch(b.resolution, b.kernel_size + 0.5, b.expand_ratio, b.depth)
    with pytest.raises(ConfigError, match="disagree in number of rows"):
        ConfigBatch(b.resolution[:2], b.kernel_size, b.expand_ratio, b.depth)
    with pytest.raises(ConfigError, match="must be 2-D"):
        ConfigBatch(b.resolution, b.kernel_size[0], b.expand_ratio, b.depth)
    with pytest.raises(ConfigError, match="at least one batch"):
        ConfigBatch.concat([])
    other = sample_batch(get_space("ofa-mbv3"), 2, np.random.default_rng(0))
    ConfigBatch.concat([other, other])  # same space: fine
    ofa_like = ConfigBatch(other.resolution, other.kernel_size[:, :3], other.expand_ratio[:, :3],
                           other.depth)  # fmt: skip
    with pytest.raises(ConfigError, match="different"):
        ConfigBatch.concat([b, ofa_like])
    assert ConfigBatch(b.resolution.astype(float), b.kernel_size, b.expand_ratio, b.depth).equals(b)


def test_validate_names_row_field_value_and_choices(tiny):
    configs = configs_of(tiny, 5)
    batch = ConfigBatch.from_configs(configs, tiny)
    kernel = np.array(batch.kernel_size)
    kernel[3, 7] = 4
    bad = ConfigBatch(batch.resolution, kernel, batch.expand_ratio, batch.depth)
    msg = r"config #3: kernel_size\[7\] = 4 is not allowed in space 'mbv3-tiny'; choose from \(3, 5"
    with pytest.raises(ConfigError, match=msg):
        bad.validate(tiny)
    with pytest.raises(ConfigError, match=msg):
        encode_batch(bad, tiny)
    res = np.array(batch.resolution)
    res[1] = 29
    with pytest.raises(ConfigError, match=r"config #1: resolution = 29 .* choose from \(20, 24"):
        ConfigBatch(res, batch.kernel_size, batch.expand_ratio, batch.depth).validate(tiny)
    small = replace(tiny, name="x", stages=tiny.stages[:2])
    with pytest.raises(ConfigError, match="kernel_size has 20 columns; space 'x' has 8 block"):
        batch.validate(small)
    with pytest.raises(ConfigError, match="depth has 5 columns; space 'x' has 2 elastic stages"):
        ConfigBatch(batch.resolution, batch.kernel_size[:, :8], batch.expand_ratio[:, :8],
                    batch.depth).validate(small)  # fmt: skip
    wrong = [*configs[:2], ArchConfig(28, (3,) * 4, (3,) * 4, (2,) * 5)]
    with pytest.raises(ConfigError, match="config #2: kernel_size has 4 entries"):
        ConfigBatch.from_configs(wrong, tiny)


def test_same_shapes_in_another_space_fail_on_values():
    ofa, tiny = get_space("ofa-mbv3"), get_space("mbv3-tiny")
    batch = sample_batch(tiny, 3, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="config #0: resolution"):
        batch.validate(ofa)


def test_choice_index_errors(tiny):
    idx = sample_batch(tiny, 2, np.random.default_rng(0)).to_choice_indices(tiny)
    assert idx.shape == (2, 1 + 2 * 20 + 5) and idx.min() >= 0
    with pytest.raises(ConfigError, match="needs 1 \\+ 2 \\* 20 \\+ 5 = 46"):
        ConfigBatch.from_choice_indices(idx[:, :10], tiny)
    idx[1, 2] = 3
    with pytest.raises(ConfigError, match=r"choice index 3 for kernel_size .* has 3 choices"):
        ConfigBatch.from_choice_indices(idx, tiny)


def test_active_mask_matches_arch_config(space):
    configs = configs_of(space)
    mask = ConfigBatch.from_configs(configs, space).active_mask(space)
    for row, config in zip(mask, configs, strict=True):
        assert np.flatnonzero(row).tolist() == config.active_blocks(space.stage_max_depths)


def test_encode_batch_equals_encode(space):
    configs = configs_of(space, 50, seed=3)
    batch = ConfigBatch.from_configs(configs, space)
    expected = encode(configs, space)
    got = encode_batch(batch, space)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(encode(batch, space), expected)  # encode takes batches too
    assert encode_batch(batch[:0], space).shape == (0, expected.shape[1])


def test_sample_batch_is_seeded_valid_and_uniform(space):
    a = sample_batch(space, 500, np.random.default_rng(7))
    assert a.equals(sample_batch(space, 500, np.random.default_rng(7)))
    assert not a.equals(sample_batch(space, 500, np.random.default_rng(8)))
    a.validate(space)
    n = len(space.kernel_sizes)
    share = [(a.kernel_size == k).mean() for k in space.kernel_sizes]
    np.testing.assert_allclose(share, 1 / n, atol=0.02)
    assert set(a.resolution.tolist()) == set(space.resolutions)
    with pytest.raises(ConfigError, match="n = -1 must be >= 0"):
        sample_batch(space, -1, np.random.default_rng(0))


def changed_share(before, after, field):
    return (getattr(before, field) != getattr(after, field)).mean()


def test_mutate_batch_matches_space_mutate_rates(tiny):
    rng = np.random.default_rng(0)
    parents = sample_batch(tiny, 4000, rng)
    assert mutate_batch(parents, tiny, rng, prob=0.0, resolution_prob=0.0).equals(parents)
    children = mutate_batch(parents, tiny, rng, prob=0.1, resolution_prob=0.5)
    children.validate(tiny)
    # A resampled value equals the old one with chance 1/|choices|, as in SearchSpace.mutate.
    assert changed_share(parents, children, "kernel_size") == pytest.approx(0.1 * 2 / 3, abs=0.005)
    assert changed_share(parents, children, "depth") == pytest.approx(0.1 * 2 / 3, abs=0.01)
    assert changed_share(parents, children, "resolution") == pytest.approx(0.5 * 3 / 4, abs=0.03)
    configs = parents.to_configs()[:1000]
    per_config = ConfigBatch.from_configs([tiny.mutate(c, rng) for c in configs], tiny)
    reference = changed_share(parents[:1000], per_config, "kernel_size")
    assert changed_share(parents, children, "kernel_size") == pytest.approx(reference, abs=0.01)
    everything = mutate_batch(parents, tiny, rng, prob=1.0, resolution_prob=1.0)
    assert changed_share(parents, everything, "expand_ratio") == pytest.approx(2 / 3, abs=0.01)
    with pytest.raises(ConfigError, match=r"resolution_prob = -0.1 must be in \[0, 1\]"):
        mutate_batch(parents, tiny, rng, resolution_prob=-0.1)


def test_crossover_batch_takes_each_value_from_a_parent(tiny):
    rng = np.random.default_rng(1)
    a, b = sample_batch(tiny, 2000, rng), sample_batch(tiny, 2000, rng)
    child = crossover_batch(a, b, rng)
    for field in ("resolution", "kernel_size", "expand_ratio", "depth"):
        x, y, c = getattr(a, field), getattr(b, field), getattr(child, field)
        assert ((c == x) | (c == y)).all()
        differ = x != y
        assert (c[differ] == x[differ]).mean() == pytest.approx(0.5, abs=0.03)
    assert crossover_batch(a, a, rng).equals(a)
    with pytest.raises(ConfigError, match="crossover of batches"):
        crossover_batch(a, b[:10], rng)
