"""Latency lookup tables: keys, batched prediction, build → save → load, and their errors."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from supernet.cost.device import DeviceSpec
from supernet.cost.latency import LatencyResult
from supernet.cost.lut import (
    LatencyTable,
    config_keys,
    feature_sizes,
    load_latency_table,
    slot_specs,
)
from supernet.cost.lut_build import (
    block_modules,
    build_latency_table,
    fit_overhead,
)
from supernet.cost.lut_validate import validate_latency_table
from supernet.errors import ConfigError, LatencyTableError
from supernet.nn import OFAMobileNetV3
from supernet.space import ArchConfig, SearchSpace, StageSpec, get_space

FAST = {"repeats": 2, "warmup": 1, "fit_subnets": 2}


def tiny_space(name: str = "lut-tiny") -> SearchSpace:
    """2 stages of max depth 2, 2 resolutions, 2 kernels, 2 expand ratios: 36 table entries."""
    return SearchSpace(
        name=name,
        input_channels=1,
        num_classes=3,
        resolutions=(8, 12),
        kernel_sizes=(3, 5),
        expand_ratios=(2, 3),
        depths=(1, 2),
        stages=(StageSpec(8, 2, 2, "relu", False), StageSpec(16, 2, 1, "h_swish", True)),
        stem_width=8,
        stem_stride=2,
        first_block_width=8,
        final_expand_width=32,
        feature_mix_width=24,
    )


@pytest.fixture(scope="module")
def space():
    return tiny_space()


@pytest.fixture(scope="module")
def table(space):
    device = DeviceSpec(name="test", runtime="torch", threads=1)
    return build_latency_table(space, device, memory_format="contiguous", **FAST)


def manual_prediction(table: LatencyTable, config: ArchConfig) -> float:
    keys = config_keys(table.space, config)
    summed = sum(table.entries[k][0] for k in keys) - len(keys) * table.call_overhead_ms
    return table.scale * summed + table.overhead_ms


def test_keys_follow_the_real_feature_maps(space):
    """The hw in every key equals the input size the block sees in the extracted subnet."""
    torch.manual_seed(0)
    net = OFAMobileNetV3(space).eval()
    for config in (space.largest(), space.smallest()):
        subnet = net.get_subnet(config)
        seen: list[int] = []

        def record(module, args, seen=seen):
            seen.append(args[0].shape[-1])

        hooks = [b.register_forward_pre_hook(record) for b in subnet.blocks]
        subnet(torch.zeros(1, 1, config.resolution, config.resolution))
        for h in hooks:
            h.remove()
        keys = config_keys(space, config)
        # seen[0] is the first (fixed) block, then one per active slot
        assert [int(k.split("hw=")[1].split()[0]) for k in keys[1:-1]] == seen[1:]
        assert keys[0].startswith(f"stem hw={config.resolution} ")
        assert feature_sizes(space, config.resolution)[0] == seen[0]


def test_distinct_blocks_are_measured_once(space, table):
    modules = block_modules(OFAMobileNetV3(space), 1)
    assert len(modules) == 36 == len(table.entries)
    assert set(modules) == set(table.entries)
    assert all(m > 0 and q >= 0 for m, q in table.entries.values())
    factory, shape = modules["mbconv hw=4 in=8 out=8 k=5 e=3 s=2 se=0 act=relu"]
    assert shape == (1, 8, 4, 4) and factory()(torch.zeros(shape)).shape == (1, 8, 2, 2)


def test_predict_is_the_fitted_sum_of_the_config_s_entries(space, table):
    rng = np.random.default_rng(0)
    configs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(20))]
    predicted = table.predict(configs)
    assert predicted.shape == (22,) and predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, [manual_prediction(table, c) for c in configs])
    assert table.predict([]).shape == (0,)
    assert table.build["fit"]["measured_ms"] and len(table.build["fit"]["configs"]) == 4


def test_save_load_round_trip(tmp_path, space, table):
    path = table.save(tmp_path / "luts" / "tiny.json")
    loaded = load_latency_table(path, space=space, runtime="torch")
    configs = [space.sample(np.random.default_rng(1)) for _ in range(10)]
    np.testing.assert_array_equal(loaded.predict(configs), table.predict(configs))
    assert loaded.to_dict() == table.to_dict()
    data = json.loads(path.read_text())
    assert (
        data["format_version"] == 1 and data["space"] == "lut-tiny" and data["runtime"] == "torch"
    )
    assert data["device"]["threads"] == 1 and data["machine"]["cpu_model"]
    assert data["library_version"] == "0.1.0"
    assert not list(path.parent.glob(".*")), "a temporary file was left behind"


def test_loading_for_another_space_or_runtime_fails(tmp_path, space, table):
    path = table.save(tmp_path / "tiny.json")
    with pytest.raises(LatencyTableError, match=r"was built for space 'lut-tiny', not 'other'"):
        load_latency_table(path, space=tiny_space("other"))
    changed = dataclasses.replace(space, num_classes=4)
    with pytest.raises(LatencyTableError, match=r"another definition of space 'lut-tiny' "
                       r"\(differing fields: \['num_classes'\]\)"):  # fmt: skip
        load_latency_table(path, space=changed)
    with pytest.raises(LatencyTableError, match="measured with runtime 'torch', not 'onnxruntime'"):
        load_latency_table(path, space=space, runtime="onnxruntime")
    with pytest.raises(LatencyTableError, match=r"unknown space 'lut-tiny'"):
        load_latency_table(path)  # not a registered space
    with pytest.raises(LatencyTableError, match="was built for space 'lut-tiny', not 'mbv3-tiny'"):
        table.check_space(get_space("mbv3-tiny"))


def test_bad_files_fail_clearly(tmp_path, space, table):
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="has format_version 99; this supernet reads 1"):
        load_latency_table(path, space=space)
    path.write_text("[1, 2]")
    with pytest.raises(LatencyTableError, match="is not a latency table"):
        load_latency_table(path, space=space)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_latency_table(tmp_path / "nope.json", space=space)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 1.0}, "has format_version 1.0; this supernet reads 1"),
        ({"format_version": True}, "has format_version True"),
        ({"format_version": None}, "has format_version None"),
        ({"surprise": 1}, r"unknown field\(s\) \['surprise'\]"),
        ({"space": ["lut-tiny"]}, r"space = \['lut-tiny'\] must be a name"),
        ({"space_fields": [1]}, r"space_fields = \[1\] a mapping"),
        ({"scale": float("nan")}, "scale = nan must be a finite number"),
        ({"scale": "2"}, "scale = '2' must be a finite number"),
        ({"overhead_ms": True}, "overhead_ms = True must be a finite number"),
        ({"call_overhead_ms": -1.0}, r"call_overhead_ms = -1.0 must be a finite number >= 0"),
        ({"memory_format": "nhwc"}, "memory_format = 'nhwc' is not allowed"),
        ({"machine": []}, r"machine = \[\] must be a mapping"),
        ({"build": {"repeats": "15"}}, "build.repeats = '15' must be an integer >= 1"),
        ({"entries": []}, "entries = list must be a mapping"),
        ({"runtime": "onnxruntime"}, "differs from its device's runtime 'torch'"),
        ({"device": {"name": "x"}}, r"device in .*missing field\(s\) \['runtime'\]"),
        ({"device": "cpu"}, "device in .* must be a mapping, got str"),
    ],
)
def test_malformed_fields_are_named(tmp_path, space, table, change, message):
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=message) as info:
        load_latency_table(path, space=space)
    assert "tiny.json" in str(info.value)


@pytest.mark.parametrize(
    "entry",
    [{"median_ms": -1.0, "iqr_ms": 0.1}, {"median_ms": 1.0}, [1.0, 0.1],
     {"median_ms": float("inf"), "iqr_ms": 0.0}, {"median_ms": "1", "iqr_ms": 0.0}],
)  # fmt: skip
def test_malformed_entries_are_named(tmp_path, space, table, entry):
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    key = next(iter(data["entries"]))
    data["entries"][key] = entry
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=f"entries\\[{key!r}\\]"):
        load_latency_table(path, space=space)


def test_fields_added_to_the_space_later_count_as_their_defaults(tmp_path, space, table):
    """A table written before SearchSpace/StageSpec gained a defaulted field stays valid."""
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    del data["space_fields"]["head_act"]
    for stage in data["space_fields"]["stages"]:
        del stage["use_se"]  # as if StageSpec.use_se were new (it has no default: must differ)
    path.write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match=r"differing fields: \['stages'\]"):
        load_latency_table(path, space=space)
    data["space_fields"]["stages"] = table.to_dict()["space_fields"]["stages"]
    path.write_text(json.dumps(data))
    assert load_latency_table(path, space=space).entries == table.entries
    changed = dataclasses.replace(space, head_act="relu")
    with pytest.raises(LatencyTableError, match=r"differing fields: \['head_act'\]"):
        load_latency_table(path, space=changed)


def test_not_json_or_not_utf8_is_not_a_latency_table(tmp_path, space):
    path = tmp_path / "tiny.json"
    for content in (b"\xff\xfe\x00garbage", b"{", b"[" * 100_000):
        path.write_bytes(content)
        with pytest.raises(LatencyTableError, match="is not a latency table"):
            load_latency_table(path, space=space)


def test_other_library_version_loads_with_a_warning(tmp_path, space, table, caplog):
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    data["library_version"] = "0.0.1"
    path.write_text(json.dumps(data))
    with caplog.at_level("WARNING", logger="supernet.cost.lut"):
        loaded = load_latency_table(path, space=space)
    assert loaded.library_version == "0.0.1"
    assert any("0.0.1" in r.getMessage() for r in caplog.records)


def test_a_missing_entry_is_an_error_naming_the_key(tmp_path, space, table):
    key = "stem hw=12 in=1 out=8"
    path = table.save(tmp_path / "tiny.json")
    data = json.loads(path.read_text())
    del data["entries"][key]
    path.write_text(json.dumps(data))
    partial = load_latency_table(path, space=space)
    small = dataclasses.replace(space.largest(), resolution=8)
    assert partial.predict([small])[0] == table.predict([small])[0]
    with pytest.raises(LatencyTableError, match=f"has no entry '{key}', needed by config #1"):
        partial.predict([small, space.largest()])
    block = "mbconv hw=2 in=16 out=16 k=5 e=3 s=1 se=1 act=h_swish"
    entries = {k: v for k, v in table.entries.items() if k != block}
    no_block = dataclasses.replace(table, entries=entries)
    with pytest.raises(LatencyTableError, match=f"has no entry '{block}'"):
        no_block.predict([small])


def test_invalid_configs_are_named(table, space):
    bad = dataclasses.replace(space.largest(), kernel_size=(3, 7, 3, 3))
    with pytest.raises(ConfigError, match=r"kernel_size\[1\] = 7 is not allowed"):
        table.predict([space.largest(), bad])
    short = dataclasses.replace(space.largest(), depth=(1,))
    with pytest.raises(ConfigError, match="depth has 1 entries"):
        table.predict([short])


def test_onnxruntime_tables_take_off_the_call_overhead(space):
    device = DeviceSpec(name="test-ort", runtime="onnxruntime", threads=1)
    table = build_latency_table(space, device, **FAST)
    assert table.memory_format == "onnx" and table.call_overhead_ms > 0
    config = space.largest()
    assert table.predict([config])[0] == pytest.approx(manual_prediction(table, config))


def test_fit_overhead_recovers_scale_and_offset():
    summed = np.array([1.0, 2.0, 3.0, 5.0])
    assert fit_overhead(summed, 0.8 * summed + 0.25) == pytest.approx((0.8, 0.25))
    assert fit_overhead(summed, summed + 0.5, fit_scale=False) == pytest.approx((1.0, 0.5))
    assert fit_overhead(np.ones(3), np.array([1.1, 1.2, 1.3])) == pytest.approx((1.0, 0.2))


def test_validate_reports_mape_and_tau(table):
    result = validate_latency_table(table, n=4, seed=3, repeats=2, warmup=1)
    assert result.predicted_ms.shape == result.measured_ms.shape == (4,)
    assert (result.measured_ms > 0).all() and result.mape_percent >= 0
    assert -1 <= result.kendall_tau <= 1
    expected = 100 * np.mean(np.abs(result.predicted_ms / result.measured_ms - 1))
    assert result.mape_percent == pytest.approx(expected)
    with pytest.raises(ConfigError, match="n = 1 must be an integer >= 2"):
        validate_latency_table(table, n=1)
    with pytest.raises(ConfigError, match="seed = -1 must be an integer >= 0"):
        validate_latency_table(table, n=4, seed=-1)
    with pytest.raises(LatencyTableError, match="not 'mbv3-tiny'"):
        validate_latency_table(table, get_space("mbv3-tiny"), n=2)


def test_validate_measures_the_machine_drift_on_the_fit_subnets(table, monkeypatch):
    """The machine runs 2x slower than at build time: the fit subnets take 2x their stored
    latency and the validation subnets 2x their prediction → plain MAPE 50%, speed ratio 2,
    drift-corrected MAPE 0."""
    import supernet.cost.lut_validate as lut_validate

    then = table.build["fit"]["measured_ms"]

    def measure(space, configs, device, **_):  # the 6 validation subnets, then any fit subnets
        assert len(configs) in (6, 6 + len(then))
        ms = [2 * float(p) for p in table.predict(configs[:6])] + [2 * m for m in then]
        ms = ms[: len(configs)]
        return [LatencyResult(m, 0.0, 1, 1, "torch", 1, "contiguous", 1) for m in ms]

    monkeypatch.setattr(lut_validate, "measure_subnets", measure)
    result = validate_latency_table(table, n=6, seed=3)
    assert result.speed_ratio == pytest.approx(2.0)
    assert result.mape_percent == pytest.approx(50.0)
    assert result.drift_corrected_mape_percent == pytest.approx(0.0, abs=1e-9)
    off = validate_latency_table(table, n=6, seed=3, drift_check=False)
    assert off.speed_ratio is None and off.drift_corrected_mape_percent is None
    assert off.mape_percent == pytest.approx(50.0)


def test_validate_refuses_a_malformed_fit_record(table):
    broken = dataclasses.replace(
        table, build={**table.build, "fit": {**table.build["fit"], "measured_ms": [1.0]}}
    )
    with pytest.raises(LatencyTableError, match=r"build\.fit has \d+ configs but measured_ms"):
        validate_latency_table(broken, n=2)
    no_fit = dataclasses.replace(table, build={k: v for k, v in table.build.items() if k != "fit"})
    assert validate_latency_table(no_fit, n=2, repeats=1, warmup=0).speed_ratio is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"repeats": 0}, "repeats = 0 must be an integer >= 1"),
        ({"warmup": -1}, "warmup = -1 must be an integer >= 0"),
        ({"fit_subnets": -2}, "fit_subnets = -2 must be an integer >= 0"),
        ({"seed": -1}, "seed = -1 must be an integer >= 0"),
        ({"repeats": 2.5}, "repeats = 2.5 must be an integer"),
    ],
)
def test_build_checks_its_settings_before_measuring(space, monkeypatch, settings, message):
    import supernet.cost.lut_build as lut_build

    def never(*args, **kwargs):
        raise AssertionError("measured before the settings were checked")

    monkeypatch.setattr(lut_build, "_make_supernet", never)
    device = DeviceSpec(name="test", runtime="torch", threads=1)
    with pytest.raises(ConfigError, match=message):
        build_latency_table(space, device, **{**FAST, **settings})


def test_prediction_of_10k_configs_is_batched():
    """A synthetic mbv3-tiny table: 10,000 predictions well under a second, equal to the sums."""
    space = get_space("mbv3-tiny")
    keys = block_modules(OFAMobileNetV3(space), 1)
    entries = {k: (0.001 * (i + 1), 0.0) for i, k in enumerate(sorted(keys))}
    table = LatencyTable(space=space, device=DeviceSpec("x", "torch", 1), entries=entries,
                         scale=0.9, overhead_ms=0.05, call_overhead_ms=0.0001)  # fmt: skip
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(10_000)]
    start = time.perf_counter()
    predicted = table.predict(configs)
    assert time.perf_counter() - start < 1.0
    for i in (0, 1, 9_999):
        assert predicted[i] == pytest.approx(manual_prediction(table, configs[i]))
    assert len(slot_specs(space)) == space.num_blocks
