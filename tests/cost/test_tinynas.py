"""TinyNAS space selection: ranking by the MACs of fitting subnets on budgets with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.cost import flash_bytes, macs, sram_bytes
from supernet.cost.tinynas import naive_shrink_space, rank_spaces
from supernet.errors import ConfigError, SearchError
from supernet.space import ConfigBatch, get_space

SPACES = ["mbv3-tiny-w0.25-r16", "mbv3-tiny-w0.5-r24", "mbv3-tiny-w1-r32"]


def _smallest_costs(name: str) -> tuple[int, int]:
    space = get_space(name)
    one = [space.smallest()]
    return int(sram_bytes(one, space, planner="tinyengine")[0]), int(flash_bytes(one, space)[0])


def test_a_loose_budget_picks_the_biggest_space():
    # Everything fits: the widest, highest-resolution space has the most MACs.
    result = rank_spaces(10**9, 10**9, spaces=SPACES, samples=30)
    assert result.chosen == "mbv3-tiny-w1-r32"
    assert [s.space for s in result.scores] == SPACES[::-1]
    assert all(s.fitting == s.samples == 30 for s in result.scores)


def test_a_budget_only_the_narrow_spaces_meet_picks_the_best_of_them():
    # SRAM just enough for the w0.5-r24 space's largest subnet (all expand ratios at their
    # largest: every layer at its widest) and below the w1-r32 space's smallest one: w1 fits
    # nothing, w0.5 and w0.25 fit everything, and w0.5 has more MACs.
    w05 = get_space("mbv3-tiny-w0.5-r24")
    sram_w05_max = int(sram_bytes([w05.largest()], w05, planner="tinyengine")[0])
    assert sram_w05_max < _smallest_costs("mbv3-tiny-w1-r32")[0]
    result = rank_spaces(sram_w05_max, 10**9, spaces=SPACES, samples=30, planner="tinyengine")
    assert result.chosen == "mbv3-tiny-w0.5-r24"
    assert [s.space for s in result.scores] == ["mbv3-tiny-w0.5-r24", "mbv3-tiny-w0.25-r16",
                                                "mbv3-tiny-w1-r32"]  # fmt: skip
    by_name = {s.space: s for s in result.scores}
    assert by_name["mbv3-tiny-w1-r32"].fitting == 0  # spaces with no fit rank last
    assert by_name["mbv3-tiny-w0.5-r24"].fitting == by_name["mbv3-tiny-w0.25-r16"].fitting == 30


def test_the_statistic_is_the_mean_macs_of_the_fitting_samples():
    result = rank_spaces(10**9, 10**9, spaces=["mbv3-tiny-w0.5-r24"], samples=20, seed=5)
    score = result.scores[0]
    space = get_space("mbv3-tiny-w0.5-r24")
    # all fit here, so the fitting MACs are those of every sample: at least the smallest's.
    assert score.mean_macs == pytest.approx(float(np.mean(score.fitting_macs)))
    assert score.fitting_macs.min() == macs([space.smallest()], space)[0]
    assert list(score.fitting_macs) == sorted(score.fitting_macs)


def test_same_seed_same_ranking():
    a = rank_spaces(60000, 400000, spaces=SPACES, samples=40, seed=1)
    b = rank_spaces(60000, 400000, spaces=SPACES, samples=40, seed=1)
    assert [s.space for s in a.scores] == [s.space for s in b.scores]
    assert all(np.array_equal(x.fitting_macs, y.fitting_macs)
               for x, y in zip(a.scores, b.scores, strict=True))  # fmt: skip


def test_an_impossible_budget_names_the_smallest_sram_and_flash():
    sram, flash = _smallest_costs("mbv3-tiny-w0.25-r16")
    with pytest.raises(SearchError) as info:
        rank_spaces(sram - 1, flash - 1, spaces=SPACES, samples=10, planner="tinyengine")
    message = str(info.value)
    assert f"smallest found: SRAM {sram} bytes (mbv3-tiny-w0.25-r16)" in message
    assert f"Flash {flash} bytes (mbv3-tiny-w0.25-r16)" in message
    assert info.value.cheapest == {"sram_bytes": sram, "flash_bytes": flash}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"planner": "greedy"}, "memory planner = 'greedy'"),
        ({"samples": 1}, "samples = 1 must be an integer >= 2"),
        ({"spaces": []}, "spaces is empty"),
        ({"spaces": ["mbv3-tiny-w0.3-r16"]}, "width multiplier 0.3 is not allowed"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        rank_spaces(1e6, 1e6, **kwargs)


def test_bad_budget_is_refused():
    with pytest.raises(ConfigError, match="max_sram_bytes = 0 must be a positive"):
        rank_spaces(0, 1e6)


def _largest_cost(name: str, planner: str = "tinyengine") -> tuple[int, int]:
    space = get_space(name)
    batch = ConfigBatch.from_configs([space.largest()], space)
    return int(sram_bytes(batch, space, planner=planner)[0]), int(flash_bytes(batch, space)[0])


def test_naive_shrinking_takes_the_widest_space_whose_largest_subnet_fits():
    sram, flash = _largest_cost("mbv3-tiny-w0.5-r32")
    _, wider_flash = _largest_cost("mbv3-tiny-w0.75-r32")
    assert wider_flash > flash  # the budget below sits between the two widths
    assert naive_shrink_space(10**9, flash) == "mbv3-tiny-w0.5-r32"
    assert naive_shrink_space(10**9, wider_flash - 1) == "mbv3-tiny-w0.5-r32"
    assert naive_shrink_space(10**9, wider_flash) == "mbv3-tiny-w0.75-r32"
    assert naive_shrink_space(10**9, 10**9) == "mbv3-tiny-w1-r32"
    # an SRAM budget: the answer's largest subnet fits it, and the next width's does not
    chosen = naive_shrink_space(sram, 10**9)
    assert _largest_cost(chosen)[0] <= sram
    widths = [
        "mbv3-tiny-w0.25-r32",
        "mbv3-tiny-w0.5-r32",
        "mbv3-tiny-w0.75-r32",
        "mbv3-tiny-w1-r32",
    ]
    wider = widths[widths.index(chosen) + 1 :]
    assert all(_largest_cost(name)[0] > sram for name in wider)


def test_naive_shrinking_below_the_narrowest_width_names_what_it_needs():
    sram, flash = _largest_cost("mbv3-tiny-w0.25-r32")
    with pytest.raises(SearchError, match=rf"mbv3-tiny-w0.25-r32, needs SRAM {sram} and Flash"):
        naive_shrink_space(10**9, flash - 1)
