import pytest

from supernet.errors import ConfigError
from supernet.space import get_space
from supernet.train import PhaseConfig, list_presets, load_config, lr_at, phase_space
from supernet.train.config import PRESET_DIR, parse_overrides
from supernet.train.transformer_run import is_transformer_preset

# family hat presets load with supernet.train.transformer_run (tests/train/test_transformer_run.py)
CNN_PRESETS = [p for p in list_presets() if not is_transformer_preset(PRESET_DIR / f"{p}.yaml")]


@pytest.mark.parametrize("preset", CNN_PRESETS)
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
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epoch'\] in phases\[0\]"):
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


PHASE = {"name": "full", "epochs": 1, "lr": 0.1, "distill": False}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": True}, "batch_size = True must be an integer >= 1"),
        ({"batch_size": 64.0}, "batch_size = 64.0 must be an integer >= 1"),
        ({"train_limit": True}, "train_limit = True must be null or an integer >= 1"),
        ({"seed": -1}, "seed = -1 must be an integer >= 0"),
        ({"threads": 10**6}, r"threads = 1000000 must be null or in \[1, 1024\]"),
        ({"seed": "0"}, "seed = '0' must be an integer >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay = nan must be a finite number >= 0"),
        ({"momentum": float("inf")}, "momentum = inf must be a finite number"),
        ({"kd_ratio": "1"}, "kd_ratio = '1' must be a finite number"),
        ({"label_smoothing": None}, "label_smoothing = None must be a finite number"),
        ({"dropout": 1.0}, "dropout = 1.0 must be a finite number >= 0.0, below 1.0"),
        ({"nesterov": "yes please"}, "nesterov = 'yes please' must be true or false"),
        ({"augment": 1}, "augment = 1 must be true or false"),
        ({"momentum": 0.0}, "nesterov: true needs momentum > 0"),
        ({"amp": 3}, "amp = 3 must be true, false or a name"),
        ({"optimizer": ["sgd"]}, r"optimizer = \['sgd'\]; choose from"),
        ({"space": "nope"}, "space = 'nope'; choose from"),
        ({"dataset": "imagenet"}, "dataset = 'imagenet'; choose from"),
        ({"device": 0}, "device = 0 must be a non-empty string"),
        ({"phases": 3}, "phases = 3 must be a list of phases"),
        ({"phases": [3]}, r"phases\[0\] must be a mapping, got int"),
        ({"phases": [{**PHASE, "epochs": True}]}, r"phases\[0\] \('full'\).epochs = True"),
        ({"phases": [{**PHASE, "lr": "0.1"}]}, r"\.lr = '0.1' must be a finite number"),
        ({"phases": [{**PHASE, "lr": 0}]}, r"\.lr = 0 must be > 0"),
        ({"phases": [{**PHASE, "lr": float("nan")}]}, r"\.lr = nan must be a finite number"),
        ({"phases": [{**PHASE, "distill": "no"}]}, r"\.distill = 'no' must be true or false"),
        ({"phases": [{**PHASE, "name": ["a"]}]}, r"\.name must be a non-empty string"),
        ({"phases": [{**PHASE, "warmup_epochs": "1"}]}, r"\.warmup_epochs = '1' must be"),
        ({"phases": [{**PHASE, "depths": [True]}]}, r"\.depths = \[True\]; use 'all'"),
        ({"phases": [{**PHASE, "depths": []}]}, r"\.depths = \[\]; use 'all'"),
        ({1: 2}, r"unknown key\(s\) \[1\]"),
    ],
)
def test_values_of_the_wrong_type_or_range_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("fashion-mnist-quick", overrides=overrides)


def test_override_values_that_are_not_yaml_are_config_errors():
    for item in ("batch_size=[", "seed=!!python/object:os.system x", "a={b", "x=@"):
        with pytest.raises(ConfigError, match=r"override .* the value is not valid YAML"):
            parse_overrides([item])
    with pytest.raises(ConfigError, match="must look like KEY=VALUE"):
        parse_overrides([" =3"])


def test_unreadable_config_files_are_config_errors(tmp_path):
    cases = {"binary.yaml": b"\xff\xfe\x00\x01", "bad.yaml": b"a: [", "list.yaml": b"- 1\n"}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=name):
            load_config(path=path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(path=tmp_path)  # a directory


def test_presets_are_names_not_paths():
    for name in ("../configs/fashion-mnist-quick", "x" * 300, "a\x00b"):
        with pytest.raises(ConfigError, match="unknown preset"):
            load_config(name)


def test_cosine_lr_with_warmup():
    assert lr_at(0, 100, 0.1, warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(9, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(10, 100, 0.1, warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(55, 100, 0.1, warmup_steps=10) == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1) == pytest.approx(0.0)
