"""``run_scaled_ablation``: scaled baselines, the Pareto front, the table, the plot and resume."""

from __future__ import annotations

import csv
import json

import pytest

import supernet.ablate.scaled as scaled_module
from supernet.ablate import (
    ScaledPoint,
    best_within,
    pareto_front,
    run_scaled_ablation,
    scaled_baselines,
)
from supernet.cost.device import DeviceSpec
from supernet.cost.lut import LatencyTable
from supernet.cost.lut_build import block_modules
from supernet.errors import ConfigError
from supernet.nn import OFAMobileNetV3
from supernet.space import ArchConfig, get_space


def synthetic_table(space_name: str = "mbv3-tiny") -> LatencyTable:
    """A table with made-up, distinct block latencies (ms): the ablation only compares them, and a
    measured one would depend on this machine (and a fresh clone has none)."""
    space = get_space(space_name)
    keys = sorted(block_modules(OFAMobileNetV3(space), 1))
    entries = {k: (0.01 * (i + 1), 0.0) for i, k in enumerate(keys)}
    return LatencyTable(space=space, device=DeviceSpec("synthetic", "torch", 1), entries=entries)


def test_each_baseline_scales_one_dimension_of_the_largest():
    space = get_space("mbv3-tiny")
    base = scaled_baselines(space)
    big = space.largest()
    assert base[0] == ("largest", big)
    expected = (len(space.expand_ratios) + len(space.depths) + len(space.resolutions) - 3) + 1
    assert len(base) == expected
    for label, arch in base[1:]:
        changed = [name for name in ("resolution", "kernel_size", "expand_ratio", "depth")
                   if getattr(arch, name) != getattr(big, name)]  # fmt: skip
        dim = {"width": "expand_ratio", "depth": "depth", "resolution": "resolution"}
        assert changed == [dim[label.split("-")[0]]], label
        values = getattr(arch, changed[0])
        assert len(set(values if isinstance(values, tuple) else [values])) == 1


def test_per_dim_keeps_the_smallest_choices():
    space = get_space("mbv3-tiny")
    labels = [label for label, _ in scaled_baselines(space, per_dim=1)]
    e, d, r = min(space.expand_ratios), min(space.depths), min(space.resolutions)
    assert labels == ["largest", f"width-e{e}", f"depth-d{d}", f"resolution-r{r}"]
    with pytest.raises(ConfigError, match="per_dim = 0"):
        scaled_baselines(space, per_dim=0)


def _p(source, label, latency, acc):
    return ScaledPoint(source, label, "{}", latency, acc, 0)


def test_best_within_and_the_front_use_supernet_points_only():
    points = [_p("scratch", "b", 1.0, 99.0), _p("supernet", "x", 0.5, 80.0),
              _p("supernet", "y", 0.9, 85.0), _p("supernet", "z", 1.1, 95.0),
              _p("supernet", "w", 0.7, 70.0)]  # fmt: skip
    assert best_within(points, 1.0).label == "y"
    assert best_within(points, 0.4) is None
    assert [p.label for p in pareto_front(points)] == ["x", "y", "z"]


def test_a_negative_random_count_is_refused(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="n_random = -1"):
        run_scaled_ablation(tiny_config(), tmp_path, synthetic_table(), n_random=-1)


@pytest.mark.slow  # three tiny trainings
def test_scaled_ablation_writes_the_table_and_resumes(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(train_limit=32, val_limit=16, bn_calib_images=16, eval_batch_size=16)
    space = get_space(cfg.space)
    two = scaled_baselines(space)[:1] + scaled_baselines(space)[-1:]  # largest, smallest r
    monkeypatch.setattr(scaled_module, "scaled_baselines", lambda s, per_dim: two)
    table = synthetic_table()
    points = run_scaled_ablation(cfg, tmp_path, table, n_random=2, test_limit=16)
    assert [(p.source, p.label) for p in points] == [
        ("scratch", "largest"), ("scratch", two[1][0]), ("supernet", "largest"),
        ("supernet", two[1][0]), ("supernet", "random-0"), ("supernet", "random-1")]  # fmt: skip
    for p in points:
        arch = ArchConfig.from_json(p.config)
        assert p.latency_ms == pytest.approx(float(table.predict([arch])[0]), abs=1e-3)
        assert 0.0 <= p.test_accuracy <= 100.0
    assert points[0].latency_ms > points[1].latency_ms  # the resolution-scaled one is faster
    with open(tmp_path / "ablate_scaled.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    md = (tmp_path / "ablate_scaled.md").read_text()
    assert md.count("\n") == 2 + 2 and "| largest |" in md
    assert (tmp_path / "ablate_scaled.png").stat().st_size > 1000
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {
        "ps", "scratch-largest", f"scratch-{two[1][0]}"}  # fmt: skip
    assert json.loads(points[0].config)["resolution"] == 32

    import supernet.train.trainer as trainer_module

    def no_step(*a, **k):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(trainer_module, "_step", no_step)
    again = run_scaled_ablation(cfg, tmp_path, table, n_random=2, test_limit=16)
    assert [p.test_accuracy for p in again] == [p.test_accuracy for p in points]
