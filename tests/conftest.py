import os

# The CLI's rich consoles are made at import and keep the width COLUMNS gives then (CI sets it);
# tests pass their own width per call, so no width may be fixed before they run.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
# Two xdist workers with two torch threads each share two cores: OpenMP threads that spin while
# they wait took 10-20x longer per training step here than threads that sleep (same thread count,
# same results). Set before torch loads OpenMP; subprocesses (CLI tests) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from supernet.train import load_config, train  # noqa: E402


@pytest.fixture(autouse=True)
def _two_threads():
    """Tests run with the thread count CI has, so results do not depend on the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


TINY_PHASES = [
    {"name": "full", "epochs": 2, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
     "depths": "max", "distill": False},
    {"name": "kernel", "epochs": 1, "lr": 0.02, "expand_ratios": "max", "depths": "max"},
    {"name": "depth", "epochs": 1, "lr": 0.02, "expand_ratios": "max"},
    {"name": "expand", "epochs": 2, "lr": 0.02, "sort_channels": True, "subnets_per_step": 2},
]  # fmt: skip


def make_tiny_config(**overrides):
    """A progressive-shrinking config on scikit-learn digits that trains in a few seconds."""
    data = {
        "preset": "test-tiny",
        "space": "mbv3-tiny",
        "dataset": "digits",
        "batch_size": 32,
        "train_limit": 96,
        "val_limit": 64,
        "bn_calib_images": 64,
        "eval_batch_size": 64,
        "device": "cpu",
        "phases": [dict(p) for p in TINY_PHASES],
    }
    data.update(overrides)
    return load_config(overrides=data)


@pytest.fixture
def tiny_config():
    """:func:`make_tiny_config` as a fixture."""
    return make_tiny_config


@pytest.fixture(scope="session")
def tiny_reference_run(tmp_path_factory):
    """An uninterrupted run of ``make_tiny_config()`` (2 threads): (run_dir, final state_dict).

    ``checkpoint_every`` does not change the weights, so crash tests compare against this run."""
    torch.set_num_threads(2)
    run_dir = tmp_path_factory.mktemp("tiny-reference") / "run"
    return run_dir, train(make_tiny_config(), run_dir).supernet.state_dict()


# Enough progressive shrinking on scikit-learn digits that every elastic dimension is trained;
# the accuracies are low and that is fine: the tests check bookkeeping, not quality.
TRAINED_RUN_PHASES = [
    {"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
     "depths": "max", "distill": False},
    {"name": "expand", "epochs": 1, "lr": 0.02, "sort_channels": True, "subnets_per_step": 2},
]  # fmt: skip


def tiny_run_config(**overrides):
    return make_tiny_config(**{
        "preset": "test-trained-run",
        "train_limit": 64,
        "eval_batch_size": 100,
        "threads": 1,  # the training fixture only; each test then runs with conftest's 2 threads
        "phases": [dict(p) for p in TRAINED_RUN_PHASES],
        **overrides,
    })  # fmt: skip


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished run on digits (seconds to train); copy it before writing into it."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(tiny_run_config(), run_dir)
    return run_dir
