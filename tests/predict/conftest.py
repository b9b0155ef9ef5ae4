import shutil

import pytest

from supernet.train import load_config, train

# Enough progressive shrinking on scikit-learn digits that every elastic dimension is trained;
# the accuracies are low and that is fine: the tests check bookkeeping, not quality.
PHASES = [
    {"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
     "depths": "max", "distill": False},
    {"name": "expand", "epochs": 1, "lr": 0.02, "sort_channels": True, "subnets_per_step": 2},
]  # fmt: skip


def tiny_run_config(**overrides):
    data = {
        "preset": "test-predict",
        "space": "mbv3-tiny",
        "dataset": "digits",
        "batch_size": 32,
        "train_limit": 64,
        "val_limit": 64,
        "bn_calib_images": 64,
        "eval_batch_size": 100,
        "device": "cpu",
        "threads": 1,  # the training fixture only; each test then runs with conftest's 2 threads
        "phases": [dict(p) for p in PHASES],
    }
    data.update(overrides)
    return load_config(overrides=data)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished run on digits (seconds to train); copy it before writing into it."""
    run_dir = tmp_path_factory.mktemp("predict") / "run"
    train(tiny_run_config(), run_dir)
    return run_dir


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """A private copy of the trained run (collect writes acc_dataset.csv into it)."""
    return shutil.copytree(trained_run, tmp_path / "run")
