"""``run_ps_ablation`` on a tiny digits setting: three arms, four subnets, table, plot, resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from supernet.ablate import ablation_subnets, no_ps_config, run_ps_ablation, scratch_config
from supernet.errors import ConfigError
from supernet.space import get_space

PHASES = [
    {"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
     "depths": "max", "distill": False},
    {"name": "elastic", "epochs": 1, "lr": 0.02, "sort_channels": True, "subnets_per_step": 2},
]  # fmt: skip


def test_arm_configs_keep_the_total_epochs(tiny_config):
    cfg = tiny_config(phases=[dict(p) for p in PHASES])
    no_ps = no_ps_config(cfg)
    assert [p.epochs for p in no_ps.phases] == [2]
    assert no_ps.phases[0].kernel_sizes == "all" and no_ps.phases[0].sandwich
    space = get_space(cfg.space)
    labels = [label for label, _ in ablation_subnets(space)]
    assert labels == ["largest", "middle-a", "middle-b", "smallest"]
    alone = scratch_config(cfg, space.smallest())
    assert alone.phases[0].epochs == 2
    assert alone.phases[0].kernel_sizes == [min(space.kernel_sizes)]
    with pytest.raises(ConfigError, match="one choice per dimension"):
        scratch_config(cfg, space.sample(np.random.default_rng(0)))


@pytest.mark.slow  # 6 tiny trainings: 240 s CPU on the loaded shared VM (2026-12-07), over 30 s
def test_ablation_writes_the_table_and_resumes(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(phases=[dict(p) for p in PHASES], train_limit=32, val_limit=16,
                      bn_calib_images=16, eval_batch_size=16)  # fmt: skip
    rows = run_ps_ablation(cfg, tmp_path, test_limit=16)
    assert [(r.arm, r.subnet) for r in rows][:2] == [("ps", "largest"), ("ps", "middle-a")]
    assert len(rows) == 4 + 4 + 4
    assert all(0.0 <= r.test_accuracy <= 100.0 for r in rows)
    with open(tmp_path / "ablate_ps.csv") as f:
        assert len(list(csv.DictReader(f))) == 12
    table = (tmp_path / "ablate_ps.md").read_text()
    assert table.count("\n") == 2 + 4 and "smallest" in table
    assert (tmp_path / "ablate_ps.png").stat().st_size > 1000
    # rerun: every arm is finished, so nothing trains again and the scores repeat
    import supernet.train.trainer as trainer_module

    def no_step(*a, **k):
        raise AssertionError("a finished arm trained again")

    monkeypatch.setattr(trainer_module, "_step", no_step)
    again = run_ps_ablation(cfg, tmp_path, test_limit=16)
    assert [r.test_accuracy for r in again] == [r.test_accuracy for r in rows]
