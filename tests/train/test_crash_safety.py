"""Crash safety: mid-epoch checkpoints, exact resume, SIGINT, SIGKILL at a random moment, NaN."""

import csv
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import supernet.train.trainer as trainer_module
from supernet.checkpoint import load_checkpoint
from supernet.errors import SupernetError, TrainingInterrupted
from supernet.train import TrainReporter, train
from supernet.train.rundir import CHECKPOINT

# 96 images / batch 32 = 3 steps per epoch; 7 epochs in 4 phases (see tests/conftest.py)
STEPS_PER_EPOCH = 3


class _Crash(Exception):
    pass


class _AtStep(TrainReporter):
    """Calls ``action`` at the ``at``-th optimizer step of the run (1-based)."""

    def __init__(self, at, action):
        self.at, self.action, self.steps = at, action, 0

    def on_step(self, loss, lr):
        self.steps += 1
        if self.steps == self.at:
            self.action()


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in csv.DictReader(f)]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def _raise():
    raise _Crash


@pytest.mark.parametrize("crash_at_step", [5, 11])  # mid-epoch in phase 1; in phase 3
def test_mid_epoch_checkpoints_resume_exactly(tmp_path, tiny_config, tiny_reference_run,
                                              crash_at_step):  # fmt: skip
    cfg = tiny_config(checkpoint_every=2)
    reference_dir, reference = tiny_reference_run
    with pytest.raises(_Crash):
        train(cfg, tmp_path / "b", reporter=_AtStep(crash_at_step, _raise))
    payload, _ = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    # the last checkpoint is at most checkpoint_every steps behind the crash
    done = sum(STEPS_PER_EPOCH for _ in payload["metrics"]) + payload["step"]
    assert crash_at_step - 2 <= done <= crash_at_step
    resumed = train(cfg, tmp_path / "b", resume=True).supernet.state_dict()
    _assert_same_weights(reference, resumed)
    assert _rows(reference_dir) == _rows(tmp_path / "b")


def test_sigint_stops_after_the_step_with_a_checkpoint(tmp_path, tiny_config, tiny_reference_run):
    cfg = tiny_config()
    _, reference = tiny_reference_run
    # the signal arrives after step 4 (epoch 2, step 1) is reported: step 5 is the one in progress
    interrupt = _AtStep(4, lambda: os.kill(os.getpid(), signal.SIGINT))
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run in the background
    with pytest.raises(TrainingInterrupted, match=r"phase 'full', epoch 2, step 2; checkpoint"):
        train(cfg, tmp_path / "b", reporter=interrupt)
    payload, _ = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert (payload["phase_index"], payload["epoch"], payload["step"]) == (0, 1, 2)
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored
    resumed = train(cfg, tmp_path / "b", resume=True).supernet.state_dict()
    _assert_same_weights(reference, resumed)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config,
                                                                  monkeypatch):  # fmt: skip
    cfg = tiny_config()
    real_step, calls = trainer_module._step, []

    def step(*args):
        calls.append(1)
        return float("nan") if len(calls) == STEPS_PER_EPOCH + 2 else real_step(*args)

    snapshots = []
    monkeypatch.setattr(trainer_module, "_step", step)

    class Snapshot(TrainReporter):
        def on_epoch_end(self, row):
            snapshots.append((tmp_path / CHECKPOINT).read_bytes())

    with pytest.raises(
        SupernetError, match=r"non-finite loss nan in phase 'full', epoch 2, step 2"
    ):
        train(cfg, tmp_path, reporter=Snapshot())
    assert (tmp_path / CHECKPOINT).read_bytes() == snapshots[-1]
    payload, _ = load_checkpoint(tmp_path / CHECKPOINT)
    assert (payload["phase_index"], payload["epoch"], payload["step"]) == (0, 1, 0)


def _cli_train(cwd, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "supernet", "train", "--config", "tiny.yaml", "--run-dir", "run",
         *extra],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume_finishes_the_same_run(tmp_path, tiny_config):
    cfg = tiny_config(threads=1, checkpoint_every=1)
    expected = [(p.name, e + 1) for p in cfg.phases for e in range(p.epochs)]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    start = time.perf_counter()
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    (ref_dir / "tiny.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert _cli_train(ref_dir).wait(timeout=300) == 0
    duration = time.perf_counter() - start
    reference, _ = load_checkpoint(ref_dir / "run" / CHECKPOINT)
    for seed in range(2):  # two random moments (each a killed run and its resume: ~25 s)
        work = tmp_path / f"kill{seed}"
        work.mkdir()
        (work / "tiny.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
        proc = _cli_train(work)
        time.sleep(random.Random(seed).uniform(0.3, 0.9) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # killed before its first checkpoint, a run has nothing to resume (and --resume says so):
        # it starts again with --force, as the message advises
        again = "--resume" if (work / "run" / CHECKPOINT).is_file() else "--force"
        resumed = _cli_train(work, again)
        out, _ = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, out[-3000:]
        with open(work / "run" / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert [(r["phase"], int(r["epoch"])) for r in rows] == expected
        payload, meta = load_checkpoint(work / "run" / CHECKPOINT)
        assert (payload["phase_index"], payload["epoch"], payload["step"]) == (
            len(cfg.phases),
            0,
            0,
        )
        assert meta["space"] == "mbv3-tiny"
        _assert_same_weights(reference["model"], payload["model"])
        assert not [p.name for p in (work / "run").iterdir() if p.name.endswith(".tmp")]
