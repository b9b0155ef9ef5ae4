"""Latency budgets on a drifting machine: recalibration before search, relative budgets
(issue 22, item 11)."""

import csv
import shutil
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

import supernet.cost.latency as latency_module
from supernet.cli.app import app
from supernet.cost import DeviceSpec, build_latency_table, load_devices
from supernet.errors import ConfigError
from supernet.predict import collect_accuracy_dataset, save_predictor, train_predictor
from supernet.report.specialize import objectives_for, resolve_budgets
from supernet.space import get_space

runner = CliRunner()
SLOWDOWN = 1.6


def test_a_relative_budget_is_a_share_of_the_tables_prediction(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"devices": [
        {"name": "fast", "runtime": "torch", "constraints": {"max_latency": "60% of largest"}},
    ]}))  # fmt: skip
    (spec,) = load_devices(path)
    space = get_space("mbv3-tiny")
    objectives = {"latency_ms": lambda batch: [2.5] * len(batch)}
    assert resolve_budgets(spec, space, objectives) == {"max_latency_ms": pytest.approx(1.5)}
    with pytest.raises(ConfigError, match="no latency table"):
        resolve_budgets(spec, space, objectives_for(space, None))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("60 of largest", "write a share of the latency table's largest or smallest subnet"),
        ("0% of largest", "e.g. '60% of largest'"),
        (0.6, "an absolute budget goes in max_latency_ms"),
    ],
)
def test_a_bad_relative_budget_names_the_value(value, message):
    with pytest.raises(ConfigError, match=message):
        DeviceSpec(name="d", runtime="torch", threads=1, constraints={"max_latency": value})
    both = {"max_latency": "50% of largest", "max_latency_ms": 1.0}
    with pytest.raises(ConfigError, match="give one latency budget"):
        DeviceSpec(name="d", runtime="torch", threads=1, constraints=both)


class _SlowTimer(latency_module.Timer):
    """The machine after a slowdown: every timed repeat lasts ``SLOWDOWN`` times as long."""

    def timeit(self, number):
        return SimpleNamespace(median=super().timeit(number).median * SLOWDOWN)


@pytest.mark.slow
@pytest.mark.serial  # measured latency: a test running beside it would make it miss its budget
def test_after_a_slowdown_the_specialized_subnet_meets_its_measured_budget(
    trained_run, tmp_path, monkeypatch
):
    run = shutil.copytree(trained_run, tmp_path / "run")
    data = collect_accuracy_dataset(run, n=6, device="cpu", val_images=64)
    predictor, report = train_predictor(data, epochs=30, holdout=0.3)
    save_predictor(run / "predictor.pt", predictor, data.space, report)
    device = DeviceSpec(name="cpu1", runtime="torch", threads=1)
    space = get_space("mbv3-tiny")
    # warm-up 5: a cold first timing of the fit subnets inflated the table and read as a smaller
    # drift (1.205 instead of ~1.6, seen once in CI-like runs)
    table = build_latency_table(space, device, repeats=5, warmup=5, fit_subnets=4,
                                memory_format="contiguous")  # fmt: skip
    table.save(tmp_path / "lut.json")
    # A budget between the smallest subnet's and the largest's latency after the slowdown.
    small, large = table.predict([space.smallest(), space.largest()])
    budget = SLOWDOWN * (small + 0.5 * (large - small))
    devices = tmp_path / "devices.yaml"
    devices.write_text(yaml.safe_dump({"devices": [
        {"name": "cpu1", "runtime": "torch", "threads": 1, "lut": "lut.json",
         "constraints": {"max_latency_ms": float(budget)}},
    ]}))  # fmt: skip

    monkeypatch.setattr(latency_module, "Timer", _SlowTimer)
    result = runner.invoke(app, ["specialize", "--run-dir", str(run), "--devices", str(devices),
                                 "--generations", "3", "--population", "8"])  # fmt: skip
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    factor = float(out.split("cpu1: latency predictions scaled by ")[1].split()[0])
    # 1.6 up to the noise of a shared machine (1.205 and 2.35 seen): far from 1, the unscaled table
    assert 1.15 < factor < 3.0
    md = (run / "specialized" / "specialize.md").read_text()
    assert f"predictions scaled by {factor:.3f}" in md
    # the subnet's measured latency is closer to the budget than the unscaled table's miss (~1.6x):
    # one subnet's single-thread timing on this VM strays from the table by up to ~35% (1.35x
    # seen on an otherwise idle run, 2026-12-08), so the bound is 1.4x: room for that stray, halfway
    # between meeting the budget and missing it by the slowdown
    (row,) = csv.DictReader((run / "specialized" / "specialize.csv").open())
    assert float(row["measured_latency_ms"]) <= 1.4 * budget, (row["measured_latency_ms"], budget)
