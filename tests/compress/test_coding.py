"""Huffman coding and the relative sparse index of Deep Compression (arXiv 1510.00149)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet.compress.coding import (
    huffman_coded_bytes,
    huffman_decode,
    huffman_encode,
    relative_index,
    relative_positions,
)
from supernet.errors import ConfigError


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=400))
def test_huffman_round_trip_on_random_streams(symbols):
    data, table = huffman_encode(np.array(symbols, dtype=np.int64))
    out = huffman_decode(data, table, len(symbols))
    assert out.tolist() == symbols


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=600))
def test_coded_bytes_from_counts_equal_the_real_stream(symbols):
    data, _ = huffman_encode(np.array(symbols, dtype=np.int64))
    counts = dict(zip(*np.unique(symbols, return_counts=True), strict=True)) if symbols else {}
    assert huffman_coded_bytes(counts) == len(data)


def test_huffman_codes_a_skewed_stream_below_its_fixed_width():
    rng = np.random.default_rng(0)
    symbols = rng.choice(32, size=5000, p=np.r_[0.5, np.full(31, 0.5 / 31)])
    data, table = huffman_encode(symbols)
    assert len(data) < 5000 * 5 / 8 * 0.8  # 5-bit fixed width; entropy ~3.5 bits
    frequent = table["symbols"].index(0)
    assert table["bits"][frequent] == 1  # the most frequent symbol gets the shortest code
    assert huffman_decode(data, table, 5000).tolist() == symbols.tolist()


def test_a_truncated_stream_is_refused():
    data, table = huffman_encode(np.arange(200) % 7)
    with pytest.raises(ValueError, match="decodes to"):
        huffman_decode(data[:-5], table, 200)


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.integers(min_value=0, max_value=5000), max_size=200),
    st.integers(min_value=1, max_value=8),
)
def test_relative_index_round_trip_with_filler_zeros(positions, bits):
    pos = np.array(sorted(positions), dtype=np.int64)
    gaps, filler = relative_index(pos, bits)
    assert gaps.min(initial=0) >= 0 and gaps.max(initial=0) < 2**bits
    assert (~filler).sum() == len(pos)
    assert relative_positions(gaps, filler).tolist() == pos.tolist()


def test_paper_figure_2_example_gets_one_filler():
    # 3-bit gaps span at most 8 positions: nonzeros at 1, 4 and 15 need one filler zero (at 12).
    gaps, filler = relative_index(np.array([1, 4, 15]), 3)
    assert (gaps + 1).tolist() == [2, 3, 8, 3]
    assert filler.tolist() == [False, False, True, False]


def test_relative_index_rejects_unsorted_positions_and_bad_bits():
    with pytest.raises(ConfigError, match="strictly increasing"):
        relative_index(np.array([3, 3]), 4)
    with pytest.raises(ConfigError, match="index_bits = 0"):
        relative_index(np.array([1]), 0)
