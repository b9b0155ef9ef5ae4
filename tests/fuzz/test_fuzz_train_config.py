"""Fuzz the training config: ``--set KEY=VALUE`` overrides, config files and phase lists."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import (
    EXAMPLES,
    fuzz,
    json_documents,
    mutated,
    nasty_text,
    nested_mutation,
    outcome,
    raw_bytes,
    scalars,
    to_yaml_text,
)

from supernet.errors import ConfigError
from supernet.train import TrainConfig, load_config, parse_overrides
from supernet.train.config import PhaseConfig
from supernet.train.rundir import config_digest

PRESET = "fashion-mnist-quick"
BASE = load_config(PRESET).to_dict()
KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
PHASE_KEYS = [f.name for f in dataclasses.fields(PhaseConfig)]

yaml_values = st.one_of(
    st.integers(min_value=-3, max_value=300).map(str),
    st.floats(min_value=-1, max_value=2).map(repr),
    st.sampled_from(["true", "false", "null", "0", "1", "64", "0.1", "1e-4", "bn", "gn", "sgd",
                     "adamw", "frozen", "inplace", "cpu", "auto", "digits", "mbv3-tiny", "off"]),
    scalars.map(to_yaml_text).map(str.strip),
    st.sampled_from(["[1, 2]", "[]", "{}", "{a: 1}", "[3, true]", "all", "max", "min",
                     "!!python/name:os.system", "!!set {a, b}", "2024-01-01", "0x1F", "1_000",
                     ".inf", "-.nan", "1" * 5000, "[" * 200, "*alias", "&a 1", "'", '"']),
    nasty_text,
)  # fmt: skip
known_items = st.tuples(st.sampled_from(KEYS), yaml_values).map(lambda kv: f"{kv[0]}={kv[1]}")
any_items = st.one_of(
    known_items,
    st.tuples(nasty_text, yaml_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
    nasty_text,  # often no "=" at all
)
# Mostly well-formed items of known keys, so most examples reach the value checks.
override_lists = st.one_of(
    *[st.lists(known_items, min_size=1, max_size=3)] * 3,
    st.lists(any_items, min_size=1, max_size=3),
)


def _check_config(cfg: TrainConfig, tmp_path) -> None:
    """A config that loads has values of its fields' types and survives its own YAML file."""
    for name in ("seed", "batch_size", "eval_batch_size", "bn_calib_images"):
        assert type(getattr(cfg, name)) is int, name
    for name in ("nesterov", "augment", "channels_last"):
        assert type(getattr(cfg, name)) is bool, name
    assert all(type(p.epochs) is int and type(p.distill) is bool for p in cfg.phases)
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path=path)
    assert again.to_dict() == cfg.to_dict()
    assert config_digest(again) == config_digest(cfg)


def _load(thunk, tmp_path, *, names: str = "") -> None:
    """``thunk()`` gives a config that passes ``_check_config`` or a ConfigError (naming
    ``names``, e.g. the file, when given)."""
    cfg, error = outcome(thunk, ConfigError)
    if error is not None:
        assert str(error) and names in str(error)
        return
    _check_config(cfg, tmp_path)


@fuzz(250)
@given(items=override_lists)
def test_overrides_from_the_command_line(items, tmp_path):
    EXAMPLES["train_config.overrides"] += 1

    def thunk():
        return load_config(PRESET, overrides=parse_overrides(items))

    _load(thunk, tmp_path)


phase_values = json_documents(4) | st.sampled_from([0, 1, True, -1, 0.5, "all", [3], [True]])
phase_docs = st.one_of(
    nested_mutation(BASE, ("phases", 0, "epochs"), phase_values),
    st.sampled_from(PHASE_KEYS).flatmap(
        lambda key: nested_mutation(BASE, ("phases", 1, key), phase_values)
    ),
    nested_mutation(BASE, ("phases",), json_documents(6)),
    mutated(BASE),
)


@fuzz(200)
@given(doc=phase_docs)
def test_config_files_with_mutated_fields(doc, tmp_path):
    EXAMPLES["train_config.file"] += 1
    path = tmp_path / "fuzzed.yaml"
    path.write_text(to_yaml_text(doc))
    _load(lambda: load_config(path=path), tmp_path, names=str(path))


@fuzz(60)
@given(content=raw_bytes() | json_documents().map(to_yaml_text).map(str.encode))
def test_config_files_of_any_bytes(content, tmp_path):
    EXAMPLES["train_config.bytes"] += 1
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(content)
    _load(lambda: load_config(path=path), tmp_path, names=str(path))


@fuzz(60)
@given(preset=nasty_text | st.sampled_from([PRESET, "fashion-mnist", "../configs/" + PRESET]))
def test_preset_names(preset, tmp_path):
    EXAMPLES["train_config.preset"] += 1
    _load(lambda: load_config(preset), tmp_path)
