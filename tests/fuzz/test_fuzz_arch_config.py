"""Fuzz ArchConfig: construction, from_dict/from_json on any JSON or bytes, validate(space)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import (
    EXAMPLES,
    fuzz,
    json_documents,
    mutated,
    nasty_numbers,
    outcome,
    raw_bytes,
    scalars,
    to_json_text,
)

from supernet.errors import ConfigError
from supernet.space import ArchConfig, get_space, list_spaces

SPACES = [get_space(name) for name in list_spaces()]
VALID = [s.sample(np.random.default_rng(i)).to_dict() for i, s in enumerate(SPACES)]
FIELDS = ("resolution", "kernel_size", "expand_ratio", "depth")


def _parse_and_validate(load) -> None:
    """``load()`` gives a config or a ConfigError; a config validates or gives a ConfigError
    naming the space; a valid one survives a JSON round trip."""
    config, error = outcome(load, ConfigError)
    if error is not None:
        assert str(error)
        return
    assert isinstance(config, ArchConfig)
    assert type(config.resolution) is int
    assert all(type(v) is int for f in FIELDS[1:] for v in getattr(config, f))
    for space in SPACES:
        _, error = outcome(lambda space=space: config.validate(space), ConfigError)
        if error is not None:
            assert repr(space.name) in str(error)
            continue
        assert ArchConfig.from_json(config.to_json()) == config


@fuzz(300)
@given(doc=json_documents() | st.sampled_from(VALID).flatmap(mutated))
def test_from_json_of_any_json_document(doc):
    EXAMPLES["arch_config.from_json"] += 1
    _parse_and_validate(lambda: ArchConfig.from_json(to_json_text(doc)))


@fuzz(120)
@given(data=raw_bytes(nesting=5000) | st.text(max_size=40) | scalars)
def test_from_json_of_any_bytes_text_or_value(data):
    EXAMPLES["arch_config.from_json_raw"] += 1
    _parse_and_validate(lambda: ArchConfig.from_json(data))


field_values = st.one_of(
    scalars,
    st.lists(nasty_numbers, max_size=25),
    st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=25),
    st.tuples(st.integers(), st.text(max_size=2)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(iter([3, 5])),
    st.just(np.array([3, 5])),
)


@fuzz(200)
@given(
    base=st.sampled_from(VALID),
    changes=st.dictionaries(st.sampled_from(FIELDS), field_values, min_size=1, max_size=2),
)
def test_constructor_with_arbitrary_field_values(base, changes):
    EXAMPLES["arch_config.construct"] += 1
    _parse_and_validate(lambda: ArchConfig(**{**base, **changes}))


@fuzz(150)
@given(base=st.sampled_from(VALID), data=st.data())
def test_one_wrong_choice_is_named_by_validate(base, data):
    """A valid config with one entry set to a value outside the space's choices: validate
    names that field and the value."""
    EXAMPLES["arch_config.validate"] += 1
    space = SPACES[VALID.index(base)]
    field = data.draw(st.sampled_from(FIELDS))
    value = data.draw(st.integers(min_value=-(10**12), max_value=10**12))
    choices = {
        "resolution": space.resolutions,
        "kernel_size": space.kernel_sizes,
        "expand_ratio": space.expand_ratios,
        "depth": space.depths,
    }[field]
    doc = dict(base)
    if field == "resolution":
        doc[field] = value
    else:
        doc[field] = list(doc[field])
        doc[field][data.draw(st.integers(0, len(doc[field]) - 1))] = value
    config = ArchConfig.from_dict(doc)
    if value in choices:
        assert config.validate(space) is config
        return
    _, error = outcome(lambda: config.validate(space), ConfigError)
    assert error is not None, f"{field} = {value} passed validation in {space.name}"
    message = str(error)
    assert field in message and str(value) in message and str(choices) in message
