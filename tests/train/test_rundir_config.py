"""read_run_config: the saved config.yaml of a run directory is checked like any config file."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import yaml

from supernet.errors import ConfigError, RunDirError
from supernet.train import load_config, read_run_config
from supernet.train.rundir import CONFIG, RUNTIME_KEYS, config_digest


def test_round_trip(tmp_path):
    cfg = load_config("fashion-mnist-quick")
    (tmp_path / CONFIG).write_text(cfg.to_yaml())
    assert read_run_config(tmp_path).to_dict() == cfg.to_dict()


def test_missing_config_is_not_a_run(tmp_path):
    with pytest.raises(RunDirError, match=r"holds no supernet run \(no config.yaml\)"):
        read_run_config(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"colour: red\n", r"unknown key\(s\) \['colour'\]"),
        (b"- 1\n", "must hold a mapping"),
        (b"a: [\n", "cannot read config file"),
        (b"\xff\xfe\x00\x01", "cannot read config file"),
        (b"seed: !!python/object/apply:os.system [echo]\n", "cannot read config file"),
    ],
)
def test_a_damaged_config_is_a_config_error_naming_the_file(tmp_path, content, message):
    (tmp_path / CONFIG).write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        read_run_config(tmp_path)
    assert CONFIG in str(info.value)


def test_keys_added_later_leave_older_runs_digest_unchanged():
    """A run made before ``norm`` / ``sandwich_resolution`` / ``image_limit`` existed saved a
    config.yaml without them; at their defaults they stay out of the digest, so such runs still
    resume."""
    cfg = load_config("fashion-mnist-quick")
    later = {"norm": "bn", "sandwich_resolution": "step", "teacher_norm": "eval",
             "warmup": "linear", "decay_kernel_transforms": False,
             "image_limit": None, "image_size": None}  # fmt: skip
    dropped = later.keys() | set(RUNTIME_KEYS)
    old = {k: v for k, v in cfg.to_dict().items() if k not in dropped}
    expected = hashlib.sha256(yaml.safe_dump(old, sort_keys=True).encode()).hexdigest()[:16]
    default = load_config(
        "fashion-mnist-quick",
        overrides={"sandwich_resolution": "step", "norm": "bn", "image_limit": None},
    )
    assert config_digest(default) == expected
    changed = load_config("fashion-mnist-quick", overrides={"sandwich_resolution": "extremes"})
    assert config_digest(changed) != expected


def test_a_run_saved_before_the_later_keys_existed_still_loads(tmp_path):
    from supernet.train.rundir import _LATER_KEYS, read_run_config

    cfg = load_config("fashion-mnist-quick")
    saved = {k: v for k, v in cfg.to_dict().items() if k not in _LATER_KEYS}
    assert "image_size" not in saved and "image_limit" not in saved
    (tmp_path / CONFIG).write_text(yaml.safe_dump(saved))
    # each missing key takes the value it had before it existed
    assert read_run_config(tmp_path) == dataclasses.replace(cfg, **_LATER_KEYS)
