"""Data-parallel training and sharded evaluation on loopback with 2 gloo ranks (torchrun)."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from supernet.checkpoint import load_checkpoint
from supernet.data import BatchLoader, load_digits
from supernet.errors import ConfigError
from supernet.predict import collect_accuracy_dataset
from supernet.train.distributed import launch_torchrun, shard_map
from supernet.train.rundir import CHECKPOINT

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(args, cwd, *, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_sharded_loader_splits_each_global_batch_and_resumes_mid_epoch():
    ds = load_digits().train
    full = BatchLoader(ds, 8, shuffle=True, augment=True, limit=40,
                       generator=torch.Generator().manual_seed(5))  # fmt: skip
    shards = [BatchLoader(ds, 8, shuffle=True, augment=True, limit=40, shard=(r, 2),
                          generator=torch.Generator().manual_seed(5)) for r in (0, 1)]  # fmt: skip
    batches = list(full)
    for (x, y), (x0, y0), (x1, y1) in zip(batches, *shards, strict=True):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
    tail = BatchLoader(ds, 8, shuffle=True, augment=True, limit=40,
                       generator=torch.Generator().manual_seed(5)).iterate(3)  # fmt: skip
    for (x, y), (xt, yt) in zip(batches[3:], tail, strict=True):
        assert torch.equal(x, xt) and torch.equal(y, yt)


def test_shard_sizes_must_divide_the_global_batch():
    with pytest.raises(ConfigError, match="batch_size=6 is not divisible by the world size 4"):
        BatchLoader(load_digits().train, 6, shuffle=False, augment=False, shard=(0, 4))
    with pytest.raises(ConfigError, match=r"shard=\(2, 2\)"):
        BatchLoader(load_digits().train, 6, shuffle=False, augment=False, shard=(2, 2))
    with pytest.raises(ConfigError, match="nproc = 0"):
        launch_torchrun(0, ["train"])


def test_shard_map_without_a_process_group_is_a_plain_map():
    assert shard_map(lambda v: v * v, [3, 1, 2]) == [9, 1, 4]


@pytest.mark.slow
def test_ddp_averages_gradients_and_ranks_hold_identical_weights(tmp_path):
    _torchrun([str(WORKER), "step", str(tmp_path)], tmp_path)
    load = lambda name: torch.load(tmp_path / name, weights_only=True)  # noqa: E731
    rank0, rank1, single = load("rank0.pt"), load("rank1.pt"), load("single.pt")
    assert rank0.keys() == single.keys()
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
        # each rank saw half the batch: only averaged gradients give the one-process step
        torch.testing.assert_close(value, single[key], rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.slow
def test_sharded_accuracy_collection_equals_one_process(trained_run, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(trained_run, one)
    shutil.copytree(trained_run, two)
    _torchrun([str(WORKER), "collect", str(tmp_path), str(two)], tmp_path)
    single = collect_accuracy_dataset(one, n=4, seed=3, val_images=64, device="cpu")
    for rank in (0, 1):
        merged = torch.load(tmp_path / f"collect{rank}.pt", weights_only=True)["acc"]
        assert merged.tolist() == single.val_accuracy.tolist()
    with open(one / "acc_dataset.csv") as a, open(two / "acc_dataset.csv") as b:
        rows_a, rows_b = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert len(rows_a) == 6
    assert rows_a == rows_b


@pytest.mark.slow
def test_two_process_training_from_the_cli(tmp_path, tiny_config):
    cfg = tiny_config(threads=1).to_dict()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "supernet", "train", "--nproc", "2", "--config", "tiny.yaml",
         "--run-dir", "run"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("done in") == 1  # rank 0 alone prints
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    phases = cfg["phases"]
    assert [(r["phase"], int(r["epoch"])) for r in rows] == [
        (p["name"], e + 1) for p in phases for e in range(p["epochs"])
    ]
    payload, _ = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert payload["phase_index"] == len(phases)
    assert len(payload["rng"]["torch_global"]) == 2  # each rank's dropout stream, for --resume
