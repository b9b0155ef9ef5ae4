import pytest

from supernet.errors import ConfigError
from supernet.space import get_space
from supernet.train import PhaseConfig, list_presets, load_config, lr_at, phase_space
from supernet.train.config import parse_overrides


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads_and_its_phases_fit_its_space(preset):
    cfg = load_config(preset)
    space = get_space(cfg.space)
    names = [p.name for p in cfg.phases]
    assert names[0] == "full" and not cfg.phases[0].distill
    for phase in cfg.phases:
        phase_space(space, phase)  # raises if a phase names a choice the space lacks


def test_progressive_shrinking_order_in_presets():
    cfg = load_config("fashion-mnist-quick")
    space = get_space(cfg.space)
    subs = [phase_space(space, p) for p in cfg.phases]
    # kernel becomes elastic before depth, depth before expand ratio (OFA Fig. 2)
    assert subs[0].kernel_sizes == (7,) and subs[1].kernel_sizes == (3, 5, 7)
    assert subs[1].depths == (4,) and subs[3].depths == (2, 3, 4)
    assert subs[3].expand_ratios == (6,) and subs[-1].expand_ratios == (3, 4, 6)
    assert all(s.resolutions == space.resolutions for s in subs)


def test_unknown_keys_are_errors_listing_known_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['bacth_size'\].*batch_size"):
        load_config("fashion-mnist-quick", overrides={"bacth_size": 4})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\] in phases\[\]"):
        load_config(overrides={"phases": [{"name": "a", "epoch": 1, "lr": 0.1}]})


def test_unknown_preset_lists_presets():
    with pytest.raises(
        ConfigError, match=r"unknown preset 'nope'; choose from .*fashion-mnist-quick"
    ):
        load_config("nope")


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match=r"phases\[0\] \('full'\).epochs = 0"):
        load_config(overrides={"phases": [{"name": "full", "epochs": 0, "lr": 0.1}]})
    with pytest.raises(ConfigError, match="kernel_sizes = 'big'"):
        load_config(overrides={"phases": [{"name": "f", "epochs": 1, "lr": 0.1, "distill": False,
                                            "kernel_sizes": "big"}]})  # fmt: skip
    with pytest.raises(ConfigError, match="has distill: true"):
        load_config(overrides={"phases": [{"name": "f", "epochs": 1, "lr": 0.1}]})
    space = get_space("mbv3-tiny")
    with pytest.raises(ConfigError, match=r"kernel_sizes = \(9,\) is not a subset"):
        phase_space(space, PhaseConfig(name="x", epochs=1, lr=0.1, kernel_sizes=[9]))


def test_overrides_parse_yaml_values():
    assert parse_overrides(["batch_size=64", "train_limit=null", "amp=bf16"]) == {
        "batch_size": 64,
        "train_limit": None,
        "amp": "bf16",
    }
    with pytest.raises(ConfigError, match="must look like KEY=VALUE"):
        parse_overrides(["batch_size"])


def test_cosine_lr_with_warmup():
    assert lr_at(0, 100, 0.1, warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(9, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(10, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(55, 100, 0.1, warmup_steps=10) == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1) == pytest.approx(0.0)
