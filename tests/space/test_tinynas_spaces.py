"""The TinyNAS family of mbv3-tiny: width multiplier x resolution spaces found by name."""

from __future__ import annotations

import pytest

from supernet.errors import ConfigError
from supernet.space import (
    TINYNAS_RESOLUTIONS,
    TINYNAS_WIDTHS,
    get_space,
    list_spaces,
    tinynas_space,
    tinynas_space_names,
)


def test_every_name_resolves_to_its_width_and_resolution():
    names = tinynas_space_names()
    assert len(names) == len(TINYNAS_WIDTHS) * len(TINYNAS_RESOLUTIONS)
    for name in names:
        space = get_space(name)
        assert space.name == name
        assert f"-w{space.width_mult:g}-r{space.resolutions[0]}" in name
        assert space.resolutions == (space.resolutions[0],)
    assert not set(names) & set(list_spaces())  # the family is not listed with the presets


def test_widths_scale_and_round_to_multiples_of_8():
    base, half = get_space("mbv3-tiny"), get_space("mbv3-tiny-w0.5-r24")
    assert [s.width for s in half.stages] == [8, 16, 16, 24, 32]  # 16 24 32 48 64 halved
    assert (half.stem_width, half.final_expand_width, half.feature_mix_width) == (8, 192, 256)
    assert get_space("mbv3-tiny-w1-r28").stages == base.stages
    assert half.kernel_sizes == base.kernel_sizes and half.depths == base.depths


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mbv3-tiny-w0.3-r24", r"width multiplier 0.3 is not allowed; choose from \(0.25"),
        ("mbv3-tiny-w0.5-r25", r"resolution 25 is not allowed; choose from \(16"),
        ("mbv3-tiny-w0.50-r24", "unknown space 'mbv3-tiny-w0.50-r24'.*TinyNAS space"),
        ("ofa-mbv3-w0.5-r24", "unknown space"),
    ],
)
def test_bad_family_names_say_what_is_allowed(name, message):
    with pytest.raises(ConfigError, match=message):
        get_space(name)


def test_unknown_base_is_refused():
    with pytest.raises(ConfigError, match="TinyNAS base space 'nope' is not known"):
        tinynas_space("nope", width_mult=0.5, resolution=24)
