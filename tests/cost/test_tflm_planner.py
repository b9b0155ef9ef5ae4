"""TFLM's greedy memory planner, re-implemented: placement rules on hand-checked cases."""

from __future__ import annotations

import pytest

from supernet.cost.tflm_planner import Buffer, align_up, greedy_plan, live_high_water
from supernet.errors import ConfigError


def test_sizes_round_up_to_16_bytes():
    assert [align_up(n) for n in (0, 1, 16, 17, 33)] == [0, 16, 16, 32, 48]


def test_buffers_that_never_meet_share_offset_zero():
    offsets, total = greedy_plan([Buffer(64, 0, 1), Buffer(32, 2, 3), Buffer(48, 4, 4)])
    assert offsets == [0, 0, 0] and total == 64


def test_equal_sizes_place_the_later_added_buffer_first():
    # TFLM lists buffers from the last added and sorts stably by size, largest first.
    offsets, total = greedy_plan([Buffer(16, 0, 1), Buffer(16, 0, 1)])
    assert offsets == [16, 0] and total == 32


def test_largest_first_then_above_whatever_is_alive():
    # Sizes 64 (A, t0-2), 48 (B, t1), 32 (C, t0-2), 16 (D, t3). A @0; B meets A → @64; C meets
    # A and B → @112; D meets nobody → @0. The arena needs 112 + 32 = 144 bytes.
    buffers = [Buffer(64, 0, 2), Buffer(48, 1, 1), Buffer(32, 0, 2), Buffer(16, 3, 3)]
    offsets, total = greedy_plan(buffers)
    assert offsets == [0, 64, 112, 0]
    assert total == 144
    assert live_high_water(buffers, offsets, 1) == 144
    assert live_high_water(buffers, offsets, 3) == 16


def test_a_gap_below_a_placed_buffer_is_reused():
    # A (t0-2) 64 @0; B (t2-3) 48 meets A → @64; C (t3) 40 meets only B @64: the gap 0..64 fits.
    offsets, total = greedy_plan([Buffer(64, 0, 2), Buffer(48, 2, 3), Buffer(40, 3, 3)])
    assert offsets == [0, 64, 0]
    assert total == 112


def test_order_is_by_size_not_by_time():
    # C (t2) 72 is the largest: @0 first; A (t0-1) 64 never meets C → @0; B (t1-2) 48 meets
    # both → above the higher end, 72.
    offsets, total = greedy_plan([Buffer(64, 0, 1), Buffer(48, 1, 2), Buffer(72, 2, 2)])
    assert offsets == [0, 72, 0]
    assert total == 120


def test_bad_buffers_are_refused():
    with pytest.raises(ConfigError, match="last >= first"):
        greedy_plan([Buffer(16, 3, 1)])


def _tflm_literal(buffers):
    """TFLM's CalculateOffsetsIfNeeded step by step: buffers listed from the last added, bubble
    sorted by size (stable, largest first), each walked against *every* placed buffer in an
    offset-ordered list (non-overlapping ones skipped), inserted after equal offsets."""
    ids = list(range(len(buffers)))[::-1]
    ids = [i for i in ids if buffers[i].size > 0]
    swapped = True
    while swapped:
        swapped = False
        for k in range(1, len(ids)):
            if buffers[ids[k - 1]].size < buffers[ids[k]].size:
                ids[k - 1], ids[k] = ids[k], ids[k - 1]
                swapped = True
    placed, offsets = [], {}
    for i in ids:
        b, candidate, prior = buffers[i], 0, None
        alive = [j for j in placed
                 if not (buffers[j].first > b.last or b.first > buffers[j].last)]  # fmt: skip
        for j in alive:
            if prior is not None:
                candidate = max(candidate, offsets[prior] + buffers[prior].size)
            if offsets[j] - candidate >= b.size:
                break
            prior = j
        else:
            if prior is not None:
                candidate = max(candidate, offsets[prior] + buffers[prior].size)
        offsets[i] = candidate
        at = next((k for k, j in enumerate(placed) if offsets[j] > candidate), len(placed))
        placed.insert(at, i)
    return [offsets.get(i, -1) for i in range(len(buffers))]


def test_matches_a_literal_transcription_of_tflms_loop_on_random_buffers():
    import random

    rng = random.Random(0)
    for _ in range(200):
        buffers = []
        for _ in range(rng.randint(1, 12)):
            first = rng.randint(0, 8)
            buffers.append(Buffer(16 * rng.randint(0, 6), first, first + rng.randint(0, 4)))
        assert greedy_plan(buffers)[0] == _tflm_literal(buffers)
