"""The compiled TFLM planner kernel against the per-subnet reference planner (greedy_plan on one
operator graph per config) and against the numpy planner it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.cost import block_list_from_config, mcu_cost, tflm_batch, tflm_native
from supernet.cost.macs import SubnetShapes
from supernet.cost.tflm_planner import TFLM_ALIGNMENT_BYTES, Buffer, align_up, greedy_plan
from supernet.space import get_space, sample_batch

needs_kernel = pytest.mark.skipif(tflm_native.load() is None, reason="no C compiler here")


def _random_plans(rng, n, m, scopes):
    """``n`` random plans of ``m`` buffers (raw sizes, some 0) on ``scopes`` scopes, as the
    kernel takes them (every last scope per subnet), and as Buffer lists."""
    size = rng.integers(0, 400, size=(m, n)) * (rng.random((m, n)) < 0.85)
    size[rng.random((m, n)) < 0.3] = 64  # many equal sizes: the order among ties matters
    first = rng.integers(0, scopes, size=m)
    last = first[:, None] + rng.integers(0, 4, size=(m, n))
    plans = [
        [Buffer(align_up(int(size[b, r])), int(first[b]), int(last[b, r])) for b in range(m)]
        for r in range(n)
    ]
    return size, first, last, plans


def _all_meet(m):
    return np.array([[j for j in range(m) if j != b] for b in range(m)], dtype=np.int32)


@needs_kernel
def test_kernel_equals_the_reference_planner_on_random_buffers():
    rng = np.random.default_rng(0)
    for m, scopes in ((1, 1), (5, 2), (30, 10), (60, 40)):
        size, first, last, plans = _random_plans(rng, 50, m, scopes)
        row = np.arange(m, dtype=np.int32)  # every buffer's last scope varies
        no_fixed = np.zeros(m, dtype=np.int64)
        totals = tflm_native.greedy_totals(size, first, no_fixed, row, last, _all_meet(m))
        assert totals.tolist() == [greedy_plan(p)[1] for p in plans]


@needs_kernel
def test_kernel_reads_fixed_last_scopes_and_looks_only_at_listed_neighbours():
    # A (64, t0-1) and B (48, t1-2) meet at scope 1 and C (32, t2) meets B: listed as
    # neighbours, B sits on A (@64) and C below B's gap (@0): 112 bytes. If nobody is listed,
    # every buffer goes to 0 (the list is trusted to hold every buffer met in time).
    size = np.array([[64], [48], [32]])
    first, last = np.array([0, 1, 2]), np.array([1, 2, 2])
    no_rows = np.full(3, -1, dtype=np.int32)
    varies = np.zeros((0, 1), dtype=np.int64)
    listed = np.array([[1, -1], [0, 2], [1, -1]], dtype=np.int32)
    assert tflm_native.greedy_totals(size, first, last, no_rows, varies, listed).tolist() == [112]
    assert greedy_plan([Buffer(64, 0, 1), Buffer(48, 1, 2), Buffer(32, 2, 2)])[1] == 112
    unlisted = np.full((3, 1), -1, dtype=np.int32)
    assert tflm_native.greedy_totals(size, first, last, no_rows, varies, unlisted).tolist() == [64]


@needs_kernel
def test_kernel_declines_sizes_its_sort_key_cannot_hold():
    size = np.array([[1 << 43]])
    args = (np.array([0]), np.array([0]), np.full(1, -1, np.int32), np.zeros((0, 1), np.int64))
    assert tflm_native.greedy_totals(size, *args, np.full((1, 1), -1, np.int32)) is None
    total = tflm_native.greedy_totals(size >> 20 | 1, *args, np.full((1, 1), -1, np.int32))
    assert total.tolist() == [(1 << 23) + TFLM_ALIGNMENT_BYTES]


@pytest.mark.parametrize(
    ("space_name", "n"),
    [("mbv3-tiny", 150), ("mbv3-tiny-w0.5-r20", 150), ("mbv3-tiny-w0.25-r32", 100),
     ("proxyless-tiny", 100)],
)  # fmt: skip
def test_batched_tflm_equals_one_graph_per_config(space_name, n):
    # mbv3-tiny draws resolutions 20-32: PAD before a stride-2 conv on 24/32 and not on the
    # odd 5x5 / 7x7 maps of 20/28; r32 has a PAD at every stride 2, r20 none after the stem.
    space = get_space(space_name)
    batch = sample_batch(space, n, np.random.default_rng(7))
    expected = [mcu_cost(block_list_from_config(c, space), "tflm").sram_bytes for c in batch]
    shapes = SubnetShapes.from_configs(batch, space)
    assert tflm_batch.tflm_sram_of_shapes(shapes).tolist() == expected


@pytest.mark.slow
def test_batched_tflm_equals_one_graph_per_config_on_thousands():
    for space_name in ("mbv3-tiny", "mbv3-tiny-w0.75-r28", "mbv3-tiny-w1-r24"):
        space = get_space(space_name)
        batch = sample_batch(space, 500, np.random.default_rng(11))
        expected = [mcu_cost(block_list_from_config(c, space), "tflm").sram_bytes for c in batch]
        shapes = SubnetShapes.from_configs(batch, space)
        assert tflm_batch.tflm_sram_of_shapes(shapes).tolist() == expected, space_name


def test_without_the_kernel_the_numpy_planner_gives_the_same_numbers(monkeypatch):
    space = get_space("mbv3-tiny")
    shapes = SubnetShapes.from_configs(sample_batch(space, 60, np.random.default_rng(2)), space)
    fast = tflm_batch.tflm_sram_of_shapes(shapes)
    monkeypatch.setattr(tflm_native, "load", lambda: None)
    assert tflm_native.greedy_totals(np.zeros((1, 1)), *[None] * 5) is None
    assert tflm_batch.tflm_sram_of_shapes(shapes).tolist() == fast.tolist()


def test_no_compiler_or_opt_out_means_no_kernel(monkeypatch, tmp_path):
    tflm_native.load.cache_clear()
    try:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        assert tflm_native.load() is None
        assert not list(tmp_path.rglob("*.so"))
        tflm_native.load.cache_clear()
        monkeypatch.delenv("CC")
        monkeypatch.setenv("SUPERNET_NO_NATIVE", "1")
        assert tflm_native.load() is None
    finally:
        tflm_native.load.cache_clear()
