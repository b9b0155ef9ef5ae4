import shutil

import pytest


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """A private copy of the trained run (collect writes acc_dataset.csv into it)."""
    return shutil.copytree(trained_run, tmp_path / "run")
