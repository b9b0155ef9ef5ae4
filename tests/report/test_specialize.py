"""Specialize a tiny trained run for devices: search, extract, test, time, export, report."""

import csv
import json
import shutil

import numpy as np
import pytest

from supernet.cost import DeviceSpec, macs, peak_memory_bytes
from supernet.errors import ConfigError, SearchError
from supernet.predict import collect_accuracy_dataset, save_predictor, train_predictor
from supernet.report.run_report import write_run_report, write_specialize_outputs
from supernet.report.specialize import specialize
from supernet.search import EvolutionConfig
from supernet.space import ArchConfig, get_space

FAST = EvolutionConfig(population=16, generations=4, seed=0)


@pytest.fixture(scope="module")
def run_with_predictor(trained_run, tmp_path_factory):
    """The shared digits run with a small accuracy dataset and a fitted predictor."""
    run_dir = shutil.copytree(trained_run, tmp_path_factory.mktemp("specialize") / "run")
    dataset = collect_accuracy_dataset(run_dir, n=8, device="cpu", val_images=100)
    predictor, report = train_predictor(dataset, epochs=50, holdout=0.3)
    save_predictor(run_dir / "predictor.pt", predictor, dataset.space, report)
    return run_dir


def test_each_device_gets_a_subnet_within_its_budgets_exported_and_reported(
    run_with_predictor, tmp_path
):
    run_dir = shutil.copytree(run_with_predictor, tmp_path / "run")
    space = get_space("mbv3-tiny")
    mid_macs = float(macs([space.middle()], space)[0])
    small_peak = float(peak_memory_bytes([space.smallest()], space)[0]) * 1.5
    devices = [
        DeviceSpec(name="mcu", runtime="onnxruntime", threads=1,
                   constraints={"max_peak_memory_bytes": small_peak}),
        DeviceSpec(name="phone", runtime="torch", threads=1, constraints={"max_macs": mid_macs}),
    ]  # fmt: skip
    result = specialize(run_dir, devices, evolution=FAST, baseline_subnets=2, device="cpu")
    assert [d.device for d in result.devices] == ["mcu", "phone"]
    mcu, phone = result.devices
    assert mcu.peak_memory_bytes <= small_peak and phone.macs <= mid_macs
    assert macs([phone.config], space)[0] == phone.macs  # the reported cost is the subnet's
    for d in result.devices:
        assert all(d.meets.values()) and 0.0 <= d.test_accuracy <= 100.0
        assert d.measured_latency_ms > 0 and d.onnx_max_abs_diff <= 1e-4
        assert len(d.baseline_test_accuracy) == 2
        doc = json.loads((d.export_dir / "subnet.json").read_text())
        assert ArchConfig.from_dict(doc["config"]) == d.config
        assert doc["metadata"]["test_acc"] == pytest.approx(d.test_accuracy, abs=0.01)
        assert (d.export_dir / "subnet.onnx").is_file() and (d.export_dir / "subnet.pt").is_file()
    written = write_specialize_outputs(result)
    assert [p.name for p in written] == ["specialize.csv", "specialize.md"]  # no LUT: no front
    report = write_run_report(run_dir).read_text()
    assert "| mcu (onnxruntime) | max_peak_memory_bytes" in report
    assert "| phone (torch) | max_macs" in report


def test_search_is_reproducible_and_obeys_the_predictor(run_with_predictor, tmp_path):
    from supernet.predict import load_predictor

    space = get_space("mbv3-tiny")
    limit = float(macs([space.middle()], space)[0])
    device = DeviceSpec(name="d", runtime="onnxruntime", threads=1, constraints={"max_macs": limit})
    a = specialize(run_with_predictor, [device], out_dir=tmp_path / "a", evolution=FAST,
                   baseline_subnets=0, device="cpu").devices[0]  # fmt: skip
    b = specialize(run_with_predictor, [device], out_dir=tmp_path / "b", evolution=FAST,
                   baseline_subnets=0, device="cpu").devices[0]  # fmt: skip
    assert a.config == b.config and a.test_accuracy == b.test_accuracy
    predictor, _ = load_predictor(run_with_predictor / "predictor.pt", space)
    assert predictor.predict_accuracy([a.config])[0] == pytest.approx(a.predicted_accuracy)
    # No random feasible subnet is predicted better than what evolution found.
    rng = np.random.default_rng(0)
    randoms = [space.sample(rng) for _ in range(200)]
    feasible = [c for c in randoms if macs([c], space)[0] <= device.constraints["max_macs"]]
    assert max(predictor.predict_accuracy(feasible)) <= a.predicted_accuracy + 1e-6


def test_a_latency_budget_without_a_table_is_a_clear_error(run_with_predictor, tmp_path):
    device = DeviceSpec(name="fast", runtime="onnxruntime", threads=1,
                        constraints={"max_latency_ms": 0.5})  # fmt: skip
    with pytest.raises(ConfigError, match="device 'fast' sets max_latency_ms but has no latency"):
        specialize(run_with_predictor, [device], out_dir=tmp_path, evolution=FAST, device="cpu")
    with pytest.raises(ConfigError, match="no devices"):
        specialize(run_with_predictor, [], evolution=FAST, device="cpu")


def test_an_impossible_device_is_reported_and_the_others_still_specialized(
    run_with_predictor, tmp_path
):
    space = get_space("mbv3-tiny")
    smallest_macs = float(macs([space.smallest()], space)[0])
    mid_macs = float(macs([space.middle()], space)[0])
    devices = [
        DeviceSpec(name="tiny", runtime="onnxruntime", threads=1,
                   constraints={"max_macs": smallest_macs / 2}),
        DeviceSpec(name="ok", runtime="onnxruntime", threads=1, constraints={"max_macs": mid_macs}),
    ]  # fmt: skip
    result = specialize(run_with_predictor, devices, out_dir=tmp_path / "out", evolution=FAST,
                        baseline_subnets=0, device="cpu")  # fmt: skip
    assert [d.device for d in result.devices] == ["ok"]
    (tiny,) = result.infeasible
    assert tiny.device == "tiny" and tiny.cheapest["macs"] == pytest.approx(smallest_macs)
    assert "meets all constraints" in tiny.message
    assert not (tmp_path / "out" / "tiny").exists()
    write_specialize_outputs(result)
    rows = list(csv.DictReader((tmp_path / "out" / "specialize.csv").open()))
    assert [(r["device"], r["meets_constraints"]) for r in rows] == [
        ("ok", "True"),
        ("tiny", "False"),
    ]
    assert rows[1]["note"].startswith("no subnet meets the budgets; cheapest found: macs")
    table = (tmp_path / "out" / "specialize.md").read_text()
    assert "| tiny (onnxruntime) | max_macs" in table and "**no: infeasible**" in table
    # Every device impossible: the call fails, naming the cheapest cost.
    with pytest.raises(SearchError, match=r"macs <= .*cheapest found"):
        specialize(run_with_predictor, devices[:1], out_dir=tmp_path / "none", evolution=FAST,
                   baseline_subnets=0, device="cpu")  # fmt: skip


def test_a_device_row_has_the_csv_columns(run_with_predictor, tmp_path):
    from supernet.report.specialize import DEVICE_ROW_KEYS

    space = get_space("mbv3-tiny")
    limit = float(macs([space.middle()], space)[0])
    device = DeviceSpec(name="d", runtime="onnxruntime", threads=1, constraints={"max_macs": limit})
    result = specialize(run_with_predictor, [device], out_dir=tmp_path, evolution=FAST,
                        baseline_subnets=0, device="cpu")  # fmt: skip
    assert tuple(result.devices[0].row()) == DEVICE_ROW_KEYS
